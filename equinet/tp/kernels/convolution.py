r"""Graph convolutions with a tensor product, in plain PyTorch: the definition and a chunked one.

The convolution of node features :math:`x` with edge attributes :math:`a` and
per-edge weights :math:`w` is

.. math:: y_n = \sum_{e:\ \mathrm{dst}(e) = n} \mathrm{TP}(x_{\mathrm{src}(e)}, a_e, w_e).

:func:`reference_convolution` writes exactly this (gather, product, ``index_add``)
and lets autograd differentiate it; it stores the ``[edges, features]`` product.
:func:`chunked_convolution` computes the same sums a chunk of edges at a time and
never keeps more than one chunk of gathered rows, in the forward pass nor in the
backward pass: it is an autograd function over the slots of the form

.. math:: \Phi(x, a, w, g) = \sum_e \langle g_{\mathrm{dst}(e)},
          \mathrm{TP}(x_{\mathrm{src}(e)}, a_e, w_e) \rangle,

whose gradient with respect to any slot is again such a chunked sum (gathered by
``dst`` and scattered by ``src`` for :math:`x`), so it is differentiable to any order.
"""
import functools
import importlib
from typing import Optional

import torch

from ..descriptor import TensorProductDescriptor
from ._slots import save_slots, slot_backward

__all__ = ["reference_convolution", "chunked_convolution", "default_chunk"]

#: Bytes of gathered and computed rows one chunk may hold.
CHUNK_BYTES = 64 * 2 ** 20


def _backend(name: str):
    return importlib.import_module(f".{name}", __package__)


def reference_convolution(desc: TensorProductDescriptor, x, edge_attr, weight, edge_src,
                          edge_dst, num_nodes: int, backend: str = "reference") -> torch.Tensor:
    """``zeros.index_add(0, edge_dst, TP(x[edge_src], edge_attr, weight))``, literally."""
    messages = _backend(backend).tensor_product(desc, x.index_select(0, edge_src), edge_attr,
                                                weight)
    return x.new_zeros(num_nodes, desc.dim_out).index_add(0, edge_dst, messages)


def default_chunk(desc: TensorProductDescriptor, per_edge_weights: bool, dtype) -> int:
    """Edges per chunk so that a chunk's rows (both inputs, weights, output) fit in 64 MB."""
    features = desc.dim_in1 + desc.dim_in2 + desc.dim_out
    features += desc.weight_numel if per_edge_weights else 0
    itemsize = torch.empty(0, dtype=dtype).element_size()
    return max(1, CHUNK_BYTES // (max(1, features) * itemsize))


@functools.lru_cache(maxsize=256)
def _weighted_only(desc: TensorProductDescriptor) -> TensorProductDescriptor:
    return TensorProductDescriptor(desc.dim_in1, desc.dim_in2, desc.dim_out, desc.weight_numel,
                                   tuple(p for p in desc.paths if p.weight is not None))


def _slot(desc, target: int, x1, x2, w, g, shared: bool):
    r"""Slot ``target`` of :math:`\Phi` on one chunk of rows (``w`` shared or per row)."""
    tp = _backend("torch").tensor_product
    if target == 3:
        return tp(desc, x1, x2, w)
    shapes = (x1, x2, w)
    rows = g.shape[0]
    dims = (desc.dim_in1, desc.dim_in2, desc.weight_numel)
    shape = (dims[2],) if target == 2 and shared else (rows, dims[target])
    if not desc.paths:
        return g.new_zeros(shape)
    with torch.enable_grad():
        # Phi is linear in the target slot: its gradient does not depend on the value
        leaf = g.new_zeros(shape).requires_grad_(True)
        args = [leaf if s == target else shapes[s] for s in range(3)]
        out = tp(desc, *args)
        return torch.autograd.grad(out, leaf, g)[0]


class _ChunkedContract(torch.autograd.Function):
    """Slot ``target`` of the convolution form, a chunk of edges at a time."""

    @staticmethod
    def forward(ctx, desc, graph, target, include_unweighted, x, a, w, g):
        ctx.desc, ctx.graph = desc, graph
        save_slots(ctx, target, include_unweighted, x, a, w, g)
        src, dst, num_in, num_out, chunk, shared = graph
        d = desc if include_unweighted and target != 2 else _weighted_only(desc)
        like = next(s for s in (x, a, w, g) if s is not None)
        edges = src.shape[0]
        if target == 0:
            out = like.new_zeros(num_in, desc.dim_in1)
        elif target == 3:
            out = like.new_zeros(num_out, desc.dim_out)
        elif target == 2 and shared:
            out = like.new_zeros(desc.weight_numel)
        else:
            out = like.new_empty(edges, (desc.dim_in2, desc.weight_numel)[target - 1])
        for e0 in range(0, edges, chunk):
            e1 = min(edges, e0 + chunk)
            s, t = src[e0:e1], dst[e0:e1]
            rows = (None if target == 0 else x.index_select(0, s),
                    None if target == 1 else a[e0:e1],
                    None if target == 2 else (w if shared else w[e0:e1]),
                    None if target == 3 else g.index_select(0, t))
            value = _slot(d, target, *rows, shared)
            if target == 0:
                out.index_add_(0, s, value)
            elif target == 3:
                out.index_add_(0, t, value)
            elif target == 2 and shared:
                out.add_(value)
            else:
                out[e0:e1] = value
        return out

    @staticmethod
    def backward(ctx, grad):
        return slot_backward(ctx, grad,
                             lambda *args: _ChunkedContract.apply(ctx.desc, ctx.graph, *args))


def chunked_convolution(desc: TensorProductDescriptor, x, edge_attr, weight, edge_src,
                        edge_dst, num_nodes: int, chunk: Optional[int] = None) -> torch.Tensor:
    r"""The convolution, ``chunk`` edges at a time, on the ``torch`` backend.

    Equal to :func:`reference_convolution` (the same sums, in chunks); memory beyond
    the inputs and the output is one chunk of rows, also in the backward pass
    (gradients are recomputed chunk by chunk rather than stored). ``chunk``
    defaults to :func:`default_chunk`.

    Examples
    --------
    >>> from equinet.tp import build_descriptor
    >>> d, _ = build_descriptor("2x1o", "0e + 1o", "2x0e", [(0, 1, 0, "uvu", True)])
    >>> x, a, w = torch.randn(4, 6), torch.randn(5, 4), torch.randn(5, 2)
    >>> src, dst = torch.tensor([0, 1, 2, 3, 3]), torch.tensor([1, 1, 0, 0, 2])
    >>> y = chunked_convolution(d, x, a, w, src, dst, num_nodes=4, chunk=2)
    >>> torch.allclose(y, reference_convolution(d, x, a, w, src, dst, 4), atol=1e-6)
    True
    """
    if chunk is None:
        chunk = default_chunk(desc, weight.dim() == 2, x.dtype)
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of edges, got {chunk}")
    if edge_src.shape[0] <= int(chunk):
        # one chunk holds every edge: storing its rows is within the bound, and autograd
        # through the torch backend's own kernels beats recomputing them per slot
        return reference_convolution(desc, x, edge_attr, weight, edge_src, edge_dst, num_nodes,
                                     backend="torch")
    graph = (edge_src, edge_dst, x.shape[0], num_nodes, int(chunk), weight.dim() == 1)
    return _ChunkedContract.apply(desc, graph, 3, True, x, edge_attr, weight, None)
