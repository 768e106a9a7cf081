r"""Radius graphs: every pair of points closer than a cutoff, with batches and periodic cells.

The edge set is :math:`\{(j \to i, \mathbf{S}) : |\mathbf{r}_i - \mathbf{r}_j +
\mathbf{S} A| < r_\text{max}\}`, where :math:`A` is the ``[3, 3]`` cell whose
*rows* are the lattice vectors and :math:`\mathbf{S} \in \mathbb{Z}^3` is the
integer shift (zero along non-periodic directions, and zero everywhere without
a cell). The search uses cell lists: points are binned into cubes of side
:math:`\approx r_\text{max}` and only the 27 neighbouring cubes are compared, so
the cost is :math:`O(N)` for bounded density. Everything is vectorised torch
(no Python loop over atoms or graphs) and runs on any device.
"""
from typing import Optional, Tuple, Union

import torch

from .cell_list import close_pairs

__all__ = ["radius_graph"]

# Candidates are searched with a slightly larger radius, and periodic images are kept a
# little beyond the strict bound, so that rounding in the wrapped coordinates can never
# drop an edge; the final test |edge_vec| < r_max is on the vector users recompute.
_BIN_MARGIN = 1e-3
_FRAC_TOL = 1e-4
# Periodic images (atoms times images per atom) beyond which the cutoff is reported as too large
# for the cell rather than attempted.
_MAX_IMAGES = 2.0 ** 40


def radius_graph(
    pos: torch.Tensor,
    r_max: float,
    batch: Optional[torch.Tensor] = None,
    max_num_neighbors: Optional[int] = None,
    cell: Optional[torch.Tensor] = None,
    pbc: Union[None, bool, Tuple[bool, bool, bool], torch.Tensor] = None,
    self_interaction: bool = False,
):
    r"""All pairs of points closer than ``r_max``, within each graph of a batch.

    An edge ``(edge_src[e], edge_dst[e])`` with shift :math:`\mathbf{S}_e` (one row of
    ``shifts``) exists when

    .. math:: \mathbf{v}_e = \mathbf{r}_{\mathrm{dst}} - \mathbf{r}_{\mathrm{src}}
              + \mathbf{S}_e A_{g}, \qquad |\mathbf{v}_e| < r_\text{max},

    where :math:`A_g` is the cell of the graph both points belong to (rows are the
    lattice vectors). :math:`\mathbf{v}_e` is the vector pointing from the periodic
    image of ``src`` located at :math:`\mathbf{r}_\mathrm{src} - \mathbf{S}_e A_g`
    to ``dst``; compute it as ``pos[dst] - pos[src] + shifts @ cell`` (or
    ``torch.einsum("ei,eij->ej", shifts, cell[batch[src]])`` for per-graph cells).
    This is NequIP's convention with ``edge_index = (edge_src, edge_dst)``.

    Every edge appears in both directions. Edges are sorted by ``edge_dst``, then
    ``edge_src``, then the shift (lexicographically): the output is deterministic.
    Positions need not lie inside the cell; a cell smaller than ``r_max`` yields
    edges to several images of the same atom, including images of the atom itself.

    Parameters
    ----------
    pos : torch.Tensor
        Floating point positions ``[N, 3]``.
    r_max : float
        Cutoff radius, ``> 0``; the inequality is strict.
    batch : torch.Tensor, optional
        Integer graph index of each point ``[N]``, sorted (non-decreasing). No edge
        joins two graphs. ``None`` means one graph.
    max_num_neighbors : int, optional
        Keep, for each ``dst``, only the ``max_num_neighbors`` nearest sources
        (ties broken by the edge order above).
    cell : torch.Tensor, optional
        Lattice vectors as rows, ``[3, 3]`` shared by all graphs or ``[B, 3, 3]``
        per graph. When given, ``shifts`` is returned too.
    pbc : bool or sequence of 3 bool or torch.Tensor, optional
        Periodicity along each lattice vector, ``[3]`` or ``[B, 3]``. Defaults to
        all ``True`` when ``cell`` is given; requires ``cell`` when any is ``True``.
        Lattice vectors along non-periodic directions are ignored (they may be 0).
    self_interaction : bool
        Include the zero-length edges ``i -> i`` (with zero shift). Edges from an
        atom to its own periodic images are always included.

    Returns
    -------
    edge_src, edge_dst : torch.Tensor
        ``int64`` tensors ``[E]``.
    shifts : torch.Tensor
        Only when ``cell`` is given: integer-valued ``[E, 3]`` in ``pos.dtype`` (so
        that ``shifts @ cell`` works directly).

    Examples
    --------
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    >>> radius_graph(pos, 1.5)
    (tensor([1, 0]), tensor([0, 1]))
    >>> src, dst, shifts = radius_graph(pos, 1.5, cell=4.0 * torch.eye(3),
    ...                                 pbc=(True, False, False))
    >>> src.tolist(), dst.tolist(), shifts[:, 0].tolist()
    ([1, 2, 0, 0], [0, 0, 1, 2], [0.0, 1.0, 0.0, -1.0])
    """
    pos, r, graph, num_graphs = _check_points(pos, r_max, batch)
    pos = pos.detach()  # the outputs are indices: no autograd graph over the candidates
    if max_num_neighbors is not None and (
            isinstance(max_num_neighbors, bool) or not isinstance(max_num_neighbors, int)
            or max_num_neighbors < 0):
        raise ValueError(f"max_num_neighbors must be a non-negative int or None, "
                         f"got {max_num_neighbors!r}")
    lattice, periodic, num_graphs = _check_cell(cell, pbc, pos, num_graphs)

    if pos.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=pos.device)
        if cell is None:
            return empty, empty.clone()
        return empty, empty.clone(), pos.new_zeros(0, 3)

    if lattice is not None and bool(periodic.any()):
        images = _periodic_images(pos, graph, r, lattice, periodic)
    else:
        images = _Images(pos=pos, atom=None, shift=None, wrap=None)

    # Candidates within a slightly larger radius in wrapped coordinates; the exact test
    # below is on the vector users recompute from the returned indices and shifts.
    query = pos if images.wrap is None else images.wrapped
    image_graph = graph if images.atom is None else graph[images.atom]
    dst, img = close_pairs(query, graph, images.pos, image_graph, r * (1 + _BIN_MARGIN),
                           num_graphs)
    if images.atom is None:
        src = img
        vec = pos[dst] - pos[src]
        shift = None
    else:
        src = images.atom[img]
        shift = images.wrap[src] - images.wrap[dst] - images.shift[img]
        vec = pos[dst] - pos[src] + torch.einsum("ei,eij->ej", shift, lattice[graph[dst]])
    dist = torch.linalg.vector_norm(vec, dim=-1)

    keep = dist < r
    if not self_interaction:
        same = src == dst
        if shift is not None:
            same = same & (shift == 0).all(dim=-1)
        keep = keep & ~same
    src, dst, dist = src[keep], dst[keep], dist[keep]
    shift = shift[keep] if shift is not None else None

    order = _canonical_order(src, dst, shift, pos.shape[0])
    src, dst, dist = src[order], dst[order], dist[order]
    shift = shift[order] if shift is not None else None

    if max_num_neighbors is not None:
        kept = _nearest_per_dst(dst, dist, max_num_neighbors, pos.shape[0])
        src, dst = src[kept], dst[kept]
        shift = shift[kept] if shift is not None else None

    if cell is None:
        return src, dst
    if shift is None:
        shift = pos.new_zeros(src.shape[0], 3)
    return src, dst, shift


