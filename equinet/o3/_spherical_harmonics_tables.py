r"""Constants of the scaled spherical-harmonics recurrence (built in float64, cached per degree).

Conventions (e3nn's): the input ``(x, y, z)`` is read as :math:`X = z`, :math:`Y = x`,
:math:`Z = y` (Y of e3nn is the polar axis), and the component-normalized real harmonics are

.. math::

    Y_l^m = c_{l|m|}\, Q_l^{|m|}(Z, r^2)\, \begin{cases} \operatorname{Re} w^{m} & m > 0 \\
    1 & m = 0 \\ \operatorname{Im} w^{|m|} & m < 0 \end{cases}, \qquad w = X + iY,

with :math:`Q_l^m = r^{l-m} P_l^{(m)}(Z / r)` (the :math:`m`-th derivative of the Legendre
polynomial, no Condon-Shortley phase) and
:math:`c_{lm} = \sqrt{(2l+1)(l-m)!/(l+m)!}\,(\sqrt 2 \text{ if } m \neq 0)`.

The kernels compute scaled harmonics :math:`\hat Y_l^m = Y_l^m / s_{lm}`, the scales being chosen so
that the recurrence in :math:`l` at fixed :math:`m` reads

.. math::

    \hat Y_l^m = 2 Z \hat Y_{l-1}^m + b_{lm}\, r^2\, \hat Y_{l-2}^m \quad (|m| < l), \qquad
    \hat Y_l^{\pm l} = \operatorname{Re} / \operatorname{Im}\, w^l, \qquad
    \hat Y_1 = (Y, Z, X) = (x, y, z),

one multiply and one fused multiply-add per degree on a block of rows. The factor 2 (rather than
1) keeps :math:`s_{lm}` within a few decades up to high degree (about :math:`10^{20}` at
:math:`l = 200`), so float32 neither overflows nor underflows.
"""
import functools
import math
from fractions import Fraction
from typing import List, NamedTuple, Optional

import torch
from torch.utils._python_dispatch import _disable_current_modes

__all__ = []


class RecurrenceTables(NamedTuple):
    """Float64 constants for degrees ``0..lmax``; components indexed ``l*l + l + m``."""

    lmax: int
    scale: torch.Tensor  # [dim] s_lm: Y = s * Yhat, component normalization
    neg_b: List[Optional[torch.Tensor]]  # neg_b[l] ([2l-1, 1], l >= 3): b_lm, 0 at |m| = l-1
    b20: float  # b_{2,0}, the only nonzero b at l = 2
    gradient: List[torch.Tensor]  # gradient[l-1] = E^l, see _gradient_blocks


