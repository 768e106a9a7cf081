r"""The ``torch`` backend: all paths at once, in plain PyTorch, on any device.

At first use a descriptor is compiled (per device and dtype, then cached) into
index tensors (:mod:`~equinet.tp.kernels.torch_plan`): the paths are grouped by
channel structure into a few *segments*, and each segment evaluates every path
at once from the sparse coupling nonzeros: gathers, one batched matrix product
(or elementwise products with the channel index innermost), and row
additions. No Python loop runs over paths; the only loops are over segments,
over output blocks of weight-mixing modes (``uvw``-like, one matrix product
each) and, on CPU, over chunks of the batch, small enough that temporaries stay
in cache and run in parallel on ``torch.get_num_threads()`` threads
(:mod:`~equinet.tp.kernels.torch_threads`).

Gradients are products of the same kind: the gradient of
:math:`\Phi(x_1, x_2, w, g) = \langle g, \mathrm{TP}(x_1, x_2, w)\rangle` with
respect to any slot is computed by the same code
(:func:`~equinet.tp.kernels.torch_exec.run`), so the backward of the autograd
function calls the function again, and derivatives of every order follow.
"""
import functools
from typing import Optional, Tuple

import torch

from ..descriptor import TensorProductDescriptor
from .torch_exec import run
from .torch_chunks import chunk_size
from .torch_plan import Plan, build_plan
from ._inputs import check_inputs

__all__ = ["tensor_product", "supports", "plan_for"]


@functools.lru_cache(maxsize=256)
def _base_plan(desc: TensorProductDescriptor) -> Plan:
    return build_plan(desc)


@functools.lru_cache(maxsize=512)
def _device_plan(desc: TensorProductDescriptor, device: torch.device, dtype: torch.dtype) -> Plan:
    return _base_plan(desc).to(device, dtype)


@torch._dynamo.assume_constant_result
def plan_for(desc: TensorProductDescriptor, device, dtype) -> Plan:
    """The compiled plan of ``desc`` for ``device`` and ``dtype`` (cached).

    A constant to ``torch.compile``: looked up when tracing, not traced into.
    """
    return _device_plan(desc, torch.device(device), dtype)


def supports(desc: TensorProductDescriptor, device) -> bool:
    """Every descriptor, on every device."""
    return True


class _Contract(torch.autograd.Function):
    """Slots ``targets`` of the form :math:`\\Phi` from the tensors of all four slots."""

    @staticmethod
    def forward(ctx, plan: Plan, targets: Tuple[int, ...], chunk: int, weight_free: bool,
                x1, x2, w, g):
        ctx.plan, ctx.targets, ctx.chunk, ctx.weight_free = plan, targets, chunk, weight_free
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x1, x2, w, g)
        return tuple(run(plan, targets, (x1, x2, w, g), chunk, weight_free))

    @staticmethod
    def backward(ctx, *grads):
        slots = ctx.saved_tensors
        needs = ctx.needs_input_grad[4:]
        total = [None] * 4
        # d<grad_t, dPhi/dslot_t> / dslot_s is dPhi/dslot_s with slot t replaced by grad_t
        for t, grad in zip(ctx.targets, grads):
            if grad is None:
                continue
            wanted = tuple(s for s in range(4) if needs[s] and s != t)
            if not wanted:
                continue
            args = list(slots)
            args[t] = grad
            # once the weight slot holds a cotangent, weight-free paths drop out
            weight_free = ctx.weight_free and t != 2
            for s, r in zip(wanted, _Contract.apply(ctx.plan, wanted, ctx.chunk, weight_free,
                                                    *args)):
                total[s] = r if total[s] is None else total[s] + r
        return (None, None, None, None, *total)


def tensor_product(desc: TensorProductDescriptor, x1: torch.Tensor, x2: torch.Tensor,
                   weight: Optional[torch.Tensor] = None, chunk: Optional[int] = None
                   ) -> torch.Tensor:
    r"""Evaluate all paths of ``desc`` at once.

    Parameters
    ----------
    desc : TensorProductDescriptor
    x1, x2 : torch.Tensor
        ``[Z, dim_in1]`` and ``[Z, dim_in2]``.
    weight : torch.Tensor, optional
        ``[weight_numel]`` (shared) or ``[Z, weight_numel]`` (one set per sample).
    chunk : int, optional
        Samples per batch chunk; by default sized for the CPU cache (whole
        batch on accelerators and under ``torch.compile``).

    Returns
    -------
    torch.Tensor
        ``[Z, dim_out]``, the same as the reference backend, differentiable to any order.

    Examples
    --------
    >>> from equinet.tp import build_descriptor
    >>> from equinet.tp.kernels import reference
    >>> d, _ = build_descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
    ...                         [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
    ...                          (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True)])
    >>> x1, x2, w = torch.randn(5, 8), torch.randn(5, 4), torch.randn(5, d.weight_numel)
    >>> torch.allclose(tensor_product(d, x1, x2, w), reference.tensor_product(d, x1, x2, w),
    ...                atol=1e-6)
    True
    """
    if weight is None:
        weight = x1.new_zeros(0) if desc.weight_numel == 0 else None
        if weight is None:
            raise ValueError(f"this product has {desc.weight_numel} weights; pass them")
    check_inputs(desc, x1, x2, weight)
    plan = plan_for(desc, x1.device, x1.dtype)
    if chunk is None:
        # compiled graphs take the batch whole: the chunk loop would be unrolled
        chunk = max(1, x1.shape[0]) if torch.compiler.is_compiling() else \
            chunk_size(plan, x1.shape[0], x1.device)
    elif isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of samples, got {chunk!r}")
    return _Contract.apply(plan, (3,), int(chunk), True, x1, x2, weight, None)[0]