def _coordinate_limit(dtype: torch.dtype) -> float:
    """Largest coordinate magnitude (and cutoff) whose squared distances stay finite in ``dtype``.

    A difference of two coordinates is at most twice their magnitude, and a squared distance
    sums three squared differences (the bin search adds a little margin).
    """
    return (torch.finfo(dtype).max / 16) ** 0.5


def _check_coordinates(pos: torch.Tensor, limit: float) -> None:
    """Raise unless ``pos`` is finite and small enough that squared distances cannot overflow.

    Under ``torch.compile`` / ``torch.export`` the values are unknown while tracing: the test
    becomes a runtime assertion in the graph (``torch._assert_async``).
    """
    if torch.compiler.is_compiling():
        torch._assert_async(torch.isfinite(pos).all(), "pos contains NaN or infinite values")
        torch._assert_async((pos.abs() <= limit).all(), "pos holds coordinates too large "
                            "for its dtype: squared distances overflow")
        return
    if pos.numel() == 0:
        return
    pos = pos.detach()
    if not bool(torch.isfinite(pos).all()):
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero()[:, 0]
        raise ValueError(f"pos contains NaN or infinite values (point {int(bad[0])} is "
                         f"{pos[bad[0]].tolist()}; {bad.numel()} such points)")
    largest = float(pos.abs().max())
    if largest > limit:
        raise ValueError(f"pos holds coordinates of magnitude up to {largest:.3g}, too large "
                         f"for {pos.dtype}: squared distances between points would overflow "
                         f"(|coordinates| must stay below {limit:.3g}); change the length "
                         "unit or the origin")


class _Images:
    """Source points: ``pos`` of each image, its ``atom``, its ``shift`` and the atoms' ``wrap``."""

    def __init__(self, pos, atom, shift, wrap, wrapped=None):
        self.pos, self.atom, self.shift, self.wrap, self.wrapped = pos, atom, shift, wrap, wrapped


