"""Group operations on rotations: products and inverses against e3nn, Haar-random elements."""
import math

import e3nn.o3 as e3
import pytest
import torch

import equinet.o3 as o3

F64 = torch.float64


def close(actual, expected, atol=None, **kwargs):
    """assert_close with an absolute tolerance only (or torch's defaults when none is given)."""
    if atol is not None:
        kwargs.update(atol=atol, rtol=0)
    torch.testing.assert_close(actual, expected, **kwargs)


def _arguments(name, n=64):
    """Seeded arguments of ``name``: any angles, unit quaternions, unnormalised axes."""
    g = torch.Generator().manual_seed(2)
    angles = (2 * torch.rand(6, n, generator=g, dtype=F64) - 1) * 2 * math.pi
    q = torch.randn(n, 4, generator=g, dtype=F64)
    axes = torch.randn(2, n, 3, generator=g, dtype=F64) * 3
    return {
        "compose_angles": list(angles),
        "inverse_angles": list(angles[:3]),
        "inverse_quaternion": [q / q.norm(dim=-1, keepdim=True)],
        "compose_axis_angle": [axes[0], angles[0], axes[1], angles[1]],
    }[name]


@pytest.mark.parametrize("name", ["compose_angles", "inverse_angles", "inverse_quaternion",
                                  "compose_axis_angle"])
def test_matches_e3nn(name):
    args = _arguments(name)
    # a tensor or a tuple of them, compared in type, dtype (float64) and shape too
    close(getattr(o3, name)(*args), getattr(e3, name)(*args), atol=1e-10)


def test_compositions_are_homomorphisms():
    R1, R2 = o3.rand_matrix(2, 20, dtype=F64)
    angles = o3.compose_angles(*o3.matrix_to_angles(R1), *o3.matrix_to_angles(R2))
    close(o3.angles_to_matrix(*angles), R1 @ R2, atol=1e-12)
    q = o3.compose_quaternion(o3.matrix_to_quaternion(R1), o3.matrix_to_quaternion(R2))
    close(o3.quaternion_to_matrix(q), R1 @ R2, atol=1e-12)
    close(o3.quaternion_to_matrix(o3.inverse_quaternion(q)), (R1 @ R2).transpose(-1, -2))
    inv = o3.inverse_angles(*o3.matrix_to_angles(R1))
    close(o3.angles_to_matrix(*inv), R1.transpose(-1, -2), atol=1e-12)


def test_random_generators_shapes_dtypes_and_grad():
    assert o3.rand_matrix().shape == (3, 3)
    assert o3.rand_matrix(2, 5).shape == (2, 5, 3, 3)
    assert o3.rand_matrix((2, 5)).shape == (2, 5, 3, 3)
    assert o3.rand_quaternion(7).shape == (7, 4)
    axis, angle = o3.rand_axis_angle(7)
    assert axis.shape == (7, 3) and angle.shape == (7,)
    assert all(x.shape == (4,) for x in o3.rand_angles(4))
    assert all((x == 0).all() for x in o3.identity_angles(3))
    close(o3.quaternion_to_matrix(o3.identity_quaternion(2)), torch.eye(3).expand(2, 3, 3))
    for dtype in (torch.float32, torch.float64):
        assert o3.rand_matrix(2, dtype=dtype).dtype == dtype
        assert o3.rand_angles(2, dtype=dtype)[0].dtype == dtype
    R = o3.rand_matrix(3, requires_grad=True)
    assert R.requires_grad and R.is_leaf
    assert all(x.requires_grad for x in o3.rand_angles(3, requires_grad=True))
    assert o3.rand_matrix(2, device="meta").device.type == "meta"


def test_random_generators_respect_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert o3.rand_matrix(2).dtype == torch.float64
        assert o3.rand_quaternion(2).dtype == torch.float64
        assert o3.rand_axis_angle(2)[1].dtype == torch.float64
        assert o3.identity_angles(2)[0].dtype == torch.float64
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("generate", ["matrix", "angles", "quaternion", "axis_angle"])
def test_random_rotations_are_haar(generate):
    n = 20000
    R = {
        "matrix": lambda: o3.rand_matrix(n, dtype=F64),
        "angles": lambda: o3.angles_to_matrix(*o3.rand_angles(n, dtype=F64)),
        "quaternion": lambda: o3.quaternion_to_matrix(o3.rand_quaternion(n, dtype=F64)),
        "axis_angle": lambda: o3.axis_angle_to_matrix(*o3.rand_axis_angle(n, dtype=F64)),
    }[generate]()
    close(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand_as(R))
    close(torch.linalg.det(R), torch.ones(n, dtype=F64))
    # Haar moments: E[R] = 0, E[R_ij^2] = 1/3, E[tr R] = 0 and E[(tr R)^2] = 1
    assert R.mean(0).abs().max() < 0.03
    assert (R.pow(2).mean(0) - 1 / 3).abs().max() < 0.02
    tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(tr.mean()) < 0.05 and abs(tr.pow(2).mean() - 1) < 0.05
