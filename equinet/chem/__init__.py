"""The bridge between quantum chemistry and irreps.

PySCF labels (:mod:`equinet.chem.labels`), densities on grids and the percent
density error (:mod:`equinet.chem.density`). PySCF is an optional extra
(``pip install equinet[chem]``), imported only when a function needs it.
"""
from .labels import LevelOfTheory, SCFNotConverged, build_mole, compute_labels, run_scf

__all__ = [
    "LevelOfTheory",
    "SCFNotConverged",
    "build_mole",
    "compute_labels",
    "run_scf",
]
