r"""Equivariant AO-matrix head: node and edge irreps to a symmetric matrix (PhiSNet, QHNet).

An AO matrix :math:`H` (Fock, Kohn-Sham, overlap, density matrix) in a spherical
Gaussian basis splits into blocks :math:`H_{ij}` between the functions of atoms
:math:`i` and :math:`j`, and each block into sub-blocks between two shells
:math:`s_1` (degree :math:`l_1`) and :math:`s_2` (degree :math:`l_2`). Under a rotation
(with or without inversion) a sub-block transforms as
:math:`D^{l_1}(R)\, B\, D^{l_2}(R)^\top`, i.e. as :math:`l_1 \otimes l_2`, which decomposes
into degrees :math:`L = |l_1 - l_2|, \dots, l_1 + l_2`, all of parity
:math:`(-1)^{l_1 + l_2}`. With the Wigner 3j symbols :math:`C^{l_1 l_2 L}`
(:func:`equinet.o3.wigner_3j`, Frobenius norm 1)

.. math::

    B_{m_1 m_2} = \sum_{L} \sqrt{2L+1} \sum_{M} C^{l_1 l_2 L}_{m_1 m_2 M}\, f^{(L)}_M,
    \qquad
    f^{(L)}_M = \sqrt{2L+1} \sum_{m_1 m_2} C^{l_1 l_2 L}_{m_1 m_2 M}\, B_{m_1 m_2},

an orthogonal change of basis (so :meth:`MatrixHead.decompose` is the exact inverse of
the assembly). The features :math:`f` of one atom (a diagonal block) or one atom pair
(an off-diagonal block) are therefore irreps, :func:`block_irreps`:

* diagonal block of atom :math:`i`: shell pairs :math:`s_1 \le s_2` only (the lower
  triangle is the mirror image, :math:`H_{ii}[s_2, s_1] = H_{ii}[s_1, s_2]^\top`); for
  :math:`s_1 = s_2` only even :math:`L` (the real 3j symbols obey
  :math:`C^{llL}_{m_1 m_2 M} = (-1)^L C^{llL}_{m_2 m_1 M}`, so odd :math:`L` would give
  antisymmetric parts);
* off-diagonal block :math:`(i, j)`: all shell pairs and all :math:`L`; the head
  predicts :math:`B_{ij}` for each directed edge and returns
  :math:`H_{ij} = (B_{ij} + B_{ji}^\top)/2`, so edges must come in both directions
  (as from :func:`~equinet.graph.radius_graph`; checked); pairs without an edge are zero.

The output is made exactly symmetric, :math:`(H + H^\top)/2`, which changes nothing
in exact arithmetic. Atoms of one species share the shells (given per species, e.g.
from :func:`species_shells` or :attr:`equinet.chem.BasisLayout.atom_shells`), so each
species has one :class:`~equinet.tp.Linear` from the node irreps to its block irreps,
and each ordered species pair one from the edge irreps; atoms and edges are grouped by
species for batched products.
"""
import functools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..o3 import Irrep, Irreps, wigner_3j
from ..tp import Linear

__all__ = ["MatrixHead", "block_irreps", "species_shells"]

Shells = Tuple[Tuple[int, int], ...]


def _as_shells(shells) -> Shells:
    out = tuple((int(l), int(n)) for l, n in shells)
    if not out or any(l < 0 or n < 1 for l, n in out):
        raise ValueError(f"shells must be a non-empty sequence of (l >= 0, nctr >= 1), "
                         f"got {shells!r}")
    return out


def _degrees(shells: Shells) -> List[int]:
    """One degree per contracted function, in AO order (``(l, nctr)`` -> ``nctr`` times ``l``)."""
    return [l for l, n in shells for _ in range(n)]


