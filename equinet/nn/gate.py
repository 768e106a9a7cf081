r"""The gate nonlinearity: scalars through activations, other irreps scaled by gates.

.. math::

    \text{Gate}(x) = \Big(\bigoplus_i \phi_i(s_i)\Big) \oplus
                     \Big(\bigoplus_j \psi_j(g_j)\, v_j\Big)

The input holds three kinds of channels: scalars :math:`s_i`, gate scalars
:math:`g_j` and gated irreps :math:`v_j` (one gate per gated channel). A
scalar function of an invariant times an equivariant feature is equivariant,
so this is the cheapest nonlinearity that acts on every degree. Parities
follow :class:`~equinet.nn.Activation`: an odd gate (``0o``) under an odd
:math:`\psi` flips the parity of the channel it multiplies.
"""
from typing import Callable, Optional, Sequence

import torch

from ..o3 import Irreps
from ._irrep_index import channel_of_component
from .activation import Activation
from .extract import Extract

__all__ = ["Gate"]


def _elementwise_irreps(irreps_gated: Irreps, irreps_gates: Irreps) -> Irreps:
    """Irreps of ``gated[u] * gates[u]``, channel by channel, blocked as e3nn's product."""
    blocks1, blocks2 = list(irreps_gated.simplify()), list(irreps_gates.simplify())
    out, i = [], 0
    while i < len(blocks1):  # split the longer block so both start and stop together
        (mul1, ir1), (mul2, ir2) = blocks1[i], blocks2[i]
        if mul1 < mul2:
            blocks2[i:i + 1] = [(mul1, ir2), (mul2 - mul1, ir2)]
        elif mul2 < mul1:
            blocks1[i:i + 1] = [(mul2, ir1), (mul1 - mul2, ir1)]
        out.append((min(mul1, mul2), (ir1.l, ir1.p * ir2.p)))
        i += 1
    return Irreps(out)


class Gate(torch.nn.Module):
    r"""Gate activation (e3nn's ``nn.Gate``; same layouts and numbers).

    Parameters
    ----------
    irreps_scalars : Irreps or str
        Scalars (``0e``/``0o``) passed through ``act_scalars``.
    act_scalars : list of callable or None
        One function per block of ``irreps_scalars`` (normalised to unit second
        moment, :class:`~equinet.nn.Normalize2Mom`).
    irreps_gates : Irreps or str
        Gate scalars, as many channels as ``irreps_gated``.
    act_gates : list of callable or None
        One function per block of ``irreps_gates``.
    irreps_gated : Irreps or str
        The irreps multiplied by the gates, channel :math:`j` by gate :math:`j`.

    Attributes
    ----------
    irreps_in : Irreps
        The input layout: ``irreps_scalars + irreps_gates + irreps_gated`` sorted
        by irrep (stably) and simplified, as in e3nn. Scalars, gates and gated
        channels of the same irrep therefore lie next to each other in this
        order, e.g. ``Gate("8x0e", ., "4x0e", ., "4x1o")`` reads ``12x0e+4x1o``
        with the 8 scalars first.
    irreps_out : Irreps
        The activated scalars followed by the gated channels (with their new
        parities), blocked as e3nn.

    Examples
    --------
    >>> g = Gate("16x0o", [torch.tanh], "32x0o", [torch.tanh], "16x1e + 16x1o")
    >>> g.irreps_in, g.irreps_out
    (48x0o+16x1o+16x1e, 16x0o+16x1o+16x1e)
    >>> g(torch.randn(5, g.irreps_in.dim)).shape
    torch.Size([5, 112])
    """

    def __init__(self, irreps_scalars, act_scalars: Sequence[Optional[Callable]], irreps_gates,
                 act_gates: Sequence[Optional[Callable]], irreps_gated) -> None:
        super().__init__()
        irreps_scalars, irreps_gates = Irreps(irreps_scalars), Irreps(irreps_gates)
        irreps_gated = Irreps(irreps_gated)
        if len(irreps_gates) > 0 and irreps_gates.lmax > 0:
            raise ValueError(f"gates must be scalars (0e or 0o), got irreps_gates = {irreps_gates}")
        if len(irreps_scalars) > 0 and irreps_scalars.lmax > 0:
            raise ValueError(f"scalars must be 0e or 0o, got irreps_scalars = {irreps_scalars}")
        if irreps_gates.num_irreps != irreps_gated.num_irreps:
            raise ValueError(f"there are {irreps_gated.num_irreps} gated channels in "
                             f"irreps_gated = {irreps_gated} but {irreps_gates.num_irreps} gate "
                             f"scalars in irreps_gates = {irreps_gates}: give one gate per channel")

        parts = [irreps_scalars.simplify(), irreps_gates.simplify(), irreps_gated.simplify()]
        self.irreps_scalars, self.irreps_gates, self.irreps_gated = parts
        concatenated = parts[0] + parts[1] + parts[2]
        sorted_irreps, position, _ = concatenated.sort()
        instructions, start = [], 0
        for part in parts:
            instructions.append(tuple(position[i] for i in range(start, start + len(part))))
            start += len(part)
        self.split = Extract(sorted_irreps, parts, instructions)
        self.irreps_in = sorted_irreps.simplify()

        self.act_scalars = Activation(irreps_scalars, act_scalars)
        self.act_gates = Activation(irreps_gates, act_gates)
        gated_out = _elementwise_irreps(irreps_gated, self.act_gates.irreps_out)
        self.irreps_out = self.act_scalars.irreps_out + gated_out
        # gate channel u multiplies every component of gated channel u
        self.register_buffer("_gate_index", channel_of_component(self.irreps_gated),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[..., irreps_in.dim]`` to ``[..., irreps_out.dim]``."""
        scalars, gates, gated = self.split(x)
        scalars = self.act_scalars(scalars)
        if gates.shape[-1] == 0:
            return scalars
        gates = self.act_gates(gates)
        gated = gated * gates.index_select(-1, self._gate_index)
        if scalars.shape[-1] == 0:
            return gated
        return torch.cat([scalars, gated], dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.irreps_in} -> {self.irreps_out})"
