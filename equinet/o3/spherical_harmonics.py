r"""Real spherical harmonics of any degree, e3nn's basis, with a fast analytic backward.

:math:`Y^l : \mathbb R^3 \to \mathbb R^{2l+1}` are homogeneous polynomials of degree :math:`l` in
:math:`(x, y, z)`, equivariant, :math:`Y^l(R x) = D^l(R)\, Y^l(x)` (and :math:`Y^l(-x) = (-1)^l
Y^l(x)`), orthogonal on the sphere. Components are ordered :math:`m = -l, \dots, l` with e3nn's
signs; :math:`y` is the polar axis and :math:`Y^1(x) \propto x` in :math:`(x, y, z)` order. In
terms of the textbook real harmonics (no Condon-Shortley phase) of polar angle
:math:`\theta` from the y axis and azimuth :math:`\varphi` from the z axis towards x,

.. math::

    Y^l_m \propto P_l^{|m|}(\cos\theta) \times
    \begin{cases}\cos(m\varphi) & m > 0\\ 1 & m = 0 \\ \sin(|m|\varphi) & m < 0\end{cases}.

The values are computed by a recurrence in :math:`l` at fixed :math:`m` (see
:mod:`equinet.o3._spherical_harmonics_tables`), which is stable and has no degree limit.
"""
import functools
import math
import operator
from typing import List, Union

import torch

from . import _spherical_harmonics_kernels as kernels
from ._spherical_harmonics_tables import real_tensors, tables

__all__ = ["spherical_harmonics", "spherical_harmonics_alpha_beta"]

_NORMALIZATIONS = ("integral", "component", "norm")


def _parse_degrees(ls) -> List[int]:
    """The list of degrees asked for by an int, a sequence of ints, Irreps or an irreps string."""
    if isinstance(ls, str):
        from .irreps import Irreps  # lazily: keeps this module importable on its own
        ls = Irreps(ls)
    if hasattr(ls, "ls"):  # Irreps (equinet's or e3nn's): parity must be that of a vector's
        for mul, (l, p) in _irreps_terms(ls):
            if mul and p != (-1) ** l:
                raise ValueError(
                    f"spherical harmonics of a vector have parity (-1)^l, but {ls} asks for "
                    f"{l}{'e' if p == 1 else 'o'}; use {l}{'e' if l % 2 == 0 else 'o'}"
                )
        degrees = list(ls.ls)
    elif isinstance(ls, (list, tuple, range)):
        degrees = list(ls)
    else:
        degrees = [ls]
    for k, l in enumerate(degrees):
        if isinstance(l, bool):
            raise TypeError(f"degrees must be integers, got {l!r}")
        try:
            degrees[k] = operator.index(l)
        except TypeError:
            raise TypeError(f"degrees must be integers (or irreps), got {l!r}") from None
        if degrees[k] < 0:
            raise ValueError(f"degrees must be >= 0, got l={degrees[k]}")
    if not degrees:
        raise ValueError("at least one degree is needed")
    return degrees


def _irreps_terms(irreps):
    """``(mul, (l, p))`` of each term of an Irreps-like object; none if it does not iterate so."""
    try:
        return [(int(mul), (int(ir[0]), int(ir[1]))) for mul, ir in irreps]
    except (TypeError, ValueError, IndexError):
        return []


@torch.compiler.assume_constant_result
def _layout(degrees: tuple, normalization: str, dtype: torch.dtype, device: torch.device):
    """Rows of the full ``0..lmax`` block that make the output (None: all), and their scales.

    Cached; a constant to ``torch.compile``, looked up when tracing (dynamo would trace
    through an ``lru_cache`` wrapper, with a warning); real tensors even under ``torch.export``.
    """
    return _cached_layout(degrees, normalization, dtype, device)


@functools.lru_cache(maxsize=256)
def _cached_layout(degrees: tuple, normalization: str, dtype: torch.dtype,
                   device: torch.device):
    with real_tensors():  # on a cache miss only
        return _build_layout(degrees, normalization, dtype, device)


def _build_layout(degrees: tuple, normalization: str, dtype: torch.dtype,
                  device: torch.device):
    lmax = max(degrees)
    scale = tables(lmax, torch.float64, torch.device("cpu")).scale
    if normalization == "integral":
        scale = scale / math.sqrt(4 * math.pi)
    elif normalization == "norm":
        degree = torch.cat([torch.full((2 * l + 1,), 2 * l + 1.0, dtype=torch.float64, device="cpu")
                            for l in range(lmax + 1)])
        scale = scale / degree.sqrt()
    rows = None
    if list(degrees) != list(range(lmax + 1)):
        rows = torch.cat([torch.arange(l * l, (l + 1) ** 2, device="cpu") for l in degrees])
        scale = scale[rows]
        rows = rows.to(device)
    return lmax, rows, scale.to(dtype=dtype, device=device)