@functools.lru_cache(maxsize=None)
def _block_basis(shells_i: Shells, shells_j: Optional[Shells]):
    """Assembly ``A [di*dj, F]`` and projection ``P [F, di*dj]`` (float64), and the irreps.

    Features are sorted by irrep (stably), so that the irreps simplify.
    """
    diagonal = shells_j is None
    ls_i = _degrees(shells_i)
    ls_j = ls_i if diagonal else _degrees(shells_j)
    off_i = np.cumsum([0] + [2 * l + 1 for l in ls_i])
    off_j = np.cumsum([0] + [2 * l + 1 for l in ls_j])
    di, dj = int(off_i[-1]), int(off_j[-1])
    columns, rows, irreps = [], [], []
    for s1, l1 in enumerate(ls_i):
        for s2, l2 in enumerate(ls_j):
            if diagonal and s2 < s1:
                continue
            for L in range(abs(l1 - l2), l1 + l2 + 1):
                if diagonal and s1 == s2 and L % 2:
                    continue
                q = np.sqrt(2 * L + 1) * wigner_3j(l1, l2, L, dtype=torch.float64).numpy()
                for M in range(2 * L + 1):
                    a = np.zeros((di, dj))
                    p = np.zeros((di, dj))
                    a[off_i[s1]:off_i[s1 + 1], off_j[s2]:off_j[s2 + 1]] = q[:, :, M]
                    p[off_i[s1]:off_i[s1 + 1], off_j[s2]:off_j[s2 + 1]] = q[:, :, M]
                    if diagonal and s1 != s2:
                        a[off_i[s2]:off_i[s2 + 1], off_j[s1]:off_j[s1 + 1]] = q[:, :, M].T
                    columns.append(a.reshape(-1))
                    rows.append(p.reshape(-1))
                irreps.append((1, Irrep(L, (-1) ** (l1 + l2))))
    irreps = Irreps(irreps)
    _, _, inv = irreps.sort()
    starts = np.cumsum([0] + [ir.dim for _, ir in irreps])
    order = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in inv])
    assemble = np.stack(columns, axis=1)[:, order]
    project = np.stack(rows, axis=0)[order]
    for m in (assemble, project):
        m.setflags(write=False)
    return assemble, project, irreps.regroup(), (di, dj)


def block_irreps(shells_i, shells_j=None, j: Optional[int] = None) -> Irreps:
    r"""The irreps of the features of one AO-matrix block (module docstring for the math).

    Parameters
    ----------
    shells_i : sequence of (int, int), or BasisLayout
        The shells ``(l, number of contractions)`` of atom :math:`i`, in AO order, e.g.
        ``BasisLayout(mol).atom_shells[i]``; or a layout, then called as
        ``block_irreps(layout, i)`` or ``block_irreps(layout, i, j)``.
    shells_j : sequence of (int, int), optional
        Those of atom :math:`j` for an off-diagonal block :math:`H_{ij}`; ``None`` for the
        (symmetric) diagonal block :math:`H_{ii}`.
    j : int, optional
        With a layout: the column atom of an off-diagonal block.

    Returns
    -------
    Irreps
        Sorted and simplified; ``dim`` equals the number of independent entries of the
        block (:math:`d(d+1)/2` for a diagonal block of :math:`d` functions).

    Examples
    --------
    >>> h = [(0, 2), (1, 1)]  # hydrogen in def2-SVP: 2s 1p
    >>> block_irreps(h), block_irreps(h).dim  # 5 functions: 15 independent entries
    (4x0e+2x1o+1x2e, 15)
    >>> block_irreps([(1, 1)], [(2, 1)])  # p x d = 1 + 2 + 3, parity odd
    1x1o+1x2o+1x3o
    """
    if hasattr(shells_i, "atom_shells"):
        layout, i = shells_i, shells_j
        shells_i, shells_j = layout.atom_shells[i], None if j is None else layout.atom_shells[j]
    return _block_basis(_as_shells(shells_i), None if shells_j is None
                        else _as_shells(shells_j))[2]


def species_shells(elements: Sequence[str], basis: str = "def2-SVP") -> List[Shells]:
    """The shells ``(l, nctr)`` of each element in a PySCF basis (one isolated atom each).

    >>> species_shells(["O", "H"], "def2-SVP")
    [((0, 1), (0, 1), (0, 1), (1, 1), (1, 1), (2, 1)), ((0, 1), (0, 1), (1, 1))]
    """
    from ..chem import BasisLayout, build_mole
    from pyscf.data.elements import charge

    out = []
    for element in elements:
        z = charge(element)
        mol = build_mole([z], [[0.0, 0.0, 0.0]], basis, spin=z % 2)
        out.append(BasisLayout(mol).atom_shells[0])
    return out


