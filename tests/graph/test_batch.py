"""collate and Batch."""
import pytest
import torch

from equinet.graph import Batch, collate, radius_graph


def graphs():
    return [
        {"pos": torch.randn(3, 3), "species": torch.tensor([8, 1, 1]), "energy": -1.5,
         "forces": torch.randn(3, 3), "cell": torch.eye(3), "dipole": torch.randn(3)},
        {"pos": torch.randn(1, 3), "species": torch.tensor([6]), "energy": 0.5,
         "forces": torch.randn(1, 3), "cell": 2 * torch.eye(3), "dipole": torch.randn(3)},
        {"pos": torch.randn(4, 3), "species": torch.tensor([6, 1, 1, 1]), "energy": 2.0,
         "forces": torch.randn(4, 3), "cell": 3 * torch.eye(3), "dipole": torch.randn(3)},
    ]


def test_collate_layout():
    gs = graphs()
    b = collate(gs)
    assert isinstance(b, Batch) and b.num_graphs == len(b) == 3 and b.num_nodes == 8
    assert b.ptr.tolist() == [0, 3, 4, 8]
    assert b.batch.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    for g, graph in enumerate(gs):
        sl = slice(int(b.ptr[g]), int(b.ptr[g + 1]))
        assert torch.equal(b.pos[sl], graph["pos"])
        assert torch.equal(b.species[sl], graph["species"])
        assert torch.equal(b.forces[sl], graph["forces"])
        assert torch.equal(b["cell"][g], graph["cell"])
        assert torch.equal(b.dipole[g], graph["dipole"])  # a 3-vector of a 3-atom graph
    assert b.energy.tolist() == [-1.5, 0.5, 2.0]
    assert b.cell.shape == (3, 3, 3)
    # the batch drives a radius graph with per-graph cells
    src, dst, shifts = radius_graph(b.pos, 1.0, batch=b.batch, cell=b.cell)
    assert torch.equal(b.batch[src], b.batch[dst])


def test_extra_keys_must_be_declared():
    gs = [{"pos": torch.zeros(2, 3), "q": torch.zeros(2)}]
    with pytest.raises(ValueError, match="node_keys"):
        collate(gs)
    assert collate(gs, node_keys=["q"]).q.shape == (2,)
    assert collate(gs, graph_keys=["q"]).q.shape == (1, 2)
    with pytest.raises(ValueError, match="both"):
        collate(gs, node_keys=["q"], graph_keys=["q"])


def test_collate_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        collate([])
    with pytest.raises(ValueError, match="pos"):
        collate([{"pos": torch.zeros(2, 2)}])
    with pytest.raises(ValueError, match="keys"):
        collate([{"pos": torch.zeros(2, 3)}, {"pos": torch.zeros(2, 3), "energy": 1.0}])
    with pytest.raises(ValueError, match="rows"):
        collate([{"pos": torch.zeros(2, 3), "forces": torch.zeros(3, 3)}])
    with pytest.raises(ValueError, match="shapes"):
        collate([{"pos": torch.zeros(1, 3), "cell": torch.eye(3)},
                 {"pos": torch.zeros(1, 3), "cell": torch.eye(2)}])
    with pytest.raises(TypeError, match="dict"):
        collate([torch.zeros(2, 3)])
    with pytest.raises(TypeError, match="species"):
        collate([{"pos": torch.zeros(2, 3), "species": torch.zeros(2)}])


def test_to_moves_and_casts_only_floats():
    b = collate(graphs())
    d = b.to(dtype=torch.float64)
    assert d.pos.dtype == torch.float64 and d.energy.dtype == torch.float64
    assert d.species.dtype == torch.int64 and d.batch.dtype == torch.int64
    assert torch.equal(d.pos.float(), b.pos)
    c = b.to("cpu")
    assert c.pos.device.type == "cpu" and c.num_graphs == 3 and c.forces.dtype == torch.float32
    with pytest.raises(TypeError):
        b.to(dtype=torch.int32)
    with pytest.raises(AttributeError):
        b.nothing


def test_list_keys_keep_ragged_per_graph_values():
    mats = [torch.ones(2, 2), torch.zeros(3, 3)]
    gs = [{"pos": torch.zeros(1, 3), "fock": mats[0], "energy": 1.0},
          {"pos": torch.zeros(2, 3), "fock": mats[1], "energy": 2.0}]
    b = collate(gs, list_keys=["fock"])
    assert isinstance(b.fock, list) and [m.shape for m in b.fock] == [(2, 2), (3, 3)]
    assert b.fock[1] is mats[1] and b.energy.tolist() == [1.0, 2.0]
    d = b.to(dtype=torch.float64)
    assert [m.dtype for m in d.fock] == [torch.float64] * 2
    with pytest.raises(ValueError, match="different shapes"):
        collate(gs, graph_keys=["fock"])
    with pytest.raises(ValueError, match="list_keys"):
        collate(gs, graph_keys=["fock"], list_keys=["fock"])
    # a default per-graph key may be listed instead of stacked
    assert isinstance(collate(gs, list_keys=["fock", "energy"]).energy, list)
