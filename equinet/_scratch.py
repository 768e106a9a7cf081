"""Per-thread scratch buffers reused across calls on CPU.

A fresh multi-MiB tensor is page-faulted on first touch, and glibc returns large freed
blocks to the system, so that a function allocating its intermediates anew on every call
pays the page faults every time: on the kernels that use this (spherical harmonics, the
Gaunt grid) that cost more than the arithmetic. Their no-autograd paths take their
intermediates from here instead.
"""
import threading
from typing import List, Sequence

import torch

__all__ = ["scratch", "clear_scratch"]

#: Largest flat buffer kept per (thread, tag, dtype); larger requests are allocated anew.
MAX_SCRATCH_BYTES = 64 << 20

_cache = threading.local()


def scratch(tag: str, shapes: Sequence[Sequence[int]], dtype: torch.dtype,
            device: torch.device) -> List[torch.Tensor]:
    """Uninitialized tensors of the given shapes, views of one flat buffer (64-byte aligned).

    On CPU the buffer is kept per thread and ``tag`` and reused by the next call with the
    same tag: the views are valid until then. Elsewhere, and above `MAX_SCRATCH_BYTES`,
    it is a new tensor.

    >>> a, b = scratch("doctest", [(2, 3), (4,)], torch.float32, torch.device("cpu"))
    >>> a.shape, b.shape
    (torch.Size([2, 3]), torch.Size([4]))
    """
    sizes = [-(-torch.Size(shape).numel() // 16) * 16 for shape in shapes]
    numel = sum(sizes)
    if device.type == "cpu" and numel * dtype.itemsize <= MAX_SCRATCH_BYTES:
        cache = _cache.__dict__.setdefault("buffers", {})
        buf = cache.get((tag, dtype))
        if buf is None or buf.numel() < numel:
            cache.pop((tag, dtype), None)  # free the old one before allocating its successor
            # a normal tensor even under inference_mode: an inference tensor could not be
            # written in place by a later call outside it
            with torch.inference_mode(False):
                buf = cache[tag, dtype] = torch.empty(numel, dtype=dtype)
    else:
        buf = torch.empty(numel, dtype=dtype, device=device)
    views, offset = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(buf[offset:offset + torch.Size(shape).numel()].view(shape))
        offset += size
    return views


def clear_scratch() -> None:
    """Free this thread's cached scratch buffers (rebuilt on next use)."""
    _cache.__dict__.pop("buffers", None)
