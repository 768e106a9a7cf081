r"""The ``triton`` backend: one generated, fused GPU kernel per product and per gradient.

For each descriptor the kernels are *generated*: Triton source in which the
Clebsch-Gordan nonzeros are literal constants, every path runs in the same launch,
and inputs, weights and partial sums stay in registers until an output block is
written once (:mod:`~equinet.tp.kernels.triton_codegen`). The product and its
gradients are the four slots of one multilinear form

.. math:: \Phi(x_1, x_2, w, g) = \sum_z \langle g_z, \mathrm{TP}(x_1, x_2, w)_z \rangle,

and the gradient of :math:`\langle \bar g, \partial\Phi/\partial a\rangle` with
respect to a slot :math:`b` is :math:`\partial\Phi/\partial b` with slot :math:`a`
replaced by :math:`\bar g`: the backward of each launch is launches of the same
generator with another free slot, so derivatives of every order come from the same
autograd function.

The fused graph convolution (:func:`convolution`) uses the same kernels with
gathered and scattered rows: the node features are read at ``edge_src``, the result
is added at ``edge_dst`` (atomically, or deterministically by segments of edges
sorted by destination), and the ``[edges, features]`` product is never stored.

Supported: the modes ``uvw``, ``uvu``, ``uvv``, ``uuw``, ``uuu`` and ``uvuv``, with
and without weights, shared or per-sample weights; float64, float32, and float16 /
bfloat16 with float32 accumulation. On CUDA devices, and on the CPU only under
Triton's interpreter (``TRITON_INTERPRET=1``, for tests). Anything else (the pair
modes, other devices, Triton missing) runs on the ``torch`` backend instead. The
kernels are launched outside ``torch.compile`` graphs (the entry points are
``torch.compiler.disable``-d: a graph break). A kernel is compiled on its first
launch; Triton caches the binaries on disk.
"""
import importlib
from typing import Optional

import torch

from ..descriptor import TensorProductDescriptor
from .triton_launch import Layout, contract, interpreting, supported
from ._inputs import check_inputs
from ._slots import save_slots, slot_backward

try:
    import triton as _triton  # noqa: F401  (the library, not this module)
except ImportError:  # pragma: no cover - triton is an optional dependency
    _triton = None

__all__ = ["tensor_product", "supports", "convolution"]

_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def supports(desc: TensorProductDescriptor, device) -> bool:
    """Whether the kernels run ``desc`` on ``device``.

    True on CUDA devices for descriptors without pair modes; on the CPU only
    when Triton's interpreter is on (``TRITON_INTERPRET=1``), so that ``"auto"``
    never picks this backend for CPU tensors.
    """
    if _triton is None:
        return False
    device = torch.device(device)
    if device.type == "cuda":
        return supported(desc)
    if device.type == "cpu" and interpreting():
        return supported(desc)
    return False


def _usable(desc, *tensors) -> bool:
    t = tensors[0]
    return t.dtype in _DTYPES and supports(desc, t.device)


class _Contract(torch.autograd.Function):
    """Slot ``target`` of :math:`\\Phi` from the other three slots (rows by ``layout``)."""

    @staticmethod
    def forward(ctx, desc, layout, target, include_unweighted, x1, x2, w, g):
        ctx.desc, ctx.layout = desc, layout
        save_slots(ctx, target, include_unweighted, x1, x2, w, g)
        return contract(desc, layout, target, include_unweighted, [x1, x2, w, g])

    @staticmethod
    def backward(ctx, grad):
        return slot_backward(ctx, grad, lambda *args: _Contract.apply(ctx.desc, ctx.layout, *args))


def _fallback():
    return importlib.import_module(".torch", __package__)


