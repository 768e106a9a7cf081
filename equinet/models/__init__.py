"""Reference models built only from :mod:`equinet.nn`, :mod:`equinet.tp`, :mod:`equinet.o3`
and :mod:`equinet.graph` (used by the examples)."""
from .heads import DipoleHead, ExtensiveHead, IntensiveHead, SpatialExtentHead
from .points_network import PointsNetwork
from .qm9 import QM9Network

__all__ = ["PointsNetwork", "QM9Network", "ExtensiveHead", "IntensiveHead", "DipoleHead",
           "SpatialExtentHead"]
from .density import DensityNetwork  # noqa: E402

__all__ += ["DensityNetwork"]
from .matrix_head import MatrixHead, block_irreps, species_shells  # noqa: E402
from .hamiltonian import HamiltonianNetwork  # noqa: E402

__all__ += ["MatrixHead", "block_irreps", "species_shells", "HamiltonianNetwork"]
