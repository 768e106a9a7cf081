"""Labels from PySCF (equinet.chem.labels), checked against PySCF itself and physics."""
import dataclasses

import numpy as np
import pytest

pyscf = pytest.importorskip("pyscf")
from pyscf import dft, gto, lib, scf  # noqa: E402

from equinet.chem.labels import (  # noqa: E402
    PROPERTIES,
    LevelOfTheory,
    SCFNotConverged,
    build_mole,
    compute_labels,
)

Z = [8, 1, 1]
POS = np.array([[0.0, 0.02, 0.1173], [0.0, 0.7572, -0.4692], [0.03, -0.7572, -0.4692]])
DEBYE_PER_AU = 2.541746473  # e * Bohr in Debye
LEVEL = LevelOfTheory("PBE", "def2-SVP", auxbasis="def2-universal-jfit")


@pytest.fixture(scope="module")
def labels():
    return compute_labels(Z, POS, LEVEL)


@pytest.fixture(scope="module")
def oracle():
    """The same calculation run by hand in PySCF."""
    mol = gto.M(atom=[(s, p) for s, p in zip("OHH", POS.tolist())], basis="def2-SVP",
                unit="Angstrom", verbose=0)
    mf = dft.RKS(mol, xc="PBE")
    mf.conv_tol, mf.grids.level = 1e-9, 3
    mf.kernel()
    assert mf.converged
    return mol, mf


def energy(pos):
    return float(compute_labels(Z, pos, LEVEL, ("energy",))["energy"])


def test_keys_shapes_and_units_against_pyscf(labels, oracle):
    mol, mf = oracle
    assert set(PROPERTIES) | {"scf_cycles", "converged"} == set(labels)
    nao = mol.nao
    for key in ("fock", "overlap", "density_matrix", "orbital_coefficients"):
        assert labels[key].shape == (nao, nao)
    assert labels["orbital_energies"].shape == (nao,)
    assert labels["forces"].shape == (3, 3) and labels["dipole"].shape == (3,)
    assert bool(labels["converged"])
    assert int(labels["scf_cycles"]) == mf.cycles
    assert abs(float(labels["energy"]) - mf.e_tot) < 1e-7
    np.testing.assert_allclose(labels["overlap"], mol.intor("int1e_ovlp"), atol=1e-14)
    np.testing.assert_allclose(labels["density_matrix"], mf.make_rdm1(), atol=1e-5)
    grad_bohr = mf.nuc_grad_method().kernel()
    np.testing.assert_allclose(labels["forces"], -grad_bohr / lib.param.BOHR, atol=1e-6)


@pytest.mark.parametrize("atom, axis", [(0, 2), (1, 1)])
def test_forces_are_minus_the_energy_gradient_in_angstrom(labels, atom, axis):
    h = 1e-3
    plus, minus = POS.copy(), POS.copy()
    plus[atom, axis] += h
    minus[atom, axis] -= h
    finite_difference = -(energy(plus) - energy(minus)) / (2 * h)
    assert abs(labels["forces"][atom, axis] - finite_difference) < 1e-4


def test_fock_eigenproblem_and_orbitals(labels):
    f, s = labels["fock"], labels["overlap"]
    c, e = labels["orbital_coefficients"], labels["orbital_energies"]
    np.testing.assert_allclose(f, f.T, atol=1e-12)
    np.testing.assert_allclose(c.T @ s @ c, np.eye(len(e)), atol=1e-8)
    residual = f @ c - s @ c * e
    assert np.abs(residual).max() < 1e-4
    assert np.all(np.diff(e) >= -1e-12)
    # closed shell: D = 2 C_occ C_occ^T, with 5 doubly occupied orbitals for water
    occupied = c[:, :5]
    np.testing.assert_allclose(labels["density_matrix"], 2 * occupied @ occupied.T, atol=1e-10)


def test_density_matrix_traces_to_electron_count(labels):
    assert abs(np.trace(labels["density_matrix"] @ labels["overlap"]) - 10) < 1e-8


def test_dipole_in_debye(labels, oracle):
    mol, mf = oracle
    np.testing.assert_allclose(labels["dipole"], mf.dip_moment(unit="Debye", verbose=0),
                               atol=1e-4)
    # from the definition: mu = sum_A Z_A R_A - tr(D r), in e*Bohr, then Debye
    r = mol.intor("int1e_r")
    nuclear = mol.atom_charges() @ mol.atom_coords(unit="Bohr")
    electronic = np.einsum("xij,ji->x", r, labels["density_matrix"])
    np.testing.assert_allclose(labels["dipole"], (nuclear - electronic) * DEBYE_PER_AU,
                               atol=1e-6)


