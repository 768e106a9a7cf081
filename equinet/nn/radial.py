r"""Radial functions of distances: one-hot-like bases, Bessel functions and cutoff envelopes.

Message-passing models describe an edge by its length :math:`r` expanded in a
few smooth functions, multiplied by an envelope that takes the message smoothly
to zero at the cutoff :math:`r_\text{max}` (so that energies and forces do not
jump when atoms cross it).

:func:`soft_one_hot_linspace` and :func:`soft_unit_step` follow e3nn (same
definitions and constants, so numbers agree to rounding);
:class:`BesselBasis` and :class:`PolynomialCutoff` follow NequIP (parameter
``bessel_weights`` included, so state dicts load). Unlike the originals, Bessel
functions are evaluated through their limit near :math:`r = 0`, so neither the
value nor any gradient is NaN there.
"""
import math

import torch

__all__ = ["soft_unit_step", "soft_one_hot_linspace", "BesselBasis", "PolynomialCutoff"]

_BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel")

# e3nn writes this constant as 1.14136 * exp(2) evaluated in float32; keeping that
# float32 value makes float64 results agree with e3nn's to the last bit.
_SMOOTH_FINITE_SCALE = 8.433573722839355


def soft_unit_step(x: torch.Tensor) -> torch.Tensor:
    r"""Smooth (:math:`C^\infty`) unit step, :math:`\theta(x)\, e^{-1/x}`.

    Zero for :math:`x \le 0`, increasing to 1 as :math:`x \to \infty`; all
    derivatives are finite everywhere (zero for :math:`x \le 0`).

    Parameters
    ----------
    x : torch.Tensor
        Any shape.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.

    Examples
    --------
    >>> soft_unit_step(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([0.0000, 0.0000, 0.3679])
    """
    positive = x > 0
    # The masked branch sees x = 1, so its gradient is finite and then discarded.
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.exp(-1.0 / safe), torch.zeros_like(x))


def _sin_over_x(k: torch.Tensor, x: torch.Tensor, c: float) -> torch.Tensor:
    r""":math:`\sin(k x / c) / x`, equal to :math:`k / c` at :math:`x = 0`.

    Near zero (:math:`|kx/c| < 0.1`) the Taylor series of
    :math:`\sin(u)/u` is used (truncation error below :math:`10^{-17}`): the
    quotient of the direct formula is 0/0 there and its gradient loses digits.
    """
    u = k * x / c
    small = u.abs() < 0.1
    safe = torch.where(small, torch.ones_like(x), x)
    direct = torch.sin(k * safe / c) / safe
    t = u * u
    series = 1 - t / 6 * (1 - t / 20 * (1 - t / 42 * (1 - t / 72)))
    return torch.where(small, k / c * series, direct)


