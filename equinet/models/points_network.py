r"""A reference network on point clouds: NequIP-style convolutions with gate nonlinearities.

Given positions :math:`\vec r_i` and integer species :math:`z_i`:

1. the graph joins every pair closer than the cutoff
   (:func:`~equinet.graph.radius_graph`); each edge :math:`j \to i` carries
   :math:`Y(\hat r_{ij})` up to ``lmax`` and a radial embedding (NequIP's
   Bessel basis times its polynomial cutoff, so that everything goes smoothly
   to zero at the cutoff);
2. node features start as a linear embedding of the one-hot species;
3. ``num_layers`` times: :class:`~equinet.nn.PointConvolution` (with the
   one-hot species as node attributes of its self-connection) followed by a
   :class:`~equinet.nn.Gate`; the hidden features hold ``mul`` channels of
   every irrep ``0e, 0o, 1o, 1e, ...`` up to ``lmax`` that the layer can
   reach (only the proper ones :math:`(-1)^l` with ``parity=False``);
4. a last convolution maps to ``irreps_out`` per node, optionally summed or
   averaged per graph.

Everything is a smooth function of the positions, so energies
(``irreps_out="0e"``, ``pool="sum"``) give forces by differentiation, and
force training (a loss on the forces, hence a double backward) works.

Crystals: with ``cell`` (and ``pbc``) the graph joins periodic images, and the
edge vector of an edge with integer shift :math:`\mathbf S` is
:math:`\vec r_\mathrm{dst} - \vec r_\mathrm{src} + \mathbf S A`. Deployed models
(``torch.export``, AOTInductor, MD drivers) take the neighbour list as an input
instead, ``edge_index`` and Cartesian ``edge_shift``, as NequIP's and MACE's
LAMMPS/ASE interfaces do; see ``docs/deploy.rst``.
"""
from typing import Callable, Optional, Sequence

import torch

from ..graph import radius_graph
from ..nn import BesselBasis, Gate, PointConvolution, PolynomialCutoff, safe_sqrt
from ..o3 import Irrep, Irreps, spherical_harmonics
from ..tp import Linear
from ..tp.conv import check_index_range

__all__ = ["PointsNetwork"]

_POOLS = (None, "sum", "mean")


def _reachable(irreps_in: Irreps, irreps_sh: Irreps) -> set:
    return {ir for _, ir1 in irreps_in for _, ir2 in irreps_sh for ir in ir1 * ir2}


def _gate_for(irreps_hidden: Irreps, reachable: set, act_even: Callable, act_odd: Callable,
              gate_even: Callable, gate_odd: Callable) -> Gate:
    """The gate over the channels of ``irreps_hidden`` a convolution can produce."""
    scalars = Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l == 0 and ir in reachable])
    gated = Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l > 0 and ir in reachable])
    gate_ir = Irrep("0e") if Irrep("0e") in reachable else Irrep("0o")
    gates = Irreps([(gated.num_irreps, gate_ir)]) if gated.num_irreps else Irreps("")
    return Gate(scalars, [act_even if ir.p == 1 else act_odd for _, ir in scalars],
                gates, [gate_even if gate_ir.p == 1 else gate_odd for _ in gates], gated)