class MatrixHead(torch.nn.Module):
    r"""Node and edge features to a symmetric AO matrix (module docstring for the math).

    Parameters
    ----------
    irreps_node, irreps_edge : Irreps or str
        Features of each atom and of each directed edge. They must hold every irrep of
        the blocks (:func:`block_irreps`), checked here.
    shells : sequence of sequence of (int, int)
        The shells of each species, indexed by the integer species of the atoms.
    node_bias : bool
        Biases on the ``0e`` outputs of the diagonal blocks (edge blocks have none, so
        they vanish with the edge features, e.g. smoothly at a cutoff).

    Examples
    --------
    >>> head = MatrixHead("8x0e + 8x1o + 8x2e", "8x0e + 8x1o + 8x1e + 8x2e",
    ...                   [[(0, 2), (1, 1)]])  # one species: hydrogen, def2-SVP
    >>> species, edges = torch.tensor([0, 0]), torch.tensor([[0, 1], [1, 0]])
    >>> h = head(torch.randn(2, 72), torch.randn(2, 96), species, edges)
    >>> h.shape, bool((h == h.T).all())
    (torch.Size([10, 10]), True)
    >>> node, edge = head.decompose(h, species, edges)  # the exact inverse
    >>> bool(torch.allclose(head.assemble(node, edge, species, edges), h, atol=1e-5))
    True
    """

    def __init__(self, irreps_node, irreps_edge, shells, node_bias: bool = True) -> None:
        super().__init__()
        self.irreps_node, self.irreps_edge = Irreps(irreps_node), Irreps(irreps_edge)
        self.shells = tuple(_as_shells(s) for s in shells)
        if not self.shells:
            raise ValueError("give the shells of at least one species")
        num = len(self.shells)
        self.pairs = [(a, b) for a in range(num) for b in range(num)]
        self.node_irreps = [block_irreps(s) for s in self.shells]
        self.edge_irreps = [block_irreps(self.shells[a], self.shells[b]) for a, b in self.pairs]
        for name, have, needs in (("irreps_node", self.irreps_node, self.node_irreps),
                                  ("irreps_edge", self.irreps_edge, self.edge_irreps)):
            missing = sorted({ir for irreps in needs for _, ir in irreps}
                             - {ir for _, ir in have}, key=lambda ir: (ir.l, ir.p))
            if missing:
                raise ValueError(f"{name} = {have} lacks {missing}, needed by the blocks")
        self.node_linears = torch.nn.ModuleList(
            Linear(self.irreps_node, irreps, biases=node_bias) for irreps in self.node_irreps)
        self.edge_linears = torch.nn.ModuleList(
            Linear(self.irreps_edge, irreps) for irreps in self.edge_irreps)
        dims = [_block_basis(s, None)[3][0] for s in self.shells]
        self.register_buffer("dims", torch.tensor(dims, dtype=torch.long), persistent=False)
        for a, s in enumerate(self.shells):
            self.register_buffer(f"_node_a{a}", _tensor(_block_basis(s, None)[0]),
                                 persistent=False)
        for k, (a, b) in enumerate(self.pairs):
            self.register_buffer(f"_edge_a{k}", _tensor(_block_basis(self.shells[a],
                                                                     self.shells[b])[0]),
                                 persistent=False)

    @property
    def num_node_blocks(self) -> int:
        """Width of the padded node block features of :meth:`assemble` (largest species)."""
        return max(irreps.dim for irreps in self.node_irreps)

    @property
    def num_edge_blocks(self) -> int:
        """Width of the padded edge block features of :meth:`assemble`."""
        return max(irreps.dim for irreps in self.edge_irreps)

    def forward(self, node_features: torch.Tensor, edge_features: torch.Tensor,
                species: torch.Tensor, edge_index: torch.Tensor,
                batch: Optional[torch.Tensor] = None, *, layouts=None):
        r"""Assemble the matrices.

        Parameters
        ----------
        node_features : torch.Tensor
            ``[N, irreps_node.dim]``.
        edge_features : torch.Tensor
            ``[E, irreps_edge.dim]``; edge ``e`` gives the block with rows of atom
            ``edge_index[0, e]`` and columns of atom ``edge_index[1, e]``.
        species : torch.Tensor
            ``[N]`` integers indexing ``shells``.
        edge_index : torch.Tensor
            ``[2, E]``, both directions of every pair, no self loops, within one molecule.
        batch : torch.Tensor, optional
            ``[N]`` sorted molecule index of each atom; one molecule by default.
        layouts : BasisLayout or list of BasisLayout, optional
            Return the matrices in PySCF's AO order (one layout per molecule); their
            shells must match the species'.

        Returns
        -------
        torch.Tensor or list of torch.Tensor
            ``[nao, nao]`` in equinet's AO order (atoms in order, each atom's shells in
            order, components :math:`m = -l..l` in e3nn's basis), or a list of them, one
            per molecule, when ``batch`` is given.
        """
        node = [(idx, lin(node_features.index_select(0, idx)))
                for idx, lin in zip(self._groups(species), self.node_linears)]
        edge = [(idx, lin(edge_features.index_select(0, idx)))
                for idx, lin in zip(self._edge_groups(species, edge_index), self.edge_linears)]
        out = self._assemble(node, edge, species, edge_index, batch)
        if layouts is None:
            return out
        one = isinstance(out, torch.Tensor)
        mats, layouts = ([out], [layouts]) if one else (out, list(layouts))
        if len(layouts) != len(mats) or any(lay.nao != h.shape[-1]
                                            for lay, h in zip(layouts, mats)):
            raise ValueError("give one layout per molecule, with the molecule's nao")
        converted = [lay.to_pyscf(h, kind="matrix") for lay, h in zip(layouts, mats)]
        return converted[0] if one else converted

    def assemble(self, node_blocks: torch.Tensor, edge_blocks: torch.Tensor,
                 species: torch.Tensor, edge_index: torch.Tensor,
                 batch: Optional[torch.Tensor] = None):
        """The matrices from block features: ``[N, num_node_blocks]`` and
        ``[E, num_edge_blocks]``, each row's first ``block_irreps(...).dim`` entries used
        (padded layout of :meth:`decompose`). Same returns as :meth:`forward`."""
        node = [(idx, node_blocks.index_select(0, idx)[:, :irreps.dim])
                for idx, irreps in zip(self._groups(species), self.node_irreps)]
        edge = [(idx, edge_blocks.index_select(0, idx)[:, :irreps.dim])
                for idx, irreps in zip(self._edge_groups(species, edge_index),
                                       self.edge_irreps)]
        return self._assemble(node, edge, species, edge_index, batch)

    def decompose(self, matrix: torch.Tensor, species: torch.Tensor,
                  edge_index: Optional[torch.Tensor] = None):
        r"""The block features of a symmetric matrix of one molecule (equinet's order).

        Exact projection onto the Clebsch-Gordan basis: ``assemble(*decompose(H))`` gives
        back :math:`H` (the symmetric part, and only the blocks of the edges).

        Parameters
        ----------
        matrix : torch.Tensor
            ``[nao, nao]``.
        species : torch.Tensor
            ``[N]``.
        edge_index : torch.Tensor, optional
            ``[2, E]``; all ordered pairs :math:`i \ne j` by default.

        Returns
        -------
        node_blocks, edge_blocks : torch.Tensor
            ``[N, num_node_blocks]`` and ``[E, num_edge_blocks]``, zero-padded per row.
        """
        species = species.long()
        n = species.shape[0]
        if edge_index is None:
            i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            keep = i != j
            edge_index = torch.stack([i[keep], j[keep]]).to(species.device)
        dims = self.dims[species]
        if int(dims.sum()) != matrix.shape[-1]:
            raise ValueError(f"matrix is {tuple(matrix.shape)} but the species have "
                             f"{int(dims.sum())} functions")
        flat = ((matrix + matrix.transpose(-1, -2)) / 2).reshape(-1)
        where = (species.new_zeros(n), torch.cumsum(dims, 0) - dims, dims.sum().view(1),
                 dims.new_zeros(1))  # batch, offset, nao, base of _index
        node = matrix.new_zeros(n, self.num_node_blocks)
        edge = matrix.new_zeros(edge_index.shape[1], self.num_edge_blocks)
        for (a, b), idx, out, rows, cols in (
                [((a, None), i, node, i, i) for a, i in enumerate(self._groups(species))]
                + [(pair, i, edge, edge_index[0, i], edge_index[1, i])
                   for pair, i in zip(self.pairs, self._edge_groups(species, edge_index))]):
            _, proj, irreps, (di, dj) = _block_basis(self.shells[a], None if b is None
                                                     else self.shells[b])
            blocks = flat[self._index(rows, cols, *where, di, dj)].view(len(idx), di * dj)
            out[idx, :irreps.dim] = blocks @ _tensor(proj, matrix).T
        return node, edge

    @torch.no_grad()
    def initialize_node_bias(self, node_blocks: torch.Tensor, species: torch.Tensor) -> None:
        r"""Set the biases of the diagonal blocks to the mean ``0e`` features of each species.

        A Fock matrix has large, nearly constant diagonal scalars (core orbital
        energies: about -18.7 Hartree for oxygen's 1s); starting from their mean, as
        from free-atom blocks, the network learns only the variations. ``node_blocks``
        and ``species`` are :meth:`decompose`'s rows (concatenated over molecules).
        """
        if node_blocks.dim() != 2 or node_blocks.shape[0] != species.shape[0]:
            raise ValueError("node_blocks must be [N, num_node_blocks] with one row per atom")
        for a, (lin, irreps) in enumerate(zip(self.node_linears, self.node_irreps)):
            rows = node_blocks[species.to(node_blocks.device) == a]
            if lin.bias is None or rows.shape[0] == 0:
                continue
            lin.bias.copy_(rows[:, :lin.bias_numel].mean(0).to(lin.bias))

    def _groups(self, species):
        return [torch.nonzero(species == a).flatten() for a in range(len(self.shells))]

    def _edge_groups(self, species, edge_index):
        pair = species[edge_index[0]] * len(self.shells) + species[edge_index[1]]
        return [torch.nonzero(pair == k).flatten() for k in range(len(self.pairs))]

    def _assemble(self, node, edge, species, edge_index, batch):
        species = species.long()
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
        if bool((edge_index[0] == edge_index[1]).any()):
            raise ValueError("edge_index has self loops: diagonal blocks come from the nodes")
        key = edge_index[0] * species.shape[0] + edge_index[1]
        if not torch.equal(key.sort().values,
                           (edge_index[1] * species.shape[0] + edge_index[0]).sort().values):
            raise ValueError("edge_index must hold both directions of every pair, once each")
        single = batch is None
        if single:
            batch = species.new_zeros(species.shape[0])
        batch = batch.long()
        num = int(batch.max()) + 1 if batch.numel() else 0
        if bool((batch[edge_index[0]] != batch[edge_index[1]]).any()):
            raise ValueError("edge_index joins atoms of different molecules")
        dims = self.dims[species]
        nao = torch.zeros(num, dtype=torch.long, device=dims.device).index_add(0, batch, dims)
        first = torch.cumsum(nao, 0) - nao  # first AO of each molecule
        offset = torch.cumsum(dims, 0) - dims - first[batch]  # first AO of each atom
        size = nao * nao
        base = torch.cumsum(size, 0) - size  # start of each molecule in the flat output
        like = node[0][1] if node else edge[0][1]
        flat = like.new_zeros(int(size.sum()))
        for (idx, feats), a in zip(node, range(len(self.shells))):
            block = feats @ getattr(self, f"_node_a{a}").to(feats.dtype).T
            flat = flat.index_add(0, self._index(idx, idx, batch, offset, nao, base,
                                                 int(self.dims[a]), int(self.dims[a])),
                                  block.reshape(-1))
        for (idx, feats), k in zip(edge, range(len(self.pairs))):
            a, b = self.pairs[k]
            block = feats @ getattr(self, f"_edge_a{k}").to(feats.dtype).T
            rows, cols = edge_index[0, idx], edge_index[1, idx]
            flat = flat.index_add(0, self._index(rows, cols, batch, offset, nao, base,
                                                 int(self.dims[a]), int(self.dims[b])),
                                  block.reshape(-1))
        out = []
        for m in range(num):
            n, s = int(nao[m]), int(base[m])
            h = flat[s:s + n * n].view(n, n)
            out.append((h + h.T) / 2)
        return out[0] if single else out

    @staticmethod
    def _index(rows, cols, batch, offset, nao, base, di, dj):
        """Flat positions ``[len(rows) * di * dj]`` of the blocks (rows, cols), row-major."""
        r = torch.arange(di, device=rows.device).view(1, di, 1)
        c = torch.arange(dj, device=rows.device).view(1, 1, dj)
        n = nao[batch[rows]].view(-1, 1, 1)
        index = (base[batch[rows]].view(-1, 1, 1) + (offset[rows].view(-1, 1, 1) + r) * n
                 + offset[cols].view(-1, 1, 1) + c)
        return index.reshape(-1)


def _tensor(array: np.ndarray, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    t = torch.tensor(np.array(array), dtype=torch.float64)
    return t if like is None else t.to(dtype=like.dtype, device=like.device)