def _check_points(pos, r_max, batch):
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"pos must be a torch.Tensor, got {type(pos).__name__}")
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape [N, 3], got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise TypeError(f"pos must be a floating point tensor, got {pos.dtype}")
    try:
        r = float(r_max)
    except (TypeError, ValueError):
        raise TypeError(f"r_max must be a number, got {r_max!r}") from None
    if not r > 0 or r == float("inf"):
        raise ValueError(f"r_max must be a finite positive number, got {r_max!r}")
    limit = _coordinate_limit(pos.dtype)
    if r > limit:
        # squared distances are compared with r_max ** 2, which would be inf
        raise ValueError(f"r_max = {r_max!r} is too large for {pos.dtype}: its square overflows "
                         f"(cutoffs up to {limit:.3g} are supported in {pos.dtype}); use a "
                         "smaller cutoff" + (", float64" if pos.dtype != torch.float64 else "")
                         + " or another length unit")
    _check_coordinates(pos, limit)
    n = pos.shape[0]
    if batch is None:
        return pos, r, torch.zeros(n, dtype=torch.long, device=pos.device), int(n > 0)
    if not isinstance(batch, torch.Tensor) or batch.dtype not in (torch.int64, torch.int32):
        raise TypeError("batch must be an int64 or int32 tensor")
    if batch.shape != (n,):
        raise ValueError(f"batch must have shape [N] = [{n}], got {tuple(batch.shape)}")
    if batch.device != pos.device:
        raise ValueError(f"batch is on {batch.device} but pos is on {pos.device}")
    batch = batch.long()
    if n == 0:
        return pos, r, batch, 0
    if int(batch.min()) < 0:
        raise ValueError("batch has negative entries")
    if not bool((batch[1:] >= batch[:-1]).all()):
        raise ValueError("batch must be sorted (non-decreasing): the points of each graph "
                         "must be contiguous; sort them, e.g. with torch.sort(batch, stable=True)")
    return pos, r, batch, int(batch[-1]) + 1


def _check_cell(cell, pbc, pos, num_graphs):
    """Return the per-graph lattice [B, 3, 3] (or None), periodicity [B, 3] and B."""
    if cell is None:
        if pbc is not None and bool(torch.as_tensor(pbc).any()):
            raise ValueError("pbc asks for periodic boundary conditions but no cell was given")
        return None, None, num_graphs
    if not isinstance(cell, torch.Tensor):
        raise TypeError(f"cell must be a torch.Tensor, got {type(cell).__name__}")
    if cell.shape == (3, 3):
        cell = cell.unsqueeze(0)
    elif cell.dim() != 3 or cell.shape[1:] != (3, 3):
        raise ValueError(f"cell must have shape [3, 3] or [B, 3, 3], got {tuple(cell.shape)}")
    elif cell.shape[0] < num_graphs:
        raise ValueError(f"cell has {cell.shape[0]} graphs but batch refers to {num_graphs}")
    else:
        num_graphs = cell.shape[0]
    if not bool(torch.isfinite(cell).all()):
        raise ValueError("cell contains NaN or infinite values")
    num_graphs = max(num_graphs, 1)
    lattice = cell.to(dtype=pos.dtype, device=pos.device).expand(num_graphs, 3, 3)

    if pbc is None:
        pbc = True
    periodic = torch.as_tensor(pbc, device=pos.device)
    if periodic.dtype != torch.bool:
        raise TypeError(f"pbc must be booleans, got {periodic.dtype}")
    if periodic.dim() == 0:
        periodic = periodic.expand(3)
    if periodic.shape == (3,):
        periodic = periodic.unsqueeze(0)
    elif periodic.dim() != 2 or periodic.shape[1] != 3 or periodic.shape[0] != num_graphs:
        raise ValueError(f"pbc must have shape [3] or [B, 3] with B = {num_graphs} graphs, "
                         f"got {tuple(periodic.shape)}")
    periodic = periodic.expand(num_graphs, 3)
    return lattice, periodic, num_graphs


def _fractional_basis(lattice: torch.Tensor, periodic: torch.Tensor) -> torch.Tensor:
    """Lattice with non-periodic rows replaced by an orthonormal complement of the periodic ones.

    The fractional coordinates along periodic directions then do not depend on the
    (ignored, possibly zero) non-periodic lattice vectors.
    """
    a = lattice.double() * periodic[..., None]
    complement = torch.eye(3, dtype=a.dtype, device=a.device) - torch.linalg.pinv(a) @ a
    _, vecs = torch.linalg.eigh(complement)  # eigenvalue 1 (complement) columns come last
    num_open = (~periodic).sum(dim=1, keepdim=True)
    column = (3 - num_open + torch.cumsum(~periodic, dim=1) - 1).clamp(0, 2)
    filler = vecs.gather(2, column[:, None, :].expand(-1, 3, -1)).transpose(1, 2)
    basis = torch.where(periodic[..., None], lattice.double(), filler)

    det = torch.linalg.det(basis).abs()
    scale = torch.linalg.vector_norm(basis, dim=2).prod(dim=1)
    bad = ~(det > 1e-9 * scale)
    if bool(bad.any()):
        g = int(bad.nonzero()[0, 0])
        raise ValueError(f"the periodic lattice vectors of graph {g} are zero or linearly "
                         f"dependent: {lattice[g].tolist()}")
    return basis


