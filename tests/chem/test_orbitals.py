"""Post-processing of Fock matrices (equinet.chem.orbitals), checked against PySCF."""
import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")

from equinet.chem import BasisLayout, LevelOfTheory, run_scf  # noqa: E402
from equinet.chem.orbitals import (  # noqa: E402
    density_matrix,
    generalized_eigh,
    hamiltonian_metrics,
    scf_from_hamiltonian,
    total_energy,
)

Z = [8, 1, 1]
POS = np.array([[0.0, 0.02, 0.1173], [0.0, 0.7572, -0.4692], [0.03, -0.7572, -0.4692]])
LEVEL = LevelOfTheory("PBE", "def2-SVP", conv_tol=1e-11)


@pytest.fixture(scope="module")
def water():
    mol = LEVEL.build_mole(Z, POS)
    mf = run_scf(mol, LEVEL)
    fock = mf.get_fock(dm=mf.make_rdm1())
    return mol, mf, fock, mol.intor_symmetric("int1e_ovlp")


def test_orbital_energies_and_energy_match_pyscf(water):
    mol, mf, fock, s = water
    e, c = generalized_eigh(fock, s)
    np.testing.assert_allclose(e, mf.eig(fock, s)[0], atol=1e-11)  # PySCF's own solver
    np.testing.assert_allclose(e, mf.mo_energy, atol=1e-6)  # (its last Fock: conv_tol)
    np.testing.assert_allclose(c.T @ s @ c, np.eye(mol.nao), atol=1e-10)
    nocc = mol.nelectron // 2
    dm = density_matrix(c, nocc)
    np.testing.assert_allclose(dm, mf.make_rdm1(), atol=1e-6)
    assert abs(float(total_energy(mol, dm, LEVEL)) - mf.e_tot) < 1e-9
    # a wrong Fock matrix gives a higher energy (variational): the check can fail
    _, c_bad = generalized_eigh(fock + 0.01 * np.diag(np.arange(mol.nao)), s)
    assert float(total_energy(mol, density_matrix(c_bad, nocc), LEVEL)) > mf.e_tot + 1e-6


def test_equinet_order_and_batch_agree(water):
    mol, mf, fock, s = water
    layout = BasisLayout(mol)
    f_eq, s_eq = layout.to_equinet(fock, "matrix"), layout.to_equinet(s, "matrix")
    h = torch.stack([torch.from_numpy(f_eq), torch.from_numpy(f_eq) + 0.001])
    e, c = generalized_eigh(h, torch.from_numpy(s_eq).expand(2, -1, -1))
    np.testing.assert_allclose(e[0].numpy(), mf.eig(fock, s)[0], atol=1e-11)
    dms = density_matrix(c, mol.nelectron // 2)
    energies = total_energy([mol, mol], [layout.to_pyscf(d, "matrix") for d in dms], LEVEL)
    assert energies.shape == (2,)
    assert abs(energies[0] - mf.e_tot) < 1e-9


def test_metrics(water):
    mol, mf, fock, s = water
    nocc = mol.nelectron // 2
    exact = hamiltonian_metrics(fock, fock, s, nocc)
    assert exact == {"hamiltonian_mae": 0.0, "orbital_energy_mae": 0.0,
                     "orbital_cosine": pytest.approx(1.0, abs=1e-12)}
    # water's occupied orbital energies are far from degenerate
    assert np.diff(mf.mo_energy[:nocc]).min() > 0.05  # 2 eV apart at least
    noise = np.random.default_rng(0).normal(scale=1e-3, size=fock.shape)
    noisy = hamiltonian_metrics(fock + (noise + noise.T) / 2, fock, s, nocc)
    assert 100 < noisy["hamiltonian_mae"] < 2000
    assert 10 < noisy["orbital_energy_mae"] < 5000
    assert 0.99 < noisy["orbital_cosine"] < 1.0
    # a sign flip of a predicted orbital does not matter
    e, c = generalized_eigh(fock, s)
    c[:, 0] *= -1
    overlap = np.abs(np.einsum("mk,mn,nk->k", c[:, :nocc], s, c[:, :nocc]))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-10)


def test_guess_from_exact_fock_converges_faster(water):
    mol, mf, fock, s = water
    level = LevelOfTheory("PBE", "def2-SVP", conv_tol=1e-9)
    mf_minao, minao = scf_from_hamiltonian(mol, level)
    mf_h, cycles = scf_from_hamiltonian(mol, level, h=fock)
    assert mf_minao.converged and mf_h.converged
    assert cycles <= 2 < minao
    assert abs(mf_h.e_tot - mf.e_tot) < 1e-7
    with pytest.raises(ValueError):
        scf_from_hamiltonian(mol, level, h=fock, dm0=mf.make_rdm1())
