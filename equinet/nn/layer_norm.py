r"""Equivariant layer normalisation: per sample, per irrep type, normalise the channel norms.

For one sample (all leading dimensions are independent samples) and each
distinct irrep :math:`\rho = (l, p)` present in the layout, let
:math:`C_\rho` be the channels of that irrep (pooled over all blocks of it)
and :math:`d = 2l + 1`. Then

.. math::

    x_c &\leftarrow x_c - \frac{1}{|C_\rho|} \sum_{c' \in C_\rho} x_{c'}
        \qquad (\rho = 0e \text{ only}) \\
    \sigma^2_\rho &= \frac{1}{|C_\rho|} \sum_{c \in C_\rho} \frac{\|x_c\|^2}{d} \\
    y_c &= w_c\, \frac{x_c}{\sqrt{\sigma^2_\rho + \epsilon}} \; + \; b_c \qquad
        (b_c \text{ for } 0e \text{ channels only})

:math:`\sigma^2_\rho` is the mean square component of the irrep type, an
invariant, so every step commutes with rotations and inversion. Only even
scalars are centred and biased: a constant shift of anything else would not
be equivariant. With only ``0e`` channels this is :class:`torch.nn.LayerNorm`
(biased variance).
"""
import torch

from ..o3 import Irreps
from ._irrep_index import channel_of_component, check_last_dim

__all__ = ["LayerNorm"]


class LayerNorm(torch.nn.Module):
    r"""Layer normalisation of irreps features, equivariant (formula in the module docstring).

    Parameters
    ----------
    irreps : Irreps or str
    eps : float
        :math:`\epsilon`, added to the mean square.
    affine : bool
        Learn ``weight`` :math:`w_c` (one per channel, ones at start) and
        ``bias`` :math:`b_c` (one per ``0e`` channel, zeros at start).

    Examples
    --------
    >>> ln = LayerNorm("3x0e + 2x1o")
    >>> y = ln(10 * torch.randn(4, 9))
    >>> torch.allclose(y[:, :3].mean(-1), torch.zeros(4), atol=1e-6)
    True
    >>> torch.allclose(y[:, 3:].pow(2).mean(-1), torch.ones(4), atol=1e-4)
    True
    """

    def __init__(self, irreps, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.irreps = Irreps(irreps)
        if not float(eps) >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.eps = float(eps)
        self.affine = bool(affine)
        kinds = sorted({ir for _, ir in self.irreps})
        group, count = [], [0] * len(kinds)
        scalar_positions = []
        position = 0
        for mul, ir in self.irreps:
            g = kinds.index(ir)
            group += [g] * (mul * ir.dim)
            count[g] += mul * ir.dim
            if ir.is_scalar():
                scalar_positions += range(position, position + mul)
            position += mul * ir.dim
        self.num_groups = len(kinds)
        self.num_scalars = len(scalar_positions)
        self.register_buffer("_group", torch.tensor(group, dtype=torch.long), persistent=False)
        self.register_buffer("_count", torch.tensor(count, dtype=torch.get_default_dtype()),
                             persistent=False)
        self.register_buffer("_scalars", torch.tensor(scalar_positions, dtype=torch.long),
                             persistent=False)
        self.register_buffer("_channel", channel_of_component(self.irreps), persistent=False)
        if self.affine:
            self.weight = torch.nn.Parameter(torch.ones(self.irreps.num_irreps))
            self.bias = torch.nn.Parameter(torch.zeros(self.num_scalars))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` ``[..., irreps.dim]``; returns the same shape."""
        check_last_dim(x, self.irreps)
        if self.num_scalars > 0:
            mean = x.index_select(-1, self._scalars).mean(-1, keepdim=True)
            x = x.index_add(-1, self._scalars, (-mean).expand(x.shape[:-1] + (self.num_scalars,)))
        sq = x.new_zeros(x.shape[:-1] + (self.num_groups,)).index_add(-1, self._group, x * x)
        inv = torch.rsqrt(sq / self._count.to(x.dtype) + self.eps)
        scale = inv.index_select(-1, self._group)
        if self.affine:
            scale = scale * self.weight.index_select(0, self._channel)
        y = x * scale
        if self.affine and self.num_scalars > 0:
            y = y.index_add(-1, self._scalars, self.bias.expand(y.shape[:-1] + (self.num_scalars,)))
        return y

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps}, eps={self.eps}, affine={self.affine})"
