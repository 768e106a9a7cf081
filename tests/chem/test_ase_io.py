"""ASE <-> PySCF <-> arrays: round trips keep elements and Angstrom positions."""
import numpy as np
import pytest

pytest.importorskip("pyscf")
ase = pytest.importorskip("ase")
from pyscf import gto  # noqa: E402

from equinet.chem.ase_io import atoms_to_arrays, atoms_to_mole, mole_to_atoms  # noqa: E402

BOHR = 0.52917721092  # PySCF's value (pyscf.lib.param.BOHR)


@pytest.fixture
def fcon():
    positions = [[1.15, -0.65, 0.05], [0, 0, 0], [0.02, 1.19, -0.03], [-1.17, -0.68, 0.04],
                 [-2.05, -0.20, 0.02], [-1.15, -1.69, -0.06]]
    return ase.Atoms("FCONH2", positions=positions)


def test_atoms_to_arrays(fcon):
    z, pos = atoms_to_arrays(fcon)
    assert z.dtype == np.int64 and pos.dtype == np.float64 and pos.shape == (6, 3)
    np.testing.assert_array_equal(z, [9, 6, 8, 7, 1, 1])
    np.testing.assert_array_equal(pos, fcon.positions)
    pos[0, 0] = 99.0  # a copy: the Atoms is untouched
    assert fcon.positions[0, 0] == 1.15


def test_atoms_to_mole_is_in_angstrom(fcon):
    mol = atoms_to_mole(fcon, basis="sto-3g")
    assert mol.unit.lower().startswith("a") and mol.nelectron == 9 + 6 + 8 + 7 + 2
    assert [mol.atom_pure_symbol(i) for i in range(mol.natm)] == ["F", "C", "O", "N", "H", "H"]
    np.testing.assert_allclose(mol.atom_coords(unit="Angstrom"), fcon.positions, atol=1e-12)
    # independent of PySCF's unit handling: Bohr coordinates are Angstrom / 0.529...
    np.testing.assert_allclose(mol.atom_coords() * BOHR, fcon.positions, atol=1e-8)


def test_atoms_to_mole_charge_spin_and_kwargs(fcon):
    mol = atoms_to_mole(fcon, basis="def2-svp", charge=1, spin=1, cart=True)
    assert (mol.charge, mol.spin, mol.cart) == (1, 1, True)
    assert mol.nelectron == 31


def test_round_trip(fcon):
    back = mole_to_atoms(atoms_to_mole(fcon, basis="sto-3g", charge=-1, spin=1))
    assert back.get_chemical_symbols() == fcon.get_chemical_symbols()
    np.testing.assert_allclose(back.positions, fcon.positions, atol=1e-12)
    assert back.info == {"charge": -1, "spin": 1}
    z, pos = atoms_to_arrays(back)
    np.testing.assert_array_equal(z, fcon.numbers)


def test_mole_to_atoms_from_bohr_and_ghosts():
    mol = gto.M(atom="O 0 0 0; ghost-H 0 0 1.5; H 1.5 0 0", unit="Bohr", basis="sto-3g",
                spin=1, verbose=0)
    atoms = mole_to_atoms(mol)
    assert atoms.get_chemical_symbols() == ["O", "H", "H"]
    np.testing.assert_allclose(atoms.positions[2], [1.5 * BOHR, 0, 0], atol=1e-8)


def test_unknown_element_is_named():
    with pytest.raises(ValueError, match="atom 1 has atomic number 0"):
        atoms_to_arrays(ase.Atoms(numbers=[8, 0], positions=np.zeros((2, 3))))
    with pytest.raises(ValueError, match="not an element"):
        atoms_to_mole(ase.Atoms(numbers=[0], positions=np.zeros((1, 3))), basis="sto-3g")


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_unknown_basis_is_named(fcon):
    from pyscf.lib.exceptions import BasisNotFoundError

    with pytest.raises(BasisNotFoundError, match="no-such-basis"):
        atoms_to_mole(fcon, basis="no-such-basis")
