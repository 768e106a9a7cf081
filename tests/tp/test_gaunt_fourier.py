"""The exact SH <-> Fourier / grid tables of the fast Gaunt products, against e3nn's harmonics."""
import math

import numpy as np
import pytest
import torch

from equinet.tp.gaunt import get_plan
from equinet.tp.gaunt_fourier import TorusPlan, fft_size, legendre_fourier

e3nn_o3 = pytest.importorskip("e3nn.o3")


def _e3nn_sh(lmax, beta, alpha):
    xyz = torch.stack([beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()], -1)
    return e3nn_o3.spherical_harmonics(list(range(lmax + 1)), xyz, normalize=True,
                                       normalization="integral")


def test_legendre_fourier_series_equal_e3nn_harmonics():
    lmax = 12
    a = legendre_fourier(lmax)
    beta = torch.rand(20, dtype=torch.float64) * math.pi
    u = torch.arange(lmax + 1, dtype=torch.float64)
    Y = _e3nn_sh(lmax, beta, torch.zeros_like(beta))  # alpha = 0: S_k = sqrt2 (k > 0), S_-k = 0
    for l in range(lmax + 1):
        for k in range(l + 1):
            trig = torch.cos if k % 2 == 0 else torch.sin
            theta = trig(beta[:, None] * u) @ a[k, l]
            expected = Y[:, l * l + l + k] / (1 if k == 0 else math.sqrt(2))
            torch.testing.assert_close(theta, expected, atol=1e-13, rtol=0)
            if l < lmax:
                assert a[k, l, l + 1:].abs().max() == 0


@pytest.mark.parametrize("kind", ["grid", "fft"])
def test_synthesis_gives_function_values(kind):
    # The torus / grid values are the function's values at the plan's sample points.
    L = 5
    plan = get_plan(kind, 2 * L, L, L, torch.float64, "cpu")
    x = torch.randn(3, (L + 1) ** 2, dtype=torch.float64)
    f = plan.synthesis(x)
    if kind == "fft":
        theta = torch.arange(plan.n_theta, dtype=torch.float64) * 2 * math.pi / plan.n_theta
        phi = torch.arange(plan.n_phi, dtype=torch.float64) * 2 * math.pi / plan.n_phi
        keep = theta <= math.pi  # the upper half of the torus is the sphere
        b, a = torch.meshgrid(theta[keep], phi, indexing="ij")
        expected = _e3nn_sh(L, b, a) @ x.T  # [theta, phi, batch]
        torch.testing.assert_close(f[:, keep].permute(1, 2, 0), expected, atol=1e-12, rtol=0)
    else:
        # Gauss-Legendre nodes in cos(theta) times equispaced phi, laid out [theta, phi, batch]
        nodes, _ = np.polynomial.legendre.leggauss(plan.n_theta)
        theta = torch.from_numpy(np.arccos(nodes))
        phi = torch.arange(plan.n_phi, dtype=torch.float64) * 2 * math.pi / plan.n_phi
        b, a = torch.meshgrid(theta, phi, indexing="ij")
        torch.testing.assert_close(f, _e3nn_sh(L, b, a) @ x.T, atol=1e-12, rtol=0)
        # analysis of the synthesis is the identity (quadrature exact at degree 2L)
        torch.testing.assert_close(plan.analysis(f), x, atol=1e-12, rtol=0)


def test_fft_size():
    assert [fft_size(n) for n in (1, 7, 11, 13, 49, 97)] == [1, 8, 12, 15, 50, 100]


def test_torus_plan_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="lmax_out"):
        TorusPlan(2, 3, 1, torch.float64, "cpu")
