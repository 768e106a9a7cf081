"""Norm against e3nn's o3.Norm; finite gradients at zero."""
import pytest
import torch
from e3nn import o3 as e3nn_o3

from equinet.nn import Norm, safe_sqrt
from equinet.testing import assert_equivariant

IRREPS = "3x0e + 2x1o + 2x1o + 2e + 0o"


@pytest.mark.parametrize("squared", [False, True])
def test_matches_e3nn(float64_default, squared):
    ours, ref = Norm(IRREPS, squared), e3nn_o3.Norm(IRREPS, squared)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(4, 2, ours.irreps_in.dim)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-13, rtol=0)


@pytest.mark.parametrize("squared", [False, True])
def test_equivariant(squared):
    n = Norm(IRREPS, squared)
    assert_equivariant(n, IRREPS, n.irreps_out)


def test_gradient_at_zero_is_finite():
    n = Norm("2x1o + 0e").double()
    x = torch.zeros(2, 7, dtype=torch.float64, requires_grad=True)
    y = n(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    # away from zero: the gradient of |x| is x / |x|
    x = torch.tensor([[3.0, 0.0, 4.0, 0.0, 0.0, 0.0, -2.0]], dtype=torch.float64,
                     requires_grad=True)
    (g,) = torch.autograd.grad(n(x).sum(), x)
    torch.testing.assert_close(g, torch.tensor([[0.6, 0, 0.8, 0, 0, 0, -1]],
                                               dtype=torch.float64))
    assert torch.autograd.gradgradcheck(safe_sqrt, (torch.rand(5, dtype=torch.float64) + 0.1
                                                    ).requires_grad_(),)
