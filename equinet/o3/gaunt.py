r"""Real Gaunt coefficients: integrals of products of three real spherical harmonics.

With :math:`Y^l_i` the real spherical harmonics of e3nn (components :math:`i`
ordered :math:`m = -l..l`) in the orthonormal ("integral") normalization,

.. math:: G^{l_1 l_2 l_3}_{ijk} = \int_{S^2} Y^{l_1}_i(x)\, Y^{l_2}_j(x)\, Y^{l_3}_k(x)\, dx .

Derivation of the closed form used here. Rotating the integration variable shows
that :math:`G` is an invariant tensor of :math:`D^{l_1} \otimes D^{l_2} \otimes D^{l_3}`;
for SO(3) that tensor is unique up to a factor, so :math:`G = g\, C` with
:math:`C` = `equinet.o3.wigner_3j` (Frobenius norm 1). Then
:math:`g = \langle C, G \rangle = \int \sum_{ijk} C_{ijk} Y_i Y_j Y_k`, whose integrand
is a rotation-invariant function, i.e. a constant; evaluate it at the pole
:math:`e_y`, where only :math:`m = 0` survives and :math:`Y^l_0(e_y) = \sqrt{(2l+1)/4\pi}`:

.. math::

    g = 4\pi\, C_{000} \prod_{n=1}^{3} \sqrt{\frac{2l_n+1}{4\pi}}
      = C_{000} \sqrt{\frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}},

where :math:`C_{000}` is the entry at :math:`m_1 = m_2 = m_3 = 0`. In the real basis that
entry equals :math:`\pm \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}`, so
:math:`|g|` is the square root of the exact rational

.. math::

    \frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}
    \left[\frac{(2s-2l_1)!\,(2s-2l_2)!\,(2s-2l_3)!}{(2s+1)!}
          \left(\frac{s!}{(s-l_1)!\,(s-l_2)!\,(s-l_3)!}\right)^2\right],
    \qquad 2s = l_1 + l_2 + l_3,

taken exactly (integer square root, one rounding) and its sign is that of
:math:`C_{000}`. :math:`G` vanishes unless :math:`l_1 + l_2 + l_3` is even and the
triangle rule holds (the integrand is odd under :math:`x \to -x` otherwise).
"""
import functools
import math
from fractions import Fraction

import torch

from ._exact import factorial, sqrt_sum_to_float
from .wigner_3j import wigner_3j

__all__ = ["gaunt"]


def _check_degree(name: str, l) -> int:
    if isinstance(l, bool) or not hasattr(l, "__index__"):
        raise TypeError(f"gaunt: {name} must be an integer degree, got {l!r}")
    l = l.__index__()
    if l < 0:
        raise ValueError(f"gaunt: {name} must be >= 0, got {l}")
    return l


def _three_j_000_squared(l1: int, l2: int, l3: int) -> Fraction:
    """The exact square of the 3j symbol (l1 l2 l3; 0 0 0), for an even sum inside the triangle."""
    s = (l1 + l2 + l3) // 2
    return Fraction(
        factorial(2 * s - 2 * l1) * factorial(2 * s - 2 * l2) * factorial(2 * s - 2 * l3)
        * factorial(s) ** 2,
        factorial(2 * s + 1) * (factorial(s - l1) * factorial(s - l2) * factorial(s - l3)) ** 2,
    )


@functools.lru_cache(maxsize=None)
def _gaunt_float64(l1: int, l2: int, l3: int) -> torch.Tensor:
    shape = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if (l1 + l2 + l3) % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return torch.zeros(shape, dtype=torch.float64)
    C = wigner_3j(l1, l2, l3, dtype=torch.float64)
    sign = 1 if C[l1, l2, l3] > 0 else -1
    # |g| sqrt(pi) = sqrt(d1 d2 d3 (3j)^2 / 4): a square root of a rational, rounded once.
    dims = (2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1)
    square = Fraction(dims, 4) * _three_j_000_squared(l1, l2, l3)
    g = sign * sqrt_sum_to_float({square: 1}) / math.sqrt(math.pi)
    return (g * C).contiguous()


def gaunt(l1: int, l2: int, l3: int, dtype=None, device=None) -> torch.Tensor:
    r"""Real Gaunt coefficients :math:`G_{ijk} = \int_{S^2} Y^{l_1}_i Y^{l_2}_j Y^{l_3}_k`.

    :math:`Y^l` are e3nn's real spherical harmonics normalised to
    :math:`\int (Y^l_i)^2 = 1` (``normalization="integral"``). Computed as
    :math:`g\, C^{l_1 l_2 l_3}` with the exact scalar :math:`g` derived in the module
    docstring and the exact `wigner_3j`; cached per triple. Zero (not an error) when
    :math:`l_1 + l_2 + l_3` is odd or the triangle rule fails, since the integral
    vanishes there.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees, each :math:`\geq 0`.
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.
    device : torch.device, optional
        Defaults to the default device.

    Returns
    -------
    torch.Tensor
        A new tensor of shape ``(2l_1+1, 2l_2+1, 2l_3+1)``.

    Examples
    --------
    The product of :math:`Y^0 = 1/\sqrt{4\pi}` with an orthonormal harmonic:

    >>> G = gaunt(0, 1, 1, dtype=torch.float64)
    >>> torch.allclose(G[0], torch.eye(3, dtype=torch.float64) / (4 * torch.pi) ** 0.5)
    True
    >>> gaunt(1, 1, 1).abs().max().item()
    0.0
    """
    l1, l2, l3 = (_check_degree(n, l) for n, l in (("l1", l1), ("l2", l2), ("l3", l3)))
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.get_default_device() if device is None else device
    return _gaunt_float64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)
