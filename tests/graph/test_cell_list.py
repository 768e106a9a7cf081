"""close_pairs against all pairs."""
import torch

from equinet.graph.cell_list import close_pairs


def test_close_pairs_matches_all_pairs(dtype):
    q = (torch.rand(70, 3, dtype=torch.float64) * 5).to(dtype)
    p = (torch.rand(90, 3, dtype=torch.float64) * 4 - 0.5).to(dtype)  # queries stick out
    qg, pg = torch.randint(0, 3, (70,)), torch.randint(0, 3, (90,))
    i, j = close_pairs(q, qg, p, pg, 1.1, 3)
    got = set(zip(i.tolist(), j.tolist()))
    d2 = ((q[:, None] - p[None]) ** 2).sum(-1)
    expect = set(map(tuple, ((d2 < 1.1 ** 2) & (qg[:, None] == pg[None])).nonzero().tolist()))
    assert got == expect and len(got) == i.shape[0]


def test_empty():
    x = torch.zeros(0, 3)
    g = torch.zeros(0, dtype=torch.long)
    i, j = close_pairs(x, g, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1.0, 1)
    assert i.numel() == j.numel() == 0
