r"""Real Wigner 3j symbols: the SO(3)-invariant coupling tensors, exactly as e3nn has them.

For degrees :math:`(l_1, l_2, l_3)` obeying the triangle rule the invariant
tensor :math:`C \in \mathbb R^{(2l_1+1) \times (2l_2+1) \times (2l_3+1)}` is unique up
to scale. Its scale is :math:`\|C\|_F = 1` and its sign is e3nn's, fixed by the
construction

.. math::

    C_{abc} = \frac{1}{\sqrt{2l_3+1}}\,\mathrm{Re} \sum_{m_1 m_2 m_3}
        Q^{l_1}_{m_1 a}\, Q^{l_2}_{m_2 b}\, \overline{Q^{l_3}_{m_3 c}}\,
        \langle l_1 m_1\, l_2 m_2 | l_3 m_3 \rangle ,

with Condon-Shortley Clebsch-Gordan coefficients (:math:`\langle l_1 l_1\, l_2\,
(l_3 - l_1) | l_3 l_3\rangle > 0`) and :math:`Q^l` =
`equinet.o3.change_basis_real_to_complex`. The imaginary part vanishes
identically (that is what the :math:`(-i)^l` in :math:`Q^l` is for), and
:math:`\sum_{m_1 m_2 m_3} \langle\cdot|\cdot\rangle^2 = 2l_3 + 1` makes the norm 1.
No further sign is chosen; one visible consequence is that for :math:`l_3 = l_1 + l_2`
the entry with every :math:`m` maximal, ``C[2*l1, 2*l2, 2*l3]``, is positive.

Everything is computed exactly: each Clebsch-Gordan coefficient is a signed
square root of a rational (Racah's formula in integers), each entry of :math:`Q`
a power of :math:`i` over :math:`1` or :math:`\sqrt 2`, so every entry of
:math:`C` is an exact sum of signed square roots, rounded to float64 once.
"""
import functools
import math
from collections import defaultdict
from fractions import Fraction
from typing import Tuple

import numpy as np
import torch

from ._exact import factorial, fixed_point_sqrt, fixed_point_to_float

__all__ = ["wigner_3j"]


def _clebsch_gordan_scaled(l1, m1, l2, m2, l3, m3) -> Tuple[int, Fraction]:
    r"""Sign and square of :math:`\langle l_1 m_1 l_2 m_2 | l_3 m_3\rangle / \sqrt{2l_3+1}`.

    Racah's formula in integers; the caller guarantees the triangle rule and
    :math:`m_3 = m_1 + m_2`. Returns ``(sign, square)``, sign 0 for a zero coefficient.
    """
    f = factorial
    under_root = Fraction(
        f(l3 + l1 - l2) * f(l3 - l1 + l2) * f(l1 + l2 - l3) * f(l3 + m3) * f(l3 - m3)
        * f(l1 - m1) * f(l1 + m1) * f(l2 - m2) * f(l2 + m2),
        f(l1 + l2 + l3 + 1),
    )
    ks = range(max(0, l2 - l3 - m1, l1 - l3 + m2), min(l1 + l2 - l3, l1 - m1, l2 + m2) + 1)
    denominators = [f(k) * f(l1 + l2 - l3 - k) * f(l1 - m1 - k) * f(l2 + m2 - k)
                    * f(l3 - l2 + m1 + k) * f(l3 - l1 - m2 + k) for k in ks]
    common = math.lcm(*denominators)
    numerator = sum((-1) ** k * (common // d) for k, d in zip(ks, denominators))
    sign = (numerator > 0) - (numerator < 0)
    return sign, Fraction(numerator * numerator, common * common) * under_root


def _change_of_basis_phase(l: int, m_complex: int, m_real: int) -> int:
    r"""Entry of `change_basis_real_to_complex`, :math:`i^p / \sqrt2` (:math:`i^p` at m = 0): p.

    Only called with :math:`|m_{complex}| = |m_{real}|` (the other entries are zero).
    """
    if m_complex == 0:
        p = 0
    elif m_complex < 0:
        p = 0 if m_real > 0 else 3  # 1 or -i
    else:
        p = (0 if m_real > 0 else 1) + 2 * (m_complex % 2)  # (-1)^m or i (-1)^m
    return (p + 3 * l) % 4  # times (-i)^l = i^(3l)


_POWERS_OF_I = [(1, 0), (0, 1), (-1, 0), (0, -1)]


@functools.lru_cache(maxsize=None)
def _wigner_3j_float64(l1: int, l2: int, l3: int) -> torch.Tensor:
    # Each complex triple (m1, m2, m3) contributes i^p sign sqrt(q) to the real entries
    # (a, b, c) with |a| = |m1|, |b| = |m2|, |c| = |m3|, where q = CG^2 / (2l3+1) / 2^(number
    # of nonzero m). Collect, per entry, a Gaussian-integer coefficient for each distinct q.
    terms = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    roots = {}
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            m3 = m1 + m2
            sign, square = _clebsch_gordan_scaled(l1, m1, l2, m2, l3, m3)
            if sign == 0:
                continue
            q = square / 2 ** ((m1 != 0) + (m2 != 0) + (m3 != 0))
            key = (q.numerator, q.denominator)
            roots.setdefault(key, q)
            for a in {m1, -m1}:
                p1 = _change_of_basis_phase(l1, m1, a)
                for b in {m2, -m2}:
                    p12 = p1 + _change_of_basis_phase(l2, m2, b)
                    for c in {m3, -m3}:
                        p = p12 - _change_of_basis_phase(l3, m3, c)  # Q3 enters conjugated
                        re, im = _POWERS_OF_I[p % 4]
                        coefficient = terms[a + l1, b + l2, c + l3][key]
                        coefficient[0] += sign * re
                        coefficient[1] += sign * im
    roots = {key: fixed_point_sqrt(q) for key, q in roots.items()}
    C = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))  # numpy: item assignment is much faster
    for index, entry in terms.items():
        imaginary = fixed_point_to_float(sum(c[1] * roots[key] for key, c in entry.items()))
        if abs(imaginary) > 1e-30:  # exact cancellation is a theorem; guard the implementation
            raise RuntimeError(
                f"wigner_3j({l1}, {l2}, {l3}): imaginary part {imaginary} at {index}"
            )
        C[index] = fixed_point_to_float(sum(c[0] * roots[key] for key, c in entry.items()))
    return torch.from_numpy(C)


