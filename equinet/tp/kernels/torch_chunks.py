"""How the ``torch`` backend splits a batch on CPU: chunks, and sub-chunks of large segments.

A chunk runs every segment of a :class:`~equinet.tp.kernels.torch_plan.Plan` on its
samples; its size trades the per-segment Python calls of each chunk against
temporaries that stay in cache. Chunks run in parallel on the chunk threads
(:mod:`~equinet.tp.kernels.torch_threads`).
"""
import torch

from .torch_plan import Plan, Segment

__all__ = ["chunk_size", "segment_rows", "MIN_PARALLEL_ROWS"]


def chunk_size(plan: Plan, batch: int, device: torch.device) -> int:
    """Samples per chunk: on CPU, small enough that a chunk's temporaries stay in cache.

    About 4 MB of float32 for a typical segment's largest temporary, larger segments
    running in sub-chunks (`segment_rows`) (1-4 MB measured alike on one
    thread; the larger end amortises the per-chunk Python work, which the chunk
    threads of :mod:`~equinet.tp.kernels.torch_threads` cannot share); on
    accelerators, up to a gigabyte (a whole batch, mostly).
    """
    if batch == 0:
        return 1
    rows = _budget(device) // plan.per_sample
    if device.type == "cpu" and len(plan.segments) > 1 and batch >= 2 * MIN_PARALLEL_ROWS:
        # at least one chunk per chunk thread (torch_threads): chunks sized by the median
        # segment often hold the whole batch (full products at L = 8, 2000 rows: 85 -> 39 ms)
        rows = min(rows, max(MIN_PARALLEL_ROWS, -(-batch // torch.get_num_threads())))
    return max(1, min(batch, rows))


#: Fewest samples per chunk for which a batch is split only to use every chunk thread.
MIN_PARALLEL_ROWS = 64


def _budget(device: torch.device) -> int:
    """Elements of the largest temporary per chunk (see `chunk_size`)."""
    return 1 << 28 if device.type != "cpu" else 1 << 20


def segment_rows(seg: Segment, rows: int, device: torch.device) -> int:
    """Samples per sub-chunk of ``seg`` in a chunk of ``rows``: the whole chunk unless its
    temporaries exceed the budget of `chunk_size`."""
    return max(1, min(rows, _budget(device) // max(1, seg.per_sample_size)))
