r"""The norm of every channel of an irreps layout: the invariants of the features.

For channel :math:`c` (one copy of an irrep, components :math:`x_{c,m}`,
:math:`m = -l..l`),

.. math:: n_c = \|x_c\| = \Big(\sum_{m} x_{c,m}^2\Big)^{1/2},

an even scalar whatever the irrep, since the Wigner matrices are orthogonal.
The gradient of :math:`\|x\|` is :math:`x / \|x\|`, undefined at :math:`x = 0`;
there it is taken to be 0 (a subgradient), so that zero features never
produce NaN gradients.
"""
import torch

from ..o3 import Irreps
from ._irrep_index import channel_of_component, check_last_dim

__all__ = ["Norm", "safe_sqrt"]


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sqrt{x}` for :math:`x \ge 0`, with gradients (of every order) 0 at :math:`x = 0`.

    Examples
    --------
    >>> x = torch.tensor([0.0, 4.0], requires_grad=True)
    >>> y = safe_sqrt(x)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([0.0, 2.0], [0.0, 0.25])
    """
    positive = x > 0
    # the masked branch sees 1, so no inf (hence no 0 * inf = NaN) reaches the backward
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def channel_squared_norms(x: torch.Tensor, index: torch.Tensor, num_channels: int) -> torch.Tensor:
    """``[..., num_channels]``: the sum of ``x**2`` over the components of each channel."""
    return x.new_zeros(x.shape[:-1] + (num_channels,)).index_add(-1, index, x * x)


class Norm(torch.nn.Module):
    r"""Norm of each channel, e3nn's ``o3.Norm``: ``[..., irreps_in.dim] -> [..., num_irreps]``.

    .. math:: y_c = \|x_c\| \quad \text{or, with } ``squared``, \quad y_c = \|x_c\|^2

    Parameters
    ----------
    irreps_in : Irreps or str
    squared : bool
        Return the squared norms (smooth everywhere).

    Attributes
    ----------
    irreps_in : Irreps
        ``irreps_in`` simplified (as e3nn).
    irreps_out : Irreps
        ``num_irreps x 0e``.

    Examples
    --------
    >>> norm = Norm("2x1o + 0e")
    >>> norm.irreps_out
    3x0e
    >>> norm(torch.tensor([3.0, 4.0, 0.0, 0.0, 0.0, 0.0, -2.0]))
    tensor([5., 0., 2.])
    """

    def __init__(self, irreps_in, squared: bool = False) -> None:
        super().__init__()
        self.irreps_in = Irreps(irreps_in).simplify()
        self.irreps_out = Irreps([(mul, "0e") for mul, _ in self.irreps_in]).simplify()
        self.squared = bool(squared)
        self.register_buffer("_index", channel_of_component(self.irreps_in), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Norms ``[..., num_irreps]`` of ``x`` ``[..., irreps_in.dim]``."""
        check_last_dim(x, self.irreps_in)
        sq = channel_squared_norms(x, self._index, self.irreps_in.num_irreps)
        return sq if self.squared else safe_sqrt(sq)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in}, squared={self.squared})"
