r"""An exponential moving average of a model's weights, evaluated in place of the weights.

After every optimiser step, :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta`
with ``decay`` :math:`d` (warmed up as :math:`\min(d, (1 + n) / (10 + n))` over the first
updates ``n``, so early averages are not dominated by the random initialisation). The
average usually generalises better than the last weights; validate and test with it.

Examples
--------
>>> model = torch.nn.Linear(2, 1)
>>> ema = ExponentialMovingAverage(model, decay=0.9)
>>> with torch.no_grad():
...     _ = model.weight.add_(1.0)
>>> ema.update()
>>> with ema.average_parameters():
...     inside = model.weight.clone()
>>> bool((inside < model.weight).all())  # the average lags behind
True
"""
import contextlib
from typing import Dict, Iterator

import torch

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """Moving average of the floating-point parameters of ``model`` (buffers are not averaged).

    Parameters
    ----------
    model : torch.nn.Module
        The model (the unwrapped module, not its DistributedDataParallel wrapper).
    decay : float
        In ``[0, 1)``; e.g. 0.99 to 0.999.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.99) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model, self.decay, self.num_updates = model, float(decay), 0
        self.shadow = {name: p.detach().clone() for name, p in self._params()}

    def _params(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights into the average (call after each optimiser step)."""
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in self._params():
            self.shadow[name].lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module = None) -> None:
        """Overwrite the weights of ``model`` (default: the tracked one) with the average."""
        params = dict((model or self.model).named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value)

    @contextlib.contextmanager
    def average_parameters(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; restored afterwards."""
        saved = {name: p.detach().clone() for name, p in self._params()}
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in self._params():
                    p.copy_(saved[name])

    def state_dict(self) -> Dict:
        """Plain-type state (for checkpoints)."""
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: Dict) -> None:
        """Restore :meth:`state_dict`; the parameter names must match the model's."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state does not match the model's parameters: "
                             f"{sorted(set(state['shadow']) ^ set(self.shadow))[:5]} differ")
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
