r"""Exact changes of basis behind the fast Gaunt products: spherical harmonics <-> samples.

Every real spherical harmonic of e3nn factorises in the angles of
:math:`x = (\sin\theta \sin\phi,\, \cos\theta,\, \sin\theta \cos\phi)`,

.. math::

    Y_{lm}(\theta, \phi) = \Theta_{l|m|}(\theta)\, S_m(\phi), \qquad
    S_0 = 1,\; S_{k} = \sqrt2 \cos k\phi,\; S_{-k} = \sqrt2 \sin k\phi \quad (k > 0),

and :math:`\Theta_{lk}(\theta) = N_{lk} \sin^k\theta\, \frac{1}{2^l l!}
\frac{d^{l+k}}{dz^{l+k}} (z^2 - 1)^l \big|_{z = \cos\theta}` with
:math:`N_{lk}^2 = \frac{2l+1}{4\pi} \frac{(l-k)!}{(l+k)!}` (no Condon-Shortley phase).
Expanding :math:`\sin^k\theta \cos^p\theta` in :math:`e^{\pm i\theta}` shows that
:math:`\Theta_{lk}` is a trigonometric polynomial of degree :math:`l`,

.. math::

    \Theta_{lk}(\theta) = \sum_{u=0}^{l} a_{klu} \cos u\theta \;\; (k \text{ even}), \qquad
    \Theta_{lk}(\theta) = \sum_{u=1}^{l} a_{klu} \sin u\theta \;\; (k \text{ odd}),

with :math:`a_{klu} = \pm\sqrt{q}/\sqrt\pi`, :math:`q` rational, computed exactly
(`legendre_fourier`). So a band-limited spherical function is a 2D Fourier series in
:math:`(\theta, \phi)` (Luo, Chen & Krishnapriyan, ICLR 2024), and a product of two
is a 2D convolution of the coefficients. Two exact ways to multiply are built on this:

- `TorusPlan` (method ``"fft"``): coefficients -> 2D Fourier coefficients
  :math:`F_{uv}` (sparse per-:math:`k` blocks), zero padding, inverse real 2D FFT to the
  torus :math:`[0, 2\pi)^2`, pointwise product, forward 2D FFT, which is the convolution
  theorem; then the exact projection
  :math:`c_{lm} = \int_0^\pi\!\int_0^{2\pi} f\, Y_{lm} \sin\theta\, d\phi\, d\theta`, term by
  term with :math:`\int_0^\pi e^{i n\theta} \sin\theta\, d\theta = 2/(1-n^2)` (even
  :math:`n`), :math:`\pm i\pi/2` (:math:`n = \pm 1`), :math:`0` (other odd :math:`n`).
- `equinet.tp.gaunt_grid.SphereGridPlan` (method ``"grid"``): values at
  Gauss-Legendre nodes in :math:`\cos\theta` times equispaced :math:`\phi`; exact
  because the integrand of the projection is, after the exact :math:`\phi` sum, a
  polynomial in :math:`\cos\theta` of degree at most :math:`L_1 + L_2 + L_{out}`.
  Gauss-Legendre needs half the :math:`\theta` nodes of e3nn's midpoint grid
  (`equinet.o3.ToS2Grid`), which is why that plan has its own grid.

`TorusPlan` applies its per-:math:`k` tables as batched matrix products around
torch's batched 2D FFTs.
"""
import functools
import math
from fractions import Fraction
from typing import Dict, Tuple

import torch

from ..o3._exact import factorial, sqrt_sum_to_float

__all__ = ["legendre_fourier", "TorusPlan", "fft_size"]


@functools.lru_cache(maxsize=None)
def _trig_power(k: int, p: int) -> Dict[int, int]:
    """Integer coefficients of (w - 1/w)^k (w + 1/w)^p as {exponent: coefficient}."""
    if k == 0 and p == 0:
        return {0: 1}
    if p > 0:
        base, step = _trig_power(k, p - 1), 1
    else:
        base, step = _trig_power(k - 1, 0), -1
    out: Dict[int, int] = {}
    for e, c in base.items():
        out[e + 1] = out.get(e + 1, 0) + c
        out[e - 1] = out.get(e - 1, 0) + step * c
    return {e: c for e, c in out.items() if c}


