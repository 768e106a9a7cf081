"""Tests of the grid of equinet.o3.s2grid and the harmonics on it, against e3nn and scipy."""

import e3nn.o3
import numpy as np
import pytest
import scipy.special
import torch

from equinet.o3.s2grid import s2_grid, spherical_harmonics_s2_grid

F64 = torch.float64


@pytest.mark.parametrize("res_beta, res_alpha", [(1, 1), (2, 3), (7, 4), (10, 11)])
def test_s2_grid_equals_e3nn(res_beta, res_alpha):
    betas, alphas = s2_grid(res_beta, res_alpha, dtype=F64)
    ref_betas, ref_alphas = e3nn.o3.s2_grid(res_beta, res_alpha, dtype=F64)
    torch.testing.assert_close(betas, ref_betas, atol=1e-15, rtol=0)
    torch.testing.assert_close(alphas, ref_alphas, atol=1e-15, rtol=0)


@pytest.mark.parametrize("lmax", range(9))
def test_spherical_harmonics_s2_grid_equals_e3nn(lmax):
    res_beta, res_alpha = 2 * lmax + 2, 2 * lmax + 3
    ours = spherical_harmonics_s2_grid(lmax, res_beta, res_alpha, dtype=F64)
    ref = e3nn.o3.spherical_harmonics_s2_grid(lmax, res_beta, res_alpha, dtype=F64)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_legendre_to_high_degree_against_scipy():
    """The recurrence is accurate at lmax = 40, near the poles too (scipy adds the CS phase)."""
    lmax = 40
    betas, _, sh_beta, _ = spherical_harmonics_s2_grid(lmax, 81, 1, dtype=F64)
    expected = np.stack(
        [
            (-1) ** abs(m) * scipy.special.sph_harm_y(l, abs(m), betas.numpy(), 0.0).real
            for l in range(lmax + 1)
            for m in range(-l, l + 1)
        ],
        axis=1,
    )
    np.testing.assert_allclose(sh_beta.numpy(), expected, atol=1e-12, rtol=0)


def test_default_dtype_is_respected():
    default = torch.get_default_dtype()
    assert s2_grid(3, 4)[0].dtype == default
    assert all(t.dtype == default for t in spherical_harmonics_s2_grid(2, 6, 5))


def test_bad_input_raises():
    with pytest.raises(TypeError, match="dtype"):
        s2_grid(3, 4, dtype=torch.int64)


def test_transforms_stay_importable_from_s2grid():
    """ToS2Grid and FromS2Grid were defined in equinet.o3.s2grid before s2grid_transform."""
    from equinet.o3 import s2grid, s2grid_transform

    for name in s2grid_transform.__all__:
        assert getattr(s2grid, name) is getattr(s2grid_transform, name)
        assert name in s2grid.__all__