class _SphericalHarmonics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lmax, normalize, rows, scale):
        ctx.save_for_backward(x)
        ctx.layout = (lmax, normalize, rows, scale)
        return kernels.forward(x, lmax, normalize, rows, scale)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        return _SphericalHarmonicsGrad.apply(x, grad, *ctx.layout), None, None, None, None


class _SphericalHarmonicsGrad(torch.autograd.Function):
    """``(x, g) -> d<g, Y(x)>/dx`` by the analytic kernel; its own derivatives by autograd
    through the differentiable reference (so any order works)."""

    @staticmethod
    def forward(ctx, x, grad, lmax, normalize, rows, scale):
        ctx.save_for_backward(x, grad)
        ctx.layout = (lmax, normalize, rows, scale)
        return kernels.backward(x, grad, lmax, normalize, rows, scale)

    @staticmethod
    def backward(ctx, grad_grad_x):
        x, grad = ctx.saved_tensors
        need_x, need_g = ctx.needs_input_grad[:2]
        lmax = ctx.layout[0]
        if lmax == 0 or not (need_x or need_g):
            return (torch.zeros_like(x) if need_x else None,
                    torch.zeros_like(grad) if need_g else None, None, None, None, None)
        create_graph = torch.is_grad_enabled()
        # Normalizing, Y(x) = Y(s x) for s > 0, so the gradient is s G(s x) and the wanted
        # derivatives are s^2 (d/dx) and s (d/dg) of <ggx, G(s x)>: evaluated at s x of unit
        # scale (s = 1/max|x_k|), with s applied last, one factor at a time, they are finite
        # wherever the exact values are, and +-inf (not NaN: inf - inf inside the autograd of
        # the recurrence) beyond. Not when a graph of this derivative is wanted (third order).
        inv_max = None
        with torch.enable_grad():
            # Detached leaves unless a graph of this derivative is wanted (third order).
            xr, gr = x, grad
            if not (create_graph and x.requires_grad):
                if ctx.layout[1]:
                    inv_max = kernels.inverse_max(x)
                    xr = (x.detach() * inv_max).requires_grad_(True)
                else:
                    xr = x.detach().requires_grad_(True)
            if not (create_graph and grad.requires_grad):
                gr = grad.detach().requires_grad_(need_g)
            y = kernels.reference(xr, *ctx.layout)
            (gx,) = torch.autograd.grad(y, xr, gr, create_graph=True)
            wrt = [v for v, need in ((xr, need_x), (gr, need_g)) if need]
            got = [None] * len(wrt)
            if gx.requires_grad:  # else the gradient is constant (degree 1 alone, unnormalized)
                got = list(torch.autograd.grad(gx, wrt, grad_grad_x, create_graph=create_graph,
                                               allow_unused=True))
        dx = (got.pop(0) if need_x else None)
        dg = (got.pop(0) if need_g else None)
        if inv_max is not None:
            dx = None if dx is None else dx * inv_max * inv_max
            dg = None if dg is None else dg * inv_max
        if need_x and dx is None:
            dx = torch.zeros_like(x)
        if need_g and dg is None:
            dg = torch.zeros_like(grad)
        return dx, dg, None, None, None, None


