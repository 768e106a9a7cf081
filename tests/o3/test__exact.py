"""Signed square roots of rationals rounded once: against mpmath at 60 digits."""
import random
from fractions import Fraction

import mpmath
import pytest

from equinet.o3._exact import fixed_point_sqrt, sqrt_sum_to_float


def test_sums_of_roots_are_correctly_rounded():
    rng = random.Random(0)
    with mpmath.workdps(60):
        for _ in range(300):
            terms = {}
            for _ in range(rng.randrange(1, 4)):
                q = Fraction(rng.randrange(1, 10 ** 12), rng.randrange(1, 10 ** 12))
                terms[q] = rng.choice([-2, -1, 1, 3])
            exact = sum(c * mpmath.sqrt(mpmath.mpf(q.numerator) / q.denominator)
                        for q, c in terms.items())
            assert sqrt_sum_to_float(terms) == float(exact)


def test_cancellation_is_resolved_far_below_float64_resolution():
    # 2 sqrt(2/3) = sqrt(8/3): only the 2^-160 truncation of each root is left
    assert abs(sqrt_sum_to_float({Fraction(2, 3): 2, Fraction(8, 3): -1})) < 1e-45
    assert sqrt_sum_to_float({}) == 0.0


def test_negative_square_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        fixed_point_sqrt(Fraction(-1, 3))
