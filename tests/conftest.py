"""Shared fixtures for the equinet test-suite."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, so failures reproduce."""
    torch.manual_seed(0)
    yield


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def tolerance(dtype):
    """Absolute tolerance for comparing results computed in ``dtype``."""
    return {torch.float32: 1e-4, torch.float64: 1e-10}[dtype]


@pytest.fixture
def float64_default():
    """Run with float64 as torch's default dtype.

    e3nn builds some constants (e.g. the generators behind its ``wigner_D``) in
    the default dtype, so it is an exact oracle only under float64 defaults.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