@functools.lru_cache(maxsize=None)
def _legendre_fourier_row(l: int, k: int) -> Tuple[float, ...]:
    """Exact a_{k l u}, u = 0..l, rounded once (see the module docstring)."""
    n = l + k
    # (1 / (2^l l!)) d^n/dz^n (z^2 - 1)^l = sum_p d_p z^p
    d = {}
    for j in range((n + 1) // 2, l + 1):
        p = 2 * j - n
        d[p] = Fraction((-1) ** (l - j) * math.comb(l, j) * factorial(2 * j),
                        factorial(p) * 2 ** l * factorial(l))
    # sin^k cos^p = (w - 1/w)^k (w + 1/w)^p / (2^(k+p) i^k), w = e^{i theta}: R_u / i^k
    R: Dict[int, Fraction] = {}
    for p, dp in d.items():
        for e, c in _trig_power(k, p).items():
            R[e] = R.get(e, 0) + dp * Fraction(c, 2 ** (k + p))
    Q = Fraction((2 * l + 1) * factorial(l - k), factorial(l + k))  # 4 pi N^2
    sign_k = (-1) ** (k // 2)
    row = []
    for u in range(l + 1):
        r = R.get(u, Fraction(0))
        if r == 0 or (k % 2 == 1 and u == 0):
            row.append(0.0)
            continue
        # even k: a_0 = N R_0 (-1)^(k/2), a_u = 2 N R_u (-1)^(k/2);
        # odd k: a_u = 2 N R_u (-1)^((k-1)/2)
        c = 1 if (k % 2 == 0 and u == 0) else 2
        square = Q * r * r * c * c / 4  # (a sqrt(pi))^2
        row.append(sign_k * (1 if r > 0 else -1) * sqrt_sum_to_float({square: 1}))
    inv_sqrt_pi = 1 / math.sqrt(math.pi)
    return tuple(a * inv_sqrt_pi for a in row)


@functools.lru_cache(maxsize=None)
def legendre_fourier(lmax: int) -> torch.Tensor:
    r"""Fourier coefficients :math:`a_{klu}` of :math:`\Theta_{lk}`, float64, shape ``(lmax+1,)*3``.

    Index order ``[k, l, u]``; zero where :math:`l < k` or :math:`u > l`. Even :math:`k`
    multiplies :math:`\cos u\theta`, odd :math:`k` multiplies :math:`\sin u\theta`.
    Cached; do not modify the returned tensor.

    >>> a = legendre_fourier(1)   # Theta_10 = sqrt(3/4pi) cos, Theta_11 = sqrt(3/8pi) sin
    >>> expected = torch.tensor([3 / 4, 3 / 8], dtype=torch.float64).div(torch.pi).sqrt()
    >>> torch.allclose(a[:, 1, 1], expected)
    True
    """
    a = torch.zeros(lmax + 1, lmax + 1, lmax + 1, dtype=torch.float64)
    for l in range(lmax + 1):
        for k in range(l + 1):
            a[k, l, : l + 1] = torch.tensor(_legendre_fourier_row(l, k), dtype=torch.float64)
    return a


def _theta_values(lmax: int, theta: torch.Tensor) -> torch.Tensor:
    """Theta_{lk}(theta_j) from the exact Fourier table, float64, shape [k, l, j]."""
    a = legendre_fourier(lmax)
    u = torch.arange(lmax + 1, dtype=torch.float64)
    ut = u[:, None] * theta[None, :]
    cos, sin = ut.cos(), ut.sin()
    even = (torch.arange(lmax + 1) % 2 == 0)[:, None, None]
    return torch.where(even, a @ cos, a @ sin)


def _km_index(lmax: int) -> torch.Tensor:
    """Flat SH index of (k, s, l): s = 0 takes m = +k, s = 1 takes m = -k; 0 where (l, m) is absent.

    Absent slots read a harmless entry; the matrices that consume them have zeros there.
    """
    idx = torch.zeros(lmax + 1, 2, lmax + 1, dtype=torch.long)
    for k in range(lmax + 1):
        for l in range(k, lmax + 1):
            idx[k, 0, l] = l * l + l + k
            if k > 0:
                idx[k, 1, l] = l * l + l - k
    return idx


def _km_inverse(lmax: int) -> torch.Tensor:
    """Position of each flat SH index (l, m) in the flattened (k, s, l) layout."""
    inv = torch.empty((lmax + 1) ** 2, dtype=torch.long)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            k, s = abs(m), int(m < 0)
            inv[l * l + l + m] = (k * 2 + s) * (lmax + 1) + l
    return inv


def _lmax_of(dim: int, name: str) -> int:
    L = math.isqrt(dim) - 1
    if dim < 1 or (L + 1) ** 2 != dim:
        raise ValueError(f"{name} has last dimension {dim}, which is not (L+1)^2 for an integer L: "
                         "expected the spherical-harmonic coefficients of degrees 0..L")
    return L


def fft_size(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3 and 5 (fast FFT lengths).

    >>> fft_size(49), fft_size(97)
    (50, 100)
    """
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _sin_moment(n: int) -> complex:
    r""":math:`\int_0^\pi e^{i n \theta} \sin\theta\, d\theta`."""
    if n % 2 == 0:
        return 2.0 / (1 - n * n)
    if abs(n) == 1:
        return 0.5j * math.pi * n
    return 0.0


class TorusPlan:
    r"""The 2D-Fourier route of the Gaunt Tensor Product (see the module docstring).

    For factors of degree at most ``factor_lmax``, of total degree ``degree``, and
    output degrees ``0..lmax_out <= degree``: FFT sizes ``n_theta >= 2 degree + 1``
    (every :math:`\theta` frequency of the product is needed, the projection couples
    them all) and ``n_phi >= max(degree + lmax_out + 1, 2 factor_lmax + 1)`` (the
    factors are sampled exactly; only :math:`|v| \leq l_{out}` of the product is
    needed, so its aliasing above that is harmless).
    Torus values are laid out ``[..., n_theta, n_phi]``.
    """

    #: Where the batch dimensions start in the sample layout.
    batch_dim = 0

    def __init__(self, degree: int, lmax_out: int, factor_lmax: int, dtype: torch.dtype, device):
        if lmax_out > degree or factor_lmax > degree:
            raise ValueError(f"TorusPlan needs lmax_out, factor_lmax <= degree, got {lmax_out}, "
                             f"{factor_lmax} > {degree}")
        self.degree, self.lmax_out = degree, lmax_out
        self.n_theta = fft_size(2 * degree + 1)
        self.n_phi = fft_size(max(degree + lmax_out + 1, 2 * factor_lmax + 1))
        self.dtype, self.device = dtype, device
        self._forward = {}
        lmax = max(degree, lmax_out)
        a = legendre_fourier(lmax)
        lo, P = lmax_out + 1, degree
        # Projection: S_{lk} = sum_u Z[u, k] J_{lk}(u),
        # J_{lk}(u) = int_0^pi e^{iu t} Theta_lk(t) sin t dt;
        # c_{l,k} = 2 sqrt2 pi Re S, c_{l,-k} = -2 sqrt2 pi Im S, c_{l,0} = 2 pi Re S.
        us = list(range(P + 1)) + list(range(-P, 0))
        proj = torch.zeros(lo, len(us), 2, 2, lo, dtype=torch.float64)  # [k, u, re/im of Z, s, l]
        for k in range(lo):
            for l in range(k, lo):
                for iu, u in enumerate(us):
                    J = 0j
                    for v in range(l + 1):
                        if a[k, l, v] == 0:
                            continue
                        if k % 2 == 0:  # cos(v t) = (e^{ivt} + e^{-ivt}) / 2
                            J += a[k, l, v].item() * (_sin_moment(u + v) + _sin_moment(u - v)) / 2
                        else:  # sin(v t) = (e^{ivt} - e^{-ivt}) / 2i
                            J += a[k, l, v].item() * (_sin_moment(u + v) - _sin_moment(u - v)) / 2j
                    scale = 2 * math.pi if k == 0 else 2 * math.sqrt(2) * math.pi
                    # Re S = Zr Jr - Zi Ji, Im S = Zr Ji + Zi Jr
                    proj[k, iu, 0, 0, l] = scale * J.real
                    proj[k, iu, 1, 0, l] = -scale * J.imag
                    if k > 0:
                        proj[k, iu, 0, 1, l] = -scale * J.imag
                        proj[k, iu, 1, 1, l] = -scale * J.real
        self._projection = proj.reshape(lo, 2 * len(us), 2 * lo).to(dtype=dtype, device=device)
        rows = torch.tensor([u % self.n_theta for u in us], dtype=torch.long)
        self._rows = rows.to(device)
        self._inverse = _km_inverse(lmax_out).to(device)

    def _forward_matrix(self, L: int):
        # (x_{l,k}, x_{l,-k}) -> (Re F[u, k], Im F[u, k]) for every FFT row u mod n_theta (rows
        # with |u| > L are zero), F[u, k] = (G^c_k(u) - i G^s_k(u)) / sqrt2 for k > 0, where
        # G(u) are the e^{iut} coefficients of the theta functions.
        if L not in self._forward:
            a = legendre_fourier(L)
            # [k, s, l, row, re/im]
            M = torch.zeros(L + 1, 2, L + 1, self.n_theta, 2, dtype=torch.float64)
            for k in range(L + 1):
                r = 1.0 if k == 0 else 2 ** -0.5
                for u in range(-L, L + 1):
                    row = u % self.n_theta
                    coeff = a[k, k:, abs(u)] * (1.0 if u == 0 else 0.5)
                    if k == 0:  # there is no m = -0
                        M[k, 0, k:, row, 0] = coeff
                    elif k % 2 == 0:  # cosines: real coefficients b
                        M[k, 0, k:, row, 0] = r * coeff
                        M[k, 1, k:, row, 1] = -r * coeff
                    else:  # sines: coefficients -i sgn(u) b, so F = (-i s b^c - s b^s) / sqrt2
                        s = 1.0 if u > 0 else -1.0
                        M[k, 0, k:, row, 1] = -s * r * coeff
                        M[k, 1, k:, row, 0] = -s * r * coeff
            M = M.reshape(L + 1, 2 * (L + 1), 2 * self.n_theta)
            M = M.to(dtype=self.dtype, device=self.device)
            index = _km_index(L).reshape(-1).to(self.device)
            self._forward[L] = (M, index)
        return self._forward[L]

    def synthesis(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., (L+1)^2]`` -> real torus values ``[..., n_theta, n_phi]``."""
        L = _lmax_of(x.shape[-1], "x")
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        B = x.shape[0]
        if B == 0:  # the FFT libraries reject empty batches
            return x.new_zeros(lead + (self.n_theta, self.n_phi))
        M, index = self._forward_matrix(L)
        X = x.index_select(1, index).reshape(B, L + 1, 2 * (L + 1)).transpose(0, 1)  # [k, B, sl]
        F = torch.matmul(X, M).reshape(L + 1, B, self.n_theta, 2)
        F = F.permute(1, 2, 0, 3)  # [B, u, k, re/im]
        # s= zero-pads the phi frequencies k > L at the end, where the half spectrum has them
        F = torch.view_as_complex(F.contiguous())
        f = torch.fft.irfft2(F, s=(self.n_theta, self.n_phi), norm="forward")
        return f.reshape(lead + (self.n_theta, self.n_phi))

    def analysis(self, f: torch.Tensor) -> torch.Tensor:
        """Torus values ``[..., n_theta, n_phi]`` -> coefficients ``[..., (lmax_out+1)^2]``."""
        lead = f.shape[:-2]
        lo = self.lmax_out + 1
        if f.numel() == 0:
            return f.new_zeros(lead + (lo * lo,))
        Z = torch.fft.rfft2(f.reshape((-1, self.n_theta, self.n_phi)), norm="forward")
        Z = torch.view_as_real(Z[:, :, :lo].index_select(1, self._rows))  # [B, u, k, re/im]
        Z = Z.permute(2, 0, 1, 3).reshape(lo, Z.shape[0], -1)
        c = torch.matmul(Z, self._projection)  # [k, B, (s, l)]
        c = c.transpose(0, 1).reshape(-1, 2 * lo * lo).index_select(1, self._inverse)
        return c.reshape(lead + (lo * lo,))
