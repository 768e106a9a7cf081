r"""Autograd for single-slot contractions of :math:`\Phi(x_1, x_2, w, g)`.

A backend that computes one slot of the multilinear form (the product is slot 3, the
gradients of ``x1``, ``x2`` and the weights are slots 0, 1, 2) from the other three
differentiates it by calling itself again: the gradient of :math:`\langle c, \text{slot}_t\rangle`
with respect to slot :math:`s` is slot :math:`s` with slot :math:`t` replaced by the
cotangent :math:`c`. The Triton backend and the chunked convolution both use this; every
derivative order follows.
"""
from typing import Callable, Optional

import torch

__all__ = ["save_slots", "slot_backward"]


def save_slots(ctx, target: int, include_unweighted: bool, *slots: Optional[torch.Tensor]) -> None:
    """Record what `slot_backward` needs: the target slot, the weight-free flag, the slots."""
    ctx.target, ctx.include_unweighted = target, include_unweighted
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*slots)


def slot_backward(ctx, grad: Optional[torch.Tensor], apply: Callable) -> tuple:
    """The gradients of the four slots, for an ``autograd.Function`` whose ``forward``
    takes four configuration arguments, then the slots, and called `save_slots`.

    ``apply(target, include_unweighted, x1, x2, w, g)`` evaluates one slot (differentiably).
    """
    if grad is None:
        return (None,) * 8
    slots = list(ctx.saved_tensors)
    slots[ctx.target] = grad
    # once the weight slot holds a cotangent, the paths without weights drop out
    include_unweighted = ctx.include_unweighted and ctx.target != 2
    grads = [None] * 4
    for s, needed in enumerate(ctx.needs_input_grad[4:]):
        if needed and s != ctx.target:
            args = list(slots)
            args[s] = None
            grads[s] = apply(s, include_unweighted, *args)
    return (None, None, None, None, *grads)
