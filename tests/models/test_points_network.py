"""PointsNetwork: symmetries (rotations, inversion, translations, permutations), forces, errors."""
import pytest
import torch

from equinet.models import PointsNetwork
from equinet.testing import CARTESIAN_POINTS, assert_equivariant

IRREPS_OUT = "0e + 0o + 1o + 1e + 2e"


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return PointsNetwork(IRREPS_OUT, num_species=3, lmax=2, cutoff=2.5, num_layers=2, mul=4,
                         num_radial=4, radial_hidden=(8,), avg_num_neighbors=3.0).double()


def _cloud(n=9, graphs=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = 1.2 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    species = torch.randint(0, 3, (n,), generator=g)
    batch = torch.arange(graphs).repeat_interleave(n // graphs + 1)[:n]
    return pos, species, batch


def test_rotation_inversion_translation_equivariant(net):
    pos, species, batch = _cloud()
    errors = assert_equivariant(net, [CARTESIAN_POINTS, None, None], IRREPS_OUT,
                                [pos, species, batch], ntrials=2)
    assert set(errors) == {(0, False), (0, True), (1, False), (1, True)}


def test_output_is_not_trivial(net):
    pos, species, batch = _cloud()
    out = net(pos, species, batch)
    assert out.shape == (9, net.irreps_out.dim)
    assert out.abs().max() > 1e-3  # every irrep reached, including the pseudoscalar
    assert out[:, 1].abs().max() > 1e-6


def test_permutation_equivariant(net):
    pos, species, _ = _cloud()
    perm = torch.randperm(9)
    torch.testing.assert_close(net(pos[perm], species[perm]), net(pos, species)[perm])


def test_pooling_and_batching(net):
    pos, species, batch = _cloud()
    per_node = net(pos, species, batch)
    separate = [net(pos[batch == b], species[batch == b]) for b in range(2)]
    torch.testing.assert_close(per_node, torch.cat(separate))  # graphs do not interact
    net.pool = "sum"
    try:
        torch.testing.assert_close(net(pos, species, batch),
                                   torch.stack([s.sum(0) for s in separate]))
        net.pool = "mean"
        torch.testing.assert_close(net(pos, species, batch),
                                   torch.stack([s.mean(0) for s in separate]))
    finally:
        net.pool = None


def test_forces_equivariant_and_double_backward():
    torch.manual_seed(1)
    model = PointsNetwork("0e", num_species=2, cutoff=2.5, num_layers=2, mul=4, num_radial=4,
                          radial_hidden=(8,), pool="sum").double()
    pos, species, _ = _cloud(7)
    species = species % 2

    def forces(p):
        p = p.detach().requires_grad_(True)
        energy = model(p, species).sum()
        return -torch.autograd.grad(energy, p, create_graph=True)[0]

    assert_equivariant(forces, [CARTESIAN_POINTS], ["1o"], [pos], ntrials=2)
    # finite differences of the energy
    p = pos.clone()
    f = forces(p)
    h = 1e-6
    shift = torch.zeros_like(p)
    shift[3, 1] = h
    numeric = -(model(p + shift, species) - model(p - shift, species)).sum() / (2 * h)
    assert abs(numeric - f[3, 1]) < 1e-6

    # force training: a loss on the forces, backpropagated into the parameters
    p = pos.detach().requires_grad_(True)
    energy = model(p, species).sum()
    (grad,) = torch.autograd.grad(energy, p, create_graph=True)
    loss = energy.pow(2) + grad.pow(2).sum()
    loss.backward()
    grads = [q.grad for q in model.parameters() if q.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_float32():
    model = PointsNetwork("0e + 1o", num_species=1, cutoff=2.0, num_layers=1, mul=2)
    pos = torch.randn(6, 3)
    assert model(pos, torch.zeros(6, dtype=torch.long)).dtype == torch.float32


def test_bad_input(net):
    pos, species, batch = _cloud()
    with pytest.raises(ValueError, match=r"pos must be a tensor of shape \[N, 3\]"):
        net(pos[:, :2], species)
    with pytest.raises(ValueError, match="species must lie in"):
        net(pos, species + 3)
    with pytest.raises(ValueError, match="species must lie in"):
        net(pos, species - 5)
    with pytest.raises(ValueError, match="species must be an integer tensor"):
        net(pos, species.double())
    with pytest.raises(ValueError, match="sorted"):
        net(pos, species, batch.flip(0))
    with pytest.raises(ValueError, match="batch must be an integer tensor"):
        net(pos, species, batch[:-1])
    with pytest.raises(TypeError, match="float32"):
        net(pos.float(), species)
    with pytest.raises(ValueError, match="pool"):
        PointsNetwork("0e", num_species=1, pool="max")
    with pytest.raises(ValueError, match="cannot be produced"):
        PointsNetwork("0o", num_species=1, parity=False)


def _energy_and_forces(model, pos, species, **kwargs):
    pos = pos.detach().requires_grad_(True)
    energy = model(pos, species, **kwargs)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad


@pytest.fixture(scope="module")
def energy_net():
    torch.manual_seed(2)
    return PointsNetwork("0e", num_species=2, cutoff=2.0, num_layers=2, mul=4, num_radial=4,
                         radial_hidden=(8,), pool="sum").double()


@pytest.mark.parametrize("case", ["single atom", "beyond the cutoff", "empty"])
def test_isolated_atoms_have_zero_forces_and_gradients(energy_net, case):
    pos = {"single atom": [[0.3, -0.2, 0.1]], "beyond the cutoff": [[0.0, 0, 0], [2.5, 0, 0]],
           "empty": torch.zeros(0, 3)}[case]
    pos = torch.as_tensor(pos, dtype=torch.float64)
    species = torch.arange(pos.shape[0]) % 2
    energy, forces = _energy_and_forces(energy_net, pos, species)
    assert energy.shape == (1, 1) and forces.shape == pos.shape and not forces.any()
    # the per-species reference energies: isolated atoms add up
    if case == "beyond the cutoff":
        alone = [energy_net(pos[i:i + 1], species[i:i + 1]) for i in range(2)]
        torch.testing.assert_close(energy, alone[0] + alone[1])
    # parameter gradients exist (autograd.grad raises on disconnected parameters)
    params = [p for p in energy_net.parameters() if p.requires_grad]
    p = pos.detach().requires_grad_(True)
    grads = torch.autograd.grad(energy_net(p, species).sum(), [p] + params, allow_unused=True)
    assert grads[0] is not None and not grads[0].any()
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_isolated_atom_in_a_batch(energy_net):
    pos = torch.tensor([[0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64)
    species, batch = torch.tensor([1, 0, 1]), torch.tensor([0, 1, 1])
    energy, forces = _energy_and_forces(energy_net, pos, species, batch=batch)
    assert energy.shape == (2, 1) and not forces[0].any() and forces[1:].abs().sum() > 0
    torch.testing.assert_close(energy[0], energy_net(pos[:1], species[:1])[0])


def _crystal(seed=0):
    g = torch.Generator().manual_seed(seed)
    cell = torch.tensor([[2.6, 0.0, 0.0], [0.4, 2.9, 0.0], [0.2, -0.3, 3.1]],
                        dtype=torch.float64)
    pos = torch.rand(3, 3, generator=g, dtype=torch.float64) @ cell
    return pos, torch.tensor([0, 1, 1]), cell


def test_periodic_supercell_is_extensive(energy_net):
    pos, species, cell = _crystal()
    energy, forces = _energy_and_forces(energy_net, pos, species, cell=cell)
    # the 2x1x1 supercell: twice the atoms, twice the energy, the same forces
    pos2 = torch.cat([pos, pos + cell[0]])
    cell2 = torch.cat([2 * cell[:1], cell[1:]])
    energy2, forces2 = _energy_and_forces(energy_net, pos2, species.repeat(2), cell=cell2)
    torch.testing.assert_close(energy2, 2 * energy)
    torch.testing.assert_close(forces2, forces.repeat(2, 1))
    assert forces.abs().max() > 1e-6  # not trivially zero
    # per-atom outputs match too
    energy_net.pool = None
    try:
        per_atom = energy_net(pos, species, cell=cell)
        torch.testing.assert_close(energy_net(pos2, species.repeat(2), cell=cell2),
                                   per_atom.repeat(2, 1))
        # without the cell the crystal is a different (finite) cluster
        assert not torch.allclose(energy_net(pos, species), per_atom)
    finally:
        energy_net.pool = "sum"


def test_periodic_along_some_directions_and_per_graph_cells(energy_net):
    pos, species, cell = _crystal(1)
    slab = energy_net(pos, species, cell=cell, pbc=(True, True, False))
    assert not torch.allclose(slab, energy_net(pos, species, cell=cell))
    both = energy_net(torch.cat([pos, pos]), species.repeat(2),
                      torch.tensor([0, 0, 0, 1, 1, 1]), cell=torch.stack([cell, 1.1 * cell]))
    torch.testing.assert_close(both[0], energy_net(pos, species, cell=cell)[0])
    torch.testing.assert_close(both[1], energy_net(pos, species, cell=1.1 * cell)[0])


def test_precomputed_neighbour_list(energy_net):
    from equinet.graph import radius_graph

    pos, species, cell = _crystal(2)
    energy, forces = _energy_and_forces(energy_net, pos, species, cell=cell)
    # an MD driver's list: a Verlet skin (pairs beyond the cutoff add exactly 0), Cartesian
    # shifts (integer shifts @ cell)
    src, dst, shifts = radius_graph(pos, energy_net.cutoff + 0.7, cell=cell)
    edge_index, edge_shift = torch.stack([src, dst]), shifts @ cell
    assert (pos[dst] - pos[src] + edge_shift).norm(dim=1).max() > energy_net.cutoff
    got = _energy_and_forces(energy_net, pos, species, edge_index=edge_index,
                             edge_shift=edge_shift)
    torch.testing.assert_close(got[0], energy)
    torch.testing.assert_close(got[1], forces)
    src, dst = radius_graph(pos, energy_net.cutoff)
    torch.testing.assert_close(energy_net(pos, species, edge_index=torch.stack([src, dst])),
                               energy_net(pos, species))
    with pytest.raises(ValueError, match="either edge_index"):
        energy_net(pos, species, cell=cell, edge_index=edge_index, edge_shift=edge_shift)
    with pytest.raises(ValueError, match=r"edge_index must be an integer tensor of shape \[2, E\]"):
        energy_net(pos, species, edge_index=edge_index.T)
    with pytest.raises(ValueError, match=r"edge_shift must be a torch.float64 tensor of shape"):
        energy_net(pos, species, edge_index=edge_index, edge_shift=edge_shift[:-1])
    with pytest.raises(ValueError, match="edge_index holds node indices"):
        energy_net(pos, species, edge_index=edge_index + 1)
    with pytest.raises(ValueError, match="without edge_index"):
        energy_net(pos, species, edge_shift=edge_shift)
    with pytest.raises(ValueError, match="num_graphs must be"):
        energy_net(pos, species, torch.tensor([0, 0, 1]), num_graphs=1)
    padded = energy_net(pos, species, torch.tensor([0, 0, 1]), num_graphs=3)
    assert padded.shape == (3, 1) and not padded[2].any()
