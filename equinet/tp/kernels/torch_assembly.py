"""Scatter the pieces a segment computes into the columns of a flat result.

Every segment of a :class:`~equinet.tp.kernels.torch_plan.Plan` returns, for each
target of the product, pieces whose columns in the result are fixed at plan
time; an :class:`Assembly` knows how all pieces of a target combine (one copy,
one gather, or row additions) and :func:`assemble` does it.
"""
from typing import List, Optional, Tuple

import torch

__all__ = ["Assembly", "assemble"]

_LONG = torch.long


class Assembly:
    """Scatter pieces ``(values, columns)`` into a flat dimension of size ``dim``.

    When the columns of all pieces are a permutation of ``range(dim)`` one
    gather does it; otherwise (repeated or missing columns) rows are zeroed and
    added to. Columns equal to ``dim`` (the constant-one weight) are dropped.
    """

    def __init__(self, cols: List[torch.Tensor], dim: int):
        self.dim = dim
        self.cols = torch.cat(cols) if cols else torch.zeros(0, dtype=_LONG)
        ordered = torch.sort(self.cols).values
        self.is_perm = len(self.cols) == dim and bool((ordered == torch.arange(dim)).all())
        self.inverse = torch.argsort(self.cols) if self.is_perm else None
        self.identity = self.is_perm and bool((self.cols == torch.arange(dim)).all())
        self.overflow = bool((self.cols >= dim).any()) if len(self.cols) else False

    def to(self, device):
        new = object.__new__(Assembly)
        new.__dict__.update(self.__dict__)
        new.cols = self.cols.to(device)
        new.inverse = None if self.inverse is None else self.inverse.to(device)
        return new


def assemble(asm: Assembly, pieces: List[torch.Tensor], batch: Tuple[int, ...], like: torch.Tensor,
             out: Optional[torch.Tensor] = None):
    """Scatter ``pieces``, ``[*batch, ...]`` in the order the columns were given.

    With ``out`` (eager execution only) the result is written there and ``None``
    returned when that saves a copy; otherwise the assembled tensor is returned.
    """
    if not pieces:
        return like.new_zeros(batch + (asm.dim,))
    nb = len(batch)
    if asm.identity and out is not None:
        start = 0
        for p in pieces:
            n = p[(0,) * nb].numel()
            out[..., start:start + n].view(p.shape).copy_(p)
            start += n
        return None
    flat = [p.reshape(batch + (-1,)) for p in pieces]
    values = flat[0] if len(flat) == 1 else torch.cat(flat, dim=-1)
    if asm.identity:
        return values
    if asm.is_perm:
        if out is not None:
            torch.index_select(values, nb, asm.inverse, out=out)
            return None
        return values.index_select(-1, asm.inverse)
    size = asm.dim + (1 if asm.overflow else 0)
    result = like.new_zeros(batch + (size,)).index_add_(nb, asm.cols, values)
    return result[..., :asm.dim] if asm.overflow else result
