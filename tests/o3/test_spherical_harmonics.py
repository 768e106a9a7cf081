"""Tests of equinet.o3.spherical_harmonics.

Oracles: e3nn's ``o3.spherical_harmonics`` (l <= 11) and ``o3.wigner_D`` (equivariance to
l = 20), Gauss-Legendre x uniform quadrature on the sphere (orthonormality), finite differences
(gradcheck / gradgradcheck).
"""
import importlib
import math

import numpy as np
import pytest
import torch
from e3nn import o3 as e3o3

import equinet.o3._spherical_harmonics_kernels as kernels
from equinet.o3 import Irreps, spherical_harmonics, spherical_harmonics_alpha_beta

NORMALIZATIONS = ["integral", "component", "norm"]
# The module (its name is shadowed in equinet.o3 by the function it defines).
sh_module = importlib.import_module("equinet.o3.spherical_harmonics")


def _random_o3(dtype=torch.float64):
    """A random rotation (e3nn angles) times a random parity, and its e3nn Wigner matrices."""
    alpha, beta, gamma = e3o3.rand_angles(dtype=dtype)
    parity = float(torch.randint(0, 2, ()).item() * 2 - 1)
    return alpha, beta, gamma, parity


def _sphere_quadrature(lmax, dtype=torch.float64):
    """Points and weights integrating polynomials of degree <= 2 lmax exactly on the sphere."""
    n_beta, n_alpha = lmax + 1, 2 * lmax + 1
    cos_beta, w_beta = np.polynomial.legendre.leggauss(n_beta)
    cos_beta = torch.tensor(cos_beta, dtype=dtype)
    sin_beta = (1 - cos_beta**2).sqrt()
    alpha = torch.arange(n_alpha, dtype=dtype) * (2 * math.pi / n_alpha)
    points = torch.stack([
        sin_beta[:, None] * alpha.sin()[None, :],
        cos_beta[:, None].expand(n_beta, n_alpha),
        sin_beta[:, None] * alpha.cos()[None, :],
    ], dim=-1).reshape(-1, 3)
    weights = (torch.tensor(w_beta, dtype=dtype)[:, None] * (2 * math.pi / n_alpha)).expand(
        n_beta, n_alpha).reshape(-1)
    return points, weights


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_matches_e3nn_values_and_gradients(normalize, normalization):
    ls = list(range(12))
    x = torch.randn(300, 3, dtype=torch.float64) * 2
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = spherical_harmonics(ls, xa, normalize, normalization)
    ref = e3o3.spherical_harmonics(ls, xb, normalize, normalization=normalization)
    scale = ref.abs().amax(-1, keepdim=True)
    assert ((ours - ref).abs() / scale).max() < 1e-10
    weight = torch.randn_like(ref)
    (g_ours,) = torch.autograd.grad((ours * weight).sum(), xa)
    (g_ref,) = torch.autograd.grad((ref * weight).sum(), xb)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-10 * g_ref.abs().max().item(), rtol=0)


