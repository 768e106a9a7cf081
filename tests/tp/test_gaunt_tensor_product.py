"""GauntTensorProduct: formula, equivariance, normalization, gradients, stated restrictions."""
import pytest
import torch

from equinet.o3 import gaunt
from equinet.testing import assert_equivariant
from equinet.tp import GauntTensorProduct


def _reference(tp, x1, x2):
    """The docstring's formula, term by term, with equinet.o3.gaunt."""
    C = tp.channels
    out = []
    for mul_ir_out, l3 in zip(tp.irreps_out, tp.out.ls):
        z = 0
        for i1, l1 in enumerate(tp.in1.ls):
            for i2, l2 in enumerate(tp.in2.ls):
                a = x1[..., tp.irreps_in1.slices()[i1]].reshape(x1.shape[:-1] + (-1, 2 * l1 + 1))
                b = x2[..., tp.irreps_in2.slices()[i2]].reshape(x2.shape[:-1] + (-1, 2 * l2 + 1))
                a = a * tp.weight1[:, i1, None]
                b = b * tp.weight2[:, i2, None]
                a, b = a.expand(a.shape[:-2] + (C, -1)), b.expand(b.shape[:-2] + (C, -1))
                G = gaunt(l1, l2, l3, dtype=x1.dtype)
                z = z + torch.einsum("...ci,...cj,ijk->...ck", a, b, G)
        i3 = tp.out.ls.index(l3)
        z = z * (tp.weight_out[:, i3] * tp.alpha[i3])[:, None]
        out.append(z.reshape(z.shape[:-2] + (-1,)))
    return torch.cat(out, -1)


@pytest.mark.parametrize("method", ["auto", "fft", "grid", "dense"])
def test_matches_formula(method):
    tp = GauntTensorProduct("3x0e + 3x2e + 3x1o", "1x0e + 1x1o + 1x3o", "3x1o + 3x0e + 3x4e + 3x5o",
                            method=method).double()
    with torch.no_grad():
        for w in (tp.weight1, tp.weight2, tp.weight_out):
            w.normal_()
    x1 = torch.randn(4, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(4, tp.irreps_in2.dim, dtype=torch.float64)
    torch.testing.assert_close(tp(x1, x2), _reference(tp, x1, x2), atol=1e-12, rtol=0)


def test_float32_and_broadcast():
    tp = GauntTensorProduct("4x0e + 4x1o + 4x2e", "4x0e + 4x1o + 4x2e", "4x0e + 4x1o + 4x2e")
    x1, x2 = torch.randn(5, 1, 36), torch.randn(3, 36)
    out = tp(x1, x2)
    assert out.shape == (5, 3, 36) and out.dtype == torch.float32
    expected = tp.double()(x1.double(), x2.double())
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("irreps_in1, irreps_in2, irreps_out", [
    ("2x0e + 2x1o + 2x2e", "0e + 1o + 2e", "2x0e + 2x1o + 2x2e + 2x3o"),
    ("3x1o + 3x3o", "3x1o + 3x2e", "3x0e + 3x2e + 3x1o + 3x4e"),
])
def test_equivariant(irreps_in1, irreps_in2, irreps_out):
    tp = GauntTensorProduct(irreps_in1, irreps_in2, irreps_out)
    assert_equivariant(tp, [irreps_in1, irreps_in2], irreps_out, ntrials=2)


def test_component_normalization():
    # unit-variance inputs -> unit second moment per output component (E[w_out^2] = 1 at init;
    # fixed to 1 here to remove the weights' sampling noise)
    tp = GauntTensorProduct("128x0e + 128x1o + 128x2e", "0e + 1o + 2e",
                            "128x0e + 128x1o + 128x2e + 128x3o")
    with torch.no_grad():
        tp.weight_out.fill_(1.0)
    z = tp(torch.randn(400, tp.irreps_in1.dim), torch.randn(400, tp.irreps_in2.dim))
    for s in tp.irreps_out.slices():
        assert z[:, s].pow(2).mean().item() == pytest.approx(1.0, rel=0.1)


def test_gradcheck():
    tp = GauntTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x2e").double()
    x1 = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))
    tp(x1, x2).sum().backward()
    assert all(p.grad is not None for p in tp.parameters())


@pytest.mark.parametrize("args, match", [
    (("1o", "1o", "1e"), r"1o x 1o -> 1e.*TensorProduct"),  # cross product: odd path
    (("1o", "1o", "0e + 1o"), r"odd.*TensorProduct"),  # 1o x 1o -> 1o is odd too
    (("1e", "0e", "1e"), r"parity.*TensorProduct"),  # pseudo-vector input
    (("0e + 1o", "0e", "0e + 2e"), "triangle"),  # unreachable degree
    (("2x0e", "3x0e", "3x0e"), "channels"),
    (("2x0e", "1x0e", "3x0e"), "multiplicity"),
    (("2x0e + 2x0e", "0e", "2x0e"), "repeats"),
])
def test_restrictions_raise(args, match):
    with pytest.raises(ValueError, match=match):
        GauntTensorProduct(*args)


def test_bad_options():
    with pytest.raises(ValueError, match="normalization"):
        GauntTensorProduct("0e", "0e", "0e", normalization="norm")
    with pytest.raises(ValueError, match="method"):
        GauntTensorProduct("0e", "0e", "0e", method="cg")
    tp = GauntTensorProduct("0e + 1o", "0e", "0e + 1o")
    with pytest.raises(ValueError, match="last dimension"):
        tp(torch.randn(3, 5), torch.randn(3, 1))
