r"""Softmax over groups of rows (e.g. the incoming edges of each node), numerically stable.

For rows :math:`e` in groups :math:`g(e)` and optional non-negative weights
:math:`w_e`,

.. math:: \alpha_e = \frac{w_e \exp(s_e - m_{g(e)})}{\sum_{e' : g(e') = g(e)}
          w_{e'} \exp(s_{e'} - m_{g(e)})},
          \qquad m_g = \max_{e : g(e) = g} s_e .

Subtracting the group maximum changes nothing mathematically but keeps every
exponential :math:`\le 1`, so large logits cannot overflow. The maximum is
treated as a constant in the backward (the softmax does not depend on it).
Groups whose weights sum to 0 give :math:`\alpha = 0`.
"""
import operator
from typing import Optional

import torch

__all__ = ["scatter_softmax"]


def scatter_softmax(src: torch.Tensor, index: torch.Tensor, dim_size: int,
                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Softmax of ``src`` ``[E, ...]`` within the groups ``index`` ``[E]`` (formula above).

    Parameters
    ----------
    src : torch.Tensor
        Logits ``[E, ...]``; trailing dimensions (e.g. attention heads) are independent.
    index : torch.Tensor
        int64 ``[E]``, the group of each row, in ``[0, dim_size)``.
    dim_size : int
        Number of groups.
    weight : torch.Tensor, optional
        Non-negative ``[E]`` or broadcastable to ``src``: multiplies each
        exponential (a smooth cutoff makes rows fade in and out continuously).

    Returns
    -------
    torch.Tensor
        Same shape as ``src``; sums to 1 over each non-empty group.

    Examples
    --------
    >>> a = scatter_softmax(torch.tensor([1000.0, 1000.0, 0.0]), torch.tensor([0, 0, 1]), 2)
    >>> a
    tensor([0.5000, 0.5000, 1.0000])
    """
    if not isinstance(src, torch.Tensor) or not src.is_floating_point():
        raise TypeError("src must be a floating point tensor")
    if src.dim() == 0 or index.dim() != 1 or index.shape[0] != src.shape[0]:
        raise ValueError(f"index must be 1-D with one entry per row of src: src "
                         f"{tuple(src.shape)}, index {tuple(index.shape)}")
    if isinstance(dim_size, bool) or not isinstance(dim_size, (int, torch.SymInt)):
        try:  # numpy / torch integers count; 2.7 must not become 2
            dim_size = operator.index(dim_size)
        except TypeError:
            raise TypeError(f"dim_size must be an integer, got {dim_size!r}") from None
    if dim_size < 0:
        raise ValueError(f"dim_size must be >= 0, got {dim_size}")
    _check_groups(index, dim_size)
    shape = (dim_size,) + tuple(src.shape[1:])
    expanded = index.reshape((-1,) + (1,) * (src.dim() - 1)).expand_as(src)
    with torch.no_grad():
        peak = src.new_full(shape, float("-inf")).scatter_reduce(
            0, expanded, src.detach(), reduce="amax", include_self=True)
    exp = torch.exp(src - peak.index_select(0, index))
    if weight is not None:
        if weight.dim() == 1 and src.dim() > 1:
            weight = weight.reshape((-1,) + (1,) * (src.dim() - 1))
        exp = exp * weight
    total = src.new_zeros(shape).index_add(0, index, exp)
    total = torch.where(total > 0, total, torch.ones_like(total))
    return exp / total.index_select(0, index)


def _check_groups(index: torch.Tensor, dim_size) -> None:
    """Raise unless every group in ``index`` lies in ``[0, dim_size)`` (else torch's own error
    comes from deep inside the scatter, or none at all on some devices).

    Value checks cannot run while ``torch.compile`` traces: there an in-graph assertion.
    """
    if torch.compiler.is_compiling():
        torch._assert_async(((index >= 0) & (index < dim_size)).all(),
                            "scatter_softmax: index holds groups outside [0, dim_size)")
        return
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= dim_size:
        raise ValueError(f"index holds groups in [{low}, {high}] but must lie in "
                         f"[0, dim_size - 1] (dim_size = {dim_size})")