def _check_degrees(l1, l2, l3) -> Tuple[int, int, int]:
    ls = []
    for name, l in (("l1", l1), ("l2", l2), ("l3", l3)):
        if isinstance(l, bool) or not hasattr(l, "__index__"):
            raise TypeError(
                f"wigner_3j({l1!r}, {l2!r}, {l3!r}): {name} must be an integer, got {l!r}"
            )
        ls.append(l.__index__())
    l1, l2, l3 = ls
    if min(ls) < 0:
        raise ValueError(f"wigner_3j({l1}, {l2}, {l3}): degrees must be non-negative")
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(
            f"wigner_3j({l1}, {l2}, {l3}): the degrees violate the triangle rule "
            "|l1 - l2| <= l3 <= l1 + l2"
        )
    return l1, l2, l3


def wigner_3j(l1: int, l2: int, l3: int, dtype=None, device=None) -> torch.Tensor:
    r"""Real Wigner 3j symbol :math:`C^{l_1 l_2 l_3}`, equal to e3nn's ``o3.wigner_3j``.

    The tensor is invariant, :math:`C_{ijk} D^{l_1}_{ia}(R) D^{l_2}_{jb}(R) D^{l_3}_{kc}(R)
    = C_{abc}` for all rotations :math:`R` (:math:`D` = `equinet.o3.wigner_D`), has
    Frobenius norm 1 and e3nn's sign (see the module docstring for the rule). Exact
    to float64 rounding; computed once per triple and cached.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees satisfying :math:`|l_1 - l_2| \leq l_3 \leq l_1 + l_2`.
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.
    device : torch.device, optional
        Defaults to the default device.

    Returns
    -------
    torch.Tensor
        A new tensor of shape ``(2l_1+1, 2l_2+1, 2l_3+1)`` (safe to modify).

    Examples
    --------
    >>> wigner_3j(1, 1, 0)[..., 0] * 3 ** 0.5
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]])
    >>> wigner_3j(1, 1, 1)[0] * 6 ** 0.5
    tensor([[ 0.,  0.,  0.],
            [ 0.,  0.,  1.],
            [ 0., -1.,  0.]])
    """
    l1, l2, l3 = _check_degrees(l1, l2, l3)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.get_default_device() if device is None else device
    return _wigner_3j_float64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)
