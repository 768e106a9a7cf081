r"""e3nn's grid on the sphere and the spherical harmonics sampled on it.

The grid has ``res_beta`` x ``res_alpha`` points

.. math::

    \beta_i = \pi (i + 1/2) / N, \qquad \alpha_j = 2 \pi j / M, \qquad
    x_{ij} = (\sin\beta_i \sin\alpha_j, \; \cos\beta_i, \; \sin\beta_i \cos\alpha_j),

so that :math:`y` is the polar axis. On it the real spherical harmonics of e3nn,
normalised to :math:`\int Y_{lm}^2 = 1`, factorise:
:math:`Y_{lm}(x_{ij}) = S_m(\alpha_j) \, P_{l|m|}(\cos\beta_i)`, with
:math:`S_0 = 1`, :math:`S_m = \sqrt 2 \cos(m\alpha)` and :math:`S_{-m} = \sqrt 2 \sin(m\alpha)`
for :math:`m > 0`, and :math:`P_{lm}` the associated Legendre functions without the
Condon-Shortley phase, scaled by :math:`\sqrt{(2l+1)/(4\pi) \, (l-m)!/(l+m)!}`.

Integrals over the sphere are exact on the grid for band-limited integrands: in
:math:`\alpha` the plain mean over :math:`M` equispaced points (exact for
frequencies below :math:`M`), in :math:`\beta` Fejér's first rule on the midpoint
nodes, whose weights equal the Driscoll-Healy weights e3nn uses for even :math:`N`
and which integrates polynomials of degree :math:`N - 1` in :math:`\cos\beta`
exactly. The transforms between coefficients and grid values built on this are
in :mod:`equinet.o3.s2grid_transform`.
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch

# ToS2Grid and FromS2Grid are listed too: they were defined in this module at first, and are
# imported from it at the end of this file.
__all__ = ["s2_grid", "spherical_harmonics_s2_grid", "ToS2Grid", "FromS2Grid"]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_dtype(dtype: Optional[torch.dtype]) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a real floating point torch.dtype, got {dtype!r}")
    return dtype


def _grid_angles_float64(
    res_beta: int, res_alpha: int, device
) -> Tuple[torch.Tensor, torch.Tensor]:
    betas = (torch.arange(res_beta, dtype=torch.float64, device=device) + 0.5) * (
        math.pi / res_beta
    )
    alphas = torch.arange(res_alpha, dtype=torch.float64, device=device) * (2 * math.pi / res_alpha)
    return betas, alphas


def _legendre_float64(lmax: int, betas: torch.Tensor) -> torch.Tensor:
    r"""Scaled associated Legendre functions :math:`P_{l|m|}(\cos\beta)`, shape ``[n, (lmax+1)^2]``.

    The standard three-term recurrence on the orthonormal functions is used: it only ever
    multiplies by factors of order one, so it stays accurate in float64 to high degree
    (sin(beta)^m underflows only for m in the hundreds at the poles of fine grids).
    """
    cos, sin = betas.cos(), betas.sin()
    p = betas.new_zeros(lmax + 1, lmax + 1, betas.numel())  # [l, m, n]
    p[0, 0] = 1 / math.sqrt(4 * math.pi)
    for m in range(1, lmax + 1):
        p[m, m] = math.sqrt((2 * m + 1) / (2 * m)) * sin * p[m - 1, m - 1]
    for m in range(lmax):
        p[m + 1, m] = math.sqrt(2 * m + 3) * cos * p[m, m]
    for l in range(2, lmax + 1):
        m = torch.arange(l - 1, dtype=torch.float64, device=betas.device)[:, None]
        a = ((4 * l * l - 1) / (l * l - m * m)).sqrt()
        b = (((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1)).sqrt()
        p[l, : l - 1] = a * (cos * p[l - 1, : l - 1] - b * p[l - 2, : l - 1])
    ls = [l for l in range(lmax + 1) for _ in range(2 * l + 1)]
    ms = [abs(m) for l in range(lmax + 1) for m in range(-l, l + 1)]
    return p[ls, ms].T


def _alpha_float64(lmax: int, alphas: torch.Tensor) -> torch.Tensor:
    r""":math:`S_m(\alpha)` for m = -lmax..lmax, shape ``[n, 2 lmax + 1]``."""
    m = torch.arange(1, lmax + 1, dtype=torch.float64, device=alphas.device)
    angle = alphas[:, None] * m  # [n, m > 0]
    return torch.cat(
        [
            math.sqrt(2) * angle.sin().flip(1),
            torch.ones_like(alphas)[:, None],
            math.sqrt(2) * angle.cos(),
        ],
        dim=1,
    )


def _beta_quadrature_float64(res_beta: int, device) -> torch.Tensor:
    r"""Fejér's first rule on the midpoint nodes, scaled to sum to one.

    :math:`\sum_i w_i g(\cos\beta_i) = \frac12 \int_{-1}^{1} g(t) \, dt` for polynomials
    :math:`g` of degree below ``res_beta``.
    """
    betas, _ = _grid_angles_float64(res_beta, 1, device)
    k = torch.arange(1, res_beta // 2 + 1, dtype=torch.float64, device=device)
    series = (torch.cos(2 * k * betas[:, None]) / (4 * k * k - 1)).sum(1)
    return (1 - 2 * series) / res_beta


def s2_grid(
    res_beta: int, res_alpha: int, dtype: Optional[torch.dtype] = None, device=None
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The angles of e3nn's grid on the sphere.

    .. math:: \beta_i = \pi (i + 1/2) / N, \qquad \alpha_j = 2 \pi j / M

    Parameters
    ----------
    res_beta : int
        :math:`N`, the number of polar angles.
    res_alpha : int
        :math:`M`, the number of azimuthal angles.
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.
    device : torch.device, optional

    Returns
    -------
    betas : torch.Tensor
        Shape ``[res_beta]``.
    alphas : torch.Tensor
        Shape ``[res_alpha]``.

    Examples
    --------
    >>> betas, alphas = s2_grid(2, 4, dtype=torch.float64)
    >>> betas / math.pi
    tensor([0.2500, 0.7500], dtype=torch.float64)
    >>> alphas / math.pi
    tensor([0.0000, 0.5000, 1.0000, 1.5000], dtype=torch.float64)
    """
    _check_int("res_beta", res_beta, 1)
    _check_int("res_alpha", res_alpha, 1)
    dtype = _check_dtype(dtype)
    betas, alphas = _grid_angles_float64(res_beta, res_alpha, device)
    return betas.to(dtype), alphas.to(dtype)


