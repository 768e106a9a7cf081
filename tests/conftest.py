"""Shared fixtures for the equinet test-suite."""
import warnings

import pytest
import torch

# torch.compile's inductor imports torch.utils.mkldnn, whose classes use the deprecated
# ``torch.jit.script_method`` at import time: a DeprecationWarning from torch itself, the
# first time any test compiles (equinet and its tests use no TorchScript). Import it once
# here with just that warning silenced, so that every other deprecation still shows (and
# setup.cfg needs no blanket TorchScript filter).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"`torch\.jit\.script_method` is deprecated",
                            DeprecationWarning)
    import torch.utils.mkldnn  # noqa: F401


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
def atol(dtype):
    """:func:`tolerance` of the ``dtype`` fixture (test modules cannot import conftest)."""
    return tolerance(dtype)


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


def _compare_with_oracle(ours, theirs, inputs, params=(), atol=1e-10, double_backward=True):
    """Check ``ours(*inputs)`` against ``theirs(*inputs)``: values, gradients, double backward.

    ``params`` pairs each parameter of ``ours`` with its counterpart in ``theirs``.
    Gradients are taken of ``<out, v>`` for a random ``v`` with respect to every
    input and parameter; the double backward differentiates
    ``<d<out, v>/d inputs[0], r>`` with respect to all inputs and parameters.
    """
    def run(fn, tensors):
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        out = fn(*xs)
        v = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
        wrt = xs + list(tensors)
        grads = torch.autograd.grad((out * v).sum(), wrt, create_graph=True, allow_unused=True)
        second = []
        if double_backward and grads[0] is not None:
            r = torch.randn(grads[0].shape, dtype=out.dtype,
                            generator=torch.Generator().manual_seed(2))
            second = torch.autograd.grad((grads[0] * r).sum(), wrt, allow_unused=True)
        return out, grads, second

    out_a, grads_a, second_a = run(ours, [a for a, _ in params])
    out_b, grads_b, second_b = run(theirs, [b for _, b in params])
    assert out_a.shape == out_b.shape, (out_a.shape, out_b.shape)
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=0)
    for k, (ga, gb) in enumerate(list(zip(grads_a, grads_b)) + list(zip(second_a, second_b))):
        ga = torch.zeros_like(gb) if ga is None and gb is not None else ga
        gb = torch.zeros_like(ga) if gb is None and ga is not None else gb
        if ga is not None:
            torch.testing.assert_close(ga, gb, atol=atol, rtol=0, msg=f"gradient {k} differs")
    return out_a


@pytest.fixture
def compare_with_oracle():
    """The function :func:`_compare_with_oracle` (values, gradients, double backward)."""
    return _compare_with_oracle