def _sqrt(q: Fraction) -> float:
    """``sqrt(q)`` of a rational ``q >= 0``, rounded once (integer square root to >= 80 bits)."""
    if q == 0:
        return 0.0
    n, d = q.numerator, q.denominator
    k = max(0, (170 - n.bit_length() + d.bit_length()) // 2)
    return float(Fraction(math.isqrt((n << (2 * k)) // d), 1 << k))


@functools.lru_cache(maxsize=None)
def recurrence_tables(lmax: int) -> RecurrenceTables:
    """The float64 constants of the scaled recurrence up to degree ``lmax`` (cached).

    Every constant is the square root of a rational; the squares are computed exactly and
    rounded once.
    """
    fact = [math.factorial(k) for k in range(2 * lmax + 2)]

    def c2(l, m):  # c_lm^2
        return Fraction((2 * l + 1) * fact[l - m], fact[l + m]) * (2 if m else 1)

    s2 = {(0, 0): Fraction(1)}
    double_factorial = 1
    for l in range(1, lmax + 1):
        double_factorial *= 2 * l - 1
        s2[l, l] = c2(l, l) * double_factorial**2  # Yhat_l^{+-l} = Re/Im w^l
    if lmax >= 1:
        s2[1, 0] = Fraction(3)  # Yhat_1^0 = Z
    for m in range(lmax + 1):
        for l in range(max(m + 1, 2), lmax + 1):
            # Y_l^m = A Z Y_{l-1}^m - B r^2 Y_{l-2}^m, A = c_lm (2l-1) / ((l-m) c_{l-1,m})
            a2 = c2(l, m) * (2 * l - 1) ** 2 / ((l - m) ** 2 * c2(l - 1, m))
            s2[l, m] = a2 / 4 * s2[l - 1, m]

    def b(l, m):  # b_lm of the scaled recurrence, 0 where Q_{l-2}^m does not exist
        if l - 2 < m:
            return 0.0
        b2 = c2(l, m) * (l + m - 1) ** 2 / ((l - m) ** 2 * c2(l - 2, m))
        return -_sqrt(b2 * s2[l - 2, m] / s2[l, m])

    neg_b = [None, None, None] + [
        torch.tensor([[b(l, abs(m))] for m in range(-(l - 1), l)], dtype=torch.float64,
                     device="cpu")
        for l in range(3, lmax + 1)
    ]
    scale = torch.tensor(
        [_sqrt(s2[l, abs(m)]) for l in range(lmax + 1) for m in range(-l, l + 1)],
        dtype=torch.float64, device="cpu",
    )
    return RecurrenceTables(lmax, scale, neg_b, b(2, 0) if lmax >= 2 else 0.0,
                            _gradient_blocks(lmax, c2, s2))


def _gradient_blocks(lmax, c2, s2) -> List[torch.Tensor]:
    r""":math:`E^l` (``l = 1..lmax``) of :math:`\partial_k \hat Y_{l,m} = \sum_{m'}
    E^l_{(k, m'), m} \hat Y_{l-1, m'}`, shape ``[3 (2l-1), 2l+1]``, ``k`` in input order.

    With :math:`\Phi_l^m = Q_l^m w^m` (:math:`m \ge 0`), :math:`\hat Y_l^{\pm m} = \sigma_{lm}
    \operatorname{Re}/\operatorname{Im} \Phi_l^m`, :math:`\sigma_{lm} = c_{lm} / s_{lm}`, and the
    ladder identities :math:`\partial_Z \Phi_l^m = (l+m) \Phi_{l-1}^m`,
    :math:`\partial_{\bar w} \Phi_l^m = -\tfrac12 \Phi_{l-1}^{m+1}`,
    :math:`\partial_w \Phi_l^m = \tfrac12 (l+m)(l+m-1) \Phi_{l-1}^{m-1}` (:math:`m \ge 1`),
    :math:`\partial_w \Phi_l^0 = -\tfrac12 \overline{\Phi_{l-1}^1}`, where
    :math:`\partial_X = \partial_w + \partial_{\bar w}`,
    :math:`\partial_Y = i (\partial_w - \partial_{\bar w})`.
    """
    sigma2 = {(l, a): c2(l, a) / s2[l, a] for l in range(lmax + 1) for a in range(l + 1)}

    blocks = []
    for l in range(1, lmax + 1):
        e = [[[0.0] * (2 * l + 1) for _ in range(2 * l - 1)] for _ in range(3)]

        def put(k, m_lower, m, factor, a_lower):
            # k: 0 = d/dx = d/dY, 1 = d/dy = d/dZ, 2 = d/dz = d/dX (input order)
            if abs(m_lower) <= l - 1:
                value = _sqrt(factor**2 * sigma2[l, abs(m)] / sigma2[l - 1, a_lower])
                e[k][l - 1 + m_lower][l + m] += value if factor > 0 else -value

        for m in range(-l, l + 1):
            a = abs(m)
            if m == 0:
                put(2, 1, 0, Fraction(-1), 1)
                put(0, -1, 0, Fraction(-1), 1)
                put(1, 0, 0, Fraction(l), 0)
                continue
            alpha, beta = Fraction((l + a) * (l + a - 1), 2), Fraction(-1, 2)
            if m > 0:  # Re
                put(2, a - 1, m, alpha, a - 1)
                put(2, a + 1, m, beta, a + 1)
                if a - 1 >= 1:
                    put(0, -(a - 1), m, -alpha, a - 1)
                put(0, -(a + 1), m, beta, a + 1)
                put(1, a, m, Fraction(l + a), a)
            else:  # Im
                if a - 1 >= 1:
                    put(2, -(a - 1), m, alpha, a - 1)
                put(2, -(a + 1), m, beta, a + 1)
                put(0, a - 1, m, alpha, a - 1)
                put(0, a + 1, m, -beta, a + 1)
                put(1, -a, m, Fraction(l + a), a)
        e = torch.tensor(e, dtype=torch.float64, device="cpu")
        blocks.append(e.reshape(3 * (2 * l - 1), 2 * l + 1))
    return blocks


@functools.lru_cache(maxsize=64)
def _tables_as(lmax: int, dtype: torch.dtype, device: torch.device):
    with real_tensors():  # on a cache miss only: the lookups pay nothing for it
        return _build_tables_as(lmax, dtype, device)


def _build_tables_as(lmax: int, dtype: torch.dtype, device: torch.device):
    t = recurrence_tables(lmax)
    if dtype != torch.float64:
        # the float max of the scales is computed once with the tables, never from tensor values
        if _scale_max(lmax) > torch.finfo(dtype).max / 16:
            raise ValueError(f"spherical harmonics of degree {lmax} overflow {dtype}; use float64")
    return RecurrenceTables(
        lmax,
        t.scale.to(dtype=dtype, device=device),
        [None if v is None else v.to(dtype=dtype, device=device) for v in t.neg_b],
        t.b20,
        [v.to(dtype=dtype, device=device) for v in t.gradient],
    )


@functools.lru_cache(maxsize=None)
def _scale_max(lmax: int) -> float:
    """The largest scale :math:`s_{lm}` up to ``lmax``, as a Python float."""
    return float(recurrence_tables(lmax).scale.max())


@torch.compiler.assume_constant_result
def tables(lmax: int, dtype: torch.dtype, device: torch.device) -> RecurrenceTables:
    """:func:`recurrence_tables` cast to ``dtype`` on ``device`` (cached).

    A constant to ``torch.compile``: looked up when tracing, not traced into (so that
    neither the cache nor the exact rational arithmetic behind it enters the graph). Built
    with real tensors even while ``torch.export`` traces with fake ones: the cache outlives
    the trace.
    """
    return _tables_as(lmax, dtype, torch.device(device))


def real_tensors():
    """Context in which new tensors are real, also inside a tracing mode (fake, functional).

    Cached constants are built inside it: a constant first built while ``torch.export`` or
    ``make_fx`` traces would otherwise be a fake tensor kept in the cache, and break every
    later (eager) call.
    """
    return _disable_current_modes()
