r"""Equivariant graph attention in the style of the SE(3)-Transformer.

For an edge :math:`j \to i` with harmonics :math:`Y_{ij} = Y(\hat r_{ij})`
and radial embedding :math:`B_{ij}`:

.. math::

    q_i &= \mathrm{Linear}_q(x_i), \qquad
    k_{ij} = \mathrm{Linear}_k\big(x_j \otimes_\text{uvu}^{R_k(B_{ij})} Y_{ij}\big) \\
    s^h_{ij} &= \frac{1}{\sqrt{d_h}} \sum_{c \in h} q_{i,c} \cdot k_{ij,c}, \qquad
    \alpha^h_{ij} = \frac{w_{ij} \exp s^h_{ij}}{\sum_{j'} w_{ij'} \exp s^h_{ij'}} \\
    v_{ij,u} &= \big(x_j \otimes_\text{uvu}^{R_v(B_{ij})} Y_{ij}\big)_u, \qquad
    y_i = \mathrm{Linear}_v\Big(\sum_{j \to i} \alpha^{h(u)}_{ij}\, v_{ij,u}\Big)

Queries and keys have the same irreps, so the dot products :math:`s^h` over
the :math:`d_h` components of head :math:`h` are invariant (even scalars);
the attention weights are therefore invariant and :math:`y_i` is
equivariant. :math:`w_{ij}` is a smooth cutoff (1 at short range, 0 at the
cutoff), so neighbours enter and leave the softmax continuously; the softmax
is the stable :func:`~equinet.nn.scatter_softmax`. The channels of each
block of queries and keys, and the channels :math:`u` of the values (those
of ``irreps_in``: the product is channel-wise), are split into ``num_heads``
contiguous groups, one per head; the output projection
:math:`\mathrm{Linear}_v` mixes the heads, as in a transformer.

The value product is linear in its weights, so :math:`\alpha` is folded into
them and the weighted sum over edges runs as one
:class:`~equinet.tp.TensorProductConv` (no per-edge values are stored).
"""
import math
from typing import Callable, Optional, Sequence

import torch

from ..o3 import Irreps
from ..tp import Linear, TensorProduct, TensorProductConv
from ..tp.conv import check_index_range
from ._edge_inputs import (check_graph_inputs, edge_harmonics, edge_lengths, edge_radial_embedding,
                           radial_embedding_modules, radial_network)
from ._irrep_index import check_last_dim
from .point_convolution import channelwise_instructions
from .softmax import scatter_softmax

__all__ = ["EquivariantAttention"]


def _check_heads(irreps: Irreps, num_heads: int, name: str) -> None:
    for mul, ir in irreps:
        if mul % num_heads:
            raise ValueError(f"{name} = {irreps}: every multiplicity must be divisible by "
                             f"num_heads = {num_heads} (block {mul}x{ir} is not)")


