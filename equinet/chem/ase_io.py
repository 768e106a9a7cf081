"""ASE ``Atoms`` to and from PySCF ``Mole`` and plain arrays; positions always in Angstrom.

ASE and PySCF are imported lazily (``pip install equinet[chem]``).
"""
from typing import Tuple

import numpy as np

__all__ = ["atoms_to_arrays", "atoms_to_mole", "element_symbol", "mole_to_atoms"]

_MAX_Z = 118


def _import_ase():
    try:
        import ase
    except ImportError as error:  # pragma: no cover - ase is part of the chem extra
        raise ImportError("equinet.chem.ase_io needs ASE: pip install equinet[chem]") from error
    return ase


def _import_gto():
    try:
        import pyscf.gto
    except ImportError as error:  # pragma: no cover - pyscf is part of the chem extra
        raise ImportError("equinet.chem.ase_io needs PySCF: pip install equinet[chem]") from error
    return pyscf.gto


def element_symbol(mol, i: int) -> str:
    """The element of atom ``i`` of a PySCF ``Mole``: labels (``H@2``) and ghost prefixes
    (``ghost-H``, ``X-H``) removed.

    >>> from pyscf import gto
    >>> mol = gto.M(atom="O 0 0 0; ghost-H 0 0 1; H@2 0 1 0", basis="sto-3g", spin=1)
    >>> [element_symbol(mol, i) for i in range(mol.natm)]
    ['O', 'H', 'H']
    """
    from pyscf.data import elements

    symbol = mol.atom_pure_symbol(i)
    # PySCF's own parser of ghost prefixes; private, hence the fallback
    strip = getattr(elements, "_std_symbol_without_ghost", None)
    if strip is not None:
        return strip(symbol)
    return symbol.split("-")[-1].split(":")[-1].capitalize()  # pragma: no cover


def atoms_to_arrays(atoms) -> Tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions of an ASE ``Atoms``.

    Parameters
    ----------
    atoms : ase.Atoms

    Returns
    -------
    z : numpy.ndarray
        ``int64 [n]``, atomic numbers (1..118; anything else raises ``ValueError``).
    pos : numpy.ndarray
        ``float64 [n, 3]``, positions in Angstrom (a copy).

    Examples
    --------
    >>> from ase import Atoms
    >>> z, pos = atoms_to_arrays(Atoms("OH2", positions=[[0, 0, 0], [0, .76, .59], [0, -.76, .59]]))
    >>> z, pos.dtype, pos.shape
    (array([8, 1, 1]), dtype('float64'), (3, 3))
    """
    z = np.asarray(atoms.get_atomic_numbers(), dtype=np.int64).copy()
    bad = (z < 1) | (z > _MAX_Z)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"atom {i} has atomic number {int(z[i])} ({atoms[i].symbol!r}), "
                         f"which is not an element (1..{_MAX_Z})")
    pos = np.asarray(atoms.get_positions(), dtype=np.float64).copy()
    return z, pos


def atoms_to_mole(atoms, basis, charge: int = 0, spin: int = 0, **kwargs):
    """A built PySCF ``Mole`` with the atoms of an ASE ``Atoms`` (Angstrom).

    Parameters
    ----------
    atoms : ase.Atoms
        Elements and positions (Angstrom); the cell and periodicity are ignored.
    basis : str or dict
        Any basis PySCF accepts; an unknown name or an element missing from it
        raises PySCF's ``BasisNotFoundError``.
    charge, spin : int
        Total charge and :math:`2S` (number of unpaired electrons).
    **kwargs
        Passed on to ``pyscf.gto.M`` (e.g. ``cart``, ``verbose``, ``symmetry``).

    Examples
    --------
    >>> from ase import Atoms
    >>> water = Atoms("OH2", positions=[[0, 0, 0], [0, .76, .59], [0, -.76, .59]])
    >>> mol = atoms_to_mole(water, basis="sto-3g")
    >>> mol.nao, mol.nelectron, mol.unit
    (7, 10, 'Angstrom')
    """
    gto = _import_gto()
    z, pos = atoms_to_arrays(atoms)
    kwargs.setdefault("verbose", 0)
    atom = [(int(zi), tuple(float(c) for c in p)) for zi, p in zip(z, pos)]
    return gto.M(atom=atom, basis=basis, charge=charge, spin=spin, unit="Angstrom", **kwargs)


def mole_to_atoms(mol):
    """An ASE ``Atoms`` with the elements and positions (Angstrom) of a PySCF ``Mole``.

    Ghost atoms become their element. The charge and spin are kept in
    ``atoms.info["charge"]`` and ``atoms.info["spin"]``.

    Examples
    --------
    >>> from pyscf import gto
    >>> mol = gto.M(atom="O 0 0 0; H 0 .76 .59; H 0 -.76 .59", basis="sto-3g")
    >>> atoms = mole_to_atoms(mol)
    >>> atoms.get_chemical_formula(), atoms.positions[1].round(2), atoms.info
    ('H2O', array([0.  , 0.76, 0.59]), {'charge': 0, 'spin': 0})
    """
    ase = _import_ase()
    symbols = [element_symbol(mol, i) for i in range(mol.natm)]
    positions = np.asarray(mol.atom_coords(unit="Angstrom"), dtype=np.float64)
    atoms = ase.Atoms(symbols=symbols, positions=positions)
    atoms.info["charge"] = int(mol.charge)
    atoms.info["spin"] = int(mol.spin)
    return atoms
