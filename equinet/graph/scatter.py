r"""Scatter and segment reductions: sums, means and maxima over groups of rows.

Message passing gathers features onto edges and reduces them back onto nodes.
Given ``src`` with ``n`` slices along ``dim`` and an ``index`` assigning each
slice to one of ``dim_size`` groups,

.. math:: \mathrm{out}_g = \sum_{i \,:\, \mathrm{index}_i = g} \mathrm{src}_i .

``segment_*`` do the same when the groups are contiguous runs described by
CSR pointers ``ptr`` (group ``g`` is rows ``ptr[g]:ptr[g+1]``).

Everything is built on :func:`torch.Tensor.index_add` and
:func:`torch.Tensor.scatter_reduce`, so gradients and double gradients flow
through without custom kernels, on every device and dtype. Groups that receive
nothing are ``0`` for every reduction (the convention of torch-scatter).
"""
import operator
from typing import Optional

import torch

__all__ = ["scatter_sum", "scatter_mean", "scatter_max", "segment_sum", "segment_mean"]


def _check_index(src: torch.Tensor, index: torch.Tensor, dim: int,
                 dim_size: Optional[int]):
    """Validate the arguments; return the normalised ``dim`` and ``dim_size``."""
    if not isinstance(src, torch.Tensor) or not isinstance(index, torch.Tensor):
        raise TypeError("src and index must be torch.Tensor")
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension")
    if not -src.dim() <= dim < src.dim():
        raise ValueError(f"dim={dim} is out of range for src of shape {tuple(src.shape)}")
    dim = dim % src.dim()
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"index must be an int64 or int32 tensor, got {index.dtype}")
    if index.dim() != 1 or index.shape[0] != src.shape[dim]:
        raise ValueError(
            f"index must be 1-D with one entry per slice of src along dim {dim}: "
            f"expected shape ({src.shape[dim]},), got {tuple(index.shape)}")
    if index.device != src.device:
        raise ValueError(f"index is on {index.device} but src is on {src.device}")
    if dim_size is not None and not isinstance(dim_size, torch.SymInt):
        if isinstance(dim_size, bool):
            raise TypeError(f"dim_size must be an integer, got {dim_size!r}")
        try:  # numpy / torch integers count; 2.7 must not become 2
            dim_size = operator.index(dim_size)
        except TypeError:
            raise TypeError(f"dim_size must be an integer, got {dim_size!r}") from None
    if dim_size is not None and torch.compiler.is_compiling():
        # values are unknown while tracing: an in-graph assertion instead of int(index.max())
        torch._assert_async(((index >= 0) & (index < dim_size)).all(),
                            "index holds entries outside [0, dim_size)")
    elif index.numel() > 0:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0:
            raise ValueError(f"index has a negative entry ({lo})")
        if dim_size is None:
            dim_size = hi + 1
        elif hi >= dim_size:
            raise ValueError(f"index has entry {hi}, out of range for dim_size={dim_size}")
    elif dim_size is None:
        dim_size = 0
    if dim_size < 0:
        raise ValueError(f"dim_size must be >= 0, got {dim_size}")
    return dim, dim_size


def _long(index: torch.Tensor) -> torch.Tensor:
    return index if index.dtype == torch.int64 else index.long()


def _out_shape(src: torch.Tensor, dim: int, dim_size: int):
    shape = list(src.shape)
    shape[dim] = dim_size
    return shape


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                dim_size: Optional[int] = None) -> torch.Tensor:
    r"""Sum the slices of ``src`` along ``dim`` that share an index.

    .. math:: \mathrm{out}_g = \sum_{i \,:\, \mathrm{index}_i = g} \mathrm{src}_i

    Parameters
    ----------
    src : torch.Tensor
        Values, any shape; slices along ``dim`` are reduced.
    index : torch.Tensor
        Integer tensor of shape ``[src.shape[dim]]``, the group of each slice.
    dim : int
        The dimension reduced over.
    dim_size : int, optional
        Number of groups; ``index.max() + 1`` when not given.

    Returns
    -------
    torch.Tensor
        Same shape as ``src`` except ``dim_size`` along ``dim``.

    Examples
    --------
    >>> scatter_sum(torch.tensor([1., 2., 3., 4.]), torch.tensor([0, 1, 0, 2]))
    tensor([4., 2., 4.])
    """
    dim, dim_size = _check_index(src, index, dim, dim_size)
    out = src.new_zeros(_out_shape(src, dim, dim_size))
    return out.index_add(dim, index, src)


def _counts(index: torch.Tensor, dim_size: int, dtype: torch.dtype) -> torch.Tensor:
    ones = torch.ones(index.shape[0], dtype=dtype, device=index.device)
    return torch.zeros(dim_size, dtype=dtype, device=index.device).index_add(0, index, ones)