def soft_one_hot_linspace(x: torch.Tensor, start: float, end: float, number: int,
                          basis: str = None, cutoff: bool = None) -> torch.Tensor:
    r"""Expand ``x`` in ``number`` smooth bump-like functions spread over ``[start, end]``.

    With centres :math:`c_i` evenly spaced (``linspace(start, end, number)``, or
    without the two end points, ``linspace(start, end, number + 2)[1:-1]``, when
    ``cutoff=True``), spacing :math:`\delta` and :math:`d_i = (x - c_i)/\delta`:

    - ``gaussian``: :math:`e^{-d_i^2} / 1.12`
    - ``cosine``: :math:`\cos(\pi d_i / 2)` for :math:`|d_i| < 1`, else 0
    - ``smooth_finite``: :math:`1.14136\, e^2\, u(d_i + 1)\, u(1 - d_i)`, with
      :math:`u` = :func:`soft_unit_step`
    - ``fourier``, with :math:`t = (x - \text{start}) / (\text{end} - \text{start})`:
      :math:`\cos(\pi i t) / \sqrt{1/4 + N/2}`, :math:`i = 0..N-1`; with cutoff
      :math:`\sin(\pi i t) / \sqrt{1/4 + N/2}`, :math:`i = 1..N`, zero outside
      :math:`0 < t < 1`
    - ``bessel``, with :math:`y = x - \text{start}`, :math:`L = \text{end} - \text{start}`:
      :math:`\sqrt{2/L}\, \sin(i \pi y / L) / y`, :math:`i = 1..N`; with cutoff zero
      outside :math:`0 < y < L`. At :math:`y = 0` the limit :math:`\sqrt{2/L}\, i\pi/L`
      is returned (0 with cutoff), where e3nn returns NaN.

    The constants make :math:`\sum_i y_i(x)^2 \approx 1` on average over
    ``[start, end]`` (except for ``bessel``). With ``cutoff=True`` every function
    vanishes (smoothly, except ``cosine``'s kink) outside ``(start, end)``. This is
    e3nn's ``soft_one_hot_linspace`` and agrees with it to rounding.

    Parameters
    ----------
    x : torch.Tensor
        Any shape ``[...]``, floating point.
    start, end : float
        The interval spanned, ``start < end``.
    number : int
        Number of functions :math:`N`.
    basis : {'gaussian', 'cosine', 'smooth_finite', 'fourier', 'bessel'}
        The family.
    cutoff : bool
        Whether the functions vanish outside ``(start, end)``; must be given.

    Returns
    -------
    torch.Tensor
        ``[..., number]``, dtype and device of ``x``.

    Examples
    --------
    >>> soft_one_hot_linspace(torch.tensor([0.5, 1.0]), 0.0, 2.0, 3, "gaussian", cutoff=False)
    tensor([[0.6954, 0.6954, 0.0941],
            [0.3285, 0.8929, 0.3285]])
    """
    if cutoff not in (True, False):
        raise ValueError(f"cutoff must be True or False, got {cutoff!r}")
    if basis not in _BASES:
        raise ValueError(f"basis={basis!r} is not one of {_BASES}")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"number must be a positive int, got {number!r}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating point torch.Tensor")
    start, end = float(start), float(end)
    if not start < end:
        raise ValueError(f"start must be smaller than end, got start={start}, end={end}")

    if basis == "fourier":
        t = (x[..., None] - start) / (end - start)
        norm = math.sqrt(0.25 + number / 2)
        if not cutoff:
            i = torch.arange(0, number, dtype=x.dtype, device=x.device)
            return torch.cos(math.pi * i * t) / norm
        i = torch.arange(1, number + 1, dtype=x.dtype, device=x.device)
        return torch.sin(math.pi * i * t) / norm * (0 < t) * (t < 1)

    if basis == "bessel":
        y = x[..., None] - start
        length = end - start
        roots = torch.arange(1, number + 1, dtype=x.dtype, device=x.device) * math.pi
        out = math.sqrt(2 / length) * _sin_over_x(roots, y, length)
        if not cutoff:
            return out
        return out * ((y / length) < 1) * (0 < y)

    if cutoff:
        centres = torch.linspace(start, end, number + 2, dtype=x.dtype, device=x.device)
        step = centres[1] - centres[0]
        centres = centres[1:-1]
    else:
        if number < 2:
            raise ValueError(f"basis={basis!r} without cutoff needs number >= 2 "
                             "(the spacing of the centres is undefined)")
        centres = torch.linspace(start, end, number, dtype=x.dtype, device=x.device)
        step = centres[1] - centres[0]
    d = (x[..., None] - centres) / step

    if basis == "gaussian":
        return d.pow(2).neg().exp().div(1.12)
    if basis == "cosine":
        return torch.cos(math.pi / 2 * d) * (d < 1) * (-1 < d)
    return _SMOOTH_FINITE_SCALE * soft_unit_step(d + 1) * soft_unit_step(1 - d)


