"""The SCF guess from a fitted density: its Fock matrix and the SCF cycles it saves."""
import numpy as np
import pytest

pytest.importorskip("pyscf")

from equinet.chem import LevelOfTheory, build_mole, fit_density, run_scf  # noqa: E402
from equinet.chem.guess import density_fock, density_guess, scf_cycles_from_guess  # noqa: E402

LEVEL = LevelOfTheory("PBE", "def2-SVP")
AUXBASIS = "def2-universal-jfit"
POS = np.array([[0.000, 0.000, 0.000], [0.757, 0.586, 0.000], [-0.757, 0.586, 0.000],
                [0.300, -0.600, 2.900], [1.000, -0.100, 3.300], [-0.350, -0.950, 3.520]])
Z = [8, 1, 1, 8, 1, 1]


@pytest.fixture(scope="module")
def dimer():
    mol = LEVEL.build_mole(Z, POS)
    mf = run_scf(mol, LEVEL)
    dm = mf.make_rdm1()
    c, auxmol = fit_density(mol, dm, AUXBASIS)
    return mol, mf, dm, c, auxmol


def test_fock_of_the_fit_is_close_to_the_converged_fock(dimer):
    mol, mf, dm, c, auxmol = dimer
    fock, parts = density_fock(mol, c, auxmol, "PBE", return_parts=True)
    converged = mf.get_fock(dm=dm)
    assert np.allclose(fock, fock.T)
    # measured 7e-4 (jfit's fitting error); a wrong J, V_xc or AO order is off by > 0.1
    assert np.abs(fock - converged).max() < 5e-3
    assert np.abs(parts["j"] - mf.get_j(dm=dm)).max() < 2e-3
    assert np.abs(parts["vxc"] - (converged - parts["h"] - mf.get_j(dm=dm))).max() < 5e-3
    assert abs(parts["electrons"] - 20) < 0.02  # the fit's charge on the DFT grid
    # the orbital energies of the fitted density's Fock matrix match the SCF's
    import scipy.linalg
    energies = scipy.linalg.eigh(fock, mol.intor("int1e_ovlp"), eigvals_only=True)
    assert np.abs(energies[:10] - mf.mo_energy[:10]).max() < 2e-3


def test_guess_from_the_exact_fit_saves_cycles_against_minao(dimer):
    mol, _, _, c, auxmol = dimer
    dm0 = density_guess(mol, c, auxmol, "PBE")
    s = mol.intor("int1e_ovlp")
    assert abs(np.trace(dm0 @ s) - 20) < 1e-10
    np.testing.assert_allclose(dm0 @ s @ dm0, 2 * dm0, atol=1e-10)  # idempotent, closed shell
    minao = scf_cycles_from_guess(mol, LEVEL, "minao")
    fitted = scf_cycles_from_guess(mol, LEVEL, dm0)
    # measured: minao 9, fitted 4 (the issue: 8-9 against 4-5)
    assert fitted is not None and minao is not None
    assert fitted < minao and fitted <= 6, (fitted, minao)


def test_hartree_fock_fock_is_core_plus_coulomb():
    from pyscf import scf

    mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    mf = scf.RHF(mol).run(verbose=0)
    dm = mf.make_rdm1()
    c, auxmol = fit_density(mol, dm, AUXBASIS)
    fock = density_fock(mol, c, auxmol, "HF")
    np.testing.assert_allclose(fock, mf.get_hcore() + mf.get_j(dm=dm), atol=1e-3)


def test_cycles_none_when_not_converged_and_errors():
    level = LevelOfTheory("HF", "sto-3g", max_cycle=1, conv_tol=1e-12)
    mol = level.build_mole([8, 1, 1], POS[:3])
    assert scf_cycles_from_guess(mol, level, "1e") is None
    radical = build_mole([1], [[0, 0, 0]], "sto-3g", spin=1)
    with pytest.raises(ValueError, match="closed shell"):
        density_guess(radical, np.zeros(1), radical)
    with pytest.raises(ValueError, match="c must be"):
        density_fock(mol, np.zeros(3), mol, "HF")