def spherical_harmonics_s2_grid(
    lmax: int, res_beta: int, res_alpha: int, dtype: Optional[torch.dtype] = None, device=None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The factors of the spherical harmonics on the grid of `s2_grid`.

    .. math::

        Y_{lm}(\alpha_j, \beta_i) = \mathrm{sh\_alpha}[j, L + m] \;
        \mathrm{sh\_beta}[i, l^2 + l + m]

    where ``sh_beta`` holds :math:`P_{l|m|}(\cos\beta_i)` and ``sh_alpha`` holds
    :math:`S_m(\alpha_j)` (see the module docstring); :math:`Y` is normalised to
    :math:`\int Y_{lm}^2 = 1` (e3nn's ``"integral"``). Computed in float64, then cast.

    Parameters
    ----------
    lmax : int
    res_beta, res_alpha : int
    dtype : torch.dtype, optional
    device : torch.device, optional

    Returns
    -------
    betas : torch.Tensor
        Shape ``[res_beta]``.
    alphas : torch.Tensor
        Shape ``[res_alpha]``.
    sh_beta : torch.Tensor
        Shape ``[res_beta, (lmax + 1)^2]``.
    sh_alpha : torch.Tensor
        Shape ``[res_alpha, 2 lmax + 1]``.

    Examples
    --------
    >>> _, _, sh_beta, sh_alpha = spherical_harmonics_s2_grid(1, 2, 3)
    >>> sh_beta.shape, sh_alpha.shape
    (torch.Size([2, 4]), torch.Size([3, 3]))
    >>> round(sh_beta[0, 0].item() * math.sqrt(4 * math.pi), 6)
    1.0
    """
    _check_int("lmax", lmax, 0)
    _check_int("res_beta", res_beta, 1)
    _check_int("res_alpha", res_alpha, 1)
    dtype = _check_dtype(dtype)
    betas, alphas = _grid_angles_float64(res_beta, res_alpha, device)
    sh_beta = _legendre_float64(lmax, betas)
    sh_alpha = _alpha_float64(lmax, alphas)
    return betas.to(dtype), alphas.to(dtype), sh_beta.to(dtype), sh_alpha.to(dtype)


def _resolve_resolution(
    lmax: Optional[int], res: Union[None, int, Sequence[Optional[int]]]
) -> Tuple[int, int, int]:
    """Fill in whichever of lmax, res_beta, res_alpha is missing, the way e3nn does."""
    if res is None or isinstance(res, int):
        res_beta, res_alpha = res, None
    elif isinstance(res, (tuple, list)) and len(res) == 2:
        res_beta, res_alpha = res
    else:
        raise TypeError(f"res must be None, an int or a pair (res_beta, res_alpha), got {res!r}")
    if lmax is not None:
        _check_int("lmax", lmax, 0)
    if res_beta is not None:
        _check_int("res_beta", res_beta, 1)
    if res_alpha is not None:
        _check_int("res_alpha", res_alpha, 1)

    if res_beta is None:
        if lmax is not None:
            res_beta = 2 * (lmax + 1)
        elif res_alpha is not None:
            res_beta = 2 * ((res_alpha + 1) // 2)
        else:
            raise ValueError("give lmax or res (or both) to define the grid")
    if res_alpha is None:
        res_alpha = res_beta - 1 if lmax is None else max(2 * lmax + 1, res_beta - 1)
        res_alpha = max(res_alpha, 1)
    if lmax is None:
        lmax = max(min((res_beta - 1) // 2, (res_alpha - 1) // 2), 0)
    if res_beta < 2 * lmax + 1:
        raise ValueError(
            f"res_beta={res_beta} is too small for lmax={lmax}: the quadrature in beta is exact "
            f"only for res_beta >= 2 * lmax + 1 = {2 * lmax + 1}"
        )
    return lmax, res_beta, res_alpha


# Last, because s2grid_transform is built on the grid above.
from .s2grid_transform import FromS2Grid, ToS2Grid  # noqa: E402
