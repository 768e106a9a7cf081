r"""Wigner D matrices: the real irreducible representations of SO(3).

Basis and signs are e3nn's. The degree-:math:`l` representation acts on
:math:`\mathbb R^{2l+1}`, components ordered :math:`m = -l, \dots, l`, with Y as
the polar axis: a rotation about Y only mixes the pair :math:`(m, -m)`,

.. math::

    Y_l(t)_{m,m} = \cos(m t), \qquad Y_l(t)_{m,-m} = -\sin(m t),

and for :math:`l = 1` the representation is the rotation matrix itself in
:math:`(x, y, z)` order. A rotation about X is a rotation about Y seen in a frame
turned by :math:`R_z(\pi/2)` (which takes X to Y): :math:`X_l(t) = J_l^T Y_l(t) J_l`
with :math:`J_l = D^l(R_z(\pi/2))`. Hence

.. math::

    D^l(\alpha, \beta, \gamma) = Y_l(\alpha)\, J_l^T\, Y_l(\beta)\, J_l\, Y_l(\gamma),

one dense product per rotation; the :math:`Y_l` act as cos/sin scalings of rows or
columns. :math:`J_l` is built once per degree from the exact Wigner
:math:`d^l(\pi/2)` (signed square roots of rationals, rounded once) and cached.
"""
import functools
from fractions import Fraction
from math import comb

import torch

from ._exact import factorial, sqrt_sum_to_float

__all__ = ["su2_generators", "change_basis_real_to_complex", "so3_generators", "wigner_D"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.complex64: torch.complex64, torch.complex128: torch.complex128}


def _degree(l, name="l") -> int:
    if isinstance(l, bool) or not isinstance(l, int):
        try:
            l = l.__index__()
        except (AttributeError, TypeError):
            raise TypeError(f"{name} must be an integer degree, got {l!r}") from None
    if l < 0:
        raise ValueError(f"{name} must be >= 0, got {l}")
    return l


def _device(device):
    return torch.get_default_device() if device is None else device


def _complex_dtype(dtype):
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in _COMPLEX:
        raise TypeError(f"dtype must be float32, float64 or a complex type, got {dtype}")
    return _COMPLEX[dtype]


def su2_generators(j, dtype=None, device=None) -> torch.Tensor:
    r"""Generators of the spin-:math:`j` representation, basis :math:`|j, m\rangle`, m = -j..j.

    Returns the complex tensor :math:`(-i J_y, i J_z, i J_x)` of shape ``(3, 2j+1, 2j+1)``
    (e3nn's order and signs; they become rotations about x, y, z of the real basis),
    with :math:`J_\pm` in the Condon-Shortley phase. ``j`` may be a half-integer.

    >>> su2_generators(1)[1].imag
    tensor([[-1.,  0.,  0.],
            [ 0.,  0.,  0.],
            [ 0.,  0.,  1.]])
    """
    if float(2 * j) != int(2 * j) or j < 0:
        raise ValueError(f"j must be a non-negative integer or half-integer, got {j!r}")
    n = int(2 * j) + 1
    m = torch.arange(n, dtype=torch.float64) - j
    # s_k = <m_k + 1| J_+ |m_k>
    s = (j * (j + 1) - m[:-1] * (m[:-1] + 1)).sqrt()
    raising = torch.diag(-s, -1)
    lowering = torch.diag(s, 1)
    X = torch.stack([
        (raising + lowering).to(torch.complex128) / 2,
        torch.diag(1j * m.to(torch.complex128)),
        -0.5j * (raising - lowering).to(torch.complex128),
    ])
    return X.to(dtype=_complex_dtype(dtype), device=_device(device))


