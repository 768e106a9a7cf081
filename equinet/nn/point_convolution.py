r"""NequIP-style interaction block: a point convolution over the edges of a graph.

For node features :math:`x_i`, edges :math:`j \to i` with vectors
:math:`\vec r_{ij} = \vec r_i - \vec r_j` (``pos[dst] - pos[src]``), their
spherical harmonics :math:`Y(\hat r_{ij})` and radial embeddings
:math:`B(r_{ij})` (a radial basis times a smooth cutoff),

.. math::

    h_j &= \mathrm{Linear}_1(x_j) \\
    m_i &= \frac{1}{\sqrt{\bar n}} \sum_{j \to i}
           h_j \otimes_{\text{uvu}}^{\,R(B(r_{ij}))} Y(\hat r_{ij}) \\
    y_i &= \mathrm{Linear}_2(m_i) + \mathrm{SC}(x_i, a_i)

where :math:`\otimes_\text{uvu}^{W}` is the channel-wise tensor product with
per-edge weights :math:`W` (one per path and channel) produced by the radial
network :math:`R` (:class:`~equinet.nn.FullyConnectedNet`), :math:`\bar n` is
the average number of neighbours (a constant, so that sums of many messages
stay of order one), and the self-connection :math:`\mathrm{SC}` is a
:class:`~equinet.tp.FullyConnectedTensorProduct` with node attributes
:math:`a_i` (e.g. one-hot species) or a :class:`~equinet.tp.Linear`.
Gather, product and scatter run as one :class:`~equinet.tp.TensorProductConv`.
"""
import math
from typing import Callable, Optional, Sequence

import torch

from ..o3 import Irreps
from ..tp import FullyConnectedTensorProduct, Linear, TensorProductConv
# check_edges and edge_radial_embedding stay importable from here, where they were first defined
from ._edge_inputs import (check_edges, check_graph_inputs, edge_harmonics, edge_lengths,
                           edge_radial_embedding, radial_embedding_modules, radial_network)
from ._irrep_index import check_last_dim

__all__ = ["PointConvolution", "channelwise_instructions", "edge_radial_embedding",
           "check_edges"]


def channelwise_instructions(irreps_in, irreps_sh, irreps_out):
    """Irreps and ``"uvu"`` instructions of the paths ``in x sh`` that land in ``irreps_out``.

    The output blocks are generated in (input block, sh block, irrep) order and
    then sorted by irrep (stably), as NequIP does.

    >>> channelwise_instructions("4x0e + 4x1o", "0e + 1o", "0e + 1o")[0]
    4x0e+4x0e+4x1o+4x1o
    """
    irreps_in, irreps_sh, irreps_out = Irreps(irreps_in), Irreps(irreps_sh), Irreps(irreps_out)
    wanted = {ir for _, ir in irreps_out}
    blocks, instructions = [], []
    for i1, (mul, ir1) in enumerate(irreps_in):
        for i2, (_, ir2) in enumerate(irreps_sh):
            for ir in ir1 * ir2:
                if ir in wanted:
                    instructions.append((i1, i2, len(blocks), "uvu", True))
                    blocks.append((mul, ir))
    irreps_mid, position, _ = Irreps(blocks).sort()
    instructions = [(i1, i2, position[k], mode, w) for i1, i2, k, mode, w in instructions]
    return irreps_mid, instructions


