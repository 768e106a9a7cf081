"""Training utilities shared by the examples: checkpoints that resume exactly, an
exponential moving average of the weights, distributed (torchrun) helpers, a training loop
with a progress bar, learning-curve plots.

Layering: this package may import :mod:`equinet.models`, :mod:`equinet.nn`,
:mod:`equinet.graph` and :mod:`equinet.data`; nothing in the library imports it (only the
examples and users' scripts).
"""
from .checkpoint import (load_checkpoint, restore_training, rng_state, save_checkpoint,
                         set_rng_state)
from .distributed import (DistributedContext, all_reduce_sum, init_distributed,
                          max_difference_across_ranks, shard)
from .ema import ExponentialMovingAverage
from .loop import plot_history, train_epoch

__all__ = ["save_checkpoint", "load_checkpoint", "restore_training", "rng_state", "set_rng_state",
           "ExponentialMovingAverage", "DistributedContext", "init_distributed",
           "all_reduce_sum", "shard", "max_difference_across_ranks", "train_epoch",
           "plot_history"]
