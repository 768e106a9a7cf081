"""Gate against e3nn's nn.Gate (layouts and numbers), equivariance, compile."""
import pytest
import torch
from e3nn import nn as e3nn_nn

from equinet.nn import Gate
from equinet.testing import assert_equivariant

silu, tanh, sigmoid = torch.nn.functional.silu, torch.tanh, torch.sigmoid
CASES = [
    ("16x0o", [tanh], "32x0o", [tanh], "16x1e + 16x1o"),
    ("4x0e + 2x0o", [torch.relu, torch.abs], "3x0e + 2x0o", [sigmoid, tanh], "2x1o + 2x2e + 0e"),
    ("8x0e", [silu], "4x0e", [sigmoid], "2x1o + 2x1o"),  # unsimplified gated
    ("4x0e", [torch.relu], "", [], ""),
    ("", [], "2x0e", [sigmoid], "2x1o"),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_e3nn(float64_default, case):
    ours, ref = Gate(*case), e3nn_nn.Gate(*case)
    assert str(ours.irreps_in) == str(ref.irreps_in)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(3, 2, ours.irreps_in.dim, requires_grad=True)
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, atol=1e-13, rtol=0)
    v = torch.randn_like(y)
    (g,) = torch.autograd.grad((y * v).sum(), x)
    (g_ref,) = torch.autograd.grad((y_ref * v).sum(), x)
    torch.testing.assert_close(g, g_ref, atol=1e-13, rtol=0)


@pytest.mark.parametrize("case", CASES[:3])
def test_equivariant(case):
    g = Gate(*case)
    assert_equivariant(g, g.irreps_in, g.irreps_out)


def test_double_backward():
    g = Gate(*CASES[1]).double()
    x = torch.randn(2, g.irreps_in.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(g, (x,))


def test_bad_input():
    with pytest.raises(ValueError, match="gate"):
        Gate("4x0e", [silu], "2x0e", [sigmoid], "3x1o")
    with pytest.raises(ValueError, match="scalars"):
        Gate("1o", [None], "", [], "")
    with pytest.raises(ValueError, match="gates must be scalars"):
        Gate("", [], "1o", [None], "1o")
    with pytest.raises(ValueError, match="neither even nor odd"):
        Gate("2x0o", [silu], "", [], "")


def test_torch_compile():
    g = Gate(*CASES[1])
    x = torch.randn(5, g.irreps_in.dim)
    compiled = torch.compile(g, fullgraph=True)
    torch.testing.assert_close(compiled(x), g(x))


def test_dtypes_and_batch_dims(dtype):
    g = Gate(*CASES[1]).to(dtype)
    x = torch.randn(2, 3, 4, g.irreps_in.dim, dtype=dtype)
    y = g(x)
    assert y.dtype == dtype and y.shape == (2, 3, 4, g.irreps_out.dim)
    torch.testing.assert_close(y[1, 2], g(x[1, 2]))