class PointConvolution(torch.nn.Module):
    r"""Interaction block of NequIP (formula in the module docstring).

    Parameters
    ----------
    irreps_in, irreps_out : Irreps or str
        Node features before and after.
    irreps_sh : Irreps or str
        Edge spherical harmonics, e.g. ``"0e + 1o + 2e"``.
    num_radial : int
        Size of the radial embedding of each edge.
    irreps_node_attr : Irreps or str, optional
        Node attributes for the self-connection tensor product (e.g.
        ``"4x0e"`` for one-hot species); without them the self-connection is
        a Linear.
    radial_hidden : sequence of int
        Hidden widths of the radial network.
    radial_act : callable
        Its activation.
    avg_num_neighbors : float
        :math:`\bar n`.
    cutoff : float, optional
        Needed only to compute the radial embedding from ``edge_vec`` inside
        :meth:`forward` (NequIP's Bessel basis times its polynomial cutoff).
    self_connection : bool
        Add :math:`\mathrm{SC}`.
    backend : str
        Tensor-product backend of the convolution.

    Examples
    --------
    >>> conv = PointConvolution("4x0e", "4x0e + 4x1o", "0e + 1o", num_radial=8, cutoff=2.0)
    >>> pos = torch.randn(5, 3)
    >>> src, dst = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 4])
    >>> conv(torch.randn(5, 4), src, dst, pos[dst] - pos[src]).shape
    torch.Size([5, 16])
    """

    def __init__(self, irreps_in, irreps_out, irreps_sh, num_radial: int, *,
                 irreps_node_attr=None, radial_hidden: Sequence[int] = (64, 64),
                 radial_act: Optional[Callable] = torch.nn.functional.silu,
                 avg_num_neighbors: float = 1.0, cutoff: Optional[float] = None,
                 self_connection: bool = True, backend: str = "auto") -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.irreps_sh = Irreps(irreps_sh)
        self.irreps_node_attr = None if irreps_node_attr is None else Irreps(irreps_node_attr)
        if not float(avg_num_neighbors) > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors!r}")
        self.avg_num_neighbors = float(avg_num_neighbors)
        self._ls = [ir.l for mul, ir in self.irreps_sh for _ in range(mul)]
        if any(ir.p != (-1) ** ir.l for _, ir in self.irreps_sh):
            raise ValueError(f"irreps_sh = {self.irreps_sh} must have parities (-1)^l "
                             "(harmonics of edge vectors)")

        self.linear_in = Linear(self.irreps_in, self.irreps_in)
        irreps_mid, instructions = channelwise_instructions(self.irreps_in, self.irreps_sh,
                                                            self.irreps_out)
        self.conv = TensorProductConv(self.irreps_in, self.irreps_sh, irreps_mid, instructions,
                                      backend=backend)
        self.irreps_mid = irreps_mid
        self.radial = radial_network(num_radial, radial_hidden, self.conv.weight_numel, radial_act)
        self.linear_out = Linear(irreps_mid.simplify(), self.irreps_out)
        if not self_connection:
            self.self_connection = None
        elif self.irreps_node_attr is not None:
            self.self_connection = FullyConnectedTensorProduct(
                self.irreps_in, self.irreps_node_attr, self.irreps_out)
        else:
            self.self_connection = Linear(self.irreps_in, self.irreps_out)

        self.num_radial = num_radial
        self.basis, self.envelope = radial_embedding_modules(cutoff, num_radial)

    def forward(self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                edge_vec: Optional[torch.Tensor] = None, *,
                edge_sh: Optional[torch.Tensor] = None,
                edge_embedding: Optional[torch.Tensor] = None,
                node_attr: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Convolve.

        Parameters
        ----------
        x : torch.Tensor
            Node features ``[N, irreps_in.dim]``.
        edge_src, edge_dst : torch.Tensor
            int64 ``[E]``: messages flow from ``edge_src`` to ``edge_dst``.
        edge_vec : torch.Tensor, optional
            ``pos[edge_dst] - pos[edge_src]`` ``[E, 3]``; needed for whichever
            of ``edge_sh`` / ``edge_embedding`` is not given.
        edge_sh : torch.Tensor, optional
            ``[E, irreps_sh.dim]``, the (``"component"``-normalised, by default)
            harmonics of the edge directions.
        edge_embedding : torch.Tensor, optional
            ``[E, num_radial]`` radial embedding.
        node_attr : torch.Tensor, optional
            ``[N, irreps_node_attr.dim]``, required when the module has node attributes.

        Returns
        -------
        torch.Tensor
            ``[N, irreps_out.dim]``
        """
        check_graph_inputs(x, self.irreps_in, edge_src, edge_dst)
        edge_sh, edge_embedding = self._edge_inputs(edge_vec, edge_sh, edge_embedding, x)
        weight = self.radial(edge_embedding)
        h = self.linear_in(x)
        m = self.conv(h, edge_sh, weight, edge_src, edge_dst, num_nodes=x.shape[0])
        out = self.linear_out(m * (1.0 / math.sqrt(self.avg_num_neighbors)))
        if self.self_connection is not None:
            if self.irreps_node_attr is not None:
                if node_attr is None:
                    raise ValueError(f"node_attr [N, {self.irreps_node_attr.dim}] is required: "
                                     f"irreps_node_attr = {self.irreps_node_attr}")
                check_last_dim(node_attr, self.irreps_node_attr, "node_attr")
                out = out + self.self_connection(x, node_attr)
            else:
                out = out + self.self_connection(x)
        return out

    def _edge_inputs(self, edge_vec, edge_sh, edge_embedding, x):
        num_edges = None
        if edge_vec is not None:
            if edge_vec.dim() != 2 or edge_vec.shape[1] != 3:
                raise ValueError(f"edge_vec must be [E, 3], got {tuple(edge_vec.shape)}")
            num_edges = edge_vec.shape[0]
        if edge_sh is None:
            if edge_vec is None:
                raise ValueError("give edge_vec, or both edge_sh and edge_embedding")
            edge_sh = edge_harmonics(self._ls, edge_vec)
        else:
            check_last_dim(edge_sh, self.irreps_sh, "edge_sh")
        if edge_embedding is None:
            if edge_vec is None:
                raise ValueError("give edge_vec, or both edge_sh and edge_embedding")
            if self.basis is None:
                raise ValueError("this PointConvolution was built without a cutoff: pass "
                                 "edge_embedding, or build it with cutoff=...")
            edge_embedding = edge_radial_embedding(edge_lengths(edge_vec), self.basis,
                                                   self.envelope)
        elif edge_embedding.dim() != 2 or edge_embedding.shape[1] != self.num_radial:
            raise ValueError(f"edge_embedding must be [E, {self.num_radial}], got "
                             f"{tuple(edge_embedding.shape)}")
        if edge_sh.shape[0] != edge_embedding.shape[0] or (
                num_edges is not None and edge_sh.shape[0] != num_edges):
            raise ValueError("edge_vec, edge_sh and edge_embedding must have one row per edge")
        return edge_sh, edge_embedding

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out} | sh "
                f"{self.irreps_sh} | {self.conv.weight_numel} weights per edge)")
