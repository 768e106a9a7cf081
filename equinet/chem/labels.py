r"""Labelled data from PySCF: energies, forces, dipoles and AO matrices of one geometry.

A :class:`LevelOfTheory` names the method (functional or Hartree-Fock), the
basis, charge and spin, and the SCF settings; :func:`compute_labels` runs the
SCF for one geometry and returns the requested properties as numpy arrays.

Units and order
---------------
========================  =============================  ==========================
key                       shape (restricted)             unit
========================  =============================  ==========================
``energy``                ``()``                         Hartree
``forces``                ``(n_atoms, 3)``               Hartree / Angstrom
``dipole``                ``(3,)``                       Debye
``fock``                  ``(nao, nao)``                 Hartree
``overlap``               ``(nao, nao)``                 dimensionless
``density_matrix``        ``(nao, nao)``                 electrons
``orbital_energies``      ``(nao,)``                     Hartree
``orbital_coefficients``  ``(nao, nmo)``, columns = MOs  dimensionless
``df_coefficients``       ``(naux,)``                    electrons (see below)
``scf_cycles``            ``()``                         int
``converged``             ``()``                         bool (always True)
========================  =============================  ==========================

The forces are ``F = -dE/dR`` with ``R`` in Angstrom (PySCF's gradients are in
Hartree/Bohr; ``F = -grad / 0.529177...``). The dipole is
:math:`\sum_A Z_A R_A - \mathrm{tr}(D\, r)` about the origin of ``pos`` (origin
dependent for ions), converted from e*Bohr to Debye (1 e*Bohr = 2.541746 D). All
AO matrices are in PySCF's AO order (``equinet.chem.BasisLayout`` maps them to
equinet's irreps order); the density matrix is the total one, ``tr(D S) = N``.
For an open shell (``spin != 0``) the SCF is unrestricted and ``fock``, ``density_matrix``,
``orbital_energies`` and ``orbital_coefficients`` gain a leading axis of size 2
(alpha, beta). ``df_coefficients`` (only when ``level.auxbasis`` is set) fit the
total density in the Coulomb metric, see :func:`equinet.chem.density.fit_density`.

PySCF is imported lazily: this module imports without it (``pip install equinet[chem]``).
"""
import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = [
    "LevelOfTheory",
    "SCFNotConverged",
    "build_mole",
    "compute_labels",
    "run_scf",
    "PROPERTIES",
]

PROPERTIES = (
    "energy",
    "forces",
    "dipole",
    "fock",
    "overlap",
    "density_matrix",
    "orbital_energies",
    "orbital_coefficients",
    "df_coefficients",
)



def _pyscf():
    try:
        import pyscf  # noqa: F401
        from pyscf import gto
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "equinet.chem needs PySCF: install equinet[chem] (pip install 'equinet[chem]')"
        ) from error
    return gto


class SCFNotConverged(RuntimeError):
    """The SCF did not converge; no labels are returned.

    Attributes
    ----------
    cycles : int
        SCF cycles run before giving up.
    level : LevelOfTheory or None
        The level of theory of the failed calculation.
    """

    def __init__(self, message, cycles=None, level=None):
        super().__init__(message)
        self.cycles = cycles
        self.level = level