class BesselBasis(torch.nn.Module):
    r"""NequIP's radial Bessel basis (DimeNet's, with NequIP's normalisation).

    .. math:: B_n(r) = \frac{2}{r_\text{max}} \frac{\sin(w_n r / r_\text{max})}{r},
              \qquad w_n = n \pi, \quad n = 1, \dots, N

    The prefactor is NequIP's :math:`2/r_\text{max}` (DimeNet and e3nn's ``bessel``
    basis use :math:`\sqrt{2/r_\text{max}}`), so that trained NequIP weights
    transfer. At :math:`r = 0` the limit :math:`2 w_n / r_\text{max}^2` is returned;
    values and gradients (w.r.t. :math:`r` and :math:`w`) are finite everywhere.

    Parameters
    ----------
    r_max : float
        Cutoff radius.
    num_basis : int
        Number :math:`N` of functions.
    trainable : bool
        Whether the frequencies :math:`w_n` (``bessel_weights``) are learnt.

    Examples
    --------
    >>> basis = BesselBasis(r_max=5.0, num_basis=4)
    >>> basis(torch.tensor([0.0, 2.5])).shape
    torch.Size([2, 4])
    >>> basis(torch.tensor([0.0])).detach()  # the limit 2 n pi / r_max^2
    tensor([[0.2513, 0.5027, 0.7540, 1.0053]])
    """

    def __init__(self, r_max: float, num_basis: int = 8, trainable: bool = True):
        super().__init__()
        if not float(r_max) > 0 or math.isinf(float(r_max)):
            raise ValueError(f"r_max must be a finite positive number, got {r_max!r}")
        if isinstance(num_basis, bool) or not isinstance(num_basis, int) or num_basis < 1:
            raise ValueError(f"num_basis must be a positive int, got {num_basis!r}")
        self.r_max = float(r_max)
        self.num_basis = num_basis
        self.trainable = bool(trainable)
        self.prefactor = 2.0 / self.r_max
        weights = torch.linspace(1.0, num_basis, num_basis) * math.pi
        if self.trainable:
            self.bessel_weights = torch.nn.Parameter(weights)
        else:
            self.register_buffer("bessel_weights", weights)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Evaluate at distances ``r`` ``[...]``; returns ``[..., num_basis]``."""
        return self.prefactor * _sin_over_x(self.bessel_weights, r[..., None], self.r_max)

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, num_basis={self.num_basis}, trainable={self.trainable}"


class PolynomialCutoff(torch.nn.Module):
    r"""Polynomial envelope of DimeNet/NequIP, smooth up to second derivatives at the cutoff.

    With :math:`u = r / r_\text{max}`,

    .. math:: f(u) = 1 - \frac{(p+1)(p+2)}{2} u^p + p(p+2) u^{p+1}
              - \frac{p(p+1)}{2} u^{p+2} \quad (u < 1), \qquad f(u) = 0 \quad (u \ge 1).

    :math:`f(0) = 1` and :math:`f, f', f''` vanish at :math:`u = 1`. Distances are
    assumed non-negative. Values agree with NequIP's ``PolynomialCutoff`` to
    rounding; unlike it, gradients stay finite (zero) for any :math:`r \ge r_\text{max}`.

    Parameters
    ----------
    r_max : float
        Cutoff radius.
    p : float
        Exponent, ``>= 2``.

    Examples
    --------
    >>> PolynomialCutoff(r_max=2.0, p=6)(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    tensor([1.0000, 0.8555, 0.0000, 0.0000])
    """

    def __init__(self, r_max: float, p: float = 6):
        super().__init__()
        if not float(r_max) > 0 or math.isinf(float(r_max)):
            raise ValueError(f"r_max must be a finite positive number, got {r_max!r}")
        if not float(p) >= 2:
            raise ValueError(f"p must be >= 2, got {p!r}")
        self.r_max = float(r_max)
        self.p = float(p)
        self._factor = 1.0 / self.r_max

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Evaluate at distances ``r`` (any shape); returns the same shape."""
        p = self.p
        u = r * self._factor
        # Beyond the cutoff the polynomial is evaluated at u = 1 (where it is 0) so that
        # huge u cannot overflow into inf * 0 = NaN in the gradient.
        v = torch.clamp(u, max=1.0)
        out = 1.0 - ((p + 1.0) * (p + 2.0) / 2.0) * torch.pow(v, p)
        out = out + (p * (p + 2.0)) * torch.pow(v, p + 1.0)
        out = out - (p * (p + 1.0) / 2.0) * torch.pow(v, p + 2.0)
        return out * (u < 1.0)

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, p={self.p}"
