"""equinet: E(3)-equivariant neural-network building blocks for PyTorch.

Layers, from the bottom up (imports only point down):

- :mod:`equinet.o3`: irreps of O(3), rotations, Wigner matrices, spherical harmonics.
- :mod:`equinet.nn`: layers: radial bases, cutoffs, MLPs.
- :mod:`equinet.graph`: radius graphs (periodic too), batching, scatter sums.
- :mod:`equinet.models`: reference models built from the layers above.
- :mod:`equinet.chem`: the bridge to quantum chemistry: PySCF bases as irreps, labels, densities.
- :mod:`equinet.data`: data sets (QM9), labelled-data generation, geometry samplers.
- :mod:`equinet.testing`: equivariance checks for users' own tests.
"""
from . import o3, testing
from . import interop  # e3nn bridge; imports e3nn only when called
from . import graph, nn
from . import models
from . import chem, data  # PySCF, ASE and qm9pack are imported only when used

__version__ = "0.1.0"
__all__ = ["o3", "testing", "interop", "graph", "nn", "models", "chem", "data", "__version__"]
