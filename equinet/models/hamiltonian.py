r"""A Hamiltonian network (PhiSNet / QHNet style): geometry to a symmetric AO matrix.

Given positions :math:`\vec r_i` and integer species :math:`z_i`, each with its shells
of a Gaussian basis (e.g. def2-SVP, :func:`~equinet.models.matrix_head.species_shells`):

1. the graph joins every pair closer than the cutoff
   (:func:`~equinet.graph.radius_graph`, both directions); edge :math:`i \to j` carries
   :math:`Y(\hat r_{ij})` up to ``lmax_sh`` (:math:`\vec r_{ij} = \vec r_j - \vec r_i`)
   and the radial embedding :math:`B(r_{ij})` (Bessel basis times a smooth polynomial
   cutoff);
2. node features start as a linear embedding of the one-hot species and pass
   ``num_layers`` gated :class:`~equinet.nn.PointConvolution` layers; the hidden
   irreps are ``mul`` channels of every irrep the matrix blocks need
   (:func:`~equinet.models.matrix_head.block_irreps`: up to :math:`L = 4` for
   d shells), plus scalars;
3. pair features of each directed edge,

   .. math::

       e_{ij} = R_1(B(r_{ij})) \odot \big(x_i \otimes_{\text{uvw}} x_j\big)
              + \mathrm{Linear}\big(x_j \otimes_{\text{uvu}}^{R_2(B(r_{ij}))} Y(\hat r_{ij})\big),

   a fully connected tensor product of the two atoms' features scaled per channel by a
   radial network :math:`R_1`, plus a directional channel-wise product with
   per-edge weights :math:`R_2` (both radial networks have no biases, so
   :math:`e_{ij}` vanishes smoothly at the cutoff);
4. :class:`~equinet.models.matrix_head.MatrixHead`: the diagonal blocks from the node
   features, the off-diagonal ones from the pair features, symmetric by construction.

Every step is O(3)-equivariant, so the prediction obeys
:math:`H(R\,\vec r) = D(R)\, H(\vec r)\, D(R)^\top` with
``D = BasisLayout(mol).irreps.D_from_matrix(R)`` (tested with inversion).
"""
from typing import Optional, Sequence

import torch

from ..graph import radius_graph
from ..nn import BesselBasis, FullyConnectedNet, PointConvolution, PolynomialCutoff, safe_sqrt
from ..nn.point_convolution import channelwise_instructions
from ..o3 import Irrep, Irreps, spherical_harmonics
from ..tp import FullyConnectedTensorProduct, Linear, TensorProduct
from .matrix_head import MatrixHead, block_irreps
from .points_network import _gate_for, _reachable

__all__ = ["HamiltonianNetwork"]


def _needed(shells) -> tuple:
    node = {ir for s in shells for _, ir in block_irreps(s)}
    edge = {ir for a in shells for b in shells for _, ir in block_irreps(a, b)}
    return node, edge


def _sorted(irs) -> list:
    return sorted(irs, key=lambda ir: (ir.l, ir.p))