def test_df_coefficients_present_only_with_auxbasis(labels):
    from pyscf.df import addons

    auxmol = addons.make_auxmol(build_mole(Z, POS, "def2-SVP"), "def2-universal-jfit")
    assert labels["df_coefficients"].shape == (auxmol.nao,)
    plain = compute_labels([1, 1], [[0, 0, 0], [0, 0, 0.74]], LevelOfTheory("HF", "sto-3g"))
    assert "df_coefficients" not in plain


def test_subset_of_properties_and_unknown_property():
    out = compute_labels([1, 1], [[0, 0, 0], [0, 0, 0.74]], LevelOfTheory("HF", "sto-3g"),
                         ("energy",))
    assert set(out) == {"energy", "scf_cycles", "converged"}
    with pytest.raises(ValueError, match="hessian"):
        compute_labels([1, 1], [[0, 0, 0], [0, 0, 0.74]], LevelOfTheory("HF", "sto-3g"),
                       ("hessian",))


def test_hartree_fock_matches_pyscf():
    pos = [[0, 0, 0], [0, 0, 0.74]]
    out = compute_labels([1, 1], pos, LevelOfTheory("HF", "6-31g"), ("energy",))
    mf = scf.RHF(gto.M(atom="H 0 0 0; H 0 0 0.74", basis="6-31g", verbose=0))
    mf.conv_tol = 1e-10
    assert abs(float(out["energy"]) - mf.kernel()) < 1e-8


def test_open_shell_is_unrestricted():
    pos = [[0, 0, 0], [0, 0, 0.97]]
    level = LevelOfTheory("HF", "sto-3g", spin=1)
    out = compute_labels([8, 1], pos, level)
    nao = build_mole([8, 1], pos, "sto-3g", spin=1).nao
    assert out["density_matrix"].shape == (2, nao, nao)
    assert out["fock"].shape == (2, nao, nao)
    assert out["orbital_energies"].shape == (2, nao)
    total = out["density_matrix"].sum(axis=0)
    assert abs(np.trace(total @ out["overlap"]) - 9) < 1e-8
    mf = scf.UHF(build_mole([8, 1], pos, "sto-3g", spin=1))
    mf.conv_tol = 1e-10
    assert abs(float(out["energy"]) - mf.kernel()) < 1e-7


def test_charge_changes_electron_count():
    out = compute_labels(Z, POS, LevelOfTheory("HF", "sto-3g", charge=1, spin=1),
                         ("density_matrix", "overlap"))
    assert abs(np.trace(out["density_matrix"].sum(0) @ out["overlap"]) - 9) < 1e-8


def test_unconverged_scf_raises():
    with pytest.raises(SCFNotConverged) as info:
        compute_labels(Z, POS, LevelOfTheory(basis="def2-SVP", max_cycle=1))
    assert info.value.cycles == 1
    assert "1 cycles" in str(info.value)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_unknown_element_and_basis_are_clear_errors():
    with pytest.raises(ValueError, match="atomic number 119"):
        build_mole([1, 119], [[0, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="atomic number 0"):
        build_mole([0], [[0, 0, 0]])
    with pytest.raises(ValueError, match="no-such-basis"):
        build_mole(Z, POS, "no-such-basis")
    with pytest.raises(ValueError, match="Au"):
        build_mole([79, 1], [[0, 0, 0], [0, 0, 1.5]], "6-31g")
    with pytest.raises(ValueError, match="shape|pos"):
        build_mole([1, 1], [[0, 0, 0]])
    with pytest.raises(ValueError):
        LevelOfTheory(basis="no-such-basis").build_mole([1], [[0, 0, 0]])


def test_build_mole_geometry_in_angstrom():
    mol = build_mole(Z, POS, "sto-3g")
    np.testing.assert_allclose(mol.atom_coords(unit="Angstrom"), POS, atol=1e-12)
    assert list(mol.atom_charges()) == Z


def test_level_of_theory_is_a_frozen_record():
    level = LevelOfTheory(xc="B3LYP", auxbasis="def2-universal-jkfit")
    d = level.as_dict()
    assert d == {"xc": "B3LYP", "basis": "def2-SVP", "auxbasis": "def2-universal-jkfit",
                 "charge": 0, "spin": 0, "conv_tol": 1e-9, "max_cycle": 100, "grids_level": 3}
    assert LevelOfTheory.from_dict(d) == level and hash(level) == hash(LevelOfTheory(**d))
    with pytest.raises(dataclasses.FrozenInstanceError):
        level.xc = "PBE"
    assert LevelOfTheory("hf").is_hf and not level.is_hf


def test_impossible_charge_or_spin_is_a_clear_error():
    with pytest.raises(ValueError, match="spin 0"):
        build_mole([8, 1], [[0, 0, 0], [0, 0, 0.97]], "sto-3g")
    with pytest.raises(ValueError, match="charge"):
        build_mole([1], [[0, 0, 0]], "sto-3g", charge=2)