def change_basis_real_to_complex(l: int, dtype=None, device=None) -> torch.Tensor:
    r"""Unitary :math:`Q` with :math:`Q_{m_c, m_r}` taking real components to complex ones.

    Rows are complex :math:`m`, columns real :math:`m`, both :math:`-l..l`; with
    :math:`|m| > 0`, :math:`Q_{-|m|,|m|} = 1/\sqrt2`, :math:`Q_{-|m|,-|m|} = -i/\sqrt2`,
    :math:`Q_{|m|,|m|} = (-1)^m/\sqrt2`, :math:`Q_{|m|,-|m|} = i(-1)^m/\sqrt2`, :math:`Q_{00} = 1`,
    all times :math:`(-i)^l`, which makes the real Clebsch-Gordan coefficients real.
    Returns a fresh complex tensor (complex64 for float32, complex128 for float64).

    >>> Q = change_basis_real_to_complex(1) * 2 ** 0.5
    >>> Q.real
    tensor([[-1.,  0.,  0.],
            [ 0.,  0.,  0.],
            [-1.,  0.,  0.]])
    >>> Q.imag + 0  # (+ 0 prints -0. as 0.)
    tensor([[ 0.0000,  0.0000, -1.0000],
            [ 0.0000, -1.4142,  0.0000],
            [ 0.0000,  0.0000,  1.0000]])
    """
    l = _degree(l)
    q = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    r = 2 ** -0.5
    for m in range(1, l + 1):
        q[l - m, l + m] = r
        q[l - m, l - m] = -1j * r
        q[l + m, l + m] = (-1) ** m * r
        q[l + m, l - m] = 1j * (-1) ** m * r
    q[l, l] = 1
    q = q * (-1j) ** l
    return q.to(dtype=_complex_dtype(dtype), device=_device(device))


def so3_generators(l: int, dtype=None, device=None) -> torch.Tensor:
    r"""Real antisymmetric generators of the rotations about x, y, z in degree ``l``.

    Shape ``(3, 2l+1, 2l+1)``.

    :math:`X_k = Q^\dagger G_k Q` with :math:`G` = `su2_generators` and :math:`Q` =
    `change_basis_real_to_complex`, so that :math:`D^l(R_k(t)) = \exp(t X_k)`.

    >>> so3_generators(1)[2]
    tensor([[ 0., -1.,  0.],
            [ 1.,  0.,  0.],
            [ 0.,  0.,  0.]])
    """
    l = _degree(l)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    Q = change_basis_real_to_complex(l, dtype=torch.float64)
    X = Q.conj().T @ su2_generators(l, dtype=torch.float64) @ Q
    return X.real.to(dtype=dtype, device=_device(device)).contiguous()


@functools.lru_cache(maxsize=None)
def _wigner_d_half_pi(l: int) -> torch.Tensor:
    # Standard Wigner d^l_{m'm}(pi/2) = <l m'| exp(-i pi/2 J_y) |l m>, exactly:
    # 2^-l sqrt[(l+m')!(l-m')! / ((l+m)!(l-m)!)] sum_k (-1)^(k-m+m') C(l+m, k) C(l-m, l-m'-k).
    n = 2 * l + 1
    d = torch.zeros(n, n, dtype=torch.float64)
    for mp in range(-l, l + 1):
        for m in range(-l, l + 1):
            s = sum((-1) ** (k - m + mp) * comb(l + m, k) * comb(l - m, l - mp - k)
                    for k in range(max(0, m - mp), min(l + m, l - mp) + 1))
            if s:
                square = Fraction(s * s * factorial(l + mp) * factorial(l - mp),
                                  factorial(l + m) * factorial(l - m) * 4 ** l)
                d[l + mp, l + m] = sqrt_sum_to_float({square: 1 if s > 0 else -1})
    return d


def _y_rotation_exact(l: int, quarter_turns: int) -> torch.Tensor:
    # Y_l(k pi/2) with exact integer cos/sin values.
    n = 2 * l + 1
    cos = [1, 0, -1, 0]
    Y = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        k = ((i - l) * quarter_turns) % 4
        Y[i, i] += cos[k]
        Y[i, n - 1 - i] -= cos[(k - 1) % 4]  # -sin(m t)
    return Y


@functools.lru_cache(maxsize=None)
def _frame_change_float64(l: int) -> torch.Tensor:
    # J_l = D^l(R_z(pi/2)) = Y(-pi/2) X(pi/2) Y(pi/2): R_z(pi/2) takes e_x to e_y, so
    # J^T Y(t) J = D(R_z^T R_y(t) R_z) = D(R_x(t)). X(pi/2) = Q^dagger d(pi/2) Q (the
    # complex-basis x generator is -i J_y, whose exponential is the standard d).
    Q = change_basis_real_to_complex(l, dtype=torch.float64)
    X = (Q.conj().T @ _wigner_d_half_pi(l).to(torch.complex128) @ Q).real
    return (_y_rotation_exact(l, -1) @ X @ _y_rotation_exact(l, 1)).contiguous()


