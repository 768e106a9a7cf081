"""Index tensors that map each component of an irreps layout to its channel.

Per-channel operations (norms, gates, scalings) are written as one
``index_add`` (components -> channels) and one gather (channels ->
components) instead of a Python loop over blocks: two kernels whatever the
number of blocks, and both compile and differentiate to any order.
"""
from typing import List, Tuple

import torch

from ..o3 import Irreps


def channel_of_component(irreps: Irreps) -> torch.Tensor:
    """``[irreps.dim]`` int64: the channel (0 .. num_irreps - 1) each component belongs to.

    >>> channel_of_component(Irreps("2x0e + 1o")).tolist()
    [0, 1, 2, 2, 2]
    """
    index: List[int] = []
    channel = 0
    for mul, ir in irreps:
        for _ in range(mul):
            index += [channel] * ir.dim
            channel += 1
    return torch.tensor(index, dtype=torch.long)


def channel_dims(irreps: Irreps) -> torch.Tensor:
    """``[num_irreps]`` int64: the dimension :math:`2l + 1` of each channel.

    >>> channel_dims(Irreps("2x0e + 1o")).tolist()
    [1, 1, 3]
    """
    return torch.tensor([ir.dim for mul, ir in irreps for _ in range(mul)], dtype=torch.long)


def block_ranges(irreps: Irreps) -> List[Tuple[int, int]]:
    """``(start, length)`` of each block of ``irreps`` in the flat layout."""
    out, start = [], 0
    for mul, ir in irreps:
        out.append((start, mul * ir.dim))
        start += mul * ir.dim
    return out


def check_last_dim(x: torch.Tensor, irreps: Irreps, name: str = "x") -> None:
    """Raise a ValueError naming the problem when ``x`` is not ``[..., irreps.dim]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != irreps.dim:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected [..., {irreps.dim}] "
                         f"for irreps {irreps}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {x.dtype}")
