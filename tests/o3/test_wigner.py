"""Generators, change of basis and Wigner D against e3nn; representation properties; bad input."""
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


@pytest.fixture(autouse=True)
def _float64_default():
    """e3nn builds its generators in the default dtype; float64 makes it a float64 oracle."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("j", [0, 0.5, 1, 1.5, 2, 2.5, 7])
def test_su2_generators_match_e3nn_and_close_the_algebra(j):
    X = o3.su2_generators(j, dtype=F64)
    assert X.dtype == torch.complex128 and X.shape == (3, int(2 * j + 1), int(2 * j + 1))
    close(X, e3.su2_generators(j).to(torch.complex128), atol=1e-15)

    def bracket(A, B):
        return A @ B - B @ A

    # [X0, X1] = X2 and cyclic: a representation of so(3)
    close(bracket(X[0], X[1]), X[2])
    close(bracket(X[1], X[2]), X[0])
    close(bracket(X[2], X[0]), X[1])


@pytest.mark.parametrize("l", range(8))
def test_change_of_basis_and_so3_generators_match_e3nn(l):
    Q = o3.change_basis_real_to_complex(l, dtype=F64)
    assert Q.dtype == torch.complex128
    close(Q, e3.change_basis_real_to_complex(l, dtype=F64), atol=1e-15)
    close(Q.conj().T @ Q, torch.eye(2 * l + 1, dtype=torch.complex128))
    X = o3.so3_generators(l, dtype=F64)
    close(X, e3.so3_generators(l), atol=1e-14)
    close(X, -X.transpose(-1, -2))


def test_so3_generators_exponentiate_to_axis_rotations():
    t = torch.tensor(0.7, dtype=F64)
    X = o3.so3_generators(1, dtype=F64)
    for k, rotation in enumerate([o3.matrix_x, o3.matrix_y, o3.matrix_z]):
        close(torch.linalg.matrix_exp(t * X[k]), rotation(t))


def test_default_dtypes():
    assert o3.so3_generators(2).dtype == F64
    assert o3.change_basis_real_to_complex(2).dtype == torch.complex128
    assert o3.wigner_D(2, 0.1, 0.2, 0.3).dtype == F64
    torch.set_default_dtype(torch.float32)
    assert o3.so3_generators(2).dtype == torch.float32
    assert o3.change_basis_real_to_complex(2).dtype == torch.complex64
    assert o3.su2_generators(1).dtype == torch.complex64
    assert o3.wigner_D(2, 0.1, 0.2, 0.3).dtype == torch.float32


@pytest.mark.parametrize("l", range(11))
def test_wigner_D_matches_e3nn(l):
    a, b, c = o3.rand_angles(5, 4, dtype=F64)
    a = a * 3 - 7  # angles outside [0, 2 pi) too
    D = o3.wigner_D(l, a, b, c)
    assert D.shape == (5, 4, 2 * l + 1, 2 * l + 1) and D.dtype == F64
    close(D, e3.wigner_D(l, a, b, c), atol=1e-12)


def test_wigner_D_float32_matches_float64():
    a, b, c = o3.rand_angles(10, dtype=F64)
    D64 = o3.wigner_D(8, a, b, c)
    D32 = o3.wigner_D(8, a.float(), b.float(), c.float())
    assert D32.dtype == torch.float32
    close(D32.double(), D64, atol=2e-5)


def test_wigner_D_of_degree_one_is_the_rotation_matrix():
    R = o3.rand_matrix(50, dtype=F64)
    close(o3.wigner_D(1, *o3.matrix_to_angles(R)), R, atol=1e-13)
    close(e3.Irrep("1o").D_from_matrix(R), R)  # the e3nn fact we rely on


@pytest.mark.parametrize("l", [0, 1, 2, 5, 9, 16, 24])
def test_wigner_D_is_an_orthogonal_representation(l):
    R1, R2 = o3.rand_matrix(2, 6, dtype=F64)
    D1 = o3.wigner_D(l, *o3.matrix_to_angles(R1))
    D2 = o3.wigner_D(l, *o3.matrix_to_angles(R2))
    D12 = o3.wigner_D(l, *o3.matrix_to_angles(R1 @ R2))
    close(D1 @ D2, D12, atol=1e-12)
    eye = torch.eye(2 * l + 1, dtype=F64)
    close(D1 @ D1.transpose(-1, -2), eye.expand_as(D1), atol=1e-12)
    close(o3.wigner_D(l, *o3.identity_angles(dtype=F64)), eye, atol=1e-14)
    inverse = o3.wigner_D(l, *o3.inverse_angles(*o3.matrix_to_angles(R1)))
    close(inverse, D1.transpose(-1, -2), atol=1e-12)


@pytest.mark.parametrize("l", [3, 7])
def test_wigner_D_factors_into_generator_exponentials(l):
    # an independent route: matrix exponentials of the generators, one angle at a time
    X = o3.so3_generators(l, dtype=F64)
    t = torch.tensor([0.3, -1.2, 2.9], dtype=F64)
    zero = torch.zeros_like(t)
    exp = torch.linalg.matrix_exp
    close(o3.wigner_D(l, t, zero, zero), exp(t[:, None, None] * X[1]), atol=1e-13)
    close(o3.wigner_D(l, zero, t, zero), exp(t[:, None, None] * X[0]), atol=1e-13)


def test_frame_change_is_exact_rotation_about_z():
    from equinet.o3.wigner import _frame_change_float64

    for l in [1, 4, 12]:
        J = _frame_change_float64(l)
        eye = torch.eye(2 * l + 1, dtype=F64)
        close(J @ J.T, eye, atol=2e-15)
        # J = D(R_z(pi/2)); R_z(pi/2) = R(-pi/2, pi/2, pi/2) in e3nn's Euler angles
        angles = [torch.tensor(x, dtype=F64) for x in (-math.pi / 2, math.pi / 2, math.pi / 2)]
        close(J, e3.wigner_D(l, *angles), atol=1e-13)
    close(_frame_change_float64(1), o3.matrix_z(torch.tensor(math.pi / 2, dtype=F64)))


def test_wigner_D_broadcasts_and_accepts_numbers():
    a = torch.rand(3, 1, dtype=F64)
    b = torch.rand(1, 4, dtype=F64)
    D = o3.wigner_D(2, a, b, 0.5)
    assert D.shape == (3, 4, 5, 5)
    close(D[1, 2], o3.wigner_D(2, a[1, 0], b[0, 2], torch.tensor(0.5, dtype=F64)))
    assert o3.wigner_D(0, a, b, 0.5).shape == (3, 4, 1, 1)


def test_wigner_D_same_with_and_without_autograd():
    # two code paths: buffers are reused when no gradient is recorded
    a, b, c = o3.rand_angles(3, 2, dtype=F64)
    plain = o3.wigner_D(6, a, b, c)
    tracked = o3.wigner_D(6, a.requires_grad_(), b, c)
    assert tracked.requires_grad and not plain.requires_grad
    close(tracked, plain, atol=0)
    with torch.no_grad():
        close(o3.wigner_D(6, a, b, c), plain, atol=0)


def test_wigner_D_gradients():
    angles = [torch.rand(3, dtype=F64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda a, b, c: o3.wigner_D(3, a, b, c), angles)


def test_wigner_D_on_meta_device_keeps_device():
    a = torch.zeros(2, device="meta")
    assert o3.wigner_D(4, a, a, a).device.type == "meta"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_wigner_D_cuda_matches_cpu():
    a, b, c = o3.rand_angles(20, dtype=F64)
    D = o3.wigner_D(10, a.cuda(), b.cuda(), c.cuda())
    assert D.is_cuda
    close(D.cpu(), o3.wigner_D(10, a, b, c), atol=1e-12)


def test_bad_input():
    z = torch.zeros(2)
    with pytest.raises(ValueError, match=">= 0"):
        o3.wigner_D(-1, z, z, z)
    with pytest.raises(TypeError, match="integer"):
        o3.wigner_D(1.5, z, z, z)
    with pytest.raises(TypeError, match="real"):
        o3.wigner_D(1, z.to(torch.complex64), z, z)
    with pytest.raises(ValueError, match="half-integer"):
        o3.su2_generators(0.3)
    with pytest.raises(ValueError):
        o3.so3_generators(-2)
    with pytest.raises(TypeError):
        o3.change_basis_real_to_complex(1, dtype=torch.int32)
    with pytest.raises(RuntimeError):
        o3.wigner_D(1, torch.zeros(2), torch.zeros(3), z)  # shapes do not broadcast
