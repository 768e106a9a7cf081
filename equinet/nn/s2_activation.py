r"""Pointwise nonlinearity of signals on the sphere, through a grid.

Coefficients :math:`A^l` (one copy of each degree :math:`0..L`) define the
signal :math:`f(x) = \sum_l A^l \cdot Y^l(x)` on the sphere. Rotations act on
it by rotating :math:`x`, and a pointwise function commutes with that:

.. math:: A'^{j} = \int_{S^2} \phi\big(f(x)\big)\, Y^j(x)\, dx,
          \qquad j = 0..L_\text{out},

computed by sampling :math:`f` on a grid (:class:`~equinet.o3.ToS2Grid`),
applying :math:`\phi` (normalised to unit second moment) and projecting back
(:class:`~equinet.o3.FromS2Grid`). :math:`\phi \circ f` is not band-limited,
so the result is exactly equivariant only when :math:`\phi` is a polynomial
of degree :math:`k` and the grid resolves degree :math:`kL + L_\text{out}`;
otherwise the error decreases with the resolution.

Parity: with inputs transforming as :math:`A^l \mapsto p_\text{val}\,
p_\text{arg}^l A^l` under inversion, the signal transforms as
:math:`f(x) \mapsto p_\text{val} f(p_\text{arg} x)`; for :math:`p_\text{val} =
-1` the function must be even (output :math:`p_\text{val} = 1`) or odd
(output :math:`p_\text{val} = -1`).
"""
from typing import Callable, Optional

import torch

from ..o3 import FromS2Grid, Irreps, ToS2Grid, rand_matrix
from ._irrep_index import check_last_dim
from .activation_norm import Normalize2Mom

__all__ = ["S2Activation"]


def _parity_relative(act: Callable) -> int:
    """Parity of ``act`` relative to its size (e3nn's test): 1 even, -1 odd, 0 neither."""
    x = torch.linspace(0, 10, 256)
    with torch.no_grad():
        a1, a2 = act(x), act(-x)
    scale = float(a1.abs().max()) * 1e-10
    if float((a1 - a2).abs().max()) < scale:
        return 1
    if float((a1 + a2).abs().max()) < scale:
        return -1
    return 0


class S2Activation(torch.nn.Module):
    r"""e3nn's ``nn.S2Activation``: apply :math:`\phi` pointwise to the spherical signal.

    Parameters
    ----------
    irreps : Irreps or str
        One copy of each degree ``0 .. lmax``, with parities
        :math:`p_\text{val}\, p_\text{arg}^l` (e.g. ``"0e + 1o + 2e"`` or
        ``"0e + 1e + 2e"``).
    act : callable
        :math:`\phi`.
    res : int or (int, int)
        Grid resolution ``res_beta`` or ``(res_beta, res_alpha)`` (see
        :class:`~equinet.o3.ToS2Grid`).
    normalization : {"component", "norm", "integral"}
    lmax_out : int, optional
        :math:`L_\text{out}`, ``lmax`` by default.
    random_rot : bool
        Rotate the grid randomly at each call (an unbiased estimate of the
        equivariant map; e3nn's option).

    Examples
    --------
    >>> act = S2Activation("0e + 1o + 2e", torch.tanh, res=20)
    >>> act.irreps_out
    1x0e+1x1o+1x2e
    >>> act(torch.randn(5, 9)).shape
    torch.Size([5, 9])
    """

    def __init__(self, irreps, act: Callable, res, normalization: str = "component",
                 lmax_out: Optional[int] = None, random_rot: bool = False) -> None:
        super().__init__()
        irreps = Irreps(irreps).simplify()
        if len(irreps) == 0 or any(mul != 1 for mul, _ in irreps) or \
                irreps.ls != list(range(irreps.lmax + 1)):
            raise ValueError(f"irreps must hold one copy of each degree 0..lmax in order, "
                             f"e.g. '0e + 1o + 2e'; got {irreps}")
        p_val = irreps[0].ir.p
        lmax = irreps.lmax
        if all(ir.p == p_val for _, ir in irreps):
            p_arg = 1
        elif all(ir.p == p_val * (-1) ** ir.l for _, ir in irreps):
            p_arg = -1
        else:
            raise ValueError(f"irreps {irreps}: the parities must be p_val * p_arg^l for signs "
                             "p_val, p_arg (e.g. all even, or (-1)^l): the parity of the "
                             "spherical signal is not defined")
        if lmax_out is None:
            lmax_out = lmax
        if isinstance(lmax_out, bool) or not isinstance(lmax_out, int) or lmax_out < 0:
            raise ValueError(f"lmax_out must be a non-negative int, got {lmax_out!r}")
        if p_val == 1:
            p_out = 1
        else:
            p_act = _parity_relative(act)
            if p_act == 0:
                raise ValueError(f"irreps {irreps} make an odd spherical signal, so act must be "
                                 "even or odd (e.g. tanh or abs): the parity is violated")
            p_out = p_act
        self.irreps_in = irreps
        self.irreps_out = Irreps([(1, (l, p_out * p_arg ** l)) for l in range(lmax_out + 1)])
        self.to_s2 = ToS2Grid(lmax, res, normalization=normalization)
        self.from_s2 = FromS2Grid(res, lmax_out, normalization=normalization, lmax_in=lmax)
        self.act = Normalize2Mom(act)
        self.random_rot = bool(random_rot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[..., irreps_in.dim]`` to ``[..., irreps_out.dim]``."""
        check_last_dim(x, self.irreps_in)
        if self.random_rot:
            R = rand_matrix(dtype=x.dtype, device=x.device)
            x = x @ self.irreps_in.D_from_matrix(R).T
        grid = self.to_s2(x)
        out = self.from_s2(self.act(grid))
        if self.random_rot:
            out = out @ self.irreps_out.D_from_matrix(R)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out})"
