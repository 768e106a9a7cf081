"""A training epoch with a progress bar, and learning-curve plots.

Examples
--------
>>> model = torch.nn.Linear(1, 1)
>>> data = [(torch.ones(4, 1), torch.zeros(4, 1))] * 3
>>> def loss_fn(model, item):
...     x, y = item
...     return (model(x) - y).pow(2).mean(), len(x)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> first = train_epoch(model, data, loss_fn, opt, progress=False)
>>> train_epoch(model, data, loss_fn, opt, progress=False) < first
True
"""
from typing import Callable, Dict, Iterable, Optional, Sequence

import torch

from .distributed import DistributedContext, all_reduce_sum

__all__ = ["train_epoch", "plot_history"]


def train_epoch(model: torch.nn.Module, loader: Iterable, loss_fn: Callable,
                optimizer: torch.optim.Optimizer, ema=None, ctx: DistributedContext = None,
                progress: bool = True, desc: str = "train",
                max_grad_norm: Optional[float] = None) -> float:
    """One pass over ``loader``: forward, backward, step (and EMA update) per batch.

    Parameters
    ----------
    model : torch.nn.Module
        The model to train (DistributedDataParallel-wrapped with several processes).
    loader : iterable
        Batches, handed to ``loss_fn``.
    loss_fn : callable
        ``loss_fn(model, batch) -> (loss, count)``: the mean loss over the batch's ``count``
        items (molecules).
    optimizer : torch.optim.Optimizer
    ema : ExponentialMovingAverage, optional
        Updated after every step.
    ctx : DistributedContext, optional
        With several processes the returned mean is over all of them; the bar shows on
        rank 0 only.
    progress : bool
        Show a tqdm bar with the running loss.
    max_grad_norm : float, optional
        Clip the gradient norm.

    Returns
    -------
    float
        Mean loss per item over the epoch (all processes).
    """
    from tqdm.auto import tqdm

    ctx = ctx or DistributedContext()
    model.train()
    total = torch.zeros(2, dtype=torch.float64)
    bar = tqdm(loader, desc=desc, disable=not (progress and ctx.is_main), leave=False,
               dynamic_ncols=True)
    for batch in bar:
        loss, count = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if ema is not None:
            ema.update()
        total += torch.tensor([float(loss.detach()) * count, count], dtype=torch.float64)
        bar.set_postfix(loss=f"{total[0] / total[1]:.4g}")
    bar.close()
    total = all_reduce_sum(total, ctx)
    return float(total[0] / total[1].clamp(min=1))


def plot_history(history: Dict[str, Sequence[float]], path, title: str = "",
                 ylabel: str = "") -> None:
    """Save a learning curve (log scale, one line per key of ``history``) as a PNG.

    ``history`` maps a label (e.g. ``"train loss"``, ``"valid MAE"``) to one value per
    epoch. Uses matplotlib's Agg backend (no display needed).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in history.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
