r"""Fully connected networks with variance-preserving ("normalised") weights.

Weights are drawn from :math:`\mathcal{N}(0, 1)` and divided by
:math:`\sqrt{\text{fan-in}}` at run time rather than at initialisation, and the
activation is rescaled to unit second moment (:class:`Normalize2Mom`), so that
unit-variance inputs give unit-variance activations at every depth. This is
e3nn's ``FullyConnectedNet``: same parameters (``layer{i}.weight`` of shape
``[h_in, h_out]``), so e3nn state dicts load and outputs agree to rounding.
"""
from typing import Callable, Optional, Sequence

import torch

from .activation_norm import Normalize2Mom

__all__ = ["FullyConnectedLayer", "FullyConnectedNet"]


class FullyConnectedLayer(torch.nn.Module):
    r"""One normalised dense layer.

    With an activation :math:`\phi`:
    :math:`y = \sqrt{v_\text{out}}\; \phi\!\left(x W / \sqrt{h_\text{in} v_\text{in}}\right)`;
    without: :math:`y = x W / \sqrt{h_\text{in} v_\text{in} / v_\text{out}}`,
    where :math:`W \in \mathbb{R}^{h_\text{in} \times h_\text{out}}` has entries
    :math:`\mathcal{N}(0, 1)` at initialisation.

    Parameters
    ----------
    h_in, h_out : int
        Input and output widths.
    act : callable, optional
        Activation (used as given: normalise it first if wanted).
    var_in, var_out : float
        Variance of the inputs, and wanted variance of the outputs.

    Examples
    --------
    >>> FullyConnectedLayer(4, 2)(torch.randn(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, h_in: int, h_out: int, act: Optional[Callable] = None,
                 var_in: float = 1.0, var_out: float = 1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(h_in, h_out))
        self.act = act
        self.h_in, self.h_out = h_in, h_out
        self.var_in, self.var_out = var_in, var_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.h_in:
            raise ValueError(f"expected last dimension {self.h_in}, got shape {tuple(x.shape)}")
        if self.act is None:
            return x @ (self.weight / (self.h_in * self.var_in / self.var_out) ** 0.5)
        x = x @ (self.weight / (self.h_in * self.var_in) ** 0.5)
        return self.act(x) * self.var_out ** 0.5

    def extra_repr(self) -> str:
        return f"{self.h_in} -> {self.h_out}, act={self.act is not None}"


class FullyConnectedNet(torch.nn.Sequential):
    r"""A stack of :class:`FullyConnectedLayer` with a normalised activation in between.

    Layer :math:`i` maps width ``hs[i]`` to ``hs[i+1]``. Every layer but the last
    applies ``act`` (normalised to unit second moment by :class:`Normalize2Mom`);
    the last applies it only when ``out_act``. The first layer expects inputs of
    variance ``variance_in``; the last produces variance ``variance_out``.

    Parameters
    ----------
    hs : sequence of int
        Widths: input, hidden ones, output (at least two entries).
    act : callable, optional
        Activation :math:`\phi`; ``None`` gives a linear network.
    variance_in, variance_out : float
        Input variance, and wanted output variance.
    out_act : bool
        Whether the last layer applies the activation.

    Examples
    --------
    >>> net = FullyConnectedNet([8, 16, 1], torch.nn.functional.silu)
    >>> net
    FullyConnectedNet[8, 16, 1]
    >>> net(torch.randn(5, 8)).shape
    torch.Size([5, 1])
    """

    def __init__(self, hs: Sequence[int], act: Optional[Callable] = None,
                 variance_in: float = 1, variance_out: float = 1, out_act: bool = False):
        super().__init__()
        hs = list(hs)
        if len(hs) < 2 or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                              for h in hs):
            raise ValueError(f"hs must list at least two positive int widths, got {hs!r}")
        if not (variance_in > 0 and variance_out > 0):
            raise ValueError("variance_in and variance_out must be positive")
        if act is not None:
            act = Normalize2Mom(act)
        self.hs = hs
        var_in = variance_in
        for i, (h1, h2) in enumerate(zip(hs, hs[1:])):
            last = i == len(hs) - 2
            var_out = variance_out if last else 1
            layer_act = act if (out_act or not last) else None
            self.add_module(f"layer{i}", FullyConnectedLayer(h1, h2, layer_act, var_in, var_out))
            var_in = var_out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}{self.hs}"
