r"""Band-limited signals on the sphere: spherical-harmonic coefficients <-> values on a grid.

A signal :math:`f: S^2 \to \mathbb{R}` of degree at most :math:`L` is

.. math:: f(x) = \sum_{l=0}^{L} \sum_{m=-l}^{l} c_{lm} \, n_l \, Y_{lm}(x)

with :math:`Y_{lm}` the real spherical harmonics of e3nn normalised to
:math:`\int Y_{lm}^2 = 1` and :math:`n_l` set by ``normalization`` (see `ToS2Grid`).
`ToS2Grid` samples it on the grid of :func:`~equinet.o3.s2grid.s2_grid`, and
`FromS2Grid` projects grid values back onto the harmonics with that grid's
quadrature, exact for band-limited signals: the product of two harmonics of degree
at most :math:`L` has degree :math:`2L`, so the projection is exact when
:math:`N \geq 2L + 1` and :math:`M \geq 2L + 1`.

Implementation notes (measured on a 2-core CPU, one thread, float32, e3nn's default grids):
along :math:`\alpha` a dense matmul with the ``[M, 2L+1]`` table was 4-20x faster than
``torch.fft.rfft``/``irfft`` (with the real/complex packing) for every lmax from 2 to 32, so no
FFT is used. Fusing the :math:`\beta` and :math:`\alpha` steps into one dense matrix of shape
``[(L+1)^2, N M]`` (one GEMM) was faster still up to lmax = 12; past that the separable form
(per-``m`` Legendre matmuls, then the dense :math:`\alpha` matmul) needs far fewer flops and
less memory and wins, so the modules pick one of the two by the size of the fused matrix.
"""

import math
from typing import Tuple

import torch

from .s2grid import (_alpha_float64, _beta_quadrature_float64, _check_dtype, _check_int,
                     _grid_angles_float64, _legendre_float64, _resolve_resolution)

__all__ = ["ToS2Grid", "FromS2Grid"]

_NORMALIZATIONS = ("component", "norm", "integral")

# Above this many entries in the fused [(L+1)^2, N*M] matrix the separable transform is used.
# On e3nn's default grid that keeps lmax <= 12 fused (169 * 26 * 25 = 109850 entries).
_FUSED_MAX_ENTRIES = 120_000


def _degree_factors(normalization, lmax: int, scales: dict) -> torch.Tensor:
    if isinstance(normalization, torch.Tensor):
        if normalization.shape != (lmax + 1,):
            raise ValueError(
                f"a tensor normalization needs one factor per degree, shape ({lmax + 1},), "
                f"got {tuple(normalization.shape)}"
            )
        return normalization.detach().to("cpu", torch.float64)
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    return torch.tensor([scales[normalization](l) for l in range(lmax + 1)], dtype=torch.float64)


