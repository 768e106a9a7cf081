r"""Isolated-atom densities on an auxiliary basis: the references a density model predicts from.

For each element, the free atom's spherically averaged ground-state density
(PySCF's atomic SCF with fractional occupations, ``pyscf.scf.atom_ks`` for a
functional, ``pyscf.scf.atom_hf`` for Hartree-Fock, in the orbital basis
``basis``) is fitted onto that atom's functions of ``auxbasis`` in the Coulomb
metric with the electron count :math:`Z` conserved
(:func:`~equinet.chem.fit_density`, ``conserve_charge=True``):

.. math:: c^{atom}_Z = \operatorname*{arg\,min}_{c,\ q^\top c = Z}
          \| \rho^{atom}_Z - \textstyle\sum_P c_P \chi_P \|_J .

A spherical density has no :math:`l > 0` components: for every shell with
:math:`l > 0` the fit gives zero up to rounding, which
:func:`atomic_reference` checks (``< 1e-8``) and then sets to exactly zero (so
that a model adding it stays exactly equivariant). The molecular superposition
:math:`\sum_A c^{atom}_{Z_A}` (:func:`molecule_reference`) is the usual
starting point of density models: they predict the difference from it.
Results are cached per ``(element, basis, auxbasis, xc)``.

PySCF is imported lazily (``pip install equinet[chem]``).
"""
import functools
import warnings

import numpy as np

__all__ = ["atomic_reference", "molecule_reference"]

_SPHERICAL_TOL = 1e-8


def _is_hf(xc: str) -> bool:
    return xc.strip().upper() in ("HF", "RHF", "UHF")


@functools.lru_cache(maxsize=None)
def _atom(element: str, basis: str, auxbasis: str, xc: str, spherical: bool):
    from pyscf import gto
    from pyscf.data.elements import charge
    from pyscf.df.addons import make_auxmol
    from pyscf.scf import atom_hf, atom_ks

    from .basis_layout import BasisLayout
    from .density import fit_density

    z = int(charge(element))
    mol = gto.M(atom=[(element, (0.0, 0.0, 0.0))], basis=basis, spin=z % 2, unit="Bohr",
                verbose=0)
    with warnings.catch_warnings():
        # PySCF's atomic SCF calls its own deprecated remove_linear_dep_ (PySCF >= 2.10)
        warnings.filterwarnings("ignore", "remove_linear_dep_", DeprecationWarning)
        if _is_hf(xc):
            results = atom_hf.get_atm_nrhf(mol)
        else:
            results = atom_ks.get_atm_nrks(mol, xc=xc)
    _, _, mo, occ = results[mol.atom_symbol(0)]
    dm = (mo * occ) @ mo.T
    auxmol = make_auxmol(mol, auxbasis)
    c, _ = fit_density(mol, dm, auxmol, conserve_charge=True)
    layout = BasisLayout(auxmol)
    if spherical:
        mask = np.concatenate([np.full(mul * ir.dim, ir.l > 0) for mul, ir in layout.irreps])
        # PySCF and equinet agree on which functions are s (only the order within l differs)
        mask = layout.to_pyscf(mask.astype(np.float64), kind="vector") != 0
        largest = float(np.abs(c[mask]).max()) if mask.any() else 0.0
        if largest > _SPHERICAL_TOL:  # pragma: no cover - a PySCF atom that is not spherical
            raise RuntimeError(f"the fitted {element} atom has l > 0 components up to "
                               f"{largest:.1e}; its density is not spherical")
        c = np.where(mask, 0.0, c)
    c.setflags(write=False)
    return c, BasisLayout(auxmol)


def atomic_reference(element, basis="def2-SVP", auxbasis="def2-universal-jfit", xc="PBE",
                     order="pyscf", spherical=True):
    r"""The free atom's density as coefficients on its auxiliary functions (module docstring).

    Parameters
    ----------
    element : str or int
        Element symbol (``"O"``) or atomic number.
    basis : str
        Orbital basis of the atomic SCF.
    auxbasis : str
        Auxiliary basis of the fit.
    xc : str
        Functional of the atomic SCF (``"HF"`` for Hartree-Fock).
    order : {"pyscf", "equinet"}
        Order of the returned coefficients: PySCF's AO order of the atom's auxiliary
        functions, or equinet's (``BasisLayout(...).atom_irreps``).
    spherical : bool
        Set the :math:`l > 0` coefficients (zero up to rounding) to exactly zero.

    Returns
    -------
    numpy.ndarray
        ``(naux_atom,)`` float64 (read-only, cached); integrates to :math:`Z` electrons.

    Examples
    --------
    >>> c = atomic_reference("H", "sto-3g", "def2-universal-jfit", order="equinet")
    >>> c.shape  # H in jfit: 3x0e+1x1o+1x2e, only the first three (s) are non-zero
    (11,)
    >>> bool((c[3:] == 0).all())
    True
    """
    from pyscf.data.elements import ELEMENTS, charge

    if order not in ("pyscf", "equinet"):
        raise ValueError(f"order must be 'pyscf' or 'equinet', got {order!r}")
    if isinstance(element, (int, np.integer)):
        if not 1 <= int(element) < len(ELEMENTS):
            raise ValueError(f"unknown element: atomic number {element}")
        element = ELEMENTS[int(element)]
    element = str(element).strip().capitalize()
    if element not in ELEMENTS or charge(element) < 1:
        raise ValueError(f"unknown element {element!r}")
    c, layout = _atom(element, str(basis), str(auxbasis), str(xc), bool(spherical))
    if order == "equinet":
        c = layout.to_equinet(c, kind="vector")
        c.setflags(write=False)
    return c


def molecule_reference(auxmol, basis="def2-SVP", auxbasis="def2-universal-jfit", xc="PBE",
                       order="pyscf"):
    r"""The superposition of free-atom densities on a molecule's auxiliary basis.

    Parameters
    ----------
    auxmol : pyscf.gto.Mole
        The molecule's auxiliary basis (``auxbasis`` on its atoms), e.g. from
        :func:`~equinet.chem.fit_density`.
    basis, auxbasis, xc, order
        As :func:`atomic_reference`.

    Returns
    -------
    numpy.ndarray
        ``(auxmol.nao,)``; integrates to :math:`\sum_A Z_A`.

    Examples
    --------
    >>> from pyscf.df.addons import make_auxmol
    >>> from equinet.chem import build_mole, aux_integrals
    >>> mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    >>> auxmol = make_auxmol(mol, "def2-universal-jfit")
    >>> c = molecule_reference(auxmol, "sto-3g")
    >>> round(float(c @ aux_integrals(auxmol)), 10)
    2.0
    """
    from .basis_layout import BasisLayout

    layout = BasisLayout(auxmol)
    parts = [atomic_reference(element, basis, auxbasis, xc, order="equinet")
             for element in layout.elements]
    for part, irreps, element in zip(parts, layout.atom_irreps, layout.elements):
        if part.shape[0] != irreps.dim:
            raise ValueError(f"auxmol's functions on {element} ({irreps}) are not "
                             f"{auxbasis!r}'s; pass the auxbasis auxmol was built with")
    c = np.concatenate(parts)
    return c if order == "equinet" else layout.to_pyscf(c, kind="vector")