@functools.lru_cache(maxsize=None)
def _frame_change(l: int, dtype: torch.dtype, device: torch.device):
    # J, its column-flip, its row-flip and both (flipping constants once is cheaper than
    # flipping (batch, 2l+1, 2l+1) intermediates on every call), and the flip as an index.
    J = _frame_change_float64(l).to(dtype=dtype, device=device)
    flip = torch.arange(2 * l, -1, -1, device=device)
    return J, J.flip(-1), J.flip(-2), J.flip(-2, -1), flip


def _angle_tensors(*angles):
    angles = [torch.as_tensor(a) for a in angles]
    dtype = functools.reduce(torch.promote_types, [a.dtype for a in angles])
    if dtype.is_complex:
        raise TypeError(f"angles must be real, got {dtype}")
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    device = angles[0].device
    return torch.broadcast_tensors(*[a.to(dtype=dtype, device=device) for a in angles])


def wigner_D(l: int, alpha, beta, gamma) -> torch.Tensor:
    r"""Wigner D matrix :math:`D^l(R_y(\alpha) R_x(\beta) R_y(\gamma))`.

    Equal to e3nn's ``o3.wigner_D`` (:math:`e^{\alpha X_y} e^{\beta X_x} e^{\gamma X_y}`
    with the `so3_generators`) to float rounding, computed as
    :math:`Y_l(\alpha) J_l^T Y_l(\beta) J_l Y_l(\gamma)` (see the module docstring):
    orthogonal, :math:`D(R_1 R_2) = D(R_1) D(R_2)`, and :math:`D^1(R) = R`.

    Parameters
    ----------
    l : int
        Degree, :math:`l \geq 0`.
    alpha, beta, gamma : torch.Tensor
        Euler angles (broadcast together), as in `equinet.o3.angles_to_matrix`:
        :math:`\gamma` about Y applied first, :math:`\beta` about X, then :math:`\alpha` about Y.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2l+1, 2l+1)``, dtype and device of the angles.

    Examples
    --------
    >>> wigner_D(1, torch.tensor(0.0), torch.tensor(torch.pi / 2), torch.tensor(0.0)).round()
    tensor([[ 1.,  0.,  0.],
            [ 0.,  0., -1.],
            [ 0.,  1.,  0.]])
    """
    l = _degree(l)
    alpha, beta, gamma = _angle_tensors(alpha, beta, gamma)
    dtype, device = alpha.dtype, alpha.device
    if l == 0:
        return torch.ones(alpha.shape + (1, 1), dtype=dtype, device=device)
    m = torch.arange(-l, l + 1, dtype=dtype, device=device)

    def cos_sin(t):
        mt = t[..., None] * m
        return mt.cos(), mt.sin()

    J, J_f1, J_f0, J_f01, flip = _frame_change(l, dtype, device)
    # Y(t) mixes the components m and -m only; with f the flip m -> -m:
    #   (Y(t) M)[i, :] = cos(m_i t) M[i, :] - sin(m_i t) M[f(i), :]
    #   (M Y(t))[:, j] = cos(m_j t) M[:, j] + sin(m_j t) M[:, f(j)]
    # At high l the cost is memory traffic and fresh allocations, not arithmetic, so
    # intermediates are updated in place.
    c, s = cos_sin(gamma)
    c, s = c[..., None, :], s[..., None, :]
    M = (J * c).addcmul_(J_f1, s)  # J Y(gamma)
    M_f = (J_f0 * c).addcmul_(J_f01, s)  # its row flip
    c, s = cos_sin(beta)
    M.mul_(c[..., :, None]).addcmul_(M_f, s[..., :, None], value=-1)  # Y(beta) J Y(gamma)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (alpha, beta, gamma)):
        M = J.T @ M
        M_f = M.flip(-2)
    else:  # autograd does not see `out=`; reuse the two buffers instead of allocating two more
        M, M_f = torch.matmul(J.T, M, out=M_f), M
        M_f = torch.index_select(M, -2, flip, out=M_f)
    c, s = cos_sin(alpha)
    return M.mul_(c[..., :, None]).addcmul_(M_f, s[..., :, None], value=-1)  # Y(alpha) J^T ...
