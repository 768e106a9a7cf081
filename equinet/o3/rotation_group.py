r"""The group structure of rotations: identity and Haar-random elements, products, inverses.

The operations use the parametrisations of :mod:`equinet.o3.rotation`, with its
conventions: matrices, Euler angles :math:`(\alpha, \beta, \gamma)`, quaternions
:math:`(w, x, y, z)`, and axis and angle. Random rotations are drawn from the Haar
measure of SO(3) (the uniform distribution), batched over ``shape``, in
``torch.get_default_dtype()`` when ``dtype`` is not given. The Hamilton product
of quaternions, :func:`~equinet.o3.rotation.compose_quaternion`, lives with the
conversions, which are built on it.
"""
import math

import torch

from .rotation import (_canonical, _matrix_to_angles, angles_to_matrix, axis_angle_to_quaternion,
                       compose_quaternion, quaternion_to_axis_angle, quaternion_to_matrix)

__all__ = [
    "rand_matrix", "rand_angles", "identity_angles", "rand_quaternion", "identity_quaternion",
    "rand_axis_angle", "compose_angles", "compose_axis_angle", "inverse_angles",
    "inverse_quaternion",
]


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        return tuple(shape[0])
    return tuple(shape)


# -- random and identity elements -------------------------------------------------------------

def rand_angles(*shape, requires_grad: bool = False, dtype=None, device=None):
    r"""Euler angles of rotations drawn from the uniform (Haar) measure on SO(3).

    :math:`\alpha, \gamma \sim U[0, 2\pi)`, :math:`\cos\beta \sim U[-1, 1]`.
    Returns three tensors of shape ``shape``.

    >>> [a.shape for a in rand_angles(2, 3)]
    [torch.Size([2, 3]), torch.Size([2, 3]), torch.Size([2, 3])]
    """
    shape = _shape(shape)
    alpha, gamma = 2 * math.pi * torch.rand((2,) + shape, dtype=dtype, device=device)
    beta = torch.rand(shape, dtype=dtype, device=device).mul(2).sub(1).clamp(-1, 1).acos()
    return tuple(x.detach().requires_grad_(requires_grad) for x in (alpha, beta, gamma))


def identity_angles(*shape, requires_grad: bool = False, dtype=None, device=None):
    r"""Euler angles :math:`(0, 0, 0)` of the identity, three zero tensors of shape ``shape``.

    >>> identity_angles(2)
    (tensor([0., 0.]), tensor([0., 0.]), tensor([0., 0.]))
    """
    shape = _shape(shape)
    return tuple(torch.zeros(shape, dtype=dtype, device=device).requires_grad_(requires_grad)
                 for _ in range(3))


def rand_quaternion(*shape, requires_grad: bool = False, dtype=None, device=None) -> torch.Tensor:
    r"""Unit quaternions of Haar-random rotations, shape ``(*shape, 4)``.

    A normalised 4D Gaussian vector is uniform on :math:`S^3`, hence Haar on SO(3).

    >>> rand_quaternion(5).norm(dim=-1).allclose(torch.ones(5))
    True
    """
    q = torch.randn(_shape(shape) + (4,), dtype=dtype, device=device)
    q = q / q.norm(dim=-1, keepdim=True)
    return q.detach().requires_grad_(requires_grad)


def identity_quaternion(*shape, requires_grad: bool = False, dtype=None, device=None):
    r"""The quaternion :math:`(1, 0, 0, 0)` repeated to shape ``(*shape, 4)``.

    >>> identity_quaternion()
    tensor([1., 0., 0., 0.])
    """
    q = torch.zeros(_shape(shape) + (4,), dtype=dtype, device=device)
    q[..., 0] = 1
    return q.requires_grad_(requires_grad)


def rand_axis_angle(*shape, requires_grad: bool = False, dtype=None, device=None):
    r"""Haar-random rotations as (unit axis of shape ``(*shape, 3)``, angle in :math:`[0, \pi]`).

    >>> axis, angle = rand_axis_angle(4)
    >>> axis.shape, bool((angle >= 0).all() and (angle <= math.pi).all())
    (torch.Size([4, 3]), True)
    """
    q = _canonical(rand_quaternion(*shape, dtype=dtype, device=device))
    axis, angle = quaternion_to_axis_angle(q)
    return axis.detach().requires_grad_(requires_grad), angle.detach().requires_grad_(requires_grad)


def rand_matrix(*shape, requires_grad: bool = False, dtype=None, device=None) -> torch.Tensor:
    r"""Haar-random rotation matrices of shape ``(*shape, 3, 3)``.

    >>> R = rand_matrix(10, dtype=torch.float64)
    >>> torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64))
    True
    """
    R = quaternion_to_matrix(rand_quaternion(*shape, dtype=dtype, device=device))
    return R.detach().requires_grad_(requires_grad)


# -- composition and inversion -----------------------------------------------------------------

def compose_angles(a1, b1, c1, a2, b2, c2):
    r"""Euler angles of :math:`R(a_1, b_1, c_1)\, R(a_2, b_2, c_2)` (the second is applied first).

    >>> abc = torch.tensor([0.1, 0.2, 0.3])
    >>> torch.stack(compose_angles(*identity_angles(), *abc))
    tensor([0.1000, 0.2000, 0.3000])
    """
    a1, b1, c1, a2, b2, c2 = torch.broadcast_tensors(a1, b1, c1, a2, b2, c2)
    return _matrix_to_angles(angles_to_matrix(a1, b1, c1) @ angles_to_matrix(a2, b2, c2))


def inverse_angles(a, b, c):
    r"""Euler angles of :math:`R(a, b, c)^{-1} = R(-c, -b, -a)`.

    >>> inverse_angles(1.0, 2.0, 3.0)
    (-3.0, -2.0, -1.0)
    """
    return -c, -b, -a


def inverse_quaternion(q: torch.Tensor) -> torch.Tensor:
    r"""Conjugate :math:`(w, -\vec v)`, the inverse rotation (the inverse quaternion if unit).

    >>> inverse_quaternion(torch.tensor([1., 2., 3., 4.]))
    tensor([ 1., -2., -3., -4.])
    """
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def compose_axis_angle(axis1, angle1, axis2, angle2):
    r"""Axis-angle of rotation 2 followed by rotation 1 (through quaternions, not canonicalised).

    >>> y = torch.tensor([0., 1., 0.])
    >>> compose_axis_angle(y, torch.tensor(0.25), y, torch.tensor(0.5))[1]
    tensor(0.7500)
    """
    q1 = axis_angle_to_quaternion(axis1, angle1)
    q2 = axis_angle_to_quaternion(axis2, angle2)
    return quaternion_to_axis_angle(compose_quaternion(q1, q2))
