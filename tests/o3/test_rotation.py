"""Rotation conversions: each against e3nn, round trips, edge cases, gradients, bad input."""
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


def _random_inputs(n=64):
    g = torch.Generator().manual_seed(1)
    a = 2 * math.pi * torch.rand(n, generator=g, dtype=F64) - math.pi
    b = torch.rand(n, generator=g, dtype=F64) * math.pi
    c = 2 * math.pi * torch.rand(n, generator=g, dtype=F64) - math.pi
    q = torch.randn(n, 4, generator=g, dtype=F64)
    q = q / q.norm(dim=-1, keepdim=True)
    axis = torch.randn(n, 3, generator=g, dtype=F64) * 3  # not normalised on purpose
    angle = torch.rand(n, generator=g, dtype=F64) * 4 * math.pi - 2 * math.pi
    R = e3.angles_to_matrix(a, b, c)
    return dict(a=a, b=b, c=c, q=q, axis=axis, angle=angle, R=R)


# name -> which inputs it takes; every case is checked value by value against e3nn
CASES = {
    "matrix_x": ["a"], "matrix_y": ["a"], "matrix_z": ["a"],
    "angles_to_matrix": ["a", "b", "c"],
    "matrix_to_angles": ["R"],
    "angles_to_quaternion": ["a", "b", "c"],
    "quaternion_to_matrix": ["q"],
    "matrix_to_quaternion": ["R"],
    "axis_angle_to_matrix": ["axis", "angle"],
    "matrix_to_axis_angle": ["R"],
    "axis_angle_to_quaternion": ["axis", "angle"],
    "quaternion_to_axis_angle": ["q"],
    "angles_to_axis_angle": ["a", "b", "c"],
    "axis_angle_to_angles": ["axis", "angle"],
    "quaternion_to_angles": ["q"],
    "angles_to_xyz": ["a", "b"],
    "xyz_to_angles": ["axis"],
    "compose_quaternion": ["q", "q_rolled"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_e3nn(name):
    inputs = _random_inputs()
    inputs["q_rolled"] = inputs["q"].roll(1, 0)
    args = [inputs[k] for k in CASES[name]]
    ours, theirs = getattr(o3, name)(*args), getattr(e3, name)(*args)
    if isinstance(theirs, torch.Tensor):
        ours, theirs = (ours,), (theirs,)
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs):
        assert x.dtype == F64 and x.shape == y.shape
        close(x, y, atol=1e-10)


def test_batched_over_leading_shape(dtype):
    a, b, c = o3.rand_angles(2, 3, dtype=dtype)
    R = o3.angles_to_matrix(a, b, c)
    assert R.shape == (2, 3, 3, 3) and R.dtype == dtype
    q = o3.matrix_to_quaternion(R)
    assert q.shape == (2, 3, 4) and q.dtype == dtype
    axis, angle = o3.matrix_to_axis_angle(R)
    assert axis.shape == (2, 3, 3) and angle.shape == (2, 3)
    for x, y in zip(o3.matrix_to_angles(R), e3.matrix_to_angles(R)):
        close(x, y, atol=1e-3 if dtype == torch.float32 else 1e-10)


def _edge_rotations():
    """Identity, half turns about axes and a random axis, and gimbal lock (beta = 0 or pi)."""
    pi = torch.tensor(math.pi, dtype=F64)
    Rs = [torch.eye(3, dtype=F64), o3.matrix_x(pi), o3.matrix_y(pi), o3.matrix_z(pi),
          o3.axis_angle_to_matrix(torch.tensor([1.0, 2.0, -0.5], dtype=F64), pi),
          o3.angles_to_matrix(*torch.tensor([0.3, 0.0, 1.1], dtype=F64)),
          o3.angles_to_matrix(torch.tensor(-2.0, dtype=F64), pi, torch.tensor(0.4, dtype=F64)),
          o3.matrix_x(torch.tensor(1e-9, dtype=F64))]
    return torch.stack(Rs)


def test_round_trips_random_and_edge_cases():
    R = torch.cat([o3.rand_matrix(100, dtype=F64), _edge_rotations()])
    close(o3.angles_to_matrix(*o3.matrix_to_angles(R)), R, atol=1e-12)
    close(o3.quaternion_to_matrix(o3.matrix_to_quaternion(R)), R, atol=1e-12)
    close(o3.axis_angle_to_matrix(*o3.matrix_to_axis_angle(R)), R, atol=1e-12)
    a, b, c = o3.matrix_to_angles(R)
    assert (b >= 0).all() and (b <= math.pi).all()
    axis, angle = o3.matrix_to_axis_angle(R)
    assert (angle >= 0).all() and (angle <= math.pi + 1e-12).all()
    close(axis.norm(dim=-1), torch.ones(len(R), dtype=F64))
    # the quaternion is unit with w >= 0 and gives back the same angles
    q = o3.matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    close(o3.angles_to_matrix(*o3.quaternion_to_angles(q)), R, atol=1e-12)
    close(o3.angles_to_matrix(*o3.axis_angle_to_angles(axis, angle)), R, atol=1e-12)
    # half turn about a known axis: the axis comes back up to sign
    axis_pi, angle_pi = o3.matrix_to_axis_angle(o3.matrix_y(torch.tensor(math.pi, dtype=F64)))
    close(axis_pi.abs(), torch.tensor([0.0, 1.0, 0.0], dtype=F64))
    close(angle_pi, torch.tensor(math.pi, dtype=F64))


def test_xyz_angles_round_trip_and_direction():
    xyz = torch.randn(50, 3, dtype=F64) * 5
    a, b = o3.xyz_to_angles(xyz)
    close(o3.angles_to_xyz(a, b), xyz / xyz.norm(dim=-1, keepdim=True))
    # R(a, b, 0) e_y is the direction, per the documented convention
    ey = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    close(o3.angles_to_matrix(a, b, torch.zeros_like(a)) @ ey, o3.angles_to_xyz(a, b))


def test_xyz_to_angles_zero_vector_and_poles_have_finite_gradients():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]],
                       dtype=F64, requires_grad=True)
    a, b = o3.xyz_to_angles(xyz)
    close(a[0], torch.tensor(0.0, dtype=F64))
    close(b[0], torch.tensor(math.pi / 2, dtype=F64))  # e3nn's value
    close(b[1:3], torch.tensor([0.0, math.pi], dtype=F64))
    (g,) = torch.autograd.grad((a + b).sum(), xyz)
    assert torch.isfinite(g).all()
    # away from singular points the gradient is the true one: d beta / d y at (1, 0, 0) is -1
    assert g[3, 1].item() == pytest.approx(-1.0)