def build_mole(z, pos, basis="def2-SVP", charge=0, spin=0):
    """Build a PySCF ``Mole`` from atomic numbers and positions in Angstrom.

    Parameters
    ----------
    z : sequence of int
        Atomic numbers, shape ``(n,)``.
    pos : array_like
        Positions in Angstrom, shape ``(n, 3)``.
    basis : str
        Any basis PySCF knows (e.g. ``"def2-SVP"``, ``"sto-3g"``).
    charge, spin : int
        Total charge and ``2S`` (number of unpaired electrons).

    Returns
    -------
    pyscf.gto.Mole
        Built, ``unit="Angstrom"``, ``verbose=0``.

    Raises
    ------
    ValueError
        For an unknown element, a basis PySCF does not know or that lacks an
        element, mismatched shapes, or a charge/spin that the electron count
        cannot have.

    Examples
    --------
    >>> mol = build_mole([8, 1, 1], [[0, 0, 0], [0, 0.757, 0.587], [0, -0.757, 0.587]], "sto-3g")
    >>> mol.nao, mol.nelectron
    (7, 10)
    """
    gto = _pyscf()
    from pyscf.data import elements

    try:
        from pyscf.lib.exceptions import BasisNotFoundError
    except ImportError:  # pragma: no cover - older PySCF raise KeyError or RuntimeError
        BasisNotFoundError = RuntimeError

    z = np.asarray(z)
    pos = np.asarray(pos, dtype=np.float64)
    if z.ndim != 1 or pos.shape != (len(z), 3):
        raise ValueError(f"z must be (n,) and pos (n, 3); got {z.shape} and {pos.shape}")
    if len(z) == 0:
        raise ValueError("a molecule needs at least one atom")
    if not np.all(np.equal(np.mod(z, 1), 0)):
        raise ValueError(f"atomic numbers must be integers, got {z.tolist()}")
    symbols = []
    for number in z.astype(int).tolist():
        if not 1 <= number < len(elements.ELEMENTS):
            raise ValueError(f"unknown element: atomic number {number}")
        symbols.append(elements.ELEMENTS[number])
    if not isinstance(basis, str) and not isinstance(basis, dict):
        raise ValueError(f"basis must be a name (str) or a PySCF basis dict, got {basis!r}")

    electrons = int(z.sum()) - int(charge)
    if electrons < 0 or abs(int(spin)) > electrons or (electrons - int(spin)) % 2:
        raise ValueError(
            f"charge {charge} and spin {spin} (2S = N_alpha - N_beta, not 2S+1) are not "
            f"possible with {electrons} electrons"
        )
    mol = gto.Mole()
    mol.atom = [(s, tuple(p)) for s, p in zip(symbols, pos.tolist())]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.charge = int(charge)
    mol.spin = int(spin)
    mol.verbose = 0
    mol.output = None
    try:
        mol.build(dump_input=False, parse_arg=False)
    except (KeyError, BasisNotFoundError) as error:
        # PySCF raises BasisNotFoundError (a RuntimeError) for unknown names and
        # for basis sets that lack one of the elements; KeyError in older versions.
        raise ValueError(
            f"basis {basis!r} is unknown to PySCF or has no functions for one of "
            f"{sorted(set(symbols))}: {error}"
        ) from error
    for i, symbol in enumerate(symbols):
        if not mol._basis.get(mol.atom_symbol(i)):
            raise ValueError(f"basis {basis!r} has no functions for element {symbol}")
    return mol


@dataclasses.dataclass(frozen=True)
class LevelOfTheory:
    """Method, basis and SCF settings of a calculation.

    Parameters
    ----------
    xc : str
        Any PySCF exchange-correlation functional (``"PBE"``, ``"B3LYP"``, ...),
        or ``"HF"`` for Hartree-Fock.
    basis : str
        AO basis.
    auxbasis : str, optional
        Auxiliary basis (e.g. ``"def2-universal-jfit"``); when set,
        :func:`compute_labels` also returns ``df_coefficients``.
    charge : int
        Total charge.
    spin : int
        ``2S``; 0 runs restricted closed-shell SCF, otherwise unrestricted.
    conv_tol : float
        SCF energy convergence threshold (Hartree).
    max_cycle : int
        Maximum number of SCF cycles.
    grids_level : int
        PySCF's DFT integration grid level (0-9); unused for HF.

    Examples
    --------
    >>> level = LevelOfTheory(basis="sto-3g")
    >>> level.as_dict()["xc"], level.is_hf
    ('PBE', False)
    """

    xc: str = "PBE"
    basis: str = "def2-SVP"
    auxbasis: Optional[str] = None
    charge: int = 0
    spin: int = 0
    conv_tol: float = 1e-9
    max_cycle: int = 100
    grids_level: int = 3

    @property
    def is_hf(self) -> bool:
        """Whether this is Hartree-Fock rather than DFT."""
        return self.xc.strip().upper() in ("HF", "RHF", "UHF")

    def as_dict(self) -> dict:
        """A plain ``dict`` of the fields (JSON serialisable), to store next to data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LevelOfTheory":
        """Inverse of :meth:`as_dict`."""
        return cls(**d)

    def build_mole(self, z, pos):
        """:func:`build_mole` with this level's basis, charge and spin."""
        return build_mole(z, pos, self.basis, self.charge, self.spin)

    def make_scf(self, mol):
        """PySCF's SCF object of this level for a built ``mol``, set up but not run.

        Restricted (RHF/RKS) for ``spin == 0``, unrestricted (UHF/UKS) otherwise; the
        functional, grid level, ``conv_tol`` and ``max_cycle`` of this level; quiet.
        """
        _pyscf()
        from pyscf import dft, scf

        restricted = self.spin == 0
        if self.is_hf:
            mf = scf.RHF(mol) if restricted else scf.UHF(mol)
        else:
            mf = dft.RKS(mol) if restricted else dft.UKS(mol)
            mf.xc = self.xc
            mf.grids.level = self.grids_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf


def run_scf(mol, level: LevelOfTheory):
    """Run the SCF of ``level`` on a built ``mol`` and return the converged PySCF object.

    Restricted (RHF/RKS) for ``spin == 0``, unrestricted (UHF/UKS) otherwise.

    Raises
    ------
    SCFNotConverged
        If the SCF does not converge within ``level.max_cycle`` cycles.
    """
    mf = level.make_scf(mol)
    counter = {"cycles": 0}

    def callback(envs):
        counter["cycles"] = max(counter["cycles"], int(envs.get("cycle", -1)) + 1)

    mf.callback = callback
    mf.kernel()
    cycles = int(getattr(mf, "cycles", counter["cycles"]) or counter["cycles"])
    mf.scf_cycles = cycles
    if not mf.converged:
        raise SCFNotConverged(
            f"SCF ({level.xc}/{level.basis}) not converged after {cycles} cycles "
            f"(max_cycle={level.max_cycle}, conv_tol={level.conv_tol})",
            cycles=cycles,
            level=level,
        )
    return mf


def compute_labels(
    z, pos, level: LevelOfTheory, properties: Sequence[str] = PROPERTIES
) -> Dict[str, np.ndarray]:
    """Run one SCF and return the requested labels as numpy arrays.

    Parameters
    ----------
    z : sequence of int
        Atomic numbers, shape ``(n,)``.
    pos : array_like
        Positions in Angstrom, shape ``(n, 3)``.
    level : LevelOfTheory
        Method, basis and SCF settings.
    properties : sequence of str
        A subset of :data:`PROPERTIES`. ``"df_coefficients"`` is computed only
        when ``level.auxbasis`` is set (it is skipped otherwise).

    Returns
    -------
    dict of str to numpy.ndarray
        The requested keys (units in the module docstring: Hartree, Hartree/Angstrom,
        Debye, PySCF AO order) plus ``"scf_cycles"`` and ``"converged"``.

    Raises
    ------
    SCFNotConverged
        If the SCF does not converge: unconverged labels are never returned.
    ValueError
        For an unknown property, element or basis.

    Examples
    --------
    >>> z, pos = [1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]
    >>> out = compute_labels(z, pos, LevelOfTheory("HF", "sto-3g"), ("energy", "forces"))
    >>> round(float(out["energy"]), 4), out["forces"].shape, bool(out["converged"])
    (-1.1168, (2, 3), True)
    """
    properties = tuple(properties)
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; choose from {PROPERTIES}")
    mol = level.build_mole(z, pos)
    mf = run_scf(mol, level)
    from pyscf import lib

    out = {}
    dm = mf.make_rdm1()
    if "energy" in properties:
        out["energy"] = np.asarray(mf.e_tot, dtype=np.float64)
    if "forces" in properties:
        grad = mf.nuc_grad_method()
        grad.verbose = 0
        out["forces"] = -np.asarray(grad.kernel()) / lib.param.BOHR
    if "dipole" in properties:
        out["dipole"] = np.asarray(mf.dip_moment(mol, dm, unit="Debye", verbose=0))
    if "fock" in properties:
        out["fock"] = np.asarray(mf.get_fock(dm=dm))
    if "overlap" in properties:
        out["overlap"] = mol.intor_symmetric("int1e_ovlp")
    if "density_matrix" in properties:
        out["density_matrix"] = np.asarray(dm)
    if "orbital_energies" in properties:
        out["orbital_energies"] = np.asarray(mf.mo_energy)
    if "orbital_coefficients" in properties:
        out["orbital_coefficients"] = np.asarray(mf.mo_coeff)
    if "df_coefficients" in properties and level.auxbasis is not None:
        from .density import fit_density

        total = dm if dm.ndim == 2 else dm[0] + dm[1]
        out["df_coefficients"], _ = fit_density(mol, total, level.auxbasis)
    out["scf_cycles"] = np.asarray(mf.scf_cycles, dtype=np.int64)
    out["converged"] = np.asarray(True)
    return out