class HamiltonianNetwork(torch.nn.Module):
    r"""Positions and species to the symmetric AO matrix (module docstring for the architecture).

    Parameters
    ----------
    shells : sequence of sequence of (int, int)
        The shells ``(l, nctr)`` of each species in AO order, indexed by species, e.g.
        ``species_shells(["O", "H"], "def2-SVP")`` for species 0 = O and 1 = H.
    lmax_sh : int
        Largest degree of the edge harmonics.
    mul : int
        Channels per hidden irrep (node and pair features).
    num_layers : int
        Gated convolutions. With ``lmax_sh = 2`` two layers reach :math:`L = 4`.
    cutoff : float
        Radius of the graph (unit of the positions, e.g. Angstrom); blocks of atoms
        farther apart are zero.
    num_radial : int
        Size of the radial Bessel basis.
    radial_hidden : sequence of int
        Hidden widths of the radial networks.
    avg_num_neighbors : float
        Sums over neighbours are divided by its square root.
    backend : str
        Tensor-product backend of the convolutions.

    Examples
    --------
    >>> net = HamiltonianNetwork([[(0, 2), (1, 1)]], mul=2, cutoff=3.0)  # H atoms, def2-SVP
    >>> h = net(torch.randn(3, 3), torch.tensor([0, 0, 0]))
    >>> h.shape, bool((h == h.T).all())
    (torch.Size([15, 15]), True)
    """

    def __init__(self, shells, lmax_sh: int = 2, mul: int = 8, num_layers: int = 2,
                 cutoff: float = 4.0, num_radial: int = 8, radial_hidden: Sequence[int] = (32,),
                 avg_num_neighbors: float = 2.0, backend: str = "auto") -> None:
        super().__init__()
        for name, value, low in (("lmax_sh", lmax_sh, 0), ("mul", mul, 1),
                                 ("num_layers", num_layers, 0), ("num_radial", num_radial, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not float(cutoff) > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff!r}")
        shells = [tuple(tuple(shell) for shell in s) for s in shells]
        self.num_species, self.cutoff = len(shells), float(cutoff)
        need_node, need_edge = _needed(shells)
        self.irreps_sh = Irreps.spherical_harmonics(lmax_sh)
        self.irreps_node_attr = Irreps([(self.num_species, "0e")])
        self.irreps_hidden = Irreps([(mul, ir) for ir in _sorted(need_node | {Irrep("0e")})])

        self.basis = BesselBasis(self.cutoff, num_radial)
        self.envelope = PolynomialCutoff(self.cutoff)
        self.embedding = Linear(self.irreps_node_attr, Irreps([(mul, "0e")]))
        silu, tanh = torch.nn.functional.silu, torch.tanh
        irreps = Irreps([(mul, "0e")])
        self.convolutions = torch.nn.ModuleList()
        self.gates = torch.nn.ModuleList()
        for _ in range(num_layers):
            gate = _gate_for(self.irreps_hidden, _reachable(irreps, self.irreps_sh),
                             silu, tanh, torch.sigmoid, tanh)
            self.convolutions.append(PointConvolution(
                irreps, gate.irreps_in, self.irreps_sh, num_radial,
                irreps_node_attr=self.irreps_node_attr, radial_hidden=radial_hidden,
                avg_num_neighbors=avg_num_neighbors, backend=backend))
            self.gates.append(gate)
            irreps = gate.irreps_out
        self.irreps_node = irreps
        missing = need_node - {ir for _, ir in irreps}
        if missing:
            raise ValueError(f"the diagonal blocks need {_sorted(missing)}, which "
                             f"{num_layers} layers with harmonics up to lmax_sh = {lmax_sh} "
                             "do not reach: add layers or raise lmax_sh")
        pair = {ir for _, a in irreps for _, b in irreps for ir in a * b}
        reach = pair | _reachable(irreps, self.irreps_sh)
        if need_edge - reach:
            raise ValueError(f"the off-diagonal blocks need {_sorted(need_edge - reach)}, not "
                             "reached: add layers or raise lmax_sh")
        self.irreps_edge = Irreps([(mul, ir) for ir in _sorted(need_edge)])
        self.pair_product = FullyConnectedTensorProduct(
            irreps, irreps, Irreps([(mul, ir) for ir in _sorted(need_edge & pair)]))
        self.pair_radial = FullyConnectedNet(
            [num_radial, *radial_hidden, self.pair_product.irreps_out.num_irreps], silu)
        self.pair_linear = Linear(self.pair_product.irreps_out, self.irreps_edge)
        irreps_mid, instructions = channelwise_instructions(irreps, self.irreps_sh,
                                                            self.irreps_edge)
        self.direction_product = TensorProduct(irreps, self.irreps_sh, irreps_mid, instructions,
                                               shared_weights=False, internal_weights=False)
        self.direction_radial = FullyConnectedNet(
            [num_radial, *radial_hidden, self.direction_product.weight_numel], silu)
        self.direction_linear = Linear(irreps_mid.simplify(), self.irreps_edge)
        channel = [k for k, (m, ir) in enumerate(
            (m, ir) for m, ir in self.pair_product.irreps_out for _ in range(m))
            for _ in range(ir.dim)]
        self.register_buffer("_channel", torch.tensor(channel, dtype=torch.long),
                             persistent=False)
        self.head = MatrixHead(irreps, self.irreps_edge, shells)

    def forward(self, pos: torch.Tensor, species: torch.Tensor,
                batch: Optional[torch.Tensor] = None, *,
                edge_index: Optional[torch.Tensor] = None, layouts=None):
        r"""Predict the matrix of each molecule.

        Parameters
        ----------
        pos : torch.Tensor
            ``[N, 3]`` positions.
        species : torch.Tensor
            ``[N]`` integers in ``[0, len(shells))``.
        batch : torch.Tensor, optional
            ``[N]`` sorted molecule index of each atom; one molecule by default.
        edge_index : torch.Tensor, optional
            ``[2, E]`` neighbour list (both directions, no self loops) instead of the
            radius graph; pairs beyond the cutoff contribute zero.
        layouts : BasisLayout or list of BasisLayout, optional
            Return PySCF's AO order (see :meth:`MatrixHead.forward`).

        Returns
        -------
        torch.Tensor or list of torch.Tensor
            ``[nao, nao]`` in equinet's order (or PySCF's with ``layouts``), a list with
            ``batch``.
        """
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"pos must be [N, 3], got {tuple(pos.shape)}")
        species = species.long()
        if species.shape != pos.shape[:1] or (species.numel() and (
                int(species.min()) < 0 or int(species.max()) >= self.num_species)):
            raise ValueError(f"species must be [N] integers in [0, {self.num_species})")
        if edge_index is None:
            src, dst = radius_graph(pos, self.cutoff, batch)
        else:
            src, dst = edge_index[0].long(), edge_index[1].long()
        vec = pos.index_select(0, dst) - pos.index_select(0, src)
        sh = spherical_harmonics(self.irreps_sh, vec, True, "component")
        length = safe_sqrt(vec.pow(2).sum(-1))
        embedding = self.basis(length) * self.envelope(length).unsqueeze(-1)
        node_attr = torch.nn.functional.one_hot(species, self.num_species).to(pos.dtype)

        x = self.embedding(node_attr)
        for conv, gate in zip(self.convolutions, self.gates):
            x = gate(conv(x, src, dst, edge_sh=sh, edge_embedding=embedding,
                          node_attr=node_attr))
        x_i, x_j = x.index_select(0, src), x.index_select(0, dst)
        pair = self.pair_product(x_i, x_j) * self.pair_radial(embedding)[:, self._channel]
        direction = self.direction_product(x_j, sh, self.direction_radial(embedding))
        edge = self.pair_linear(pair) + self.direction_linear(direction)
        return self.head(x, edge, species, torch.stack([src, dst]), batch, layouts=layouts)