def test_gradients_finite_at_singular_rotations():
    R = _edge_rotations().requires_grad_(True)
    out = sum(x.sum() for x in o3.matrix_to_angles(R))
    out = out + o3.matrix_to_quaternion(R).sum() + sum(x.sum() for x in o3.matrix_to_axis_angle(R))
    (g,) = torch.autograd.grad(out, R)
    assert torch.isfinite(g).all()
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(sum(x.sum() for x in o3.quaternion_to_axis_angle(q)), q)
    assert torch.isfinite(g).all()


def test_quaternion_to_matrix_ignores_scale():
    q = o3.rand_quaternion(10, dtype=F64)
    close(o3.quaternion_to_matrix(3.5 * q), o3.quaternion_to_matrix(q))
    close(o3.quaternion_to_matrix(-q), o3.quaternion_to_matrix(q))


@pytest.mark.parametrize("fn", ["matrix_to_angles", "matrix_to_quaternion", "matrix_to_axis_angle"])
def test_not_a_rotation_raises(fn):
    f = getattr(o3, fn)
    R = o3.rand_matrix(4, dtype=F64)
    bad = R.clone()
    bad[2] = -bad[2]  # det = -1: a reflection hidden in a batch
    with pytest.raises(ValueError, match="det"):
        f(bad)
    with pytest.raises(ValueError, match="rotation"):
        f(2 * R)  # det 8, not orthogonal
    shear = torch.eye(3, dtype=F64)
    shear[0, 1] = 0.5  # det 1 but not orthogonal
    with pytest.raises(ValueError, match="rotation"):
        f(shear)
    with pytest.raises(ValueError, match="3, 3"):
        f(torch.eye(4, dtype=F64))
    with pytest.raises(TypeError):
        f(torch.eye(3, dtype=torch.int64))
    with pytest.raises(ValueError):
        f(torch.full((3, 3), float("nan"), dtype=F64))
    f(R.float())  # float32 rotations pass the looser tolerance


def test_group_operations_stay_importable_from_rotation():
    """They were defined in equinet.o3.rotation before rotation_group existed."""
    from equinet.o3 import rotation, rotation_group

    for name in rotation_group.__all__:
        assert getattr(rotation, name) is getattr(rotation_group, name)
        assert name in rotation.__all__
