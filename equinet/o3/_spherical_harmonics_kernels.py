r"""Chunked eager kernels for the spherical harmonics (forward, analytic backward); a reference.

Layout: each chunk of samples is computed component-major, ``[dim, chunk]`` (one contiguous row
per component), so that the recurrence in the degree is one multiply and one fused
multiply-add per degree on a block of rows (all orders :math:`m` at once), and is transposed
once into the ``[chunk, dim]`` output. Chunks of a few MiB keep the working rows in cache, and
the scratch is reused across calls on CPU (page-faulting a fresh multi-MiB buffer costs more than
the arithmetic). On accelerators the chunk is the whole batch. The scaled recurrence and its
constants are described in :mod:`equinet.o3._spherical_harmonics_tables`.

Backward. The derivative of a degree-:math:`l` harmonic polynomial is one of degree :math:`l-1`:
:math:`\partial_k \hat Y_l = E^l_k \hat Y_{l-1}` (exact constants in
:mod:`equinet.o3._spherical_harmonics_tables`). So per degree the incoming gradient is
contracted first with :math:`E^l` (a matrix product on the whole chunk), then multiplied by the
rows of degree :math:`l-1`, recomputed by the forward recurrence. This is exact for the
polynomials (``normalize=False``, the origin included); with ``normalize=True`` the result is
the gradient at :math:`u = x/|x|`, projected, :math:`\nabla_x = (1 - u u^T) \nabla_u / |x|`
(and 0 at the origin).

Extreme lengths. :math:`|x|^2` overflows (float32: :math:`|x| \gtrsim 10^{19}`) or underflows
(:math:`|x| \lesssim 10^{-19}`) long before :math:`x` does, which gave wrong directions or
zeros. So ``normalize=True`` first divides :math:`x` by its largest component :math:`m`
(clamped to the smallest normal number, so that the zero vector stays 0 and subnormal inputs
stay in range): :math:`u = x_s / |x_s|`, :math:`x_s = x / m`, with :math:`1 \le |x_s|^2 \le 3`
for every nonzero normal :math:`x`. The direction is exact for every finite nonzero
:math:`x`, and :math:`1/|x| = (1/|x_s|)(1/m)` is applied to gradients as two factors, so that
they are finite wherever the exact value is (beyond that they are :math:`\pm\infty`, never
NaN).

:func:`reference` evaluates the same recurrence with out-of-place ops, so that autograd
differentiates it to any order; the double backward uses it.
"""
import functools
from typing import Optional

import torch

from .._scratch import scratch
from ._spherical_harmonics_tables import tables

__all__ = []

# CPU chunking. Bytes of component-major work rows per chunk (measured on 2 threads, lmax
# 2..12: 4-8 MiB are about equally fast), at least MIN_CHUNK samples so that small lmax does not
# pay the per-op overhead too often; the scratch kept per thread stays under _MAX_SCRATCH_BYTES.
CHUNK_BYTES = 8 << 20
MIN_CHUNK = 16384
_MAX_SCRATCH_BYTES = 16 << 20
# Up to this many components the output transpose is a matrix product (BLAS packs faster than
# a strided copy for short rows), beyond it a transposing multiply.
SMALL_TRANSPOSE = 25
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _scratch(tag: str, shapes, dtype: torch.dtype, device: torch.device):
    """Reused per-thread CPU scratch (`equinet._scratch`): fresh multi-MiB buffers are
    page-faulted on every call, which costs more than the arithmetic here."""
    return scratch("spherical_harmonics_" + tag, shapes, dtype, device)


