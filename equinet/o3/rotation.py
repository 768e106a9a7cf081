r"""Rotations of 3D space and the conversions between their parametrisations.

Conventions are e3nn's. Euler angles :math:`(\alpha, \beta, \gamma)` mean

.. math::

    R(\alpha, \beta, \gamma) = R_y(\alpha) R_x(\beta) R_y(\gamma),

so :math:`\gamma` (about Y) is applied first, :math:`\beta` (about X) second and
:math:`\alpha` (about Y) third; :math:`\alpha, \gamma \in (-\pi, \pi]` and
:math:`\beta \in [0, \pi]` when returned. Quaternions are :math:`(w, x, y, z)`
composed with the Hamilton product; matrices act on column vectors in
:math:`(x, y, z)` order. A direction is :math:`R(\alpha, \beta, 0)\, \hat e_y`.

Every function is batched over arbitrary leading dimensions and keeps the
dtype and device of its inputs. The group operations (identity and random
rotations, composition, inverses) are in :mod:`equinet.o3.rotation_group`.
"""
import math

import torch

# The names of rotation_group are listed too: they were defined in this module at first,
# and are imported from it at the end of this file.
__all__ = [
    "rand_matrix", "rand_angles", "identity_angles", "rand_quaternion", "identity_quaternion",
    "rand_axis_angle", "compose_angles", "compose_quaternion", "compose_axis_angle",
    "inverse_angles", "inverse_quaternion", "angles_to_matrix", "matrix_to_angles",
    "quaternion_to_matrix", "matrix_to_quaternion", "axis_angle_to_matrix", "matrix_to_axis_angle",
    "angles_to_quaternion", "quaternion_to_angles", "axis_angle_to_angles", "angles_to_axis_angle",
    "axis_angle_to_quaternion", "quaternion_to_axis_angle", "matrix_x", "matrix_y", "matrix_z",
    "angles_to_xyz", "xyz_to_angles",
]


# -- helpers: norms and arctangents whose gradients stay finite at zero -------------------------

def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    # The double `where` keeps sqrt's infinite derivative at 0 out of the backward pass.
    sq = (v * v).sum(-1)
    nonzero = sq > 0
    root = torch.where(nonzero, sq, torch.ones_like(sq)).sqrt()
    return torch.where(nonzero, root, torch.zeros_like(sq))


def _safe_atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # atan2(0, 0) = 0 with gradient 0 instead of 0/0.
    zero = (y == 0) & (x == 0)
    return torch.atan2(y, torch.where(zero, torch.ones_like(x), x))


def _check_rotation_matrix(R: torch.Tensor, name: str) -> None:
    if not isinstance(R, torch.Tensor) or R.dim() < 2 or R.shape[-2:] != (3, 3):
        shape = tuple(R.shape) if isinstance(R, torch.Tensor) else type(R).__name__
        raise ValueError(f"{name} expects matrices of shape (..., 3, 3), got {shape}")
    if not R.is_floating_point():
        raise TypeError(f"{name} expects a floating-point tensor, got {R.dtype}")
    if R.numel() == 0:
        return
    R = R.detach()
    tol = 1e-5 if R.dtype == torch.float64 else max(1e-3, 10 * torch.finfo(R.dtype).eps)
    compute = R.double() if R.dtype != torch.float64 else R
    det_err = (torch.linalg.det(compute) - 1).abs().max().item()
    eye = torch.eye(3, dtype=compute.dtype, device=compute.device)
    orth_err = (compute @ compute.transpose(-1, -2) - eye).abs().max().item()
    if not det_err <= tol or not orth_err <= tol:  # `not <=` also catches NaN
        raise ValueError(
            f"{name} expects rotation matrices (R R^T = 1, det R = +1 within {tol:g}); got "
            f"max |det R - 1| = {det_err:.3g}, max |R R^T - 1| = {orth_err:.3g}. "
            "For an improper rotation pass det(R) * R and handle the inversion separately."
        )


# -- elementary rotations and Euler angles -----------------------------------------------------

def _planar_rotation(angle: torch.Tensor, i: int, j: int) -> torch.Tensor:
    # Rotation by `angle` in the (i, j) plane: e_i -> cos e_i + sin e_j.
    angle = torch.as_tensor(angle)
    c, s = angle.cos(), angle.sin()
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = [[one, zero, zero], [zero, one, zero], [zero, zero, one]]
    rows[i][i], rows[j][j], rows[i][j], rows[j][i] = c, c, -s, s
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def matrix_x(angle: torch.Tensor) -> torch.Tensor:
    r"""Right-handed rotation by ``angle`` about X, shape ``(..., 3, 3)``.

    >>> y, z = torch.tensor([0., 1., 0.]), torch.tensor([0., 0., 1.])
    >>> torch.allclose(matrix_x(torch.tensor(math.pi / 2)) @ y, z, atol=1e-6)
    True
    """
    return _planar_rotation(angle, 1, 2)


