r"""Gaunt products: products of spherical functions given by their harmonic coefficients.

A spherical function of degree at most :math:`L` is
:math:`f(x) = \sum_{l \leq L} \sum_m c_{lm} Y_{lm}(x)` with e3nn's real harmonics in
the orthonormal normalization (``"integral"``). The product of two such functions,
truncated at degree :math:`L_{out}`, has the coefficients

.. math::

    (x_1 \star x_2)_{l_3 m_3} = \int_{S^2} f_1 f_2\, Y_{l_3 m_3}
    = \sum_{l_1 m_1 l_2 m_2} G^{l_1 l_2 l_3}_{m_1 m_2 m_3}\, x_{1, l_1 m_1}\, x_{2, l_2 m_2},

with the Gaunt coefficients :math:`G` of `equinet.o3.gaunt`. This is a Clebsch-Gordan
tensor product restricted to the paths with :math:`l_1 + l_2 + l_3` even, with path
weights fixed by :math:`G` (Luo, Chen & Krishnapriyan, *Enabling efficient equivariant
operations in the Fourier basis via Gaunt Tensor Products*, ICLR 2024). Odd paths,
such as the cross product :math:`1 \times 1 \to 1`, are not reachable: use
`equinet.tp.TensorProduct` for those.

Three exact methods compute it (see `equinet.tp.gaunt_fourier` and `equinet.tp.gaunt_grid`):

``"dense"``
    The defining sum over the Gaunt coefficients, :math:`O(L^6)`; the reference.
``"fft"``
    The paper's route: 2D Fourier coefficients on :math:`(\theta, \phi)`, convolution by
    2D FFT, exact projection back, :math:`O(L^3)`.
``"grid"``
    Values on a Gauss-Legendre x equispaced grid, pointwise product, exact quadrature
    back, :math:`O(L^3)` in batched matrix products, half turns in :math:`\phi` folded;
    without autograd the intermediates are reused buffers and the product is in place.
``"auto"``
    The one measured fastest for the sizes (`auto_method`).
"""
import functools
import math
from typing import Tuple

import torch

from ..o3.gaunt import gaunt
from .gaunt_fourier import TorusPlan, _lmax_of
from .gaunt_grid import SphereGridPlan

__all__ = ["gaunt_product", "gaunt_power", "auto_method", "GAUNT_METHODS"]

#: The methods `gaunt_product` and `gaunt_power` accept.
GAUNT_METHODS = ("auto", "fft", "grid", "dense")

# Elements of the (batch x pairs) intermediate of the dense method per chunk.
_DENSE_CHUNK_ELEMENTS = 1 << 24
# Sample values per batch chunk of the fft method: about 2 MB in float32, so that a chunk's
# intermediates stay in cache (measured 3x faster at L = 16 for 8192 rows).
_SAMPLE_CHUNK_ELEMENTS = 1 << 19
# The same for the grid method, in float32 (halved for float64): its intermediates (about 8
# floats per sample and factor) are reused scratch without autograd, so the chunk trades cache
# misses against per-call overhead. Measured on 2 cores, ms per call for 2000 / 8192 rows with
# 0.2M, 0.4M, 0.8M, 1.5M samples a chunk: L = 8: 2.4 1.9 1.8 1.7 / 9.8 8.6 7.9 8.9;
# L = 12: 5.7 4.5 4.3 4.6 / 20 18 19 21; L = 16: 12 10 9.6 10 / 41 34 31 39.
_GRID_CHUNK_ELEMENTS = 800_000


@functools.lru_cache(maxsize=64)
def _plan(kind: str, degree: int, lmax_out: int, factor_lmax: int, dtype: torch.dtype,
          device: torch.device):
    cls = {"grid": SphereGridPlan, "fft": TorusPlan}[kind]
    return cls(degree, lmax_out, factor_lmax, dtype, device)