def _broadcast_along(v: torch.Tensor, ndim: int, dim: int) -> torch.Tensor:
    """Reshape the 1-D ``v`` so that it broadcasts along dimension ``dim`` of an ``ndim`` tensor."""
    shape = [1] * ndim
    shape[dim] = v.shape[0]
    return v.reshape(shape)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                 dim_size: Optional[int] = None) -> torch.Tensor:
    r"""Average the slices of ``src`` along ``dim`` that share an index.

    .. math:: \mathrm{out}_g = \frac{1}{\max(1, n_g)} \sum_{i \,:\, \mathrm{index}_i = g}
              \mathrm{src}_i, \qquad n_g = |\{i : \mathrm{index}_i = g\}|

    Empty groups give ``0``. Arguments as in :func:`scatter_sum`.

    Examples
    --------
    >>> scatter_mean(torch.tensor([1., 2., 3., 4.]), torch.tensor([0, 1, 0, 3]))
    tensor([2., 2., 0., 4.])
    """
    dim, dim_size = _check_index(src, index, dim, dim_size)
    total = src.new_zeros(_out_shape(src, dim, dim_size)).index_add(dim, index, src)
    count = _counts(index, dim_size, src.dtype).clamp(min=1)
    return total / _broadcast_along(count, src.dim(), dim)


def scatter_max(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                dim_size: Optional[int] = None) -> torch.Tensor:
    r"""Maximum of the slices of ``src`` along ``dim`` that share an index.

    .. math:: \mathrm{out}_g = \max_{i \,:\, \mathrm{index}_i = g} \mathrm{src}_i

    Empty groups give ``0``. The gradient of a maximum attained by several
    entries is shared equally among them (``torch.scatter_reduce``'s rule).
    Arguments as in :func:`scatter_sum`; only the values are returned.

    Examples
    --------
    >>> scatter_max(torch.tensor([1., -2., 3., -4.]), torch.tensor([0, 1, 0, 3]))
    tensor([ 3., -2.,  0., -4.])
    """
    dim, dim_size = _check_index(src, index, dim, dim_size)
    out = src.new_zeros(_out_shape(src, dim, dim_size))
    full_index = _broadcast_along(_long(index), src.dim(), dim).expand_as(src)
    return out.scatter_reduce(dim, full_index, src, reduce="amax", include_self=False)


def _ptr_to_index(ptr: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(ptr, torch.Tensor):
        raise TypeError("ptr must be a torch.Tensor")
    if ptr.dtype not in (torch.int64, torch.int32) or ptr.dim() != 1 or ptr.numel() == 0:
        raise ValueError(f"ptr must be a non-empty 1-D integer tensor, got {ptr.dtype} "
                         f"of shape {tuple(ptr.shape)}")
    lengths = ptr[1:] - ptr[:-1]
    if int(ptr[0]) != 0 or int(ptr[-1]) != n:
        raise ValueError(f"ptr must start at 0 and end at the number of rows ({n}); "
                         f"got {int(ptr[0])} ... {int(ptr[-1])}")
    if lengths.numel() > 0 and int(lengths.min()) < 0:
        raise ValueError("ptr must be non-decreasing")
    groups = torch.arange(lengths.numel(), device=ptr.device)
    return torch.repeat_interleave(groups, lengths.long(), output_size=n)


def segment_sum(src: torch.Tensor, ptr: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""Sum contiguous segments of ``src`` along ``dim`` described by CSR pointers.

    .. math:: \mathrm{out}_g = \sum_{i = \mathrm{ptr}_g}^{\mathrm{ptr}_{g+1} - 1} \mathrm{src}_i

    Parameters
    ----------
    src : torch.Tensor
        Values; the segments run along ``dim``.
    ptr : torch.Tensor
        Integer tensor ``[B + 1]``, non-decreasing, ``ptr[0] = 0`` and
        ``ptr[-1] = src.shape[dim]``.
    dim : int
        The dimension reduced over.

    Returns
    -------
    torch.Tensor
        Same shape as ``src`` except ``B`` along ``dim``.

    Examples
    --------
    >>> segment_sum(torch.tensor([1., 2., 3., 4.]), torch.tensor([0, 1, 1, 4]))
    tensor([1., 0., 9.])
    """
    if not isinstance(src, torch.Tensor) or src.dim() == 0:
        raise ValueError("src must be a tensor with at least one dimension")
    dim = dim % src.dim() if -src.dim() <= dim < src.dim() else dim
    if not 0 <= dim < src.dim():
        raise ValueError(f"dim={dim} is out of range for src of shape {tuple(src.shape)}")
    index = _ptr_to_index(ptr, src.shape[dim])
    return scatter_sum(src, index, dim, dim_size=ptr.numel() - 1)


def segment_mean(src: torch.Tensor, ptr: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""Average contiguous segments of ``src`` along ``dim`` (empty segments give ``0``).

    .. math:: \mathrm{out}_g = \frac{1}{\max(1, \mathrm{ptr}_{g+1} - \mathrm{ptr}_g)}
              \sum_{i = \mathrm{ptr}_g}^{\mathrm{ptr}_{g+1} - 1} \mathrm{src}_i

    Examples
    --------
    >>> segment_mean(torch.tensor([1., 2., 3., 4.]), torch.tensor([0, 1, 1, 4]))
    tensor([1., 0., 3.])
    """
    total = segment_sum(src, ptr, dim)
    dim = dim % src.dim()
    count = (ptr[1:] - ptr[:-1]).clamp(min=1).to(src.dtype)
    return total / _broadcast_along(count, src.dim(), dim)