def _head_of_component(irreps: Irreps, num_heads: int) -> torch.Tensor:
    """Head of every component: channel u of a block of mul goes to head u * H // mul."""
    heads = []
    for mul, ir in irreps:
        for u in range(mul):
            heads += [u * num_heads // mul] * ir.dim
    return torch.tensor(heads, dtype=torch.long)


def _head_of_weight(tp: TensorProduct, num_heads: int) -> torch.Tensor:
    """Head of each weight of a ``uvu`` product: that of its channel u (path_shape (u, v))."""
    heads = []
    for ins in tp.instructions:
        if ins.has_weight:
            mul, rest = ins.path_shape[0], ins.path_shape[1:]
            for u in range(mul):
                heads += [u * num_heads // mul] * math.prod(rest)
    return torch.tensor(heads, dtype=torch.long)


class EquivariantAttention(torch.nn.Module):
    r"""Multi-head equivariant attention over the incoming edges of each node.

    Parameters
    ----------
    irreps_in, irreps_out : Irreps or str
        Node features before and after.
    irreps_sh : Irreps or str
        Edge spherical harmonics.
    num_radial : int
        Size of the radial embedding of each edge.
    irreps_key : Irreps or str, optional
        Irreps of queries and keys (``irreps_in`` by default).
    num_heads : int
        Number of attention heads (divides every multiplicity of
        ``irreps_in`` and ``irreps_key``).
    radial_hidden : sequence of int
        Hidden widths of the radial network (one network gives both the key
        and the value weights).
    radial_act : callable
    cutoff : float, optional
        Needed to compute the radial embedding and the cutoff weights from
        ``edge_vec`` in :meth:`forward`.
    backend : str
        Tensor-product backend.

    Examples
    --------
    >>> att = EquivariantAttention("4x0e + 2x1o", "4x0e + 2x1o", "0e + 1o", num_radial=6,
    ...                            num_heads=2, cutoff=3.0)
    >>> pos = torch.randn(4, 3)
    >>> src, dst = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 0, 3, 2, 2])
    >>> att(torch.randn(4, 10), src, dst, pos[dst] - pos[src]).shape
    torch.Size([4, 10])
    """

    def __init__(self, irreps_in, irreps_out, irreps_sh, num_radial: int, *, irreps_key=None,
                 num_heads: int = 1, radial_hidden: Sequence[int] = (64,),
                 radial_act: Optional[Callable] = torch.nn.functional.silu,
                 cutoff: Optional[float] = None, backend: str = "auto") -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.irreps_sh = Irreps(irreps_sh)
        self.irreps_key = self.irreps_in if irreps_key is None else Irreps(irreps_key)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
        self.num_heads = num_heads
        self._ls = [ir.l for mul, ir in self.irreps_sh for _ in range(mul)]
        _check_heads(self.irreps_key, num_heads, "irreps_key")
        _check_heads(self.irreps_in, num_heads, "irreps_in")
        self.register_buffer("_key_head", _head_of_component(self.irreps_key, num_heads),
                             persistent=False)
        self._scale = 1.0 / math.sqrt(max(self.irreps_key.dim // num_heads, 1))

        self.query = Linear(self.irreps_in, self.irreps_key)
        mid_k, ins_k = channelwise_instructions(self.irreps_in, self.irreps_sh, self.irreps_key)
        mid_v, ins_v = channelwise_instructions(self.irreps_in, self.irreps_sh, self.irreps_out)
        self.tp_key = TensorProduct(self.irreps_in, self.irreps_sh, mid_k, ins_k,
                                    shared_weights=False, internal_weights=False, backend=backend)
        self.tp_value = TensorProductConv(self.irreps_in, self.irreps_sh, mid_v, ins_v,
                                          backend=backend)
        self.register_buffer("_value_head", _head_of_weight(self.tp_value, num_heads),
                             persistent=False)
        self.key = Linear(mid_k.simplify(), self.irreps_key)
        self.value = Linear(mid_v.simplify(), self.irreps_out)
        self._split = (self.tp_key.weight_numel, self.tp_value.weight_numel)
        self.radial = radial_network(num_radial, radial_hidden, sum(self._split), radial_act)
        self.num_radial = num_radial
        self.basis, self.envelope = radial_embedding_modules(cutoff, num_radial)

    def forward(self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                edge_vec: Optional[torch.Tensor] = None, *,
                edge_sh: Optional[torch.Tensor] = None,
                edge_embedding: Optional[torch.Tensor] = None,
                edge_cutoff: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Attend.

        Parameters
        ----------
        x : torch.Tensor
            ``[N, irreps_in.dim]``
        edge_src, edge_dst : torch.Tensor
            int64 ``[E]``, messages flow from ``edge_src`` to ``edge_dst``.
        edge_vec : torch.Tensor, optional
            ``pos[edge_dst] - pos[edge_src]`` ``[E, 3]``: gives whichever of
            the next three inputs is missing.
        edge_sh : torch.Tensor, optional
            ``[E, irreps_sh.dim]``, ``"component"``-normalised harmonics of the directions.
        edge_embedding : torch.Tensor, optional
            ``[E, num_radial]``.
        edge_cutoff : torch.Tensor, optional
            ``[E]`` non-negative weights :math:`w_{ij}`; from ``edge_vec`` (the
            polynomial cutoff) when it and ``cutoff`` are given, else all ones.

        Returns
        -------
        torch.Tensor
            ``[N, irreps_out.dim]``
        """
        check_graph_inputs(x, self.irreps_in, edge_src, edge_dst)
        # the gathers below come before the convolution's own check: the same clear error
        # (PointConvolution's) instead of an IndexError; compile-safe (an in-graph assert)
        for name, index in (("edge_src", edge_src), ("edge_dst", edge_dst)):
            check_index_range(index, x.shape[0], name)
        lengths = None
        if edge_vec is not None:
            if edge_vec.dim() != 2 or edge_vec.shape != (edge_src.shape[0], 3):
                raise ValueError(f"edge_vec must be [E, 3] with E = {edge_src.shape[0]}, got "
                                 f"{tuple(edge_vec.shape)}")
            lengths = edge_lengths(edge_vec)
        if edge_sh is None:
            if edge_vec is None:
                raise ValueError("give edge_vec, or edge_sh and edge_embedding")
            edge_sh = edge_harmonics(self._ls, edge_vec)
        check_last_dim(edge_sh, self.irreps_sh, "edge_sh")
        if edge_embedding is None:
            if lengths is None or self.basis is None:
                raise ValueError("pass edge_embedding, or edge_vec to a module built with cutoff")
            edge_embedding = edge_radial_embedding(lengths, self.basis, self.envelope)
        if edge_cutoff is None and lengths is not None and self.envelope is not None:
            edge_cutoff = self.envelope(lengths)

        num_nodes = x.shape[0]
        weight_key, weight_value = self.radial(edge_embedding).split(self._split, dim=-1)
        key = self.key(self.tp_key(x.index_select(0, edge_src), edge_sh, weight_key))
        query = self.query(x).index_select(0, edge_dst)
        products = query * key
        logits = products.new_zeros(products.shape[0], self.num_heads).index_add(
            1, self._key_head, products) * self._scale
        alpha = scatter_softmax(logits, edge_dst, num_nodes, weight=edge_cutoff)
        # sum_j alpha_ij TP(x_j, Y_ij, w_ij) = sum_j TP(x_j, Y_ij, alpha_ij w_ij)
        weight_value = weight_value * alpha.index_select(1, self._value_head)
        summed = self.tp_value(x, edge_sh, weight_value, edge_src, edge_dst, num_nodes=num_nodes)
        return self.value(summed)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out} | key "
                f"{self.irreps_key} | {self.num_heads} heads)")