def get_plan(kind: str, degree: int, lmax_out: int, factor_lmax: int, dtype: torch.dtype, device):
    """Cached `equinet.tp.gaunt_grid.SphereGridPlan` (``"grid"``) or
    `equinet.tp.gaunt_fourier.TorusPlan` (``"fft"``) for these sizes."""
    return _plan(kind, degree, lmax_out, factor_lmax, dtype, torch.device(device))


def _rows_per_chunk(method: str, plan) -> int:
    """Batch rows per chunk for ``plan``."""
    if method == "grid":
        budget = _GRID_CHUNK_ELEMENTS * 32 // torch.finfo(plan.dtype).bits
    else:
        budget = _SAMPLE_CHUNK_ELEMENTS
    return max(1, budget // (plan.n_theta * plan.n_phi))


def _product_of(plan):
    """``(a, b) -> analysis(synthesis(a) * synthesis(b))``, the plan's own version if it has one."""
    if hasattr(plan, "product"):
        return plan.product
    return lambda a, b: plan.analysis(plan.synthesis(a) * plan.synthesis(b))


def _power_of(plan, nu: int):
    """``x -> analysis(synthesis(x) ** nu)``, by repeated products in the sampled domain."""
    if hasattr(plan, "power"):
        return lambda x: plan.power(x, nu)

    def power(x):
        f = plan.synthesis(x)
        p = f
        for _ in range(nu - 1):
            p = p * f
        return plan.analysis(p)

    return power


def _chunked(fn, tensors, lead, rows: int):
    """``fn(*tensors)`` in slices of about ``rows`` rows along the first non-trivial leading
    dimension, concatenated.

    ``tensors`` have leading dimensions of the same rank, broadcasting to ``lead``; the
    result of ``fn`` has leading dimensions ``lead``. A tensor of size 1 along the split
    dimension is passed whole to every slice.
    """
    d = next((i for i, n in enumerate(lead) if n > 1), None)
    if d is None or math.prod(lead) <= rows:
        return fn(*tensors)
    step = max(1, rows // math.prod(lead[d + 1:]))
    if step >= lead[d]:
        return fn(*tensors)
    step = -(-lead[d] // -(-lead[d] // step))  # as many slices, of equal sizes
    outs = [fn(*[t if t.shape[d] == 1 else t.narrow(d, i, min(step, lead[d] - i)) for t in tensors])
            for i in range(0, lead[d], step)]
    return torch.cat(outs, d)


def auto_method(lmax_in1: int, lmax_in2: int, lmax_out: int, device=None) -> str:
    r"""The method ``"auto"`` picks for factors of degrees ``lmax_in1``, ``lmax_in2``.

    Measured with ``benchmarks/gaunt.py`` (CPU, float32, 2 threads, L1 = L2 = lmax_out
    = L, 2000 rows; ms per call, minimum of repeats on a quiet 2-core machine):

    ====  =======  =====  =====
    L     dense    grid   fft
    ====  =======  =====  =====
    2     0.31     0.36   1.7
    4     4.4      0.93   6.4
    8     81       2.2    16
    16    1185     7.7    58
    ====  =======  =====  =====

    The dense sum wins only at the smallest sizes (L <= 2, by about 15%), the grid
    everywhere else. The paper's FFT route was never the fastest on CPU: torch's small
    2D FFTs cost more than the grid's matrix products, which also need half the
    :math:`\theta` samples (Gauss-Legendre instead of the doubled torus). The same rule
    is used on other devices (not measured there; pass ``method`` to override).

    >>> auto_method(1, 1, 2), auto_method(8, 8, 8)
    ('dense', 'grid')
    """
    if (lmax_in1 + 1) * (lmax_in2 + 1) * (lmax_out + 1) <= 27:
        return "dense"
    return "grid"


def _check_method(method: str) -> str:
    if method not in GAUNT_METHODS:
        raise ValueError(f"method must be one of {GAUNT_METHODS}, got {method!r}")
    return method


def _check_degree(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_tensor(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have a last dimension of size (L+1)^2, got a scalar")
    return x


@functools.lru_cache(maxsize=32)
def _dense_tables(L1: int, L2: int, lmax_out: int):
    # The pairs (i, j) that couple to some output, and the dense [pairs, out] Gaunt matrix.
    D1, D2, D3 = (L1 + 1) ** 2, (L2 + 1) ** 2, (lmax_out + 1) ** 2
    G = torch.zeros(D1, D2, D3, dtype=torch.float64)
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1, 2):
                G[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2] = gaunt(
                    l1, l2, l3, dtype=torch.float64)
    G = G.reshape(D1 * D2, D3)
    pairs = G.abs().amax(1).nonzero()[:, 0]
    return pairs // D2, pairs % D2, G[pairs]


@functools.lru_cache(maxsize=32)
def _dense_tables_on(L1, L2, lmax_out, dtype, device):
    i, j, G = _dense_tables(L1, L2, lmax_out)
    return i.to(device), j.to(device), G.to(dtype=dtype, device=device)


def _dense_product(x1, x2, L1, L2, lmax_out, lead):
    i, j, G = _dense_tables_on(L1, L2, lmax_out, x1.dtype, x1.device)
    x1 = x1.expand(lead + x1.shape[-1:]).reshape(-1, x1.shape[-1])
    x2 = x2.expand(lead + x2.shape[-1:]).reshape(-1, x2.shape[-1])
    chunk = max(1, _DENSE_CHUNK_ELEMENTS // max(1, i.numel()))
    out = [(a.index_select(1, i) * b.index_select(1, j)) @ G
           for a, b in zip(x1.split(chunk), x2.split(chunk))]
    out = torch.cat(out) if out else x1.new_zeros((0, G.shape[1]))
    return out.reshape(lead + (G.shape[1],))


def _pad_degrees(x: torch.Tensor, lmax_out: int) -> torch.Tensor:
    missing = (lmax_out + 1) ** 2 - x.shape[-1]
    return torch.nn.functional.pad(x, (0, missing)) if missing > 0 else x


def _broadcast_lead(x1, x2) -> Tuple[int, ...]:
    try:
        return tuple(torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1]))
    except RuntimeError:
        raise ValueError(f"the leading dimensions of x1 {tuple(x1.shape[:-1])} and x2 "
                         f"{tuple(x2.shape[:-1])} do not broadcast") from None


def gaunt_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int,
                  method: str = "auto") -> torch.Tensor:
    r"""Harmonic coefficients of the product of two spherical functions, up to degree ``lmax_out``.

    Computes :math:`z_{l_3 m_3} = \sum G^{l_1 l_2 l_3}_{m_1 m_2 m_3} x_{1, l_1 m_1} x_{2, l_2 m_2}`
    for :math:`l_3 \leq` ``lmax_out`` (module docstring), i.e. the projection of the
    pointwise product :math:`f_1 f_2` onto the harmonics. With ``lmax_out >= L1 + L2``
    nothing is truncated. Exact to float rounding for every method; differentiable
    twice (pure torch operations).

    Parameters
    ----------
    x1 : torch.Tensor
        Shape ``[..., (L1+1)^2]``: coefficients of degrees ``0..L1``, integral normalization.
    x2 : torch.Tensor
        Shape ``[..., (L2+1)^2]``; leading dimensions broadcast with those of ``x1``.
    lmax_out : int
        Highest output degree.
    method : {"auto", "fft", "grid", "dense"}
        Algorithm (module docstring); all give the same result.

    Returns
    -------
    torch.Tensor
        Shape ``[broadcast leading dims, (lmax_out+1)^2]``.

    Examples
    --------
    :math:`Y_{00} = 1/\sqrt{4\pi}`, so multiplying by the constant function 1
    (coefficient :math:`\sqrt{4\pi}`) is the identity:

    >>> one = torch.tensor([(4 * torch.pi) ** 0.5])
    >>> x = torch.tensor([0.5, 1.0, -2.0, 3.0])
    >>> gaunt_product(one, x, lmax_out=1, method="fft")
    tensor([ 0.5000,  1.0000, -2.0000,  3.0000])
    """
    x1, x2 = _check_tensor("x1", x1), _check_tensor("x2", x2)
    lmax_out = _check_degree("lmax_out", lmax_out)
    method = _check_method(method)
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise TypeError(f"x1 and x2 must share dtype and device, got {x1.dtype} on {x1.device} "
                        f"and {x2.dtype} on {x2.device}")
    L1, L2 = _lmax_of(x1.shape[-1], "x1"), _lmax_of(x2.shape[-1], "x2")
    lead = _broadcast_lead(x1, x2)
    lmax = min(lmax_out, L1 + L2)  # the product has no content above L1 + L2
    if method == "auto":
        method = auto_method(L1, L2, lmax, x1.device)
    if method == "dense":
        out = _dense_product(x1, x2, L1, L2, lmax, lead)
    else:
        plan = get_plan(method, L1 + L2, lmax, max(L1, L2), x1.dtype, x1.device)
        # equal ranks, so that the batch dimensions line up wherever the plan keeps them
        x1 = x1.reshape((1,) * (len(lead) + 1 - x1.dim()) + x1.shape)
        x2 = x2.reshape((1,) * (len(lead) + 1 - x2.dim()) + x2.shape)
        out = _chunked(_product_of(plan), (x1, x2), lead, _rows_per_chunk(method, plan))
        out = out.expand(lead + out.shape[-1:])
    return _pad_degrees(out, lmax_out)


def gaunt_power(x: torch.Tensor, nu: int, lmax_out: int, method: str = "auto") -> torch.Tensor:
    r"""Harmonic coefficients of :math:`f^\nu`, the ``nu``-fold product of one spherical function.

    :math:`f^\nu` is formed by repeated multiplication in the sampled (Fourier / grid)
    domain, sized for the full degree :math:`\nu L`, without returning to harmonics
    in between, then projected onto degrees ``0..lmax_out``. Equals ``nu - 1``
    nested `gaunt_product` calls with untruncated intermediates. ``method="dense"``
    does exactly that (the reference).

    Parameters
    ----------
    x : torch.Tensor
        Shape ``[..., (L+1)^2]``, integral normalization.
    nu : int
        The power (body order minus one in MACE terms), ``>= 1``.
    lmax_out : int
        Highest output degree.
    method : {"auto", "fft", "grid", "dense"}

    Returns
    -------
    torch.Tensor
        Shape ``[..., (lmax_out+1)^2]``.

    Examples
    --------
    >>> c = (4 * torch.pi) ** 0.5          # the constant function 1
    >>> x = torch.tensor([2 * c, 0.0, 0.0, 0.0])   # the constant 2
    >>> gaunt_power(x, 3, lmax_out=0) / c  # 2^3
    tensor([8.0000])
    """
    x = _check_tensor("x", x)
    lmax_out = _check_degree("lmax_out", lmax_out)
    method = _check_method(method)
    if isinstance(nu, bool) or not isinstance(nu, int):
        raise TypeError(f"nu must be an int, got {nu!r}")
    if nu < 1:
        raise ValueError(f"nu must be >= 1, got {nu}")
    L = _lmax_of(x.shape[-1], "x")
    lmax = min(lmax_out, nu * L)
    if method == "auto":
        method = auto_method(L, (nu - 1) * L, lmax, x.device)
    if method == "dense":
        out = x
        for k in range(2, nu + 1):
            out = _dense_product(out, x, (k - 1) * L, L, min(k * L, lmax) if k == nu else k * L,
                                 x.shape[:-1])
        out = out[..., : (lmax + 1) ** 2]
    else:
        plan = get_plan(method, nu * L, lmax, L, x.dtype, x.device)
        rows = _rows_per_chunk(method, plan)
        out = _chunked(_power_of(plan, nu), (x,), x.shape[:-1], rows)
    return _pad_degrees(out, lmax_out)
