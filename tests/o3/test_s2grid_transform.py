"""Tests of ToS2Grid and FromS2Grid against e3nn, and of the exactness of the transforms."""

import contextlib
import functools

import e3nn.o3
import e3nn.o3._angular_spherical_harmonics as e3nn_angular
import pytest
import torch

from equinet.o3 import s2grid_transform
from equinet.o3.s2grid import spherical_harmonics_s2_grid
from equinet.o3.s2grid_transform import FromS2Grid, ToS2Grid

F64 = torch.float64
NORMALIZATIONS = ("component", "norm", "integral")


@pytest.fixture(scope="module", autouse=True)
def _cache_e3nn_legendre():
    # e3nn redoes its sympy Legendre polynomials in every constructor; caching them only makes
    # the oracle faster to build, the values are the same.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            e3nn_angular, "_poly_legendre", functools.lru_cache(None)(e3nn_angular._poly_legendre)
        )
        yield


@pytest.fixture(params=["fused", "separable"])
def path(request, monkeypatch):
    """Run the test with the one-matrix transform, then with the separable beta/alpha one."""
    monkeypatch.setattr(s2grid_transform, "_FUSED_MAX_ENTRIES",
                        10**12 if request.param == "fused" else 0)
    return request.param


@contextlib.contextmanager
def _default_float64():
    # e3nn computes its beta quadrature weights in the default dtype, float32 unless told otherwise,
    # which leaves its FromS2Grid ~1e-8 off in float64; its own formula is exact in float64.
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


@functools.lru_cache(None)
def _e3nn_module(name, *args, **kwargs):
    """The e3nn oracle, built once per argument set (the fused and separable runs share it)."""
    with _default_float64():
        return getattr(e3nn.o3, name)(*args, dtype=F64, **kwargs)


def _assert_path(module, path):
    assert module._fused == (path == "fused")


def _e3nn_grid_xyz(res_beta, res_alpha):
    betas, alphas = e3nn.o3.s2_grid(res_beta, res_alpha, dtype=F64)
    beta, alpha = torch.meshgrid(betas, alphas, indexing="ij")
    return e3nn.o3.angles_to_xyz(alpha, beta)  # [beta, alpha, 3]


def _e3nn_integral_sh(lmax, xyz):
    return e3nn.o3.spherical_harmonics(
        list(range(lmax + 1)), xyz, normalize=True, normalization="integral"
    )


@pytest.mark.parametrize("res", [(18, 17), (17, 20), (20, 9)])
def test_grid_values_are_e3nn_spherical_harmonics(path, res):
    """sh_alpha * sh_beta, and ToS2Grid("integral") of unit vectors, are Y at the grid points."""
    lmax = 8
    xyz = _e3nn_grid_xyz(*res)
    expected = _e3nn_integral_sh(lmax, xyz)  # [beta, alpha, i]

    _, _, sh_beta, sh_alpha = spherical_harmonics_s2_grid(lmax, *res, dtype=F64)
    m = torch.tensor([m for l in range(lmax + 1) for m in range(-l, l + 1)])
    product = sh_beta[:, None, :] * sh_alpha[None, :, lmax + m]
    torch.testing.assert_close(product, expected, atol=1e-12, rtol=0)

    to_grid = ToS2Grid(lmax, res, normalization="integral", dtype=F64)
    _assert_path(to_grid, path)
    torch.testing.assert_close(to_grid.grid, xyz, atol=1e-15, rtol=0)
    values = to_grid(torch.eye((lmax + 1) ** 2, dtype=F64))  # [i, beta, alpha]
    torch.testing.assert_close(values.permute(1, 2, 0), expected, atol=1e-12, rtol=0)


def _cases(lmax):
    """Grids: e3nn's default, an int res_beta, an odd and an even res_alpha above the minimum.

    The normalization cycles with the grid and lmax, so every pair of them is met across lmax.
    """
    resolutions = [None, 2 * lmax + 4, (2 * lmax + 4, 2 * lmax + 3), (2 * lmax + 2, 2 * lmax + 6)]
    return [(res, NORMALIZATIONS[(k + lmax) % 3]) for k, res in enumerate(resolutions)]


@pytest.mark.parametrize("lmax", range(9))
def test_to_s2_grid_equals_e3nn(path, lmax):
    x = torch.randn(2, 3, (lmax + 1) ** 2, dtype=F64)
    for res, normalization in _cases(lmax):
        ours = ToS2Grid(lmax, res, normalization, dtype=F64)
        ref = _e3nn_module("ToS2Grid", lmax, res, normalization)
        _assert_path(ours, path)
        assert (ours.res_beta, ours.res_alpha) == (ref.res_beta, ref.res_alpha)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("lmax", range(9))