def _periodic_images(pos, graph, r, lattice, periodic) -> _Images:
    """Wrap atoms into the cell and list every image that can be within ``r`` of it."""
    basis = _fractional_basis(lattice, periodic)
    inverse = torch.linalg.inv(basis)  # pos = frac @ basis  <=>  frac = pos @ inverse
    # Distance to the planes frac_k = const is |frac_k| / |column k of inverse|.
    reach = r * (1 + _BIN_MARGIN) * torch.linalg.vector_norm(inverse, dim=1)
    # Images per atom: a cutoff of many cell widths needs (2 reach + 2)^3 of them; beyond an
    # index range (or memory) it is an error to report, not a silently overflowed shift count.
    images = torch.where(periodic, 2 * reach + 2, torch.ones_like(reach)).prod(dim=1)
    if not bool((images * pos.shape[0] < _MAX_IMAGES).all()):
        g = int(torch.argmax(images))
        raise ValueError(f"r_max = {r:.6g} spans {float(reach[g].max()):.3g} cell widths of "
                         f"graph {g}: about {float(images[g]):.3g} periodic images per atom, too "
                         "many to list; use a smaller cutoff or a larger cell")
    reach = reach.to(pos.dtype)
    inverse = inverse.to(pos.dtype)

    pbc = periodic[graph]
    frac = torch.einsum("ni,nij->nj", pos, inverse[graph])
    wrap = torch.where(pbc, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    wrapped = pos - torch.einsum("ni,nij->nj", wrap, lattice[graph])

    # Destination atoms sit at frac in [0, 1); a source image frac + s is needed only
    # within `reach` of that interval, so each atom's shifts form a box [lo, hi].
    lo = torch.ceil(-reach[graph] - frac - _FRAC_TOL)
    hi = torch.floor(1 + reach[graph] - frac + _FRAC_TOL)
    lo = torch.where(pbc, lo, torch.zeros_like(lo)).long()
    hi = torch.where(pbc, hi, torch.zeros_like(hi)).long()
    width = hi - lo + 1
    count = width.prod(dim=1)

    atom = torch.repeat_interleave(torch.arange(pos.shape[0], device=pos.device), count)
    local = torch.arange(atom.shape[0], device=pos.device) - (torch.cumsum(count, 0) - count)[atom]
    w = width[atom]
    sz = local % w[:, 2]
    local = local // w[:, 2]
    sy = local % w[:, 1]
    sx = local // w[:, 1]
    shift = (torch.stack([sx, sy, sz], dim=1) + lo[atom]).to(pos.dtype)
    image_pos = wrapped[atom] + torch.einsum("ei,eij->ej", shift, lattice[graph[atom]])
    return _Images(pos=image_pos, atom=atom, shift=shift, wrap=wrap, wrapped=wrapped)


def _canonical_order(src, dst, shift, num_nodes):
    """Permutation sorting edges by dst, then src, then shift components."""
    if src.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=src.device)
    if shift is None and num_nodes < 2 ** 31:
        return torch.argsort(dst * num_nodes + src)
    if shift is None:
        shift = torch.zeros(src.shape[0], 3, device=src.device)
    low = shift.min(dim=0).values.long()
    width = shift.max(dim=0).values.long() - low + 1
    if float(num_nodes) ** 2 * float(width.prod()) < 2.0 ** 62:
        s = shift.long() - low
        code = (s[:, 0] * width[1] + s[:, 1]) * width[2] + s[:, 2]
        return torch.argsort((dst * num_nodes + src) * width.prod() + code)
    # Too many combinations for one int64 key: stable sorts, least significant key first.
    order = torch.arange(src.shape[0], device=src.device)
    for key in (shift[:, 2], shift[:, 1], shift[:, 0], src, dst):
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def _nearest_per_dst(dst, dist, k, num_nodes):
    """Positions (increasing) of the edges kept when each dst keeps its k nearest sources.

    ``dst`` must already be in canonical order, which then breaks distance ties.
    """
    by_dist = torch.sort(dist, stable=True).indices
    by_dst = by_dist[torch.sort(dst[by_dist], stable=True).indices]
    per_node = torch.bincount(dst, minlength=num_nodes)
    first = torch.cumsum(per_node, 0) - per_node
    rank = torch.arange(dst.shape[0], device=dst.device) - first[dst[by_dst]]
    return torch.sort(by_dst[rank < k]).values
