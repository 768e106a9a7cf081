"""radius_graph against an O(N^2 * images) brute force over all pairs and lattice shifts."""
import itertools
import math

import pytest
import torch

from equinet.graph import radius_graph


def brute_force(pos, r, batch=None, cell=None, pbc=None, self_interaction=False):
    """Set of (src, dst, sx, sy, sz) with |pos[dst] - pos[src] + s @ cell| < r, same graph."""
    n = pos.shape[0]
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    if cell is None:
        cells = torch.zeros(int(batch.max()) + 1 if n else 1, 3, 3, dtype=pos.dtype)
        pbcs = torch.zeros(cells.shape[0], 3, dtype=torch.bool)
    else:
        cells = cell if cell.dim() == 3 else cell.expand(int(batch.max()) + 1, 3, 3)
        pbcs = torch.as_tensor(True if pbc is None else pbc).expand(cells.shape[0], 3)
    edges = set()
    for g in range(cells.shape[0]):
        idx = (batch == g).nonzero().flatten()
        if idx.numel() == 0:
            continue
        a, p = cells[g].to(pos.dtype), pbcs[g]
        ranges = []
        for k in range(3):
            if not p[k]:
                ranges.append([0])
                continue
            # the lattice planes along k are spaced h = 1 / |column k of inv(a)|
            inv_col = torch.linalg.inv(a.double() if p.all() else _fill(a, p))[:, k]
            frac = pos[idx].double() @ torch.linalg.inv(a.double() if p.all() else _fill(a, p))
            span = float(frac[:, k].max() - frac[:, k].min())
            m = int(math.ceil(r * float(inv_col.norm()) + span)) + 1
            ranges.append(range(-m, m + 1))
        shifts = torch.tensor(list(itertools.product(*ranges)), dtype=pos.dtype)
        sa = shifts @ a
        vec = pos[idx][:, None, None, :] - pos[idx][None, :, None, :] + sa[None, None]
        close = torch.linalg.vector_norm(vec, dim=-1) < r  # [dst, src, shift]
        for i, j, s in close.nonzero().tolist():
            if not self_interaction and i == j and not shifts[s].any():
                continue
            edges.add((int(idx[j]), int(idx[i])) + tuple(int(v) for v in shifts[s]))
    return edges


def _fill(a, p):
    """Replace the non-periodic rows by an orthonormal complement (so that inv exists)."""
    a = a.double().clone()
    q, _ = torch.linalg.qr(torch.cat([a[p], torch.randn(3, 3, dtype=a.dtype)]).T)
    a[~p] = q.T[p.sum():3][: int((~p).sum())]
    return a


def as_set(out):
    src, dst = out[0].tolist(), out[1].tolist()
    if len(out) == 2:
        return {(s, d, 0, 0, 0) for s, d in zip(src, dst)}
    shifts = out[2]
    assert torch.equal(shifts, shifts.round()), "shifts must be integers"
    return {(s, d) + tuple(int(v) for v in sh) for s, d, sh in zip(src, dst, shifts.tolist())}


def assert_canonical_order(out):
    src, dst = out[0], out[1]
    cols = [dst, src] + ([out[2][:, k].long() for k in range(3)] if len(out) == 3 else [])
    rows = list(zip(*[c.tolist() for c in cols]))
    assert rows == sorted(rows)
    assert len(set(rows)) == len(rows), "duplicate edges"


@pytest.mark.parametrize("n,r", [(1, 1.0), (2, 5.0), (300, 0.9), (300, 2.5)])
def test_open_cloud_matches_brute_force(dtype, n, r):
    pos = (torch.rand(n, 3, dtype=torch.float64) * 6 - 3).to(dtype)
    out = radius_graph(pos, r)
    assert out[0].dtype == torch.long and len(out) == 2
    assert as_set(out) == brute_force(pos, r)
    assert_canonical_order(out)


def test_self_interaction_adds_loops():
    pos = torch.randn(20, 3, dtype=torch.float64)
    plain = as_set(radius_graph(pos, 1.0))
    loops = as_set(radius_graph(pos, 1.0, self_interaction=True))
    assert loops == plain | {(i, i, 0, 0, 0) for i in range(20)}
    assert loops == brute_force(pos, 1.0, self_interaction=True)


