"""LayerNorm against an explicit per-sample loop of the documented formula and torch's LayerNorm."""
import pytest
import torch

from equinet.nn import LayerNorm
from equinet.o3 import Irreps
from equinet.testing import assert_equivariant

IRREPS = "3x0e + 2x1o + 0o + 2e + 2x0e + 1o"


def _formula(x, irreps, weight, bias, eps):
    """Loop over samples and irrep types: centre 0e, divide by the rms component, affine."""
    irreps = Irreps(irreps)
    channels = {}  # irrep -> [(start, dim, channel number)] in layout order
    start, channel = 0, 0
    for mul, ir in irreps:
        for _ in range(mul):
            channels.setdefault(ir, []).append((start, ir.dim, channel))
            start += ir.dim
            channel += 1
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        for ir, members in channels.items():
            xs = [x[n, s:s + d] for s, d, _ in members]
            if ir.is_scalar():
                mean = sum(v.sum() for v in xs) / len(xs)
                xs = [v - mean for v in xs]
            var = sum(v.pow(2).sum() / ir.dim for v in xs) / len(xs)
            for k, (v, (s, d, c)) in enumerate(zip(xs, members)):
                out[n, s:s + d] = weight[c] * v / torch.sqrt(var + eps)
                if ir.is_scalar():
                    out[n, s] += bias[k]
    return out


def test_matches_formula():
    ln = LayerNorm(IRREPS, eps=1e-3).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = 5 * torch.randn(4, ln.irreps.dim, dtype=torch.float64) + 2
    expected = _formula(x, IRREPS, ln.weight, ln.bias, 1e-3)
    torch.testing.assert_close(ln(x), expected, atol=1e-12, rtol=0)


def test_scalars_only_is_torch_layer_norm():
    ln = LayerNorm("6x0e").double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(3, 2, 6, dtype=torch.float64)
    expected = torch.nn.functional.layer_norm(x, (6,), ln.weight, ln.bias, eps=1e-5)
    torch.testing.assert_close(ln(x), expected, atol=1e-12, rtol=0)


def test_equivariant():
    ln = LayerNorm(IRREPS)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    assert_equivariant(ln, IRREPS, IRREPS)


def test_gradients():
    ln = LayerNorm("2x0e + 1o", affine=False).double()
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(ln, (x,))
    z = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ln(z).sum(), z)
    assert torch.isfinite(g).all()


def test_bad_input():
    with pytest.raises(ValueError, match="eps"):
        LayerNorm("0e", eps=-1)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        LayerNorm("1o")(torch.randn(2, 4))


def test_dtypes_and_batch_dims(dtype):
    ln = LayerNorm(IRREPS).to(dtype)
    x = torch.randn(2, 3, ln.irreps.dim, dtype=dtype)
    y = ln(x)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y[1], ln(x[1]))
