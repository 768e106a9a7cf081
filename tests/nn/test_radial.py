"""Radial bases and cutoffs against e3nn, NequIP's formulas (written out here) and sympy."""
import math

import pytest
import sympy
import torch
from e3nn.math import soft_one_hot_linspace as e3nn_soft_one_hot_linspace
from e3nn.math import soft_unit_step as e3nn_soft_unit_step

from equinet.nn import BesselBasis, PolynomialCutoff, soft_one_hot_linspace, soft_unit_step

BASES = ["gaussian", "cosine", "smooth_finite", "fourier", "bessel"]


def tol(dtype):
    return dict(atol=2e-6, rtol=2e-6) if dtype == torch.float32 else dict(atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("cutoff", [True, False])
def test_soft_one_hot_linspace_matches_e3nn(dtype, basis, cutoff):
    start, end = -0.5, 1.5
    x = torch.linspace(-1.0, 2.0, 301, dtype=dtype)
    x = x[(x - start).abs() > 1e-3]  # e3nn's bessel is 0/0 = NaN at x = start
    x = torch.cat([x, start + torch.tensor([1e-4, -1e-4, 0.02], dtype=dtype)])
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    ours = soft_one_hot_linspace(x1, start, end, number=6, basis=basis, cutoff=cutoff)
    ref = e3nn_soft_one_hot_linspace(x2, start, end, number=6, basis=basis, cutoff=cutoff)
    assert ours.shape == ref.shape == (x.shape[0], 6) and ours.dtype == dtype
    torch.testing.assert_close(ours, ref, **tol(dtype))
    w = torch.randn(6, dtype=dtype)
    (g1,) = torch.autograd.grad((ours * w).sum(), x1)
    (g2,) = torch.autograd.grad((ref * w).sum(), x2)
    scale = max(1.0, float(g2.abs().max()))
    # near x = start e3nn's bessel gradient loses digits to cancellation (ours uses a series;
    # checked against sympy in test_bessel_basis_value_and_gradients_near_zero)
    far = (x - start).abs() > 0.05
    torch.testing.assert_close(g1[far] / scale, g2[far] / scale, **tol(dtype))


def test_soft_one_hot_linspace_batched_shape():
    x = torch.rand(2, 5, 3)
    assert soft_one_hot_linspace(x, 0.0, 1.0, 4, "gaussian", True).shape == (2, 5, 3, 4)


@pytest.mark.parametrize("cutoff", [True, False])
def test_bessel_basis_function_finite_at_start(cutoff):
    x = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    y = soft_one_hot_linspace(x, 0.5, 2.5, 4, "bessel", cutoff)
    expect = 0.0 if cutoff else math.sqrt(2 / 2.0) * math.pi * torch.arange(1, 5).double() / 2.0
    torch.testing.assert_close(y[0], torch.zeros(4, dtype=torch.float64) + expect)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    assert g.abs().max() < 1e-12  # sin(ky)/y is even in y


def test_soft_one_hot_linspace_bad_input():
    x = torch.rand(3)
    with pytest.raises(ValueError, match="cutoff"):
        soft_one_hot_linspace(x, 0.0, 1.0, 4, "gaussian")
    with pytest.raises(ValueError, match="basis"):
        soft_one_hot_linspace(x, 0.0, 1.0, 4, "spline", cutoff=True)
    with pytest.raises(ValueError, match="number"):
        soft_one_hot_linspace(x, 0.0, 1.0, 0, "gaussian", cutoff=True)
    with pytest.raises(ValueError, match="number >= 2"):
        soft_one_hot_linspace(x, 0.0, 1.0, 1, "cosine", cutoff=False)
    with pytest.raises(ValueError, match="start"):
        soft_one_hot_linspace(x, 1.0, 1.0, 4, "gaussian", cutoff=True)
    with pytest.raises(TypeError):
        soft_one_hot_linspace(torch.arange(3), 0.0, 1.0, 4, "gaussian", cutoff=True)


def test_soft_unit_step_matches_e3nn(dtype):
    x = torch.cat([torch.linspace(-2, 5, 200, dtype=dtype), torch.zeros(1, dtype=dtype)])
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = soft_unit_step(x1), e3nn_soft_unit_step(x2)
    torch.testing.assert_close(y1, y2, **tol(dtype))
    (g1,) = torch.autograd.grad(y1.sum(), x1, create_graph=True)
    (g2,) = torch.autograd.grad(y2.sum(), x2)
    torch.testing.assert_close(g1, g2, **tol(dtype))
    (gg,) = torch.autograd.grad(g1.sum(), x1)
    assert torch.isfinite(gg).all() and (gg[x <= 0] == 0).all()


def nequip_bessel(r, r_max, n):
    """NequIP's formula, valid for r != 0."""
    return 2.0 / r_max * torch.sin(n * math.pi * r[:, None] / r_max) / r[:, None]


def test_bessel_basis_matches_nequip_formula():
    r = torch.cat([torch.rand(50, dtype=torch.float64) * 5, torch.tensor([5e-4, 0.02, 0.159])])
    basis = BesselBasis(5.0, num_basis=8).double()
    n = torch.arange(1, 9, dtype=torch.float64)
    # the frequencies are initialised in the default dtype, as in NequIP
    w = (torch.linspace(1.0, 8.0, 8) * math.pi).double()
    torch.testing.assert_close(basis.bessel_weights.detach(), w)
    torch.testing.assert_close(basis(r), nequip_bessel(r, 5.0, w / math.pi), atol=1e-13,
                               rtol=1e-12)
    torch.testing.assert_close(basis(r), nequip_bessel(r, 5.0, n), atol=1e-6, rtol=1e-6)
    assert [k for k, _ in basis.named_parameters()] == ["bessel_weights"]
    frozen = BesselBasis(5.0, num_basis=8, trainable=False)
    assert not list(frozen.parameters()) and "bessel_weights" in frozen.state_dict()


def test_bessel_basis_value_and_gradients_near_zero():
    """Value and d/dr against sympy's exact derivative, down to r = 0."""
    r_max, n = 4.0, 3
    basis = BesselBasis(r_max, num_basis=n).double()
    rs = sympy.Symbol("r")
    k = sympy.Rational(basis.bessel_weights.detach()[n - 1].item()) / sympy.Rational(r_max)
    f = 2 / sympy.Rational(r_max) * sympy.sin(k * rs) / rs
    df = sympy.diff(f, rs)
    for r0 in [0.0, 1e-8, 1e-3, 0.1 / float(k) * 0.999, 0.1 / float(k) * 1.001, 0.3]:
        r = torch.tensor([r0], dtype=torch.float64, requires_grad=True)
        y = basis(r)[0, n - 1]
        (g,) = torch.autograd.grad(y, r, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), r)
        exact = sympy.limit(f, rs, 0) if r0 == 0 else f.subs(rs, sympy.Rational(r0))
        dexact = sympy.limit(df, rs, 0) if r0 == 0 else df.subs(rs, sympy.Rational(r0))
        assert abs(y.detach().item() - float(sympy.N(exact, 30))) < 1e-13
        assert abs(g.detach().item() - float(sympy.N(dexact, 30))) < 1e-12
        assert torch.isfinite(gg).all()
    # gradient w.r.t. the trainable frequencies at r = 0: d/dw (2/r_max * w/r_max)
    y = basis(torch.zeros(1, dtype=torch.float64)).sum()
    (gw,) = torch.autograd.grad(y, basis.bessel_weights)
    torch.testing.assert_close(gw, torch.full((n,), 2 / r_max ** 2, dtype=torch.float64))


