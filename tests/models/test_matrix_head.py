"""The AO-matrix head (equinet.models.matrix_head): block irreps, symmetry, exact inverse."""
import numpy as np
import pytest
import torch

from equinet.models.matrix_head import MatrixHead, _block_basis, block_irreps
from equinet.o3 import Irreps, rand_matrix

O_SHELLS = ((0, 3), (1, 2), (2, 1))  # def2-SVP oxygen, grouped as PySCF may give it
H_SHELLS = ((0, 2), (1, 1))
WATER = [[0.0, 0.02, 0.1173], [0.0, 0.7572, -0.4692], [0.03, -0.7572, -0.4692]]


def _all_pairs(n):
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


@pytest.mark.parametrize("shells_i, shells_j", [
    (O_SHELLS, None), (H_SHELLS, None), (O_SHELLS, H_SHELLS), (H_SHELLS, O_SHELLS),
    (((3, 1), (1, 2)), None), (((3, 1),), ((2, 2), (0, 1))),
])
def test_block_irreps_count_and_orthogonality(shells_i, shells_j):
    irreps = block_irreps(shells_i, shells_j)
    di = sum(n * (2 * l + 1) for l, n in shells_i)
    dj = di if shells_j is None else sum(n * (2 * l + 1) for l, n in shells_j)
    assert irreps.dim == (di * (di + 1) // 2 if shells_j is None else di * dj)
    assert irreps == irreps.regroup()
    assemble, project, _, shape = _block_basis(shells_i, shells_j)
    assert shape == (di, dj)
    np.testing.assert_allclose(project @ assemble, np.eye(irreps.dim), atol=1e-14)


def test_block_irreps_values():
    assert block_irreps([(1, 1)]) == Irreps("0e + 2e")  # the symmetric part of p x p
    assert block_irreps([(1, 1)], [(1, 1)]) == Irreps("0e + 1e + 2e")
    assert block_irreps([(2, 1)], [(1, 1)]) == Irreps("1o + 2o + 3o")
    assert block_irreps([(2, 1)]).lmax == 4
    with pytest.raises(ValueError):
        block_irreps([(1, 0)])


def test_block_transforms_as_its_irreps():
    """B(D_f f) = D_l1 B(f) D_l2^T, with inversion: the parity is (-1)^(l1 + l2)."""
    shells_i, shells_j = ((1, 1), (2, 1)), ((0, 1), (1, 1))
    assemble, _, irreps, (di, dj) = _block_basis(shells_i, shells_j)
    a = torch.from_numpy(np.array(assemble))
    r = -rand_matrix(dtype=torch.float64)
    d_i = Irreps("1o + 2e").D_from_matrix(r)
    d_j = Irreps("0e + 1o").D_from_matrix(r)
    f = torch.randn(irreps.dim, dtype=torch.float64)
    rotated = (a @ (irreps.D_from_matrix(r) @ f)).view(di, dj)
    expected = d_i @ (a @ f).view(di, dj) @ d_j.T
    torch.testing.assert_close(rotated, expected, atol=1e-13, rtol=0)


def _water_fock():
    pytest.importorskip("pyscf")
    from equinet.chem import BasisLayout, LevelOfTheory, compute_labels

    level = LevelOfTheory("PBE", "def2-SVP")
    labels = compute_labels([8, 1, 1], np.array(WATER), level, ("fock",))
    layout = BasisLayout(level.build_mole([8, 1, 1], np.array(WATER)))
    return layout, labels["fock"]


def test_decompose_reassemble_pyscf_fock_exactly():
    layout, fock = _water_fock()
    shells = [layout.atom_shells[0], layout.atom_shells[1]]
    irreps = "0e + 1o + 1e + 2o + 2e + 3o + 3e + 4e"
    head = MatrixHead(irreps, irreps, shells).double()
    species = torch.tensor([0, 1, 1])
    h = torch.from_numpy(layout.to_equinet(fock, kind="matrix"))
    node, edge = head.decompose(h, species)
    assert node.shape == (3, head.num_node_blocks) and edge.shape == (6, head.num_edge_blocks)
    rebuilt = head.assemble(node, edge, species, _all_pairs(3))
    assert (rebuilt - h).abs().max() < 1e-12
    assert torch.equal(rebuilt, rebuilt.T)
    np.testing.assert_allclose(layout.to_pyscf(rebuilt, kind="matrix").numpy(), fock,
                               atol=1e-12)
    # the check can fail: a changed feature changes the matrix
    edge[0, 3] += 1e-3
    assert (head.assemble(node, edge, species, _all_pairs(3)) - h).abs().max() > 1e-4
    with pytest.raises(ValueError, match="both directions"):  # a block would be halved
        head.assemble(node, edge[1:], species, _all_pairs(3)[:, 1:])


def test_output_symmetric_and_batched():
    head = MatrixHead("4x0e + 4x1o + 4x1e + 4x2e + 4x2o + 4x3o + 4x3e + 4x4e",
                      "4x0e + 4x1o + 4x1e + 4x2e + 4x2o + 4x3o + 4x3e + 4x4e",
                      [O_SHELLS, H_SHELLS]).double()
    species = torch.tensor([0, 1, 1, 1, 0])
    batch = torch.tensor([0, 0, 0, 1, 1])
    edges = torch.tensor([[0, 1, 0, 2, 1, 2, 3, 4], [1, 0, 2, 0, 2, 1, 4, 3]])
    x = torch.randn(5, head.irreps_node.dim, dtype=torch.float64)
    e = torch.randn(8, head.irreps_edge.dim, dtype=torch.float64)
    h1, h2 = head(x, e, species, edges, batch)
    assert h1.shape == (24, 24) and h2.shape == (19, 19)
    assert torch.equal(h1, h1.T) and torch.equal(h2, h2.T)
    alone = head(x[:3], e[:6], species[:3], edges[:, :6])
    torch.testing.assert_close(alone, h1, atol=1e-13, rtol=0)
    # the second molecule starts with H: its H block is first, then O's
    alone2 = head(x[3:], e[6:], species[3:], edges[:, 6:] - 3)
    torch.testing.assert_close(alone2, h2, atol=1e-13, rtol=0)
    # the off-diagonal block is the average of both directions
    node, edge = head.decompose(h1, species[:3], edges[:, :6])
    torch.testing.assert_close(head.assemble(node, edge, species[:3], edges[:, :6]), h1,
                               atol=1e-12, rtol=0)


def test_head_equivariance():
    irreps = Irreps("4x0e + 4x1o + 4x1e + 4x2e + 4x2o + 4x3o + 4x3e + 4x4e")
    head = MatrixHead(irreps, irreps, [O_SHELLS, H_SHELLS]).double()
    species, edges = torch.tensor([1, 0, 1]), _all_pairs(3)
    x = torch.randn(3, irreps.dim, dtype=torch.float64)
    e = torch.randn(6, irreps.dim, dtype=torch.float64)
    r = -rand_matrix(dtype=torch.float64)
    d_in = irreps.D_from_matrix(r)
    layout_irreps = Irreps("2x0e + 1x1o") + Irreps("3x0e + 2x1o + 1x2e") + Irreps("2x0e + 1x1o")
    d = layout_irreps.D_from_matrix(r)
    h = head(x, e, species, edges)
    torch.testing.assert_close(head(x @ d_in.T, e @ d_in.T, species, edges), d @ h @ d.T,
                               atol=1e-12, rtol=0)


def test_errors():
    with pytest.raises(ValueError, match="lacks"):
        MatrixHead("0e + 1o", "0e + 1o + 1e + 2e", [H_SHELLS])  # p x p needs 2e
    head = MatrixHead("0e + 1o + 2e", "0e + 1o + 1e + 2e", [H_SHELLS])
    with pytest.raises(ValueError, match="self loops"):
        head(torch.randn(2, 9), torch.randn(1, 12), torch.tensor([0, 0]),
             torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match="different molecules"):
        head(torch.randn(2, 9), torch.randn(2, 12), torch.tensor([0, 0]),
             torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 1]))
