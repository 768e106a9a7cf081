"""equinet.o3.gaunt against independent oracles: sympy's complex Gaunt coefficients, quadrature."""
import math

import numpy as np
import pytest
import torch

from equinet.o3 import gaunt

e3nn_o3 = pytest.importorskip("e3nn.o3")
sympy_wigner = pytest.importorskip("sympy.physics.wigner")


def _complex_to_real(l: int) -> torch.Tensor:
    """U with Y_real[m_r] = sum_mc U[m_r, m_c] Y_complex[m_c].

    The complex harmonics are sympy's (Condon-Shortley phase). e3nn's real harmonics
    drop that phase and use y as the polar axis; the latter is a proper rotation of
    the frame, which leaves a triple integral unchanged. So, for m > 0,
    Y_real[m] = ((-1)^m Y[m] + Y[-m]) / sqrt2 and Y_real[-m] = ((-1)^m Y[m] - Y[-m]) / (i sqrt2).
    """
    u = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    r = 2 ** -0.5
    u[l, l] = 1
    for m in range(1, l + 1):
        u[l + m, l + m], u[l + m, l - m] = (-1) ** m * r, r
        u[l - m, l + m], u[l - m, l - m] = (-1) ** m * r / 1j, -r / 1j
    return u


def _sympy_real_gaunt(l1, l2, l3) -> torch.Tensor:
    G = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.complex128)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            m3 = -m1 - m2
            if abs(m3) <= l3:
                value = sympy_wigner.gaunt(l1, l2, l3, m1, m2, m3).evalf(30)
                G[m1 + l1, m2 + l2, m3 + l3] = float(value)
    U1, U2, U3 = (_complex_to_real(l) for l in (l1, l2, l3))
    real = torch.einsum("ai,bj,ck,ijk->abc", U1, U2, U3, G)
    assert real.imag.abs().max() < 1e-14
    return real.real


def _quadrature_gaunt(l1, l2, l3) -> torch.Tensor:
    """Gauss-Legendre in cos(beta) x equispaced alpha of e3nn's harmonics; exact at l1+l2+l3."""
    n = l1 + l2 + l3 + 1
    z, w = np.polynomial.legendre.leggauss(n // 2 + 1)
    beta = torch.from_numpy(np.arccos(z))
    alpha = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    b, a = torch.meshgrid(beta, alpha, indexing="ij")
    xyz = torch.stack([b.sin() * a.sin(), b.cos(), b.sin() * a.cos()], -1).reshape(-1, 3)
    weights = (torch.from_numpy(w)[:, None] * (2 * math.pi / n)).expand(b.shape).reshape(-1)
    Y = [e3nn_o3.spherical_harmonics(l, xyz, normalize=True, normalization="integral")
         for l in (l1, l2, l3)]
    return torch.einsum("p,pi,pj,pk->ijk", weights, *Y)


TRIPLES = [(0, 0, 0), (1, 1, 0), (1, 1, 2), (2, 2, 2), (2, 3, 1), (3, 3, 4), (4, 2, 6), (3, 4, 5),
           (5, 5, 6), (6, 6, 6), (6, 4, 4)]


@pytest.mark.parametrize("l1, l2, l3", TRIPLES)
def test_matches_sympy(l1, l2, l3):
    G = gaunt(l1, l2, l3, dtype=torch.float64)
    assert G.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    torch.testing.assert_close(G, _sympy_real_gaunt(l1, l2, l3), atol=1e-12, rtol=0)


@pytest.mark.parametrize("l1, l2, l3", [(1, 2, 3), (3, 3, 2), (2, 5, 7), (7, 5, 4), (9, 8, 5)])
def test_matches_quadrature_of_e3nn_harmonics(l1, l2, l3):
    G = gaunt(l1, l2, l3, dtype=torch.float64)
    torch.testing.assert_close(G, _quadrature_gaunt(l1, l2, l3), atol=1e-12, rtol=0)


@pytest.mark.parametrize("l1, l2, l3", [(1, 1, 1), (2, 1, 2), (3, 2, 4), (1, 1, 3), (0, 2, 1)])
def test_zero_for_odd_sum_or_outside_triangle(l1, l2, l3):
    G = gaunt(l1, l2, l3, dtype=torch.float64)
    assert G.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    assert G.abs().max() == 0
    # the oracle agrees that these integrals vanish
    assert _quadrature_gaunt(l1, l2, l3).abs().max() < 1e-13


def test_symmetric_under_permutation():
    G = gaunt(2, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(G.permute(0, 2, 1), G, atol=0, rtol=0)
    torch.testing.assert_close(gaunt(3, 2, 3, dtype=torch.float64), G.permute(1, 0, 2),
                               atol=1e-15, rtol=0)


def test_dtype_device_and_copy():
    assert gaunt(1, 1, 2).dtype == torch.get_default_dtype()
    assert gaunt(1, 1, 2, dtype=torch.float64).dtype == torch.float64
    G = gaunt(1, 1, 0, dtype=torch.float64)
    G.zero_()  # the cache hands out copies
    assert gaunt(1, 1, 0, dtype=torch.float64).abs().max() > 0


@pytest.mark.parametrize("args, error", [((-1, 1, 1), ValueError), ((1.5, 1, 1), TypeError),
                                         ((1, "2", 1), TypeError), ((True, 1, 1), TypeError)])
def test_bad_degrees(args, error):
    with pytest.raises(error, match="gaunt"):
        gaunt(*args)
