r"""Equivariant dropout: drop whole channels (irreps), never single components.

Zeroing one component of a vector would break equivariance; zeroing the
whole vector (and rescaling the survivors) does not. With input
:math:`A_{z a i}` (``z`` the first, batch, dimension; ``a`` any middle
dimensions; ``i`` the channel),

.. math:: B_{z a i} = \frac{\xi_{z i}}{1 - p}\, A_{z a i}, \qquad
          \xi_{z i} \sim \text{Bernoulli}(1 - p),

the same mask for every component of a channel and every middle index.
"""
import torch

from ..o3 import Irreps
from ._irrep_index import check_last_dim

__all__ = ["Dropout"]


class Dropout(torch.nn.Module):
    r"""e3nn's ``nn.Dropout``: in training, zero each channel with probability ``p``.

    Survivors are scaled by :math:`1/(1-p)` so the expectation is unchanged;
    in evaluation mode the input is returned as is. The mask is drawn block by
    block, one ``[batch, mul]`` Bernoulli draw each, as e3nn does, so that a
    given random seed drops the same channels as e3nn.

    Parameters
    ----------
    irreps : Irreps or str
    p : float
        Drop probability, in :math:`[0, 1]`.

    Examples
    --------
    >>> d = Dropout("2x1o", p=0.5).eval()
    >>> x = torch.randn(3, 6)
    >>> torch.equal(d(x), x)
    True
    """

    def __init__(self, irreps, p: float) -> None:
        super().__init__()
        self.irreps = Irreps(irreps)
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch, ..., irreps.dim]``; the mask depends on batch and channel only."""
        check_last_dim(x, self.irreps)
        if not self.training:
            return x
        if x.dim() < 2:
            raise ValueError(f"x has shape {tuple(x.shape)}: Dropout needs [batch, ..., "
                             f"{self.irreps.dim}] (the mask is drawn per batch row)")
        batch = x.shape[0]
        noises = []
        for mul, ir in self.irreps:
            noise = x.new_empty(batch, mul)
            if self.p >= 1:
                noise.fill_(0)
            elif self.p <= 0:
                noise.fill_(1)
            else:
                noise.bernoulli_(1 - self.p).div_(1 - self.p)
            noises.append(noise.repeat_interleave(ir.dim, dim=1))
        if not noises:
            return x
        noise = torch.cat(noises, dim=-1)
        return x * noise.reshape((batch,) + (1,) * (x.dim() - 2) + (self.irreps.dim,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps}, p={self.p})"
