"""equinet: E(3)-equivariant neural-network building blocks for PyTorch.

Layers, from the bottom up (imports only point down):

- :mod:`equinet.o3`: irreps of O(3), rotations, Wigner matrices, spherical harmonics.
- :mod:`equinet.testing`: equivariance checks for users' own tests.
"""
from . import o3, testing

__version__ = "0.1.0"
__all__ = ["o3", "testing", "__version__"]