def matrix_y(angle: torch.Tensor) -> torch.Tensor:
    r"""Right-handed rotation by ``angle`` about Y, shape ``(..., 3, 3)``.

    >>> z, x = torch.tensor([0., 0., 1.]), torch.tensor([1., 0., 0.])
    >>> torch.allclose(matrix_y(torch.tensor(math.pi / 2)) @ z, x, atol=1e-6)
    True
    """
    return _planar_rotation(angle, 2, 0)


def matrix_z(angle: torch.Tensor) -> torch.Tensor:
    r"""Right-handed rotation by ``angle`` about Z, shape ``(..., 3, 3)``.

    >>> x, y = torch.tensor([1., 0., 0.]), torch.tensor([0., 1., 0.])
    >>> torch.allclose(matrix_z(torch.tensor(math.pi / 2)) @ x, y, atol=1e-6)
    True
    """
    return _planar_rotation(angle, 0, 1)


def angles_to_matrix(alpha, beta, gamma) -> torch.Tensor:
    r"""The matrix :math:`R_y(\alpha) R_x(\beta) R_y(\gamma)`, shape ``(..., 3, 3)``.

    >>> angles_to_matrix(*identity_angles()).equal(torch.eye(3))
    True
    """
    alpha, beta, gamma = torch.broadcast_tensors(*map(torch.as_tensor, (alpha, beta, gamma)))
    return matrix_y(alpha) @ matrix_x(beta) @ matrix_y(gamma)


def _matrix_to_angles(R: torch.Tensor):
    # The second column R e_y = R_y(a) R_x(b) e_y fixes (a, b); the rest of R is then R_y(c).
    # Taking c from that residual (not from a closed formula) stays right at beta = 0 or pi,
    # where a and c are not separately determined.
    a, b = xyz_to_angles(R[..., :, 1])
    rest = (matrix_y(a) @ matrix_x(b)).transpose(-1, -2) @ R
    c = _safe_atan2(rest[..., 0, 2], rest[..., 0, 0])
    return a, b, c


def matrix_to_angles(R: torch.Tensor):
    r"""Euler angles of ``R``: :math:`R = R_y(\alpha) R_x(\beta) R_y(\gamma)`.

    Raises ``ValueError`` unless every matrix is a proper rotation (orthogonal with
    determinant +1, to 1e-5 in float64 and 1e-3 in lower precision).

    >>> a, b, c = matrix_to_angles(matrix_x(torch.tensor(0.5)))
    >>> torch.stack([a, b, c]).abs()
    tensor([0.0000, 0.5000, 0.0000])
    """
    _check_rotation_matrix(R, "matrix_to_angles")
    return _matrix_to_angles(R)


def angles_to_xyz(alpha, beta) -> torch.Tensor:
    r"""The unit vector :math:`R(\alpha, \beta, 0)\, \hat e_y`.

    That is :math:`(\sin\alpha \sin\beta, \cos\beta, \cos\alpha \sin\beta)`.


    >>> angles_to_xyz(torch.tensor(1.7), torch.tensor(0.0)).abs()
    tensor([0., 1., 0.])
    """
    alpha, beta = torch.broadcast_tensors(*map(torch.as_tensor, (alpha, beta)))
    return torch.stack([beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()], dim=-1)


def xyz_to_angles(xyz: torch.Tensor):
    r"""Angles :math:`(\alpha, \beta)` of the direction of ``xyz``, inverse of `angles_to_xyz`.

    :math:`\alpha = \operatorname{atan2}(x, z)` and
    :math:`\beta = \operatorname{atan2}(\sqrt{x^2 + z^2}, y)`, for vectors of any length.
    The zero vector gives :math:`(0, \pi/2)` as in e3nn; gradients are finite everywhere,
    zero where the direction is singular (the zero vector, and alpha on the Y axis).

    >>> xyz_to_angles(torch.tensor([1., 0., 0.]))
    (tensor(1.5708), tensor(1.5708))
    """
    x, y, z = xyz.unbind(-1)
    alpha = _safe_atan2(x, z)
    beta = _safe_atan2(_safe_norm(torch.stack([x, z], dim=-1)), y)
    beta = torch.where((y == 0) & (x == 0) & (z == 0), torch.full_like(beta, math.pi / 2), beta)
    return alpha, beta