def spherical_harmonics(
    ls: Union[int, List[int], str, "Irreps"],  # noqa: F821
    x: torch.Tensor,
    normalize: bool,
    normalization: str = "integral",
) -> torch.Tensor:
    r"""Real spherical harmonics :math:`Y^l(x)` of the degrees ``ls``, concatenated.

    Parameters
    ----------
    ls : int, list of int, str or Irreps
        The degrees, in output order (repeats allowed). Irreps (or an irreps string such as
        ``"0e + 1o + 2e"``) must have parity :math:`(-1)^l`, the harmonics of a vector.
    x : torch.Tensor
        Shape ``[..., 3]``, components ``(x, y, z)``; float32 or float64 (float16/bfloat16 are
        computed in float32).
    normalize : bool
        Evaluate on :math:`x / |x|` (the harmonics of the direction). The zero vector then gives
        :math:`Y^0` alone (all :math:`l > 0` components 0, as e3nn) with zero first and second
        derivatives. Every other finite :math:`x`, subnormal to the largest float, gives its
        exact direction (:math:`|x|^2` is never formed unscaled); the derivatives are those at
        unit length over :math:`|x|` (:math:`|x|^2`), finite wherever that value is, else
        :math:`\pm\infty`, never NaN.
        Without it the result is the homogeneous polynomial, :math:`|x|^l Y^l(x/|x|)`.
    normalization : {"integral", "component", "norm"}
        On the unit sphere: ``"component"``: :math:`\|Y^l(x)\|^2 = 2l+1` (each component has
        mean square 1 over the sphere); ``"norm"``: :math:`\|Y^l(x)\| = 1`; ``"integral"``:
        :math:`\int_{S^2} Y^l_m(x)^2\, dx = 1` (component divided by :math:`\sqrt{4\pi}`).

    Returns
    -------
    torch.Tensor
        Shape ``[..., sum(2l+1)]``, each degree's components ordered :math:`m = -l, \dots, l`;
        equal to e3nn's ``o3.spherical_harmonics`` (same arguments) for the degrees it supports.
        The backward is analytic (no autograd graph of the recurrence); double backward works.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 3.0, 4.0]])
    >>> spherical_harmonics(1, x, normalize=False, normalization="norm")
    tensor([[0., 3., 4.]])
    >>> spherical_harmonics([0, 1], x, normalize=True, normalization="component")
    tensor([[1.0000, 0.0000, 1.0392, 1.3856]])
    >>> spherical_harmonics("0e + 2e", x, normalize=True).shape
    torch.Size([1, 6])
    """
    degrees = _parse_degrees(ls)
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != 3:
        raise ValueError(f"x must have shape [..., 3] (vectors in 3D), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating point tensor, got {x.dtype}")
    dtype = x.dtype
    if dtype not in (torch.float32, torch.float64):
        x = x.float()
    lmax, rows, scale = _layout(tuple(degrees), normalization, x.dtype, x.device)
    batch = x.shape[:-1]
    flat = x.reshape(-1, 3)
    if torch.compiler.is_compiling():
        # the out-of-place recurrence: one graph, differentiable by autograd (the eager kernels
        # reuse scratch buffers across calls, a side effect that compiled graphs cannot hold)
        out = kernels.reference(flat, lmax, bool(normalize), rows, scale)
    elif flat.requires_grad and torch.is_grad_enabled():
        out = _SphericalHarmonics.apply(flat, lmax, bool(normalize), rows, scale)
    else:
        out = kernels.forward(flat, lmax, bool(normalize), rows, scale)
    return out.reshape(*batch, scale.shape[0]).to(dtype)


def spherical_harmonics_alpha_beta(
    ls: Union[int, List[int], str, "Irreps"],  # noqa: F821
    alpha: torch.Tensor,
    beta: torch.Tensor,
    *,
    normalization: str = "integral",
) -> torch.Tensor:
    r"""Spherical harmonics of the direction :math:`R_y(\alpha) R_x(\beta)\, e_y` (e3nn's angles).

    The direction is :math:`(\sin\alpha\sin\beta, \cos\beta, \cos\alpha\sin\beta)`; same as
    ``spherical_harmonics(ls, that_direction, normalize=True, normalization=normalization)``.

    Parameters
    ----------
    ls : int, list of int, str or Irreps
        The degrees (see :func:`spherical_harmonics`).
    alpha, beta : torch.Tensor
        Broadcastable angles, shape ``[...]``.
    normalization : {"integral", "component", "norm"}

    Returns
    -------
    torch.Tensor
        Shape ``[..., sum(2l+1)]``.

    Examples
    --------
    >>> zero = torch.tensor(0.0)
    >>> spherical_harmonics_alpha_beta(1, zero, zero, normalization="norm")
    tensor([0., 1., 0.])
    """
    alpha, beta = torch.broadcast_tensors(torch.as_tensor(alpha), torch.as_tensor(beta))
    if not alpha.is_floating_point():
        alpha, beta = alpha.to(torch.get_default_dtype()), beta.to(torch.get_default_dtype())
    sin_beta = beta.sin()
    direction = torch.stack([sin_beta * alpha.sin(), beta.cos(), sin_beta * alpha.cos()], dim=-1)
    return spherical_harmonics(ls, direction, normalize=True, normalization=normalization)