def test_bessel_basis_bad_input():
    with pytest.raises(ValueError, match="r_max"):
        BesselBasis(0.0)
    with pytest.raises(ValueError, match="num_basis"):
        BesselBasis(1.0, num_basis=0)


@pytest.mark.parametrize("p", [6, 2, 5.5])
def test_polynomial_cutoff_matches_sympy(p):
    r_max = 3.0
    u = sympy.Symbol("u")
    pp = sympy.nsimplify(p)
    f = 1 - (pp + 1) * (pp + 2) / 2 * u ** pp + pp * (pp + 2) * u ** (pp + 1) \
        - pp * (pp + 1) / 2 * u ** (pp + 2)
    cut = PolynomialCutoff(r_max, p)
    r = torch.tensor([0.0, 0.3, 1.1, 2.0, 2.9, 3.0, 3.5, 1e30], dtype=torch.float64)
    expect = [float(f.subs(u, sympy.Rational(float(x)) / 3)) if x < r_max else 0.0 for x in r]
    torch.testing.assert_close(cut(r), torch.tensor(expect, dtype=torch.float64),
                               atol=1e-13, rtol=1e-12)


def test_polynomial_cutoff_smooth_at_r_max():
    cut = PolynomialCutoff(2.0, p=6)
    for eps in [1e-2, 1e-3, 1e-4]:
        r = torch.tensor([2.0 * (1 - eps)], dtype=torch.float64, requires_grad=True)
        y = cut(r)
        (d1,) = torch.autograd.grad(y.sum(), r, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), r)
        # f ~ eps^3, f' ~ eps^2, f'' ~ eps near the cutoff
        assert abs(y.detach().item()) < 100 * eps ** 3
        assert abs(d1.detach().item()) < 100 * eps ** 2
        assert abs(d2.detach().item()) < 100 * eps
    r = torch.tensor([2.0, 2.5, 1e30], requires_grad=True)  # float32: 1e30^8 would overflow
    y = cut(r)
    (g,) = torch.autograd.grad(y.sum(), r)
    assert (y == 0).all() and (g == 0).all()


def test_envelope_times_basis_double_backward():
    basis, cut = BesselBasis(3.0, 4).double(), PolynomialCutoff(3.0)
    r = torch.tensor([0.0, 0.5, 2.9, 3.2], dtype=torch.float64, requires_grad=True)
    f = lambda r: basis(r) * cut(r)[:, None]  # noqa: E731
    assert torch.autograd.gradcheck(f, (r,))
    assert torch.autograd.gradgradcheck(f, (r,))


def test_polynomial_cutoff_bad_input():
    with pytest.raises(ValueError, match="p"):
        PolynomialCutoff(1.0, p=1)
    with pytest.raises(ValueError, match="r_max"):
        PolynomialCutoff(-1.0)