# -- quaternions and axis-angle ----------------------------------------------------------------

def _canonical(q: torch.Tensor) -> torch.Tensor:
    # q and -q are the same rotation; pick w >= 0 so that angles land in [0, pi].
    return torch.where(q[..., :1] < 0, -q, q)


def compose_quaternion(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    r"""Hamilton product :math:`q_1 q_2`, the rotation :math:`q_2` followed by :math:`q_1`.

    :math:`(w_1 w_2 - \vec v_1 \cdot \vec v_2,\;
    w_1 \vec v_2 + w_2 \vec v_1 + \vec v_1 \times \vec v_2)`.

    >>> i = torch.tensor([0., 1., 0., 0.]); j = torch.tensor([0., 0., 1., 0.])
    >>> compose_quaternion(i, j)
    tensor([0., 0., 0., 1.])
    """
    q1, q2 = torch.broadcast_tensors(q1, q2)
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    w = w1 * w2 - (v1 * v2).sum(-1, keepdim=True)
    v = w1 * v2 + w2 * v1 + torch.linalg.cross(v1, v2, dim=-1)
    return torch.cat([w, v], dim=-1)


def angles_to_quaternion(alpha, beta, gamma) -> torch.Tensor:
    r"""Quaternion :math:`q_y(\alpha)\, q_x(\beta)\, q_y(\gamma)`.

    Here :math:`q_n(t) = (\cos\frac t2, \sin\frac t2\, \hat n)`.


    >>> angles_to_quaternion(torch.tensor(math.pi), torch.tensor(0.), torch.tensor(0.)).abs()
    tensor([0., 0., 1., 0.])
    """
    alpha, beta, gamma = torch.broadcast_tensors(*map(torch.as_tensor, (alpha, beta, gamma)))
    zero = torch.zeros_like(alpha)

    def half(t, k):
        v = [zero, zero, zero]
        v[k] = (t / 2).sin()
        return torch.stack([(t / 2).cos()] + v, dim=-1)

    return compose_quaternion(half(alpha, 1), compose_quaternion(half(beta, 0), half(gamma, 1)))


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    r"""Rotation matrix of the quaternion ``q`` (scale does not matter), shape ``(..., 3, 3)``.

    :math:`R = 1 + \frac{2}{|q|^2}\left(w [\vec v]_\times + [\vec v]_\times^2\right)`.

    >>> quaternion_to_matrix(torch.tensor([0., 0., 0., 2.]))
    tensor([[-1.,  0.,  0.],
            [ 0., -1.,  0.],
            [ 0.,  0.,  1.]])
    """
    w, x, y, z = q.unbind(-1)
    s = 2 / (q * q).sum(-1)
    rows = [
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    # Shepperd's method: of the four ways to read q off R, use the one dividing by the
    # largest of 4w^2, 4x^2, 4y^2, 4z^2 (their sum is 4, so that one is >= 1: no
    # cancellation near angle 0 or pi, and no 0/0 in the gradient either).
    r = R.unbind(-1)
    r00, r10, r20 = r[0].unbind(-1)
    r01, r11, r21 = r[1].unbind(-1)
    r02, r12, r22 = r[2].unbind(-1)
    t = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                     1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)
    candidates = torch.stack([
        torch.stack([t[..., 0], r21 - r12, r02 - r20, r10 - r01], -1),
        torch.stack([r21 - r12, t[..., 1], r01 + r10, r02 + r20], -1),
        torch.stack([r02 - r20, r01 + r10, t[..., 2], r12 + r21], -1),
        torch.stack([r10 - r01, r02 + r20, r12 + r21, t[..., 3]], -1),
    ], dim=-2) / (2 * t.clamp_min(0.5).sqrt()[..., :, None])
    best = t.argmax(-1)[..., None, None].expand(t.shape[:-1] + (1, 4))
    q = candidates.gather(-2, best)[..., 0, :]
    return _canonical(q / q.norm(dim=-1, keepdim=True))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    r"""Unit quaternion :math:`(w \geq 0, x, y, z)` of the rotation matrix ``R``.

    Raises ``ValueError`` unless ``R`` is a proper rotation (see `matrix_to_angles`).

    >>> matrix_to_quaternion(matrix_z(torch.tensor(math.pi / 3)))
    tensor([0.8660, 0.0000, 0.0000, 0.5000])
    """
    _check_rotation_matrix(R, "matrix_to_quaternion")
    return _matrix_to_quaternion(R)


def axis_angle_to_quaternion(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    r"""Quaternion :math:`(\cos\frac\theta2, \sin\frac\theta2\,\hat n)` of ``angle`` about ``axis``.

    The axis is normalised and must be nonzero.

    >>> axis_angle_to_quaternion(torch.tensor([0., 0., 2.]), torch.tensor(math.pi / 3))
    tensor([0.8660, 0.0000, 0.0000, 0.5000])
    """
    axis, angle = torch.broadcast_tensors(axis, torch.as_tensor(angle, dtype=axis.dtype)[..., None])
    n = _safe_norm(axis)[..., None]
    axis = axis / torch.where(n > 0, n, torch.ones_like(n))
    return torch.cat([(angle[..., :1] / 2).cos(), axis * (angle / 2).sin()], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor):
    r"""Unit axis and angle :math:`2 \operatorname{atan2}(|\vec v|, w) \in [0, 2\pi]` of ``q``.

    Without a rotation (:math:`\vec v = 0`) the axis is :math:`\hat e_y`, by convention.

    >>> quaternion_to_axis_angle(torch.tensor([0., 0., 0., 1.]))
    (tensor([0., 0., 1.]), tensor(3.1416))
    """
    w, v = q[..., 0], q[..., 1:]
    n = _safe_norm(v)
    angle = 2 * _safe_atan2(n, w)
    default = torch.zeros_like(v)
    default[..., 1] = 1
    unit = v / torch.where(n > 0, n, torch.ones_like(n))[..., None]
    axis = torch.where(n[..., None] > 0, unit, default)
    return axis, angle


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    r"""Rotation matrix by ``angle`` (right-handed) about ``axis`` (normalised, nonzero).

    >>> R = axis_angle_to_matrix(torch.tensor([0., 0., 1.]), torch.tensor(math.pi / 2))
    >>> torch.allclose(R @ torch.tensor([1., 0., 0.]), torch.tensor([0., 1., 0.]), atol=1e-6)
    True
    """
    return quaternion_to_matrix(axis_angle_to_quaternion(axis, angle))


def matrix_to_axis_angle(R: torch.Tensor):
    r"""Unit axis and angle in :math:`[0, \pi]` of the rotation matrix ``R``.

    Raises ``ValueError`` unless ``R`` is a proper rotation (see `matrix_to_angles`).

    >>> matrix_to_axis_angle(matrix_x(torch.tensor(0.5)))
    (tensor([1., 0., 0.]), tensor(0.5000))
    """
    _check_rotation_matrix(R, "matrix_to_axis_angle")
    return quaternion_to_axis_angle(_matrix_to_quaternion(R))


def quaternion_to_angles(q: torch.Tensor):
    r"""Euler angles of the rotation of the quaternion ``q``.

    >>> a, b, c = quaternion_to_angles(angles_to_quaternion(0.1, 0.2, 0.3))
    >>> torch.stack([a, b, c])
    tensor([0.1000, 0.2000, 0.3000])
    """
    return _matrix_to_angles(quaternion_to_matrix(q))


def axis_angle_to_angles(axis: torch.Tensor, angle: torch.Tensor):
    r"""Euler angles of the rotation by ``angle`` about ``axis``.

    >>> torch.stack(axis_angle_to_angles(torch.tensor([1., 0., 0.]), torch.tensor(0.5)))
    tensor([0.0000, 0.5000, 0.0000])
    """
    return _matrix_to_angles(axis_angle_to_matrix(axis, angle))


def angles_to_axis_angle(alpha, beta, gamma):
    r"""Unit axis and angle in :math:`[0, \pi]` of the rotation :math:`R(\alpha, \beta, \gamma)`.

    >>> angles_to_axis_angle(torch.tensor(0.), torch.tensor(0.5), torch.tensor(0.))
    (tensor([1., 0., 0.]), tensor(0.5000))
    """
    return quaternion_to_axis_angle(_canonical(angles_to_quaternion(alpha, beta, gamma)))


# Last, because rotation_group is built on the conversions above.
from .rotation_group import (  # noqa: E402
    compose_angles, compose_axis_angle, identity_angles, identity_quaternion, inverse_angles,
    inverse_quaternion, rand_angles, rand_axis_angle, rand_matrix, rand_quaternion,
)