def test_batch_never_joins_graphs():
    sizes = [5, 1, 40, 0, 17]  # graph 3 is empty
    pos = torch.randn(sum(sizes), 3, dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    out = radius_graph(pos, 1.5, batch=batch)
    assert as_set(out) == brute_force(pos, 1.5, batch=batch)
    assert torch.equal(batch[out[0]], batch[out[1]])
    # all points on top of each other: only the batch separates them
    same = radius_graph(torch.zeros(4, 3), 1.0, batch=torch.tensor([0, 0, 1, 1]))
    assert as_set(same) == {(1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (3, 2, 0, 0, 0), (2, 3, 0, 0, 0)}


def test_batch_must_be_sorted():
    with pytest.raises(ValueError, match="sorted"):
        radius_graph(torch.randn(3, 3), 1.0, batch=torch.tensor([0, 1, 0]))


def test_sparse_cloud_spanning_huge_extent():
    # two clusters 1e7 r_max apart: the cube grid is coarsened, the answer must not change
    pos = torch.randn(60, 3, dtype=torch.float64)
    pos[30:] += 1e7
    out = radius_graph(pos, 1.0)
    assert as_set(out) == brute_force(pos, 1.0)


def test_cubic_cell_with_atoms_outside():
    cell = 5.0 * torch.eye(3, dtype=torch.float64)
    pos = torch.rand(30, 3, dtype=torch.float64) * 15 - 5  # up to two cells away
    out = radius_graph(pos, 2.0, cell=cell)
    assert len(out) == 3 and out[2].dtype == pos.dtype
    assert as_set(out) == brute_force(pos, 2.0, cell=cell)
    assert_canonical_order(out)
    # documented convention: edge vector from src image to dst is short
    src, dst, shifts = out
    vec = pos[dst] - pos[src] + shifts @ cell
    assert (vec.norm(dim=1) < 2.0).all()


def test_triclinic_cell(dtype):
    cell = torch.tensor([[4.0, 0.0, 0.0], [1.7, 3.6, 0.0], [-1.1, 0.9, 3.8]], dtype=dtype)
    pos = (torch.rand(25, 3, dtype=dtype) @ cell) + 0.3 * torch.randn(25, 3, dtype=dtype)
    r = 2.6
    out = radius_graph(pos, r, cell=cell)
    assert as_set(out) == brute_force(pos, r, cell=cell)
    assert_canonical_order(out)


def test_cell_smaller_than_cutoff():
    cell = torch.tensor([[1.2, 0.0, 0.0], [0.4, 1.1, 0.0], [0.2, -0.3, 0.9]], dtype=torch.float64)
    pos = torch.rand(3, 3, dtype=torch.float64) @ cell
    out = radius_graph(pos, 2.5, cell=cell)
    expected = brute_force(pos, 2.5, cell=cell)
    assert as_set(out) == expected
    assert any(s == d for s, d, *_ in expected)  # atoms see their own images
    # a single atom in a tiny cubic cell: neighbours are exactly the lattice points within r
    one = radius_graph(torch.zeros(1, 3, dtype=torch.float64), 2.05,
                       cell=torch.eye(3, dtype=torch.float64))
    n_lattice = sum(1 for s in itertools.product(range(-3, 4), repeat=3)
                    if 0 < sum(v * v for v in s) < 2.05 ** 2)
    assert one[0].shape[0] == n_lattice == 32


def test_mixed_pbc_with_zero_vector():
    # a slab: periodic in x and y, open in z where the cell vector is zero
    cell = torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    pos = torch.rand(20, 3, dtype=torch.float64) * torch.tensor([4.0, 3.0, 6.0])
    pbc = (True, True, False)
    out = radius_graph(pos, 2.2, cell=cell, pbc=pbc)
    assert as_set(out) == brute_force(pos, 2.2, cell=cell, pbc=torch.tensor(pbc))
    assert (out[2][:, 2] == 0).all()


def test_per_graph_cells_and_pbc():
    cells = torch.stack([
        4.0 * torch.eye(3, dtype=torch.float64),
        torch.tensor([[2.0, 0.0, 0.0], [0.7, 2.2, 0.0], [0.0, 0.5, 2.4]], dtype=torch.float64),
        torch.diag(torch.tensor([3.0, 3.0, 3.0], dtype=torch.float64)),
    ])
    pbc = torch.tensor([[True, True, True], [True, True, True], [False, True, False]])
    sizes = torch.tensor([10, 4, 12])
    batch = torch.repeat_interleave(torch.arange(3), sizes)
    pos = torch.rand(int(sizes.sum()), 3, dtype=torch.float64) * 4
    out = radius_graph(pos, 2.5, batch=batch, cell=cells, pbc=pbc)
    assert as_set(out) == brute_force(pos, 2.5, batch=batch, cell=cells, pbc=pbc)
    src, dst, shifts = out
    vec = pos[dst] - pos[src] + torch.einsum("ei,eij->ej", shifts, cells[batch[src]])
    assert (vec.norm(dim=1) < 2.5).all()


def test_cell_without_pbc_gives_zero_shifts():
    pos = torch.randn(30, 3, dtype=torch.float64)
    out = radius_graph(pos, 1.2, cell=torch.eye(3, dtype=torch.float64), pbc=False)
    assert (out[2] == 0).all()
    assert as_set(out) == brute_force(pos, 1.2)


@pytest.mark.parametrize("periodic", [False, True])
def test_max_num_neighbors_keeps_nearest(periodic):
    pos = torch.rand(80, 3, dtype=torch.float64) * 4
    cell = 4.0 * torch.eye(3, dtype=torch.float64) if periodic else None
    full = radius_graph(pos, 1.6, cell=cell)
    k = 5
    out = radius_graph(pos, 1.6, max_num_neighbors=k, cell=cell)
    assert as_set(out) <= as_set(full)
    assert_canonical_order(out)

    def dists(o):
        vec = pos[o[1]] - pos[o[0]] + (o[2] @ cell if periodic else 0)
        return vec.norm(dim=1)

    d_full, d_out = dists(full), dists(out)
    for i in range(80):
        expect = torch.sort(d_full[full[1] == i]).values[:k]
        got = torch.sort(d_out[out[1] == i]).values
        torch.testing.assert_close(got, expect)
    assert torch.bincount(out[1], minlength=80).max() <= k
    assert radius_graph(pos, 1.6, max_num_neighbors=0)[0].numel() == 0


def test_deterministic():
    pos = torch.rand(200, 3) * 5
    cell = torch.tensor([[5.0, 0, 0], [1.0, 5.0, 0], [0, 0.5, 5.0]])
    a = radius_graph(pos, 1.3, cell=cell)
    b = radius_graph(pos.clone(), 1.3, cell=cell.clone())
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_empty_input():
    src, dst = radius_graph(torch.zeros(0, 3), 1.0)
    assert src.shape == dst.shape == (0,) and src.dtype == torch.long
    src, dst, shifts = radius_graph(torch.zeros(0, 3), 1.0, batch=torch.zeros(0, dtype=torch.long),
                                    cell=torch.eye(3))
    assert shifts.shape == (0, 3)


def test_bad_input():
    pos = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        radius_graph(torch.randn(4, 2), 1.0)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        radius_graph(torch.randn(4), 1.0)
    with pytest.raises(TypeError, match="floating"):
        radius_graph(torch.ones(4, 3, dtype=torch.long), 1.0)
    for r in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="r_max"):
            radius_graph(pos, r)
    with pytest.raises(ValueError, match="cell"):
        radius_graph(pos, 1.0, cell=torch.eye(2))
    with pytest.raises(ValueError, match="cell"):
        radius_graph(pos, 1.0, cell=torch.eye(3).expand(2, 3, 3),
                     batch=torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="no cell"):
        radius_graph(pos, 1.0, pbc=(True, True, True))
    with pytest.raises(ValueError, match="dependent"):
        radius_graph(pos, 1.0, cell=torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="batch"):
        radius_graph(pos, 1.0, batch=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        radius_graph(torch.full((2, 3), float("nan")), 1.0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        radius_graph(pos, 1.0, max_num_neighbors=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_overflowing_cutoff_is_named(dtype):
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    for r in [1e300, 2.0 * (torch.finfo(dtype).max / 16) ** 0.5]:
        with pytest.raises(ValueError, match=rf"r_max = .* is too large for {dtype}: its square"):
            radius_graph(pos, r)
    if dtype == torch.float32:  # fine in float32 when its square fits
        assert radius_graph(pos, 1e15)[0].shape == (2,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_huge_finite_coordinates_are_named(dtype):
    big = 1e300 if dtype == torch.float64 else 1e30
    pos = torch.tensor([[0.0, 0.0, 0.0], [big, 0.0, 0.0]], dtype=dtype)
    assert torch.isfinite(pos).all()
    for cell in (None, 3.0 * torch.eye(3, dtype=dtype)):
        with pytest.raises(ValueError, match=f"pos holds coordinates of magnitude up to .*"
                                             f"too large for {dtype}"):
            radius_graph(pos, 1.5, cell=cell)


def test_nan_names_the_point():
    pos = torch.zeros(3, 3)
    pos[2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(point 2 is"):
        radius_graph(pos, 1.0)


def test_cutoff_of_many_cell_widths_is_refused():
    pos = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="periodic images per atom, too many"):
        radius_graph(pos, 1e100, cell=3.0 * torch.eye(3, dtype=torch.float64))
