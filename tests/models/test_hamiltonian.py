"""The Hamiltonian network (equinet.models.hamiltonian): equivariance through the geometry."""
import numpy as np
import pytest
import torch

from equinet.models import HamiltonianNetwork
from equinet.o3 import rand_matrix

pytest.importorskip("pyscf")
from equinet.chem import BasisLayout, build_mole  # noqa: E402
from equinet.models.matrix_head import block_irreps, species_shells  # noqa: E402

WATER = torch.tensor([[0.0, 0.02, 0.1173], [0.0, 0.7572, -0.4692], [0.03, -0.7572, -0.4692]],
                     dtype=torch.float64)
SPECIES = torch.tensor([0, 1, 1])  # O, H, H


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return HamiltonianNetwork(species_shells(["O", "H"], "def2-SVP"), mul=4).double()


@pytest.fixture(scope="module")
def layout():
    return BasisLayout(build_mole([8, 1, 1], WATER.numpy(), "def2-SVP"))


def test_species_shells_match_the_layout(layout):
    o, h = species_shells(["O", "H"], "def2-SVP")
    assert layout.atom_shells == (o, h, h)
    assert block_irreps(layout, 0) == block_irreps(o)
    assert block_irreps(layout, 0, 2) == block_irreps(o, h) != block_irreps(h, h)


def test_equivariance_with_inversion(net, layout):
    h = net(WATER, SPECIES)
    assert h.shape == (layout.nao, layout.nao) and torch.equal(h, h.T)
    for sign in (1, -1):
        r = sign * rand_matrix(dtype=torch.float64)
        d = layout.irreps.D_from_matrix(r)
        shift = torch.randn(3, dtype=torch.float64)
        rotated = net(WATER @ r.T + shift, SPECIES)
        error = (rotated - d @ h @ d.T).abs().max()
        assert error < 1e-12 * h.abs().max()
    # the check can fail: a wrong D (no inversion) does not fit the inverted geometry
    r = rand_matrix(dtype=torch.float64)
    d_wrong = layout.irreps.D_from_matrix(r)
    assert (net(-WATER @ r.T, SPECIES) - d_wrong @ h @ d_wrong.T).abs().max() > 1e-4


def test_batch_pyscf_order_and_cutoff(net, layout):
    pos = torch.cat([WATER, WATER + torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)])
    species, batch = torch.cat([SPECIES, SPECIES]), torch.tensor([0, 0, 0, 1, 1, 1])
    h1, h2 = net(pos, species, batch)
    torch.testing.assert_close(h1, h2, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, net(WATER, SPECIES), atol=1e-12, rtol=0)
    pyscf_order = net(WATER, SPECIES, layouts=layout)
    torch.testing.assert_close(pyscf_order, layout.to_pyscf(h1, kind="matrix"))
    with pytest.raises(ValueError, match="one layout per molecule"):
        net(pos, species, batch, layouts=[layout])
    # atoms farther apart than the cutoff have a zero block
    far = WATER.clone()
    far[2] += torch.tensor([net.cutoff + 1.0, 0.0, 0.0], dtype=torch.float64)
    h_far = net(far, SPECIES)
    assert h_far[layout.atom_slices[0], layout.atom_slices[2]].abs().max() == 0
    assert h_far[layout.atom_slices[0], layout.atom_slices[1]].abs().max() > 0


def test_learns_the_fock_matrix(layout):
    """A few optimiser steps reduce the error: gradients reach every part of the network."""
    from equinet.chem import LevelOfTheory, compute_labels

    fock = compute_labels([8, 1, 1], WATER.numpy(), LevelOfTheory("PBE", "def2-SVP"),
                          ("fock",))["fock"]
    target = torch.from_numpy(layout.to_equinet(fock, kind="matrix")).float()
    torch.manual_seed(0)
    net = HamiltonianNetwork(species_shells(["O", "H"], "def2-SVP"), mul=4)
    pos = WATER.float()
    start = (net(pos, SPECIES) - target).pow(2).mean().item()
    # the diagonal scalars (core energies) dominate: start from their mean per species
    node, _ = net.head.decompose(target, SPECIES)
    net.head.initialize_node_bias(node, SPECIES)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = (net(pos, SPECIES) - target).pow(2).mean()
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert losses[0] < 0.2 * start
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None for p in net.parameters())


def test_errors():
    shells = species_shells(["O", "H"], "def2-SVP")
    with pytest.raises(ValueError, match="add layers"):
        HamiltonianNetwork(shells, num_layers=1)
    with pytest.raises(ValueError, match="mul"):
        HamiltonianNetwork(shells, mul=0)
    net = HamiltonianNetwork(shells, mul=2)
    with pytest.raises(ValueError, match="species"):
        net(WATER.float(), torch.tensor([0, 1, 2]))
    assert np.isfinite(net(WATER.float(), SPECIES).detach().numpy()).all()
