"""Threads for the chunks of the ``torch`` backend on CPU.

A chunk's operations are small: split over intra-op threads, each would pay a
synchronisation, and all of them stall whenever another process holds a core.
So on CPU the backend runs whole chunks in parallel instead, on a pool of
threads in which torch runs single-threaded, as many as torch's intra-op
threads (``torch.get_num_threads()``).

A forked child inherits the pools but not their threads (``fork`` copies only the calling
thread): a task submitted there would wait forever. So the child forgets the pools (and the
lock, which another thread may have held at the fork) and makes fresh ones on first use.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["chunk_workers", "worker_pool"]

_POOLS = {}
_LOCK = threading.Lock()


def _forget_pools_after_fork():
    """In a forked child: drop the parent's pools, whose threads do not exist here."""
    global _POOLS, _LOCK
    _POOLS = {}  # not shut down: that would wait for the parent's (absent) threads
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows cannot fork
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def chunk_workers(like: torch.Tensor, n_chunks: int) -> int:
    """How many threads run the ``n_chunks`` chunks of a call on ``like``'s device."""
    if like.device.type != "cpu" or n_chunks < 2:
        return 1
    return max(1, min(torch.get_num_threads(), n_chunks))


def _single_threaded():
    # a thread takes torch's *current* default thread count on its first parallel call, so
    # trigger that first call now: otherwise it would later overwrite the 1 set here
    torch.get_num_threads()
    torch.set_num_threads(1)


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """The pool of ``workers`` threads, each with one torch thread (created once)."""
    with _LOCK:
        if workers not in _POOLS:
            # torch.set_num_threads is per thread for OpenMP and MKL, but also sets the default
            # that threads take on first use: restore that default for everyone else
            previous = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="equinet-tp",
                                      initializer=_single_threaded)
            started = threading.Barrier(workers)  # every thread starts (and sets 1) now
            list(pool.map(lambda _: started.wait(), range(workers)))
            torch.set_num_threads(previous)
            _POOLS[workers] = pool
        return _POOLS[workers]