@pytest.mark.parametrize("normalize", [True, False])
def test_double_backward_matches_e3nn(normalize, compare_with_oracle):
    x = torch.randn(7, 3, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.linspace(0.3, 1.2, 7, dtype=torch.float64)[:, None]
    for ls in ([0, 1, 2, 3], [5, 2], [1], [11]):
        if ls == [1] and not normalize:
            continue  # linear: e3nn's gradient has no graph to differentiate
        compare_with_oracle(
            lambda v: spherical_harmonics(ls, v, normalize, "component"),
            lambda v: e3o3.spherical_harmonics(ls, v, normalize, normalization="component"),
            [x], atol=1e-9,
        )


def test_double_backward_of_a_linear_function_is_zero():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = spherical_harmonics(1, x, False, "norm")
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad((g * torch.randn_like(g)).sum(), x)
    assert (gg == 0).all()


def test_degree_one_is_the_vector():
    x = torch.randn(10, 3, dtype=torch.float64)
    torch.testing.assert_close(spherical_harmonics(1, x, False, "norm"), x, atol=1e-15, rtol=0)
    torch.testing.assert_close(spherical_harmonics(1, x, True, "norm"),
                               x / x.norm(dim=-1, keepdim=True), atol=1e-15, rtol=0)


class _HasDegrees:
    ls = [2, 1]


@pytest.mark.parametrize("ls", [
    3, [2, 0, 2, 5], "0e + 1o + 2e + 3o", Irreps("2x1o + 4e"), e3o3.Irreps("0e + 2x1o"), (1, 3),
    _HasDegrees()])
def test_degree_arguments(ls):
    x = torch.randn(20, 3, dtype=torch.float64)
    if isinstance(ls, _HasDegrees):
        e3_ls = ls.ls
    elif isinstance(ls, (str, Irreps, e3o3.Irreps)):
        e3_ls = e3o3.Irreps(str(ls)).ls  # e3nn 0.6 fails on its own Irreps with mul > 1
    else:
        e3_ls = list(ls) if isinstance(ls, tuple) else ls
    ref = e3o3.spherical_harmonics(e3_ls, x, True)
    torch.testing.assert_close(spherical_harmonics(ls, x, True), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ls", [list(range(21)), [20, 13]])
def test_equivariance_to_degree_20(ls, float64_default):
    x = torch.randn(40, 3)
    for _ in range(2):
        alpha, beta, gamma, parity = _random_o3()
        rotation = e3o3.angles_to_matrix(alpha, beta, gamma) * parity
        y = spherical_harmonics(ls, x, True)
        y_rotated = spherical_harmonics(ls, x @ rotation.T, True)
        d = torch.block_diag(*[parity**l * e3o3.wigner_D(l, alpha, beta, gamma) for l in ls])
        torch.testing.assert_close(y_rotated, y @ d.T, atol=1e-10, rtol=0)


@pytest.mark.parametrize("normalize", [True, False])
def test_parity(normalize):
    x = torch.randn(30, 3, dtype=torch.float64)
    ls = list(range(25))
    sign = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=torch.float64) for l in ls])
    torch.testing.assert_close(spherical_harmonics(ls, -x, normalize),
                               sign * spherical_harmonics(ls, x, normalize), atol=1e-12, rtol=1e-12)


def test_homogeneous_without_normalize():
    x = torch.randn(30, 3, dtype=torch.float64)
    r = 0.1 + 3 * torch.rand(30, 1, dtype=torch.float64)
    ls = list(range(16))
    power = torch.cat([torch.full((2 * l + 1,), float(l), dtype=torch.float64) for l in ls])
    unit = x / x.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(spherical_harmonics(ls, unit * r, False),
                               r**power * spherical_harmonics(ls, unit, True), atol=0, rtol=1e-11)


def test_orthonormal_integral_normalization():
    lmax = 20
    points, weights = _sphere_quadrature(lmax)
    y = spherical_harmonics(list(range(lmax + 1)), points, True, "integral")
    gram = (y * weights[:, None]).T @ y
    torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=gram.dtype), atol=1e-11, rtol=0)


