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
