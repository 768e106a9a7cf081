r"""Norm-based nonlinearity: rescale every channel by a function of its norm.

For channel :math:`c` with norm :math:`n_c = \|x_c\|`,

.. math::

    y_c = \frac{\sigma(n_c + b_c)}{\max(n_c, \epsilon)}\, x_c
    \quad (\text{``normalize``}), \qquad
    y_c = \sigma(n_c + b_c)\, x_c \quad (\text{otherwise}),

with :math:`b_c` an optional learnable bias. The factor is invariant, so the
map is equivariant for every irrep and keeps the irreps (and parities).
"""
from typing import Callable, Optional

import torch

from ..o3 import Irreps
from ._irrep_index import channel_of_component, check_last_dim
from .norm import channel_squared_norms, safe_sqrt

__all__ = ["NormActivation"]


class NormActivation(torch.nn.Module):
    r"""e3nn's ``nn.NormActivation``: each channel times a nonlinearity of its norm.

    Parameters
    ----------
    irreps_in : Irreps or str
    scalar_nonlinearity : callable
        :math:`\sigma`, applied as given (not normalised).
    normalize : bool
        Divide by the norm, so that the output norm is :math:`|\sigma(n + b)|`.
    epsilon : float, optional
        With ``normalize``, norms below :math:`\epsilon` count as :math:`\epsilon`
        (default :math:`10^{-8}`), so zero features give finite gradients.
        Not allowed without ``normalize``.
    bias : bool
        Learn a bias :math:`b_c` per channel (parameter ``biases``, zeros at start).

    Examples
    --------
    >>> n = NormActivation("2x1e", torch.sigmoid)
    >>> y = n(torch.ones(1, 6))
    >>> y.reshape(2, 3).norm(dim=-1)  # sigmoid(sqrt(3))
    tensor([0.8497, 0.8497])
    """

    def __init__(self, irreps_in, scalar_nonlinearity: Callable, normalize: bool = True,
                 epsilon: Optional[float] = None, bias: bool = False) -> None:
        super().__init__()
        self.irreps_in = Irreps(irreps_in)
        self.irreps_out = self.irreps_in
        if not callable(scalar_nonlinearity):
            raise TypeError("scalar_nonlinearity must be callable, got "
                            f"{type(scalar_nonlinearity).__name__}")
        if epsilon is not None and not normalize:
            raise ValueError("epsilon only applies with normalize=True (it bounds the norm we "
                             "divide by)")
        if normalize and epsilon is None:
            epsilon = 1e-8
        if epsilon is not None and not float(epsilon) > 0:
            raise ValueError(f"epsilon must be strictly positive, got {epsilon!r}")
        self.epsilon = None if epsilon is None else float(epsilon)
        self.normalize = bool(normalize)
        self.scalar_nonlinearity = scalar_nonlinearity
        self.bias = bool(bias)
        if self.bias:
            self.biases = torch.nn.Parameter(torch.zeros(self.irreps_in.num_irreps))
        self.register_buffer("_index", channel_of_component(self.irreps_in), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[..., irreps_in.dim]`` to the same shape."""
        check_last_dim(x, self.irreps_in)
        sq = channel_squared_norms(x, self._index, self.irreps_in.num_irreps)
        if self.normalize:
            eps2 = self.epsilon * self.epsilon
            norms = torch.sqrt(torch.clamp(sq, min=eps2))
        else:
            norms = safe_sqrt(sq)
        arg = norms + self.biases if self.bias else norms
        scale = self.scalar_nonlinearity(arg)
        if self.normalize:
            scale = scale / norms
        return x * scale.index_select(-1, self._index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in}, normalize={self.normalize}, "
                f"bias={self.bias})")