def _chunk(n: int, rows: int, x: torch.Tensor) -> int:
    """Samples per chunk: ``CHUNK_BYTES`` of rows, at least ``MIN_CHUNK`` samples (fewer ops)
    while that stays under ``_MAX_SCRATCH_BYTES``; the whole batch on accelerators."""
    if x.device.type != "cpu":
        return max(n, 1)
    per_sample = rows * x.element_size()
    size = max(CHUNK_BYTES // per_sample, min(MIN_CHUNK, _MAX_SCRATCH_BYTES // per_sample))
    return max(1, min(n, size))


def _load_unit(x_chunk, u, r2, mask, inv_max=None):
    """``u <- x_chunk^T`` and ``r2 <- |x|^2``; with ``mask``: ``u`` normalized, ``r2 <-
    1/|x_s|`` and ``inv_max <- 1/m`` (``1/|x| = r2 * inv_max``, module docstring), ``mask <-
    [x != 0]`` (the zero vector gives ``u = 0``)."""
    torch.mm(_eye3(u.dtype, u.device), x_chunk.T, out=u)  # BLAS transposes faster than copy_
    if mask is not None:  # x_s = x / max|x_k|: its square neither overflows nor underflows
        # row by row: amax over the 3 rows is several times slower than these 5 passes
        torch.abs(u[0], out=inv_max)
        torch.maximum(inv_max, torch.abs(u[1], out=mask), out=inv_max)
        torch.maximum(inv_max, torch.abs(u[2], out=mask), out=inv_max)
        inv_max.clamp_min_(torch.finfo(u.dtype).tiny).reciprocal_()
        u.mul_(inv_max)
    torch.mul(u[0], u[0], out=r2)
    r2.addcmul_(u[1], u[1]).addcmul_(u[2], u[2])
    if mask is not None:
        torch.sign(r2, out=mask)
        r2.clamp_min_(torch.finfo(r2.dtype).tiny).rsqrt_()
        u.mul_(r2)


@functools.lru_cache(maxsize=16)
def _eye3(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.eye(3, dtype=dtype, device=device)


def _powers(w_rows, u):
    """``w_rows[k] <- w^(k+1)``, ``w = X + iY = u[2] + i u[0]``."""
    torch.complex(u[2], u[0], out=w_rows[0])
    for k in range(1, w_rows.shape[0]):
        torch.mul(w_rows[k - 1], w_rows[0], out=w_rows[k])


def _recurrence(rows, z, lmax, t, r2=None):
    """Rows |m| < l of blocks l = 3..lmax from blocks l-1 and l-2 (``r2=None``: on |x| = 1)."""
    for l in range(3, lmax + 1):
        mid = rows[l * l + 1: l * l + 2 * l]
        # Blocks l-2 widened by one row each side (whose b is 0), to align with m = -(l-1)..l-1.
        ext = rows[(l - 2) ** 2 - 1: (l - 2) ** 2 + 2 * l - 2]
        if r2 is None:
            torch.mul(ext, t.neg_b[l], out=mid)
        else:
            torch.mul(ext, r2, out=mid).mul_(t.neg_b[l])
        mid.addcmul_(rows[(l - 1) ** 2: l * l], z, value=2.0)


@functools.lru_cache(maxsize=64)
def _sectoral_rows(lmax: int, device: torch.device):
    ls = torch.arange(2, lmax + 1, device=device)
    return ls * ls, ls * ls + 2 * ls


def _select(lmax: int, rows: Optional[torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
    """``[dim, n_out]`` matrix taking Yhat (all components) to the output columns."""
    select = scale.new_zeros((lmax + 1) ** 2, scale.shape[0])
    columns = torch.arange(scale.shape[0], device=scale.device)
    select[columns if rows is None else rows, columns] = scale
    return select


def _harmonic_rows(b, x_chunk, lmax, normalize, t, r2, mask, z2, w_rows, inv_max):
    """``b[:(lmax+1)^2] <- Yhat`` of degrees ``1..lmax`` (row 0 is 1, set by the caller) for the
    samples ``x_chunk``; ``b`` has at least 4 rows. ``r2, mask, inv_max`` as in
    :func:`_load_unit`."""
    u = b[1:4]  # Yhat_1 = (x, y, z)
    _load_unit(x_chunk, u, r2, mask if normalize else None, inv_max)
    if lmax < 2:
        return u
    yv, z, xv = u[0], u[1], u[2]
    if lmax >= 3:
        im_rows, re_rows = _sectoral_rows(lmax, b.device)
        w_real = torch.view_as_real(w_rows)
        _powers(w_rows, u)
        b.index_copy_(0, im_rows, w_real[1:, :, 1])
        b.index_copy_(0, re_rows, w_real[1:, :, 0])
    else:
        torch.mul(xv, yv, out=b[4]).mul_(2.0)
        torch.mul(xv, xv, out=b[8]).addcmul_(yv, yv, value=-1.0)
    torch.mul(u, torch.add(z, z, out=z2), out=b[5:8])
    b[6].add_(mask if normalize else r2, alpha=t.b20)  # |u|^2 Yhat_0 in the m = 0 column
    _recurrence(b, z, lmax, t, None if normalize else r2)
    return u


def _row_scratch(tag, rows, size, lmax, dtype, device, extra=()):
    """Scratch for :func:`_harmonic_rows` (``rows >= 4`` of them; then ``r2, mask, z2,
    inv_max``) plus ``extra`` shapes."""
    views = _scratch(tag, [(max(rows, 4), size), (size,), (size,), (size,), (size,)]
                     + list(extra), dtype, device)
    views[0][0].fill_(1.0)
    w_rows = None
    if lmax >= 3:
        (w_rows,) = _scratch(tag + "_w", [(lmax, size)], _COMPLEX[dtype], device)
    return views, w_rows


def forward(x: torch.Tensor, lmax: int, normalize: bool, rows: Optional[torch.Tensor],
            scale: torch.Tensor) -> torch.Tensor:
    """``out[n, c] = scale[c] * Yhat[rows[c]](x[n])`` for ``x`` of shape ``[N, 3]``."""
    n_total = x.shape[0]
    out = x.new_empty(n_total, scale.shape[0])
    if n_total == 0:
        return out
    if lmax == 0:
        return out.copy_(scale.expand_as(out))
    t = tables(lmax, x.dtype, x.device)
    dim = (lmax + 1) ** 2
    size = _chunk(n_total, dim, x)
    (buf, r2, mask, z2, inv_max), w_rows = _row_scratch("forward", dim, size, lmax, x.dtype,
                                                         x.device)
    # Few components: transpose, select and scale by one matrix product.
    select = _select(lmax, rows, scale) if dim <= SMALL_TRANSPOSE else None
    for i in range(0, n_total, size):
        n = min(size, n_total - i)
        b = buf[:, :n]
        _harmonic_rows(b, x[i:i + n], lmax, normalize, t, r2[:n], mask[:n], z2[:n],
                       None if w_rows is None else w_rows[:, :n], inv_max[:n])
        if select is not None:
            torch.mm(b[:dim].T, select, out=out[i:i + n])
        else:
            src = b[:dim] if rows is None else b.index_select(0, rows)
            torch.mul(src.T, scale, out=out[i:i + n])
    return out


def backward(x: torch.Tensor, grad: torch.Tensor, lmax: int, normalize: bool,
             rows: Optional[torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
    """``d/dx sum_c grad[n, c] out[n, c]`` for the ``out`` of :func:`forward`, shape ``[N, 3]``.

    Per degree l (one matrix product on the chunk): ``h = E^l grad_l^T`` (``[3 (2l-1), chunk]``),
    times the degree l-1 rows of Yhat; a last product sums each derivative direction.
    """
    n_total = x.shape[0]
    if n_total == 0 or lmax == 0:
        return x.new_zeros(n_total, 3)
    result = x.new_empty(n_total, 3)
    dim, lower = (lmax + 1) ** 2, lmax**2
    full_scale = scale if rows is None else torch.ones(dim, dtype=x.dtype, device=x.device)
    e = [b * full_scale[l * l:(l + 1) ** 2]
         for l, b in enumerate(tables(lmax, x.dtype, x.device).gradient, start=1)]
    direction_sum = _direction_sum(lmax, x.dtype, x.device)
    t = tables(max(lmax - 1, 1), x.dtype, x.device)
    size = _chunk(n_total, 4 * lower + (dim if rows is not None else 0), x)
    extra = [(3 * lower, size), (size,), (3, size)] + ([(size, dim)] if rows is not None else [])
    (yb, r2, mask, z2, inv_max, prod, dot, g3, *g_full), w_rows = _row_scratch(
        "backward", lower, size, lmax - 1, x.dtype, x.device, extra)
    for i in range(0, n_total, size):
        n = min(size, n_total - i)
        y = yb[:, :n]
        u = _harmonic_rows(y, x[i:i + n], lmax - 1, normalize, t, r2[:n], mask[:n], z2[:n],
                           None if w_rows is None else w_rows[:, :n], inv_max[:n])
        g_chunk = grad[i:i + n]
        if rows is not None:
            g_chunk = g_full[0][:n].zero_().index_add_(1, rows, g_chunk * scale)
        elif 0 in g_chunk.stride():  # expanded (e.g. by .sum()): BLAS wants real strides
            g_chunk = g_chunk.contiguous()
        p = prod[:, :n]
        for l in range(1, lmax + 1):
            h = p[3 * (l - 1) ** 2: 3 * l * l]
            torch.mm(e[l - 1], g_chunk[:, l * l:(l + 1) ** 2].T, out=h)
            if l > 1:  # Yhat_0 = 1
                h.view(3, 2 * l - 1, n).mul_(y[(l - 1) ** 2: l * l])
        g = torch.mm(direction_sum, p, out=g3[:, :n])
        if normalize:  # tangential part, over |x| (0 at the origin)
            torch.mul(g[0], u[0], out=dot[:n]).addcmul_(g[1], u[1]).addcmul_(g[2], u[2])
            g.addcmul_(u, dot[:n], value=-1.0).mul_(r2[:n].mul_(mask[:n]))
            # 1/|x| as two factors: their product may overflow where g is 0 (inf * 0 = NaN)
            g.mul_(inv_max[:n])
        # a copy, not a product with the identity: an infinite gradient (|x| so small that
        # 1/|x| overflows) would give inf * 0 = NaN in the other components
        result[i:i + n].copy_(g.T)
    return result


@functools.lru_cache(maxsize=64)
def _direction_sum(lmax: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[3, 3 lmax^2]``: sums the rows of each derivative direction k of the per-degree blocks."""
    s = torch.zeros(3, 3 * lmax**2, dtype=dtype, device="cpu")
    for l in range(1, lmax + 1):
        for k in range(3):
            start = 3 * (l - 1) ** 2 + k * (2 * l - 1)
            s[k, start:start + 2 * l - 1] = 1.0
    return s.to(device)


def inverse_max(x: torch.Tensor) -> torch.Tensor:
    """``[N, 1]``: ``1 / max_k |x_k|`` per sample, the largest component clamped to the smallest
    normal number (zero vectors stay 0 when scaled; subnormal ones become normal); no graph."""
    with torch.no_grad():
        return x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny).reciprocal()


def reference(x: torch.Tensor, lmax: int, normalize: bool, rows: Optional[torch.Tensor],
              scale: torch.Tensor) -> torch.Tensor:
    """``scale[c] * Yhat[rows[c]](x)`` for ``x`` of shape ``[N, 3]``, from out-of-place ops.

    The gradient at the zero vector is 0 when normalizing (as in the kernels). Normalizing
    divides by the largest component first (module docstring); that factor is a constant for
    autograd, exactly so: ``x / |x|`` does not depend on it.
    """
    t = tables(max(lmax, 2), x.dtype, x.device)
    if normalize:
        x = x * inverse_max(x)
    r2 = (x * x).sum(-1)
    if normalize:
        nonzero = r2 > 0
        inv = torch.where(nonzero, torch.where(nonzero, r2, 1.0).rsqrt(), 0.0)
        u = x * inv[:, None]
        radial = nonzero.to(x.dtype)  # |u|^2
    else:
        u, radial = x, r2
    yv, z, xv = u.unbind(-1)
    blocks = [torch.ones_like(z)[None], u.T]
    re, im = xv, yv
    for l in range(2, lmax + 1):
        re, im = xv * re - yv * im, yv * re + xv * im
        inner = (t.b20 * radial * blocks[0] if l == 2
                 else t.neg_b[l][1:-1] * radial * blocks[l - 2])
        zero = torch.zeros_like(z)[None]
        mid = 2.0 * z * blocks[l - 1] + torch.cat([zero, inner, zero])
        blocks.append(torch.cat([im[None], mid, re[None]]))
    y = torch.cat(blocks)[: (lmax + 1) ** 2]
    if rows is not None:
        y = y[rows]
    return y.T * scale
