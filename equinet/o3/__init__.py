"""The pure math of O(3): irreps, rotations, Wigner matrices, spherical harmonics, S2 grids.

Nothing here has learnable parameters; costly constants are cached.
"""

from .irreps import Irrep, Irreps, MulIr
from .rotation import (
    angles_to_axis_angle, angles_to_matrix, angles_to_quaternion, angles_to_xyz,
    axis_angle_to_angles, axis_angle_to_matrix, axis_angle_to_quaternion, compose_angles,
    compose_axis_angle, compose_quaternion, identity_angles, identity_quaternion, inverse_angles,
    inverse_quaternion, matrix_to_angles, matrix_to_axis_angle, matrix_to_quaternion, matrix_x,
    matrix_y, matrix_z, quaternion_to_angles, quaternion_to_axis_angle, quaternion_to_matrix,
    rand_angles, rand_axis_angle, rand_matrix, rand_quaternion, xyz_to_angles,
)
from .wigner import change_basis_real_to_complex, so3_generators, su2_generators, wigner_D
from .wigner_3j import wigner_3j
from .s2grid import FromS2Grid, ToS2Grid, s2_grid, spherical_harmonics_s2_grid

__all__ = ["Irrep", "Irreps", "MulIr"]
__all__ += [
    "angles_to_axis_angle", "angles_to_matrix", "angles_to_quaternion", "angles_to_xyz",
    "axis_angle_to_angles", "axis_angle_to_matrix", "axis_angle_to_quaternion",
    "compose_angles", "compose_axis_angle", "compose_quaternion", "identity_angles",
    "identity_quaternion", "inverse_angles", "inverse_quaternion", "matrix_to_angles",
    "matrix_to_axis_angle", "matrix_to_quaternion", "matrix_x", "matrix_y", "matrix_z",
    "quaternion_to_angles", "quaternion_to_axis_angle", "quaternion_to_matrix", "rand_angles",
    "rand_axis_angle", "rand_matrix", "rand_quaternion", "xyz_to_angles",
    "change_basis_real_to_complex", "so3_generators", "su2_generators", "wigner_D", "wigner_3j",
]
__all__ += ["s2_grid", "spherical_harmonics_s2_grid", "ToS2Grid", "FromS2Grid"]
from .gaunt import gaunt  # noqa: E402

__all__ += ["gaunt"]
from .spherical_harmonics import spherical_harmonics, spherical_harmonics_alpha_beta  # noqa: E402

__all__ += ["spherical_harmonics", "spherical_harmonics_alpha_beta"]
