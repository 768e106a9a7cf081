"""DensityNetwork: layout of its outputs, exact equivariance, electron count, a training step."""
import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")
from pyscf.df.addons import make_auxmol  # noqa: E402

from equinet.chem import BasisLayout, aux_integrals, build_mole  # noqa: E402
from equinet.chem.atomic_reference import molecule_reference  # noqa: E402
from equinet.chem.coulomb import coulomb_loss, coulomb_metric  # noqa: E402
from equinet.models.density import DensityNetwork  # noqa: E402
from equinet.o3 import rand_matrix  # noqa: E402

BASIS, AUXBASIS = "def2-SVP", "def2-universal-jfit"
# a water dimer (Angstrom), atoms O H H O H H
POS = np.array([[0.000, 0.000, 0.000], [0.757, 0.586, 0.000], [-0.757, 0.586, 0.000],
                [0.300, -0.600, 2.900], [1.000, -0.100, 3.300], [-0.350, -0.950, 3.520]])
Z = [8, 1, 1, 8, 1, 1]
ELEMENTS = ["H", "O"]
SPECIES = torch.tensor([1, 0, 0, 1, 0, 0])


@pytest.fixture(scope="module")
def dimer():
    mol = build_mole(Z, POS, BASIS)
    auxmol = make_auxmol(mol, AUXBASIS)
    return mol, auxmol, BasisLayout(auxmol)


def _net(**kwargs):
    torch.manual_seed(0)
    options = dict(lmax_hidden=4, mul=4, num_layers=1, radial_hidden=(16,))
    options.update(kwargs)
    return DensityNetwork.from_basis(ELEMENTS, BASIS, AUXBASIS, "PBE", **options).double()


def test_layout_is_the_molecules_auxiliary_basis(dimer):
    """With the heads at zero the output is the superposition of atoms in auxmol's layout."""
    _, auxmol, layout = dimer
    net = _net()
    with torch.no_grad():
        for head in net.heads:
            for parameter in head.parameters():
                parameter.zero_()
    c = net(torch.tensor(POS), SPECIES)
    assert c.shape == (layout.nao,)
    expected = molecule_reference(auxmol, BASIS, AUXBASIS, "PBE", order="equinet")
    np.testing.assert_allclose(c.detach().numpy(), expected, atol=1e-12, rtol=0)
    # and PySCF's order through the layout
    q = aux_integrals(auxmol)
    assert abs(layout.to_pyscf(c.detach().numpy(), kind="vector") @ q - 20) < 1e-10


def test_equivariant_under_rotations_and_inversion(dimer):
    _, _, layout = dimer
    net = _net(output_scale=1.0)
    pos = torch.tensor(POS)
    c = net(pos, SPECIES)
    assert c.abs()[layout.irreps.slices()[2]].max() > 1e-3  # l > 0 outputs are not trivially 0
    for sign in (1.0, -1.0):
        rotation = sign * rand_matrix(dtype=torch.float64)
        d = layout.irreps.D_from_matrix(rotation)
        shift = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
        rotated = net(pos @ rotation.T + shift, SPECIES)
        error = (rotated - d @ c).abs().max().item()
        assert error < 1e-10, error


def test_electron_count_is_exact_per_molecule(dimer):
    net = _net(output_scale=1.0)
    pos = torch.tensor(POS)
    monomer_pos = pos[:3] + 10.0
    # a batch: the dimer as an anion (charge -1, 21 electrons) and one neutral monomer
    all_pos = torch.cat([pos, monomer_pos])
    species = torch.cat([SPECIES, SPECIES[:3]])
    batch = torch.tensor([0] * 6 + [1] * 3)
    c = net(all_pos, species, batch, charge=torch.tensor([-1.0, 0.0]))
    parts = net.split(c, species, batch)
    q = net.coefficient_integrals(species).double()
    q_parts = net.split(q, species, batch)
    assert [len(p) for p in parts] == [dimer[2].nao, dimer[2].atom_slices[2].stop]
    counts = [float(a.detach() @ b) for a, b in zip(parts, q_parts)]
    assert abs(counts[0] - 21) < 1e-10 and abs(counts[1] - 10) < 1e-10, counts
    # the raw (unconstrained) count is not exact, so the constraint did something
    raw = _net(output_scale=1.0, conserve=False)(pos, SPECIES)
    assert abs(float(raw.detach() @ q_parts[0]) - 20) > 1e-3
    # and it is differentiable
    c.sum().backward()


def test_a_few_optimizer_steps_lower_the_coulomb_loss(dimer):
    from pyscf import scf

    mol, auxmol, layout = dimer
    dm = scf.RHF(build_mole(Z, POS, "sto-3g")).run(verbose=0).make_rdm1()  # a cheap target
    from equinet.chem import fit_density

    target, small_aux = fit_density(build_mole(Z, POS, "sto-3g"), dm, AUXBASIS)
    target = torch.tensor(BasisLayout(small_aux).to_equinet(target, kind="vector"))
    metric = torch.tensor(coulomb_metric(auxmol, order="equinet"))
    net = _net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    pos = torch.tensor(POS)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = coulomb_loss(net(pos, SPECIES), target, metric)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_rejects_bad_layouts():
    with pytest.raises(ValueError, match="lmax_hidden"):
        DensityNetwork(["H"], ["1x3o"], integrals=[np.zeros(7)], lmax_hidden=2)
    with pytest.raises(ValueError, match="l\\^"):
        DensityNetwork(["H"], ["1x1e"], integrals=[np.zeros(3)], lmax_hidden=2)
    with pytest.raises(ValueError, match="integrals"):
        DensityNetwork(["H"], ["1x0e"], lmax_hidden=1)
