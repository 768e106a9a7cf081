"""NormActivation against e3nn's (normalize=True) and an explicit per-channel loop."""
import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3

from equinet.nn import NormActivation
from equinet.testing import assert_equivariant

IRREPS = "3x0e + 2x1o + 1o + 2e + 0o"


@pytest.mark.parametrize("bias", [False, True])
def test_matches_e3nn(float64_default, bias):
    ours = NormActivation(IRREPS, torch.sigmoid, bias=bias)
    ref = e3nn_nn.NormActivation(e3nn_o3.Irreps(IRREPS), torch.sigmoid, bias=bias)
    if bias:
        with torch.no_grad():
            ours.biases.normal_()
            ref.biases.copy_(ours.biases)
    x = torch.randn(4, 2, ours.irreps_in.dim)
    x[0, 0, 3:6] = 0.0  # a zero vector: clamped to epsilon by both
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    torch.testing.assert_close(ya, yb, atol=1e-12, rtol=0)
    (ga,) = torch.autograd.grad(ya.pow(2).sum(), xa)
    (gb,) = torch.autograd.grad(yb.pow(2).sum(), xb)
    torch.testing.assert_close(ga, gb, atol=1e-9, rtol=0)


def _loop(x, irreps_dims, act, normalize):
    """sigma(|x_c|) x_c (/ |x_c|) channel by channel."""
    out, start = [], 0
    for d in irreps_dims:
        xc = x[..., start:start + d]
        n = xc.norm(dim=-1, keepdim=True)
        out.append(xc * act(n) / (n if normalize else 1))
        start += d
    return torch.cat(out, dim=-1)


def test_without_normalize_against_loop():
    n = NormActivation("2x0e + 1o + 2e", torch.tanh, normalize=False).double()
    x = torch.randn(5, 10, dtype=torch.float64)
    torch.testing.assert_close(n(x), _loop(x, [1, 1, 3, 5], torch.tanh, False))
    # zero features: finite gradient
    z = torch.zeros(1, 10, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(n(z).sum(), z, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), z)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()


@pytest.mark.parametrize("normalize", [True, False])
def test_equivariant(normalize):
    n = NormActivation(IRREPS, torch.sigmoid, normalize=normalize, bias=True)
    with torch.no_grad():
        n.biases.normal_()
    assert_equivariant(n, IRREPS, IRREPS)


def test_bad_input():
    with pytest.raises(ValueError, match="epsilon"):
        NormActivation("1o", torch.sigmoid, normalize=False, epsilon=1e-3)
    with pytest.raises(ValueError, match="epsilon"):
        NormActivation("1o", torch.sigmoid, epsilon=-1.0)
    with pytest.raises(TypeError, match="callable"):
        NormActivation("1o", "sigmoid")


def test_dtypes_and_batch_dims(dtype):
    n = NormActivation(IRREPS, torch.sigmoid, bias=True).to(dtype)
    x = torch.randn(2, 3, n.irreps_in.dim, dtype=dtype)
    y = n(x)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y[1], n(x[1]))
