"""The bridge between quantum chemistry and irreps.

PySCF bases as irreps with exact maps to and from PySCF's AO order
(:mod:`equinet.chem.basis_layout`), ASE conversions (:mod:`equinet.chem.ase_io`),
PySCF labels (:mod:`equinet.chem.labels`), densities on grids and the percent
density error (:mod:`equinet.chem.density`), orbitals, energies and metrics of
Fock matrices (:mod:`equinet.chem.orbitals`), free-atom densities
(:mod:`equinet.chem.atomic_reference`), the Coulomb loss and electron-count
constraints in torch (:mod:`equinet.chem.coulomb`) and the SCF guess from a fitted
density (:mod:`equinet.chem.guess`). PySCF is an optional extra
(``pip install equinet[chem]``), imported only when a function needs it.
"""
from .labels import LevelOfTheory, SCFNotConverged, build_mole, compute_labels, run_scf

from .density import (
    aux_integrals,
    becke_grid,
    density_error,
    eval_density,
    fit_density,
    percent_density_error,
    uniform_grid,
)

__all__ = [
    "LevelOfTheory",
    "SCFNotConverged",
    "build_mole",
    "compute_labels",
    "run_scf",
    "aux_integrals",
    "becke_grid",
    "density_error",
    "eval_density",
    "fit_density",
    "percent_density_error",
    "uniform_grid",
]

from .basis_layout import BasisLayout, pyscf_to_equinet_matrix, transform_matrix  # noqa: E402
from .ase_io import atoms_to_arrays, atoms_to_mole, element_symbol, mole_to_atoms  # noqa: E402

__all__ += ["BasisLayout", "pyscf_to_equinet_matrix", "transform_matrix"]
__all__ += ["atoms_to_arrays", "atoms_to_mole", "element_symbol", "mole_to_atoms"]
from .orbitals import (  # noqa: E402
    density_matrix, generalized_eigh, hamiltonian_metrics, make_scf, scf_from_hamiltonian,
    total_energy,
)

__all__ += ["density_matrix", "generalized_eigh", "hamiltonian_metrics", "make_scf",
            "scf_from_hamiltonian", "total_energy"]

from .atomic_reference import atomic_reference, molecule_reference  # noqa: E402
from .coulomb import (  # noqa: E402
    conserve_charge, conserve_charge_coulomb, coulomb_loss, coulomb_metric,
)
from .guess import density_fock, density_guess, scf_cycles_from_guess  # noqa: E402

__all__ += ["atomic_reference", "molecule_reference", "conserve_charge",
            "conserve_charge_coulomb", "coulomb_loss", "coulomb_metric", "density_fock",
            "density_guess", "scf_cycles_from_guess"]