class PointsNetwork(torch.nn.Module):
    r"""Equivariant network on point clouds with species (module docstring for the architecture).

    Parameters
    ----------
    irreps_out : Irreps or str
        What each node (or graph, with ``pool``) outputs, e.g. ``"0e"`` for an
        energy or ``"0o + 6x0e"`` for chiral classification.
    num_species : int
        Species are integers in ``[0, num_species)``.
    lmax : int
        Largest degree of the edge harmonics and of the hidden features.
    cutoff : float
        Radius of the graph (same unit as the positions).
    num_layers : int
        Gated convolutions before the output convolution.
    mul : int
        Channels per hidden irrep.
    num_radial : int
        Size of the radial Bessel basis.
    radial_hidden : sequence of int
        Hidden widths of the radial networks.
    avg_num_neighbors : float
        Sums over neighbours are divided by its square root.
    pool : {None, "sum", "mean"}
        Return per-node outputs ``[N, dim]`` or per-graph ones ``[B, dim]``.
    parity : bool
        Use both parities of every degree (needed for pseudoscalar outputs
        and anything chiral); ``False`` keeps :math:`(-1)^l` only.
    backend : str
        Tensor-product backend.

    Examples
    --------
    >>> net = PointsNetwork("0e", num_species=2, cutoff=2.0, mul=4, num_layers=1, pool="sum")
    >>> pos = torch.randn(5, 3)
    >>> net(pos, torch.tensor([0, 1, 1, 0, 1])).shape
    torch.Size([1, 1])

    A crystal (periodic along the three lattice vectors, the rows of ``cell``):

    >>> net(pos, torch.tensor([0, 1, 1, 0, 1]), cell=3.0 * torch.eye(3)).shape
    torch.Size([1, 1])
    """

    def __init__(self, irreps_out, num_species: int, lmax: int = 2, cutoff: float = 5.0,
                 num_layers: int = 3, mul: int = 16, num_radial: int = 8,
                 radial_hidden: Sequence[int] = (64, 64), avg_num_neighbors: float = 1.0,
                 pool: Optional[str] = None, parity: bool = True, backend: str = "auto") -> None:
        super().__init__()
        for name, value, low in (("num_species", num_species, 1), ("lmax", lmax, 0),
                                 ("num_layers", num_layers, 0), ("mul", mul, 1),
                                 ("num_radial", num_radial, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
        if not float(cutoff) > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff!r}")
        self.irreps_out = Irreps(irreps_out)
        self.num_species, self.lmax, self.cutoff = num_species, lmax, float(cutoff)
        self.pool = pool
        self.irreps_sh = Irreps.spherical_harmonics(lmax)
        self.irreps_node_attr = Irreps([(num_species, "0e")])
        parities = (1, -1) if parity else (None,)
        self.irreps_hidden = Irreps([(mul, (l, (-1) ** l if p is None else p))
                                     for l in range(lmax + 1) for p in parities])

        self.basis = BesselBasis(self.cutoff, num_radial)
        self.envelope = PolynomialCutoff(self.cutoff)
        self.embedding = Linear(self.irreps_node_attr, Irreps([(mul, "0e")]))
        conv_options = dict(irreps_node_attr=self.irreps_node_attr, radial_hidden=radial_hidden,
                            avg_num_neighbors=avg_num_neighbors, backend=backend)
        silu, tanh = torch.nn.functional.silu, torch.tanh
        irreps = Irreps([(mul, "0e")])
        self.convolutions = torch.nn.ModuleList()
        self.gates = torch.nn.ModuleList()
        for _ in range(num_layers):
            gate = _gate_for(self.irreps_hidden, _reachable(irreps, self.irreps_sh),
                             silu, tanh, torch.sigmoid, tanh)
            self.convolutions.append(PointConvolution(irreps, gate.irreps_in, self.irreps_sh,
                                                      num_radial, **conv_options))
            self.gates.append(gate)
            irreps = gate.irreps_out
        missing = {ir for _, ir in self.irreps_out} - _reachable(irreps, self.irreps_sh)
        if missing:
            raise ValueError(f"irreps_out = {self.irreps_out}: {sorted(missing)} cannot be "
                             f"produced from the hidden irreps {irreps} and harmonics up to "
                             f"lmax = {lmax} (raise lmax, or parity=True for odd scalars)")
        self.output = PointConvolution(irreps, self.irreps_out, self.irreps_sh, num_radial,
                                       **conv_options)

    def _check_inputs(self, pos, species, batch, num_graphs):
        if not isinstance(pos, torch.Tensor) or pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"pos must be a tensor of shape [N, 3], got "
                             f"{tuple(pos.shape) if isinstance(pos, torch.Tensor) else type(pos)}")
        if not pos.is_floating_point():
            raise TypeError(f"pos must be floating point, got {pos.dtype}")
        dtype = self.embedding.weight.dtype
        if pos.dtype != dtype:
            raise TypeError(f"pos is {pos.dtype} but the network is {dtype}; convert one "
                            "(e.g. net.to(pos.dtype))")
        num = pos.shape[0]
        if not isinstance(species, torch.Tensor) or species.shape != (num,) or \
                species.is_floating_point() or species.dtype == torch.bool:
            raise ValueError(f"species must be an integer tensor of shape [{num}] (one per "
                             f"point), got {getattr(species, 'dtype', type(species))} of shape "
                             f"{tuple(getattr(species, 'shape', ()))}")
        if torch.compiler.is_compiling():
            # values are unknown while tracing: a runtime assertion inside the graph
            torch._assert_async(((species >= 0) & (species < self.num_species)).all(),
                                f"species must lie in [0, {self.num_species})")
        elif num and (int(species.min()) < 0 or int(species.max()) >= self.num_species):
            raise ValueError(f"species must lie in [0, {self.num_species}), got values from "
                             f"{int(species.min())} to {int(species.max())}")
        if batch is None:
            if num_graphs is not None and num_graphs != 1:
                raise ValueError(f"num_graphs = {num_graphs} but no batch was given (one graph)")
            # one graph, also when it has no points (a per-graph output of 0, e.g. an energy)
            return species.new_zeros(num, dtype=torch.long), 1
        if not isinstance(batch, torch.Tensor) or batch.shape != (num,) or \
                batch.is_floating_point() or batch.dtype == torch.bool:
            raise ValueError(f"batch must be an integer tensor of shape [{num}], got "
                             f"{getattr(batch, 'dtype', type(batch))} of shape "
                             f"{tuple(getattr(batch, 'shape', ()))}")
        batch = batch.long()
        if torch.compiler.is_compiling():
            torch._assert_async((batch[1:] >= batch[:-1]).all() & (batch >= 0).all(),
                                "batch must be sorted (non-decreasing) and non-negative")
            if num_graphs is None and self.pool is not None:
                raise ValueError("under torch.compile / torch.export pass num_graphs with batch "
                                 "(the number of graphs is a value of batch, unknown while "
                                 "tracing)")
            if num_graphs is not None:
                torch._assert_async((batch < num_graphs).all(), "batch must be < num_graphs")
            return batch, num_graphs
        if num and (bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) < 0):
            raise ValueError("batch must be sorted (non-decreasing) and non-negative: the "
                             "points of each graph must be contiguous")
        found = int(batch[-1]) + 1 if num else 0
        if num_graphs is None:
            return batch, found
        if isinstance(num_graphs, bool) or not isinstance(num_graphs, int) or \
                num_graphs < found:
            raise ValueError(f"num_graphs must be an int >= {found} (batch refers to graph "
                             f"{found - 1}), got {num_graphs!r}")
        return batch, num_graphs

    def _edges(self, pos, batch, cell, pbc, edge_index, edge_shift):
        """``edge_src, edge_dst`` and the Cartesian shifts ``[E, 3]`` (None without a cell)."""
        if edge_index is None:
            if edge_shift is not None:
                raise ValueError("edge_shift was given without edge_index")
            src, dst, shifts = _radius_edges(pos, self.cutoff, batch, cell, pbc)
            if shifts is None:
                return src, dst, None
            # integer shifts times the cell of each edge's graph, differentiable in the cell
            lattice = cell.to(pos.dtype)
            if lattice.dim() == 2:
                return src, dst, shifts @ lattice
            return src, dst, torch.einsum("ei,eij->ej", shifts, lattice[batch[src]])
        if cell is not None or pbc is not None:
            raise ValueError("give either edge_index (and edge_shift, the Cartesian shifts: "
                             "integer shifts @ cell) or cell/pbc (the network then builds the "
                             "neighbour list), not both")
        if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or \
                edge_index.shape[0] != 2 or edge_index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"edge_index must be an integer tensor of shape [2, E] (rows "
                             f"edge_src, edge_dst), got {getattr(edge_index, 'dtype', None)} of "
                             f"shape {tuple(getattr(edge_index, 'shape', ()))}")
        edge_index = edge_index.long()
        check_index_range(edge_index, pos.shape[0], "edge_index")
        if edge_shift is not None and (
                not isinstance(edge_shift, torch.Tensor)
                or edge_shift.shape != (edge_index.shape[1], 3) or edge_shift.dtype != pos.dtype):
            raise ValueError(f"edge_shift must be a {pos.dtype} tensor of shape "
                             f"[{edge_index.shape[1]}, 3] (Cartesian shift of each edge), got "
                             f"{getattr(edge_shift, 'dtype', None)} of shape "
                             f"{tuple(getattr(edge_shift, 'shape', ()))}")
        return edge_index[0], edge_index[1], edge_shift

    def forward(self, pos: torch.Tensor, species: torch.Tensor,
                batch: Optional[torch.Tensor] = None, *, cell: Optional[torch.Tensor] = None,
                pbc=None, edge_index: Optional[torch.Tensor] = None,
                edge_shift: Optional[torch.Tensor] = None,
                num_graphs: Optional[int] = None) -> torch.Tensor:
        r"""Evaluate.

        Parameters
        ----------
        pos : torch.Tensor
            ``[N, 3]`` positions (differentiable: forces are ``-dE/dpos``).
        species : torch.Tensor
            ``[N]`` integers in ``[0, num_species)``.
        batch : torch.Tensor, optional
            ``[N]`` sorted graph index of each point; one graph by default.
        cell : torch.Tensor, optional
            Lattice vectors as rows, ``[3, 3]`` or ``[B, 3, 3]`` (one per graph): the graph
            then joins periodic images (:func:`~equinet.graph.radius_graph`).
        pbc : bool or sequence of 3 bool or torch.Tensor, optional
            Periodicity along each lattice vector (default: all, when ``cell`` is given).
        edge_index : torch.Tensor, optional
            A precomputed neighbour list ``[2, E]`` (rows ``edge_src``, ``edge_dst``), e.g. from
            an MD driver, used instead of the radius graph. It may hold pairs beyond the
            cutoff (a Verlet list with a skin): the smooth cutoff makes them contribute 0.
            Required under ``torch.compile(fullgraph=True)`` and ``torch.export`` (the number
            of edges of a radius graph depends on the values of ``pos``).
        edge_shift : torch.Tensor, optional
            With ``edge_index``: Cartesian shifts ``[E, 3]`` added to the edge vectors,
            :math:`\vec r_\mathrm{dst} - \vec r_\mathrm{src} + \mathrm{shift}`; for periodic
            images, ``integer_shifts @ cell`` (from ASE's ``i, j, S = neighbor_list("ijS",
            atoms, cutoff)``: ``edge_index = [i, j]``, ``edge_shift = S @ cell``). Zero by
            default.
        num_graphs : int, optional
            Number of graphs of ``batch`` (default ``batch[-1] + 1``); needed with ``batch``
            and ``pool`` under ``torch.compile``/``torch.export``.

        Returns
        -------
        torch.Tensor
            ``[N, irreps_out.dim]``, or ``[num_graphs, irreps_out.dim]`` with ``pool``.
        """
        single_graph = batch is None
        batch, num_graphs = self._check_inputs(pos, species, batch, num_graphs)
        edge_src, edge_dst, edge_shift = self._edges(pos, batch, cell, pbc, edge_index,
                                                     edge_shift)
        edge_vec = pos.index_select(0, edge_dst) - pos.index_select(0, edge_src)
        if edge_shift is not None:
            edge_vec = edge_vec + edge_shift
        edge_sh = spherical_harmonics(self.irreps_sh, edge_vec, True, "component")
        lengths = safe_sqrt(edge_vec.pow(2).sum(-1))
        edge_embedding = self.basis(lengths) * self.envelope(lengths).unsqueeze(-1)
        node_attr = torch.nn.functional.one_hot(species.long(), self.num_species).to(pos.dtype)

        x = self.embedding(node_attr)
        edges = dict(edge_sh=edge_sh, edge_embedding=edge_embedding, node_attr=node_attr)
        for conv, gate in zip(self.convolutions, self.gates):
            x = gate(conv(x, edge_src, edge_dst, **edges))
        out = self.output(x, edge_src, edge_dst, **edges)
        if self.pool is None:
            return out
        if single_graph:
            # a plain sum: simpler for compilers than a scatter into one row
            total = out.sum(dim=0, keepdim=True)
            return total / torch.sym_max(out.shape[0], 1) if self.pool == "mean" else total
        # index_add directly: batch is validated above, and scatter_sum's value checks would
        # stop torch.compile
        total = out.new_zeros(num_graphs, out.shape[1]).index_add(0, batch, out)
        if self.pool == "mean":
            count = out.new_zeros(num_graphs).index_add(0, batch, out.new_ones(out.shape[0]))
            total = total / count.clamp(min=1).unsqueeze(-1)
        return total


@torch.compiler.disable
def _radius_edges(pos, cutoff, batch, cell, pbc):
    """The radius graph, run eagerly (its number of edges depends on the values of ``pos``).

    Under ``torch.compile`` without ``fullgraph`` the graph breaks here and the rest of the
    network compiles with a dynamic number of edges.
    """
    if cell is None:
        src, dst = radius_graph(pos, cutoff, batch, pbc=pbc)
        return src, dst, None
    return radius_graph(pos, cutoff, batch, cell=cell, pbc=pbc)