def _lm_padding_index(lmax: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where coefficient (l, m) sits in a zero-padded [m, l] table, m = -lmax..lmax.

    Returns the (m, l) positions of all coefficients in their flat order l^2 + l + m, and the
    flat index of each table slot, pointing at (lmax + 1)^2 (one past the end) where l < |m|.
    """
    num = (lmax + 1) ** 2
    slot = torch.full((2 * lmax + 1, lmax + 1), num, dtype=torch.long)
    m_of, l_of = [], []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            slot[lmax + m, l] = l * l + l + m
            m_of.append(lmax + m)
            l_of.append(l)
    return torch.tensor(m_of), torch.tensor(l_of), slot


class _S2GridTransform(torch.nn.Module):
    """Shared set-up of `ToS2Grid` and `FromS2Grid`: grid, tables, and the e3nn state-dict keys."""

    _E3NN_BUFFERS = ("alphas", "betas", "sha", "shb")

    def _set_up(self, lmax, res, normalization, dtype, device):
        dtype = _check_dtype(dtype)
        self.lmax, self.res_beta, self.res_alpha = _resolve_resolution(lmax, res)
        self.normalization = normalization if isinstance(normalization, str) else "custom"
        betas, alphas = _grid_angles_float64(self.res_beta, self.res_alpha, "cpu")
        self.register_buffer("betas", betas.to(device=device, dtype=dtype), persistent=False)
        self.register_buffer("alphas", alphas.to(device=device, dtype=dtype), persistent=False)
        self._fused = (self.lmax + 1) ** 2 * self.res_beta * self.res_alpha <= _FUSED_MAX_ENTRIES
        return dtype, _legendre_float64(self.lmax, betas), _alpha_float64(self.lmax, alphas)

    def _register_tables(self, beta, sh_alpha, dtype, device, to_grid: bool) -> None:
        """Buffers of the transform grid [beta, alpha] -> coefficients [i] (transposed if to_grid).

        ``beta`` [beta, i] holds the Legendre factors times all per-degree and quadrature factors.
        """
        L = self.lmax
        m_of, l_of, slot = _lm_padding_index(L)

        def register(name, table):
            table = table.to(device, dtype if table.is_floating_point() else table.dtype)
            self.register_buffer(name, table.contiguous(), persistent=False)

        if self._fused:
            matrix = beta[:, None, :] * sh_alpha[:, m_of][None, :, :]  # [beta, alpha, i]
            matrix = matrix.reshape(-1, (L + 1) ** 2)
            register("_matrix", matrix.T if to_grid else matrix)
        else:
            # per m, the [beta, l] Legendre block; columns with l < |m| are zero
            blocks = torch.cat([beta, beta.new_zeros(self.res_beta, 1)], 1)[:, slot]
            blocks = blocks.transpose(0, 1)  # [m, beta, l]
            register("_beta_blocks", blocks.transpose(1, 2) if to_grid else blocks)
            register("_alpha_matrix", sh_alpha.T)  # [m, alpha]
            register("_slot", slot)  # [m, l] -> i, or (lmax + 1)^2 for an empty slot
            register("_gather", m_of * (L + 1) + l_of)  # i -> flat [m, l]

    @property
    def grid(self) -> torch.Tensor:
        r"""The grid points :math:`x_{ij}`, shape ``[res_beta, res_alpha, 3]``."""
        beta, alpha = self.betas[:, None], self.alphas[None, :]
        return torch.stack(
            torch.broadcast_tensors(beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()),
            -1,
        )

    def _check_dtype_of(self, x: torch.Tensor) -> None:
        if x.dtype != self.betas.dtype:
            raise TypeError(
                f"input dtype {x.dtype} differs from the module dtype {self.betas.dtype}; "
                "convert one of them (e.g. module.to(dtype))"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The grid tables are constants rebuilt from the constructor arguments, so they are not
        # saved; e3nn saves them, and dropping its keys lets e3nn state dicts load strictly.
        for name in self._E3NN_BUFFERS:
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"lmax={self.lmax}, res=({self.res_beta}, {self.res_alpha}), "
            f"normalization={self.normalization!r}"
        )


class ToS2Grid(_S2GridTransform):
    r"""Evaluate a signal given by spherical-harmonic coefficients on the grid of `s2_grid`.

    .. math:: f(x_{ij}) = \sum_{l=0}^{L} n_l \sum_{m=-l}^{l} c_{lm} Y_{lm}(x_{ij})

    with :math:`\int Y_{lm}^2 = 1` and, as in e3nn, :math:`n_l = \sqrt{4\pi / ((2l+1)(L+1))}`
    for ``"component"``, :math:`\sqrt{4\pi / (L+1)}` for ``"norm"`` and 1 for ``"integral"``.
    It is the inverse of `FromS2Grid` on band-limited signals.

    Parameters
    ----------
    lmax : int, optional
        :math:`L`. Defaults to the largest degree the grid resolves.
    res : int or (int, int), optional
        ``res_beta`` or ``(res_beta, res_alpha)``; either may be None. Defaults as e3nn:
        ``res_beta = 2 (lmax + 1)``, ``res_alpha = max(2 lmax + 1, res_beta - 1)``.
        ``res_beta >= 2 lmax + 1`` is required (e3nn requires it too, and even ``res_beta``;
        odd ``res_beta`` is accepted here).
    normalization : {"component", "norm", "integral"} or torch.Tensor
        Or a tensor of the ``lmax + 1`` factors :math:`n_l`.
    dtype : torch.dtype, optional
    device : torch.device, optional

    Examples
    --------
    >>> to_grid = ToS2Grid(lmax=2, res=(6, 5))
    >>> to_grid(torch.randn(10, 9)).shape
    torch.Size([10, 6, 5])
    >>> ToS2Grid(lmax=0, normalization="integral")(torch.ones(1))  # 1 / sqrt(4 pi)
    tensor([[0.2821],
            [0.2821]])
    """

    def __init__(
        self, lmax=None, res=None, normalization="component", dtype=None, device=None
    ) -> None:
        super().__init__()
        dtype, sh_beta, sh_alpha = self._set_up(lmax, res, normalization, dtype, device)
        L = self.lmax
        n = _degree_factors(
            normalization,
            L,
            {
                "component": lambda l: math.sqrt(4 * math.pi / ((2 * l + 1) * (L + 1))),
                "norm": lambda l: math.sqrt(4 * math.pi / (L + 1)),
                "integral": lambda l: 1.0,
            },
        )
        _, l_of, _ = _lm_padding_index(L)
        self._register_tables(sh_beta * n[l_of], sh_alpha, dtype, device, to_grid=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r"""Coefficients ``[..., (lmax + 1)^2]`` to grid values ``[..., res_beta, res_alpha]``."""
        num = (self.lmax + 1) ** 2
        if x.ndim == 0 or x.shape[-1] != num:
            raise ValueError(
                f"expected coefficients of shape [..., {num}] for lmax={self.lmax}, "
                f"got {tuple(x.shape)}"
            )
        self._check_dtype_of(x)
        batch = x.shape[:-1]
        x = x.reshape(-1, num)
        if self._fused:
            out = x @ self._matrix
        else:
            x = torch.cat([x, x.new_zeros(x.shape[0], 1)], 1)[:, self._slot]  # [z, m, l]
            y = torch.bmm(x.transpose(0, 1), self._beta_blocks)  # [m, z, beta]
            out = y.reshape(2 * self.lmax + 1, x.shape[0] * self.res_beta).T @ self._alpha_matrix
        return out.reshape(*batch, self.res_beta, self.res_alpha)


class FromS2Grid(_S2GridTransform):
    r"""Project values on the grid of `s2_grid` onto spherical-harmonic coefficients.

    .. math:: c_{lm} = \frac{k_l}{4\pi} \int f(x) Y_{lm}(x) \, dx
        \approx k_l \sum_{ij} \frac{w_i}{M} f(x_{ij}) Y_{lm}(x_{ij})

    with the exact quadrature weights :math:`w_i` of :mod:`equinet.o3.s2grid` and, as in e3nn,
    :math:`k_l = \sqrt{4\pi(2l+1)(L_{in}+1)}` for ``"component"``,
    :math:`\sqrt{4\pi(L_{in}+1)}` for ``"norm"`` and :math:`4\pi` for ``"integral"``, so that
    it inverts `ToS2Grid` exactly on signals of degree at most ``lmax``.

    Parameters
    ----------
    res : int or (int, int), optional
        As in `ToS2Grid`. Both ``res_beta`` and ``res_alpha`` must be at least ``2 lmax + 1``
        for the projection to be exact (e3nn does not check ``res_alpha``).
    lmax : int, optional
    normalization : {"component", "norm", "integral"} or torch.Tensor
    lmax_in : int, optional
        :math:`L_{in}`, the degree of the `ToS2Grid` being inverted; only scales the
        ``"component"`` and ``"norm"`` factors. Defaults to ``lmax``.
    dtype : torch.dtype, optional
    device : torch.device, optional

    Examples
    --------
    >>> c = torch.randn(3, 16, dtype=torch.float64)
    >>> grid = ToS2Grid(lmax=3, res=(8, 7), dtype=torch.float64)(c)
    >>> from_grid = FromS2Grid((8, 7), lmax=3, dtype=torch.float64)
    >>> torch.allclose(from_grid(grid), c, atol=1e-12)
    True
    """

    def __init__(
        self, res=None, lmax=None, normalization="component", lmax_in=None, dtype=None, device=None
    ) -> None:
        super().__init__()
        dtype, sh_beta, sh_alpha = self._set_up(lmax, res, normalization, dtype, device)
        L = self.lmax
        if self.res_alpha < 2 * L + 1:
            raise ValueError(
                f"res_alpha={self.res_alpha} is too small for lmax={L}: the projection is exact "
                f"only for res_alpha >= 2 * lmax + 1 = {2 * L + 1}"
            )
        lmax_in = L if lmax_in is None else _check_int("lmax_in", lmax_in, 0)
        self.lmax_in = lmax_in
        k = _degree_factors(
            normalization,
            L,
            {
                "component": lambda l: math.sqrt(4 * math.pi * (2 * l + 1) * (lmax_in + 1)),
                "norm": lambda l: math.sqrt(4 * math.pi * (lmax_in + 1)),
                "integral": lambda l: 4 * math.pi,
            },
        )
        _, l_of, _ = _lm_padding_index(L)
        weights = _beta_quadrature_float64(self.res_beta, "cpu") / self.res_alpha
        beta = sh_beta * k[l_of] * weights[:, None]
        self._register_tables(beta, sh_alpha, dtype, device, to_grid=False)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", lmax_in={self.lmax_in}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r"""Grid values ``[..., res_beta, res_alpha]`` to coefficients ``[..., (lmax + 1)^2]``."""
        res = (self.res_beta, self.res_alpha)
        if x.ndim < 2 or tuple(x.shape[-2:]) != res:
            raise ValueError(
                f"expected grid values of shape [..., {res[0]}, {res[1]}], got {tuple(x.shape)}"
            )
        self._check_dtype_of(x)
        batch = x.shape[:-2]
        if self._fused:
            out = x.reshape(-1, res[0] * res[1]) @ self._matrix
        else:
            z = batch.numel()
            y = self._alpha_matrix @ x.reshape(z * res[0], res[1]).T  # [m, z * beta]
            c = torch.bmm(y.view(2 * self.lmax + 1, z, res[0]), self._beta_blocks)  # [m, z, l]
            out = c.transpose(0, 1).flatten(1)[:, self._gather]
        return out.reshape(*batch, (self.lmax + 1) ** 2)
