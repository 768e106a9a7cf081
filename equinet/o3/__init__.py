"""The pure math of O(3): irreps, rotations, Wigner matrices, spherical harmonics, S2 grids.

Nothing here has learnable parameters; costly constants are cached.
"""

from .irreps import Irrep, Irreps, MulIr

__all__ = ["Irrep", "Irreps", "MulIr"]
