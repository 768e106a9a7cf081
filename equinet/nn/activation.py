r"""Scalar activations applied to the scalar channels of an irreps layout, parity aware.

A function :math:`\phi` applied to a scalar :math:`x` is equivariant only if
the result transforms as a scalar of some parity. An even scalar (``0e``) is
invariant, so :math:`\phi(x)` is an even scalar for any :math:`\phi`. An odd
scalar (``0o``) changes sign under inversion, so :math:`\phi(x)` is only a
scalar when :math:`\phi` has a parity: even :math:`\phi` (:math:`\phi(-x) =
\phi(x)`, e.g. ``abs``) gives ``0e``, odd :math:`\phi` (e.g. ``tanh``) gives
``0o``. The parity of :math:`\phi` is detected numerically, as e3nn does, by
comparing :math:`\phi(x)` and :math:`\phi(-x)` on 256 points of :math:`[0, 10]`
(tolerance :math:`10^{-5}`).
"""
from typing import Callable, List, Optional, Sequence

import torch

from ..o3 import Irreps
from ._irrep_index import block_ranges, check_last_dim
from .activation_norm import Normalize2Mom

__all__ = ["Activation", "activation_parity"]


def activation_parity(act: Callable, tolerance: float = 1e-5) -> int:
    r"""``1`` if :math:`\phi` is even, ``-1`` if odd, ``0`` if neither (on :math:`[-10, 10]`).

    Examples
    --------
    >>> [activation_parity(f) for f in (torch.tanh, torch.abs, torch.sigmoid)]
    [-1, 1, 0]
    """
    x = torch.linspace(0, 10, 256)
    with torch.no_grad():
        a1, a2 = act(x), act(-x)
    if float((a1 - a2).abs().max()) < tolerance:
        return 1
    if float((a1 + a2).abs().max()) < tolerance:
        return -1
    return 0


class Activation(torch.nn.Module):
    r"""Apply a scalar function to each scalar block of ``irreps_in`` (e3nn's ``nn.Activation``).

    Block :math:`i` with function :math:`\phi_i` becomes :math:`c_i\,\phi_i(x)`,
    where :math:`c_i` normalises :math:`\phi_i` to unit second moment
    (:class:`~equinet.nn.Normalize2Mom`); a block with ``None`` passes through.
    Output parities: ``0e`` stays ``0e``; ``0o`` becomes ``0e`` under an even
    :math:`\phi` and stays ``0o`` under an odd one; any other function on a
    ``0o`` block is a ``ValueError``.

    Parameters
    ----------
    irreps_in : Irreps or str
    acts : sequence of callable or None
        One per block of ``irreps_in`` (not simplified).

    Examples
    --------
    >>> a = Activation("4x0e + 2x0o + 1o", [torch.relu, torch.abs, None])
    >>> a.irreps_out
    4x0e+2x0e+1x1o
    >>> a(torch.randn(7, 9)).shape
    torch.Size([7, 9])
    """

    def __init__(self, irreps_in, acts: Sequence[Optional[Callable]]) -> None:
        super().__init__()
        self.irreps_in = Irreps(irreps_in)
        acts = list(acts)
        if len(acts) != len(self.irreps_in):
            raise ValueError(f"got {len(acts)} activation functions for the {len(self.irreps_in)} "
                             f"blocks of {self.irreps_in}: give one (or None) per block")
        normalized: List[Optional[torch.nn.Module]] = []
        irreps_out = []
        for k, ((mul, ir), act) in enumerate(zip(self.irreps_in, acts)):
            if act is None:
                normalized.append(None)
                irreps_out.append((mul, ir))
                continue
            if ir.l != 0:
                raise ValueError(f"block {k} ({mul}x{ir}) is not a scalar: activation functions "
                                 "apply to 0e and 0o blocks only (give None for the others)")
            act = Normalize2Mom(act)
            p_out = ir.p
            if ir.p == -1:
                p_out = activation_parity(act)
                if p_out == 0:
                    raise ValueError(f"block {k} ({mul}x{ir}) holds odd scalars but its "
                                     "activation is neither even nor odd: the result would not "
                                     "be a scalar of any parity (use e.g. tanh or abs)")
            normalized.append(act)
            irreps_out.append((mul, (0, p_out)))
        self.irreps_out = Irreps(irreps_out)
        self.acts = torch.nn.ModuleList([a for a in normalized if a is not None])
        self._plan = [(start, length, a is not None)
                      for (start, length), a in zip(block_ranges(self.irreps_in), normalized)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[..., irreps_in.dim]`` to ``[..., irreps_out.dim]`` (the same size)."""
        check_last_dim(x, self.irreps_in)
        pieces = []
        acts = iter(self.acts)
        for start, length, has_act in self._plan:
            piece = x.narrow(-1, start, length)
            pieces.append(next(acts)(piece) if has_act else piece)
        if not pieces:
            return x
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    def __repr__(self) -> str:
        marks = "".join("x" if has_act else " " for _, _, has_act in self._plan)
        return f"{type(self).__name__} [{marks}] ({self.irreps_in} -> {self.irreps_out})"
