r"""Cell lists: all pairs of points closer than a cutoff in :math:`O(N)`.

Points are binned into cubes of side :math:`s \geq r`; two points closer than
:math:`r` lie in the same or in adjacent cubes, so each query only looks at the
27 cubes around its own. With bounded density this costs :math:`O(N)` time and
memory, against :math:`O(N^2)` for all pairs. Cubes are identified by a linear
int64 key and looked up with a binary search among the occupied ones, so empty
space costs nothing and nothing is allocated per cube.

This is the engine of :func:`equinet.graph.radius_graph`, which adds batches,
periodic images, ordering and validation on top.
"""
from typing import Tuple

import torch

__all__ = ["close_pairs"]

# Cubes per axis and graph are capped so that the linear cube keys fit in int64; a sparse
# cloud spanning more than this many cutoffs gets larger cubes (slower, still exact).
_MAX_CUBES_PER_AXIS = 2 ** 16


def _graph_bounds(points, graph, num_graphs):
    """Per-graph lower corner and extent of the points; zeros for graphs without points."""
    idx = graph[:, None].expand(-1, 3)
    inf = torch.full((num_graphs, 3), float("inf"), dtype=points.dtype, device=points.device)
    low = inf.scatter_reduce(0, idx, points, "amin")
    high = (-inf).scatter_reduce(0, idx, points, "amax")
    present = torch.isfinite(low)
    low = torch.where(present, low, torch.zeros_like(low))
    high = torch.where(present, high, torch.zeros_like(high))
    return low, high - low


def close_pairs(query: torch.Tensor, query_graph: torch.Tensor, points: torch.Tensor,
                point_graph: torch.Tensor, cutoff: float,
                num_graphs: int) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Pairs ``(q, p)`` with ``query_graph[q] == point_graph[p]`` and
    :math:`|\mathrm{query}_q - \mathrm{points}_p| < \mathrm{cutoff}`.

    Parameters
    ----------
    query : torch.Tensor
        ``[Q, 3]`` positions.
    query_graph : torch.Tensor
        ``[Q]`` int64 graph index of each query, in ``[0, num_graphs)``.
    points : torch.Tensor
        ``[P, 3]`` positions, same dtype and device as ``query``.
    point_graph : torch.Tensor
        ``[P]`` int64 graph index of each point.
    cutoff : float
        Distance below which a pair is returned (strict).
    num_graphs : int
        Number of graphs.

    Returns
    -------
    q, p : torch.Tensor
        ``int64`` index tensors ``[K]``, in no particular order (but deterministic).

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [2.0, 0.0, 0.0]])
    >>> g = torch.zeros(3, dtype=torch.long)
    >>> q, p = close_pairs(x, g, x, g, 1.0, 1)
    >>> sorted(zip(q.tolist(), p.tolist()))
    [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]
    """
    device = points.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if points.shape[0] == 0 or query.shape[0] == 0:
        return empty, empty.clone()

    origin, extent = _graph_bounds(points, point_graph, num_graphs)
    cap = _MAX_CUBES_PER_AXIS
    while True:
        side = torch.clamp(extent.max(dim=1).values / cap, min=cutoff)
        dims = torch.floor(extent / side[:, None]).long() + 1
        # queries may sit up to two cubes outside the grid: key that larger grid too
        if (dims + 4).prod(dim=1).double().sum() < 2.0 ** 62:
            break
        cap //= 2
    cubes = dims.prod(dim=1)
    base = torch.cumsum(cubes, 0) - cubes
    wide_cubes = (dims + 4).prod(dim=1)
    wide_base = torch.cumsum(wide_cubes, 0) - wide_cubes

    def key_of(cube, g):
        d = dims[g]
        return base[g] + (cube[..., 0] * d[..., 1] + cube[..., 1]) * d[..., 2] + cube[..., 2]

    def wide_key_of(cube, g):
        d, c = dims[g] + 4, cube + 2
        return wide_base[g] + (c[..., 0] * d[..., 1] + c[..., 1]) * d[..., 2] + c[..., 2]

    def cube_of(x, g, low, high):
        c = torch.floor((x - origin[g]) / side[g, None])
        return torch.minimum(c.clamp(min=low), (dims[g] + high).to(c.dtype)).long()

    # Points sorted by cube: each occupied cube is a contiguous run [start, start + count).
    pkey = key_of(cube_of(points, point_graph, 0, -1), point_graph)
    porder = torch.argsort(pkey)
    keys, counts = torch.unique_consecutive(pkey[porder], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    sorted_points = points.index_select(0, porder)

    # Queries outside the points' box are clamped only so far that their out-of-range
    # neighbour cubes stay out of range. Queries are grouped by cube: the 27-cube
    # stencil is looked up once per occupied query cube, and memory accesses stay local.
    qcube = cube_of(query, query_graph, -2, 1)
    qkey = wide_key_of(qcube, query_graph)
    qorder = torch.argsort(qkey)
    qkeys, qinverse = torch.unique_consecutive(qkey[qorder], return_inverse=True)
    first = torch.ones_like(qorder, dtype=torch.bool)
    first[1:] = qinverse[1:] != qinverse[:-1]
    rep = qorder[first]  # one query per occupied query cube
    steps = torch.tensor([-1, 0, 1], device=device)
    offsets = torch.cartesian_prod(steps, steps, steps)  # [27, 3]
    near = qcube[rep][:, None, :] + offsets
    rep_graph = query_graph[rep][:, None]
    inside = ((near >= 0) & (near < dims[rep_graph])).all(dim=-1)
    near_key = key_of(near, rep_graph)
    slot = torch.searchsorted(keys, near_key).clamp(max=keys.shape[0] - 1)
    found = inside & (keys[slot] == near_key)
    cube_count = torch.where(found, counts[slot], torch.zeros_like(slot))  # [U, 27]
    cube_start = starts[slot]
    del qkeys

    num = cube_count[qinverse].reshape(-1)  # [Q * 27], queries in cube order
    run_start = cube_start[qinverse].reshape(-1)
    # Candidate t of run (query, cube) is sorted point run_start + (t - first t of run).
    jump = run_start - (torch.cumsum(num, 0) - num)
    total = int(num.sum())
    p_sorted = torch.repeat_interleave(jump, num, output_size=total) + torch.arange(
        total, device=device)
    q = torch.repeat_interleave(qorder, num.view(-1, offsets.shape[0]).sum(dim=1),
                                output_size=total)

    diff = query.index_select(0, q) - sorted_points.index_select(0, p_sorted)
    close = (diff * diff).sum(dim=-1) < cutoff * cutoff
    return q[close], porder[p_sorted[close]]
