r"""Exact arithmetic on signed square roots of rationals, rounded once to float.

Wigner matrices at special angles and Clebsch-Gordan coefficients are all of the
form :math:`\pm\sqrt{q}` with :math:`q` rational. Keeping them that way and
rounding only at the end makes the float64 tables exact to the last bit instead
of carrying the error of a floating-point evaluation of the Racah sum.
"""
import functools
import math
from fractions import Fraction
from typing import Dict

# Bits kept below the binary point before the final rounding to float64 (53 bits);
# the excess makes a double rounding impossible in practice.
_FIXED_POINT_BITS = 160


@functools.lru_cache(maxsize=None)
def factorial(n: int) -> int:
    """Cached ``math.factorial``; the Racah sums ask for the same few values many times."""
    return math.factorial(n)


def fixed_point_sqrt(q: Fraction) -> int:
    r""":math:`\lfloor \sqrt{q}\, 2^{160} \rfloor` for a rational ``q >= 0``, exactly.

    >>> fixed_point_sqrt(Fraction(1, 4)) == 1 << 159
    True
    """
    if q < 0:
        raise ValueError(f"square root of a negative rational {q}")
    return math.isqrt(q.numerator * (1 << (2 * _FIXED_POINT_BITS)) // q.denominator)


def fixed_point_to_float(x: int) -> float:
    """Correctly rounded float of the fixed-point number ``x / 2**160``.

    >>> fixed_point_to_float(3 << 159)
    1.5
    """
    return float(Fraction(x, 1 << _FIXED_POINT_BITS))


def sqrt_sum_to_float(terms: Dict[Fraction, int]) -> float:
    r"""Round :math:`\sum_q c_q \sqrt{q}` (``terms`` maps ``q >= 0`` to integer ``c_q``) to a float.

    Each root is taken to 160 fractional bits with integer arithmetic, the sum is
    exact in those units, and the one final conversion is correctly rounded.

    >>> sqrt_sum_to_float({Fraction(1, 4): 1, Fraction(9, 4): -1})
    -1.0
    >>> sqrt_sum_to_float({Fraction(1, 2): 1}) == 2 ** -0.5
    True
    """
    return fixed_point_to_float(sum(c * fixed_point_sqrt(q) for q, c in terms.items() if c))