def test_from_s2_grid_equals_e3nn(path, lmax):
    for k, (res, normalization) in enumerate(_cases(lmax)):
        lmax_in = (None, lmax + 2)[k % 2]
        ours = FromS2Grid(res, lmax, normalization, lmax_in=lmax_in, dtype=F64)
        ref = _e3nn_module("FromS2Grid", res, lmax, normalization, lmax_in=lmax_in)
        _assert_path(ours, path)
        x = torch.randn(2, ref.res_beta, ref.res_alpha, dtype=F64)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-10, rtol=0)


def test_tensor_normalization_equals_e3nn(path):
    lmax, res = 3, (10, 9)
    n = torch.rand(lmax + 1, dtype=F64) + 0.5
    x = torch.randn(4, (lmax + 1) ** 2, dtype=F64)
    torch.testing.assert_close(
        ToS2Grid(lmax, res, n, dtype=F64)(x),
        e3nn.o3.ToS2Grid(lmax, res, n, dtype=F64)(x),
        atol=1e-12,
        rtol=0,
    )
    g = torch.randn(4, *res, dtype=F64)
    with _default_float64():
        ref = e3nn.o3.FromS2Grid(res, lmax, n, dtype=F64)
    torch.testing.assert_close(FromS2Grid(res, lmax, n, dtype=F64)(g), ref(g), atol=1e-12, rtol=0)


@pytest.mark.parametrize("lmax", [0, 1, 2, 5, 10, 15, 20])
def test_round_trip_is_exact_for_band_limited_signals(path, lmax):
    # the smallest exact grid (odd res_beta), e3nn's default, and a larger one
    resolutions = [(2 * lmax + 1, 2 * lmax + 1), None, (2 * lmax + 2, 2 * lmax + 5)]
    for k, res in enumerate(resolutions):
        normalization = NORMALIZATIONS[(k + lmax) % 3]
        c = torch.randn(3, (lmax + 1) ** 2, dtype=F64)
        to_grid = ToS2Grid(lmax, res, normalization, dtype=F64)
        from_grid = FromS2Grid(res, lmax, normalization, dtype=F64)
        _assert_path(from_grid, path)
        torch.testing.assert_close(from_grid(to_grid(c)), c, atol=1e-10, rtol=0)


def test_low_pass_of_a_higher_degree_signal(path):
    """FromS2Grid(lmax=lo, lmax_in=li) keeps exactly the degrees <= lo of a ToS2Grid(li) signal."""
    lmax_in, lmax_out, res = 6, 3, (14, 13)
    c = torch.randn(5, (lmax_in + 1) ** 2, dtype=F64)
    for normalization in NORMALIZATIONS:
        grid = ToS2Grid(lmax_in, res, normalization, dtype=F64)(c)
        out = FromS2Grid(res, lmax_out, normalization, lmax_in=lmax_in, dtype=F64)(grid)
        torch.testing.assert_close(out, c[:, : (lmax_out + 1) ** 2], atol=1e-10, rtol=0)


@pytest.mark.parametrize("inversion", [False, True])
def test_rotated_signal_has_rotated_coefficients(path, inversion):
    """f(R^-1 x) sampled on the grid projects to D(R) c, and ToS2Grid(D(R) c) samples it."""
    lmax = 6
    res = (2 * lmax + 2, 2 * lmax + 3)
    rotation = e3nn.o3.rand_matrix(dtype=F64)
    if inversion:
        rotation = -rotation
    with _default_float64():  # e3nn builds D in the default dtype
        D = e3nn.o3.Irreps.spherical_harmonics(lmax).D_from_matrix(rotation)
    c = torch.randn(4, (lmax + 1) ** 2, dtype=F64)

    # row vectors: (R^-1 x)^T = x^T R
    rotated_values = (
        _e3nn_integral_sh(lmax, _e3nn_grid_xyz(*res) @ rotation) @ c.T
    )  # [beta, alpha, batch]
    rotated_values = rotated_values.permute(2, 0, 1)

    from_grid = FromS2Grid(res, lmax, "integral", dtype=F64)
    _assert_path(from_grid, path)
    torch.testing.assert_close(from_grid(rotated_values), c @ D.T, atol=1e-10, rtol=0)
    to_grid = ToS2Grid(lmax, res, "integral", dtype=F64)
    torch.testing.assert_close(to_grid(c @ D.T), rotated_values, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "lmax, res",
    [
        (3, None),
        (None, 10),
        (None, (10, None)),
        (None, (None, 9)),
        (4, 12),
        (2, (None, 7)),
        (None, (12, 5)),
        (5, 30),
    ],
)
def test_default_resolution_equals_e3nn(lmax, res):
    ref = e3nn.o3.ToS2Grid(lmax, res)
    ours = ToS2Grid(lmax, res)
    assert (ours.lmax, ours.res_beta, ours.res_alpha) == (ref.lmax, ref.res_beta, ref.res_alpha)
    ref = e3nn.o3.FromS2Grid(res, lmax)
    ours = FromS2Grid(res, lmax)
    assert (ours.lmax, ours.res_beta, ours.res_alpha) == (ref.lmax, ref.res_beta, ref.res_alpha)