def test_component_and_norm_normalizations():
    lmax = 12
    points, weights = _sphere_quadrature(lmax)
    y = spherical_harmonics(list(range(lmax + 1)), points, True, "component")
    mean_square = (y**2 * weights[:, None]).sum(0) / (4 * math.pi)
    torch.testing.assert_close(mean_square, torch.ones_like(mean_square), atol=1e-12, rtol=0)
    x = torch.randn(50, 3, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    for l in range(lmax + 1):
        norm = spherical_harmonics(l, x, False, "norm").norm(dim=-1)
        torch.testing.assert_close(norm, torch.ones_like(norm), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_vector_finite_values_and_gradients(dtype):
    ls = list(range(9))
    x = torch.randn(5, 3, dtype=dtype)
    x[1] = 0
    x.requires_grad_()
    y = spherical_harmonics(ls, x, True, "component")
    expected = torch.zeros(81, dtype=dtype)
    expected[0] = 1
    torch.testing.assert_close(y[1].detach(), expected, atol=0, rtol=0)
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad((g * torch.randn_like(g)).sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    assert (g[1] == 0).all()
    # Without normalizing, the polynomial is smooth at 0: compare the gradient with e3nn.
    x0 = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 81, dtype=torch.float64)
    (ours,) = torch.autograd.grad((spherical_harmonics(ls, x0, False) * weight).sum(), x0)
    (ref,) = torch.autograd.grad((e3o3.spherical_harmonics(ls, x0, False) * weight).sum(), x0)
    torch.testing.assert_close(ours, ref, atol=1e-14, rtol=0)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("ls", [[0, 1, 2, 3, 4], [3, 1, 3], [20]])
def test_gradcheck_and_gradgradcheck(normalize, ls):
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    f = lambda v: spherical_harmonics(ls, v, normalize, "integral")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    if ls != [20]:
        assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("normalize", [True, False])
def test_gradient_to_degree_20_matches_autograd_of_the_recurrence(normalize):
    """The analytic backward (ladder constants) against autograd through the plain recurrence."""
    ls = list(range(21))
    x = torch.randn(30, 3, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * (0.5 + torch.rand(30, 1, dtype=torch.float64))
    lmax, rows, scale = sh_module._layout(tuple(ls), "component", torch.float64, x.device)
    weight = torch.randn(30, 441, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ours,) = torch.autograd.grad((spherical_harmonics(ls, xa, normalize, "component") * weight)
                                  .sum(), xa)
    (ref,) = torch.autograd.grad((kernels.reference(xb, lmax, normalize, rows, scale) * weight)
                                 .sum(), xb)
    torch.testing.assert_close(ours, ref, atol=1e-11 * ref.abs().max().item(), rtol=0)


def test_chunks_give_the_same_result(monkeypatch):
    x = torch.randn(1000, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1000, 49, dtype=torch.float64)
    for normalize in (True, False):
        y = spherical_harmonics(list(range(7)), x, normalize)
        (g,) = torch.autograd.grad((y * weight).sum(), x)
        monkeypatch.setattr(kernels, "CHUNK_BYTES", 1)
        monkeypatch.setattr(kernels, "MIN_CHUNK", 333)  # 3 chunks and a remainder
        y_chunked = spherical_harmonics(list(range(7)), x, normalize)
        (g_chunked,) = torch.autograd.grad((y_chunked * weight).sum(), x)
        monkeypatch.undo()
        torch.testing.assert_close(y_chunked, y, atol=1e-14, rtol=0)
        # gradients sum many terms: rounding scales with their size
        torch.testing.assert_close(g_chunked, g, atol=1e-14 * g.abs().max().item(), rtol=0)


def test_float32_and_shapes():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for lmax in (3, 12, 40):
        ls = list(range(lmax + 1))
        y64 = spherical_harmonics(ls, x, True, "component")
        y32 = spherical_harmonics(ls, x.float(), True, "component")
        assert y64.dtype == torch.float64 and y32.dtype == torch.float32
        assert y32.shape == (2, 5, (lmax + 1) ** 2)
        torch.testing.assert_close(y32.double(), y64, atol=2e-5 * math.sqrt(2 * lmax + 1), rtol=0)
    assert spherical_harmonics(2, torch.zeros(0, 3), True).shape == (0, 5)
    assert spherical_harmonics([0, 1], torch.randn(3), True).shape == (4,)
    assert spherical_harmonics(1, torch.randn(4, 3).half(), True).dtype == torch.float16


def test_alpha_beta_matches_e3nn():
    alpha = torch.rand(10, dtype=torch.float64) * 2 * math.pi
    beta = torch.rand(10, dtype=torch.float64) * math.pi
    for normalization in NORMALIZATIONS:
        ours = spherical_harmonics_alpha_beta([0, 1, 2, 5], alpha, beta,
                                              normalization=normalization)
        ref = e3o3.spherical_harmonics_alpha_beta([0, 1, 2, 5], alpha, beta,
                                                  normalization=normalization)
        torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ls, x, error, match", [
    (1, torch.randn(4, 2), ValueError, r"shape \[\.\.\., 3\]"),
    (1, torch.tensor(1.0), ValueError, r"shape \[\.\.\., 3\]"),
    (-1, torch.randn(4, 3), ValueError, "l=-1"),
    ([0, -2], torch.randn(4, 3), ValueError, "l=-2"),
    ("1e", torch.randn(4, 3), ValueError, "parity"),
    ("0e + 2o", torch.randn(4, 3), ValueError, "parity"),
    (1.5, torch.randn(4, 3), TypeError, "integers"),
    (True, torch.randn(4, 3), TypeError, "integers"),
    ([], torch.randn(4, 3), ValueError, "at least one"),
    (1, torch.ones(4, 3, dtype=torch.int64), TypeError, "floating"),
])
def test_bad_input(ls, x, error, match):
    with pytest.raises(error, match=match):
        spherical_harmonics(ls, x, True)


def test_bad_normalization():
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(1, torch.randn(2, 3), True, "unit")


def test_inference_mode_then_no_grad():
    # the CPU kernels reuse scratch buffers: the mode of the first call must not matter
    x = torch.randn(10, 3, dtype=torch.float64)
    from equinet._scratch import clear_scratch

    clear_scratch()  # so that the first call below makes the buffers
    with torch.inference_mode():
        first = spherical_harmonics([0, 1, 2, 3], x, True)
    with torch.no_grad():
        again = spherical_harmonics([0, 1, 2, 3], x, True)
    torch.testing.assert_close(again, first.clone(), atol=0, rtol=0)


def _derivatives(ls, x, weight):
    """Values, first and second derivatives (of random projections) of the normalized SH."""
    x = x.clone().requires_grad_()
    y = spherical_harmonics(ls, x, True, "component")
    (g,) = torch.autograd.grad((y * weight).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad((g * weight[:, :3]).sum(), x)
    return y.detach(), g.detach(), gg


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_lengths(dtype):
    """Lengths 10^k over the whole finite range of the dtype, subnormal to largest.

    :math:`|x|^2` used to overflow or underflow (float32: wrong directions below ~1e-19,
    zeros from 1e20; float64: below 1e-155 and above 1e160, NaN second derivatives). The
    direction is computed exactly now: the values equal those at the same direction scaled
    by a power of two into [1/2, 1) (exact, in float64), and the derivatives are those times
    2^-e and 2^-2e (degree 0 homogeneity), wherever that exact value is a normal number of the
    dtype; beyond, they are +-inf (or 0), never NaN.
    """
    ls = [0, 1, 2, 3, 6]
    info = torch.finfo(dtype)
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(4, 3, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    weight = torch.randn(4, sum(2 * l + 1 for l in ls), generator=g, dtype=torch.float64)
    first = math.floor(math.log10(info.smallest_normal * info.eps))  # smallest subnormal
    lengths = [10.0 ** k for k in range(first, math.floor(math.log10(info.max)) + 1)]
    x = (direction[None] * torch.tensor(lengths, dtype=torch.float64)[:, None, None]).to(dtype)
    x = x.reshape(-1, 3)
    x = x[(x != 0).any(-1)]  # the shortest lengths round some directions to zero
    w = weight.repeat(len(lengths), 1)[: len(x)].to(dtype)
    exponent = torch.frexp(x.abs().amax(-1, keepdim=True))[1]
    y, g1, g2 = _derivatives(ls, x, w)
    y_unit, g1_unit, g2_unit = _derivatives(ls, torch.ldexp(x.double(), -exponent), w.double())

    tol = {torch.float32: 2e-6, torch.float64: 1e-14}[dtype]
    torch.testing.assert_close(y.double(), y_unit, atol=tol, rtol=0)
    for order, ours, unit in ((1, g1, g1_unit), (2, g2, g2_unit)):
        # log2 of the largest exact derivative of each sample
        log2 = unit.abs().amax(-1, keepdim=True).log2() - order * exponent
        representable = ((log2 > math.log2(info.smallest_normal) + 8)
                         & (log2 < math.log2(info.max) - 1)).squeeze(-1)
        assert not ours.isnan().any()
        assert ours[representable].isfinite().all()
        scaled = torch.ldexp(ours[representable].double(), order * exponent[representable])
        size = unit[representable].abs().amax(-1, keepdim=True)
        assert ((scaled - unit[representable]).abs() / size).max() < 100 * tol, order
    # the whole range was covered: representable first derivatives from the smallest normal
    # lengths up to the largest
    assert len(x) > 4 * (len(lengths) - 2)