@torch.compiler.disable
def tensor_product(desc: TensorProductDescriptor, x1: torch.Tensor, x2: torch.Tensor,
                   weight: Optional[torch.Tensor] = None, *, block_rows: Optional[int] = None,
                   vector_width: Optional[int] = None) -> torch.Tensor:
    r"""Evaluate all paths of ``desc`` in one generated kernel.

    Parameters
    ----------
    desc : TensorProductDescriptor
    x1, x2 : torch.Tensor
        ``[Z, dim_in1]`` and ``[Z, dim_in2]``.
    weight : torch.Tensor, optional
        ``[weight_numel]`` (shared) or ``[Z, weight_numel]`` (one set per sample).
    block_rows, vector_width : int, optional
        Override the tile: rows per program and the widest channel vector (powers
        of two; by default chosen per dtype and descriptor).

    Returns
    -------
    torch.Tensor
        ``[Z, dim_out]``, equal to the reference backend, differentiable to any order.
        Where :func:`supports` is False the ``torch`` backend computes it.

    Examples
    --------
    >>> from equinet.tp import build_descriptor
    >>> from equinet.tp.kernels import reference
    >>> d, _ = build_descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
    ...                         [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
    ...                          (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True)])
    >>> x1, x2, w = torch.randn(5, 8), torch.randn(5, 4), torch.randn(5, d.weight_numel)
    >>> torch.allclose(tensor_product(d, x1, x2, w), reference.tensor_product(d, x1, x2, w),
    ...                atol=1e-5)
    True
    """
    if weight is None:
        if desc.weight_numel:
            raise ValueError(f"this product has {desc.weight_numel} weights; pass them")
        weight = x1.new_zeros(0)
    check_inputs(desc, x1, x2, weight)
    if not _usable(desc, x1):
        return _fallback().tensor_product(desc, x1, x2, weight)
    z = x1.shape[0]
    kinds = ("row", "row", "shared" if weight.dim() == 1 else "row", "row")
    layout = Layout(z, kinds, (z, z, z, z), block_rows=block_rows, vector_width=vector_width)
    return _Contract.apply(desc, layout, 3, True, x1, x2, weight, None)


@torch.compiler.disable
def convolution(desc: TensorProductDescriptor, x: torch.Tensor, edge_attr: torch.Tensor,
                weight: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                num_nodes: int, deterministic: bool = False, chunk: Optional[int] = None,
                *, block_rows: Optional[int] = None,
                vector_width: Optional[int] = None) -> torch.Tensor:
    r"""Fused gather, tensor product and scatter over the edges of a graph.

    .. math:: y_n = \sum_{e:\ \mathrm{dst}(e) = n} \mathrm{TP}(x_{\mathrm{src}(e)},\
              a_e, w_e)

    Inputs are assumed checked (see :class:`equinet.tp.TensorProductConv`):
    ``x`` ``[N_in, dim_in1]``, ``edge_attr`` ``[E, dim_in2]``, ``weight``
    ``[weight_numel]`` or ``[E, weight_numel]``, integer ``edge_src``/``edge_dst``
    ``[E]``. ``deterministic=True`` sums each node's incoming edges in order (edges
    sorted by destination, CSR offsets) instead of with atomic additions, so that
    results are bitwise reproducible. Where :func:`supports` is False, the chunked
    ``torch`` convolution computes it (``chunk`` edges at a time). ``block_rows``
    and ``vector_width`` override the tile as in :func:`tensor_product`.
    """
    if not _usable(desc, x):
        from .convolution import chunked_convolution
        return chunked_convolution(desc, x, edge_attr, weight, edge_src, edge_dst, num_nodes,
                                   chunk=chunk)
    edges = edge_src.shape[0]
    kinds = ("gather", "row", "shared" if weight.dim() == 1 else "row", "gather")
    layout = Layout(edges, kinds, (x.shape[0], edges, edges, num_nodes),
                    (edge_src, None, None, edge_dst), deterministic=deterministic,
                    block_rows=block_rows, vector_width=vector_width)
    return _Contract.apply(desc, layout, 3, True, x, edge_attr, weight, None)