def test_dtypes_and_batch_shapes(path, dtype, atol):
    lmax, res = 4, (10, 11)
    c = torch.randn(2, 3, (lmax + 1) ** 2, dtype=F64)
    to64, from64 = ToS2Grid(lmax, res, dtype=F64), FromS2Grid(res, lmax, dtype=F64)
    to_grid, from_grid = ToS2Grid(lmax, res, dtype=dtype), FromS2Grid(res, lmax, dtype=dtype)
    _assert_path(to_grid, path)
    grid = to_grid(c.to(dtype))
    assert grid.dtype == dtype and grid.shape == (2, 3, *res)
    torch.testing.assert_close(grid.double(), to64(c), atol=atol, rtol=0)
    back = from_grid(grid)
    assert back.dtype == dtype and back.shape == c.shape
    torch.testing.assert_close(back.double(), from64(to64(c)), atol=atol, rtol=0)

    # unbatched and empty batches
    assert to_grid(c[0, 0].to(dtype)).shape == res
    assert from_grid(grid[0, 0]).shape == ((lmax + 1) ** 2,)
    assert to_grid(c[:0].to(dtype)).shape == (0, 3, *res)
    assert from_grid(grid[:0]).shape == (0, 3, (lmax + 1) ** 2)


def test_default_dtype_is_respected():
    default = torch.get_default_dtype()
    assert ToS2Grid(2).betas.dtype == default and FromS2Grid(lmax=2).alphas.dtype == default
    try:
        torch.set_default_dtype(F64)
        assert ToS2Grid(2)(torch.randn(9)).dtype == F64
    finally:
        torch.set_default_dtype(default)


def test_gradients(path):
    lmax, res = 2, (6, 7)
    to_grid, from_grid = ToS2Grid(lmax, res, dtype=F64), FromS2Grid(res, lmax, dtype=F64)
    assert torch.autograd.gradcheck(to_grid, torch.randn(2, 9, dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(from_grid, torch.randn(2, *res, dtype=F64, requires_grad=True))


def test_e3nn_state_dict_loads_and_nothing_constant_is_saved():
    ours, ref = ToS2Grid(3, dtype=F64), e3nn.o3.ToS2Grid(3, dtype=F64)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert ours.state_dict() == {}
    ours, ref = FromS2Grid(lmax=3, dtype=F64), _e3nn_module("FromS2Grid", lmax=3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, ours.res_beta, ours.res_alpha, dtype=F64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"\[\.\.\., 16\]"):
        ToS2Grid(3)(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"\[\.\.\., 8, 7\]"):
        FromS2Grid(lmax=3)(torch.randn(2, 7, 8))
    with pytest.raises(ValueError, match="res_beta=6 is too small for lmax=3"):
        ToS2Grid(3, (6, 7))
    with pytest.raises(ValueError, match="res_beta=7 is too small for lmax=4"):
        FromS2Grid((7, 9), 4)
    with pytest.raises(ValueError, match="res_alpha=6 is too small for lmax=3"):
        FromS2Grid((8, 6), 3)
    for module in (
        lambda n: ToS2Grid(2, normalization=n),
        lambda n: FromS2Grid(lmax=2, normalization=n),
    ):
        with pytest.raises(ValueError, match="normalization must be one of"):
            module("unit")
        with pytest.raises(ValueError, match="one factor per degree"):
            module(torch.ones(4))
    with pytest.raises(ValueError, match="give lmax or res"):
        ToS2Grid()
    with pytest.raises(ValueError, match="lmax must be >= 0"):
        ToS2Grid(-1)
    with pytest.raises(TypeError, match="lmax must be an int"):
        ToS2Grid(2.0)
    with pytest.raises(TypeError, match="res must be"):
        FromS2Grid((8, 7, 1), 2)
    with pytest.raises(TypeError, match="differs from the module dtype"):
        ToS2Grid(2, dtype=F64)(torch.randn(9, dtype=torch.float32))
