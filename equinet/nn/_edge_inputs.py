r"""The graph inputs of the message-passing layers: checks, harmonics, radial embedding.

Node features are ``[N, irreps.dim]``; edge :math:`e` goes from node
``edge_src[e]`` to node ``edge_dst[e]`` and has the vector :math:`\vec r`
(``pos[dst] - pos[src]``), described by the ``"component"``-normalised spherical
harmonics :math:`Y(\hat r)` of its direction and by the radial embedding of its length

.. math::

    B(r) = \mathrm{basis}(r)\, u(r),

NequIP's Bessel basis (:class:`~equinet.nn.BesselBasis`) times its smooth
polynomial cutoff :math:`u` (:class:`~equinet.nn.PolynomialCutoff`, zero from
the cutoff radius on). A radial network :math:`R`
(:class:`~equinet.nn.FullyConnectedNet`) maps :math:`B` to the per-edge
weights of a tensor product. Shared by :class:`~equinet.nn.PointConvolution`
and :class:`~equinet.nn.EquivariantAttention`.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from ..o3 import Irreps, spherical_harmonics
from ._irrep_index import check_last_dim
from .mlp import FullyConnectedNet
from .norm import safe_sqrt
from .radial import BesselBasis, PolynomialCutoff

__all__ = ["check_edges", "check_graph_inputs", "radial_network", "radial_embedding_modules",
           "edge_radial_embedding", "edge_lengths", "edge_harmonics"]


def check_edges(edge_src: torch.Tensor, edge_dst: torch.Tensor) -> None:
    """Raise a clear error unless ``edge_src`` and ``edge_dst`` are 1-D int64 of equal length."""
    for name, t in (("edge_src", edge_src), ("edge_dst", edge_dst)):
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32) \
                or t.dim() != 1:
            raise ValueError(f"{name} must be a 1-D integer tensor, got "
                             f"{getattr(t, 'dtype', type(t).__name__)} of shape "
                             f"{tuple(getattr(t, 'shape', ()))}")
    if edge_src.shape != edge_dst.shape:
        raise ValueError(f"edge_src {tuple(edge_src.shape)} and edge_dst "
                         f"{tuple(edge_dst.shape)} must have the same length")


def check_graph_inputs(x: torch.Tensor, irreps_in: Irreps, edge_src: torch.Tensor,
                       edge_dst: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is ``[N, irreps_in.dim]`` and the edges pass `check_edges`.

    >>> check_graph_inputs(torch.zeros(3, 4), Irreps("1o"), torch.tensor([0]), torch.tensor([1]))
    Traceback (most recent call last):
    ...
    ValueError: x has shape (3, 4), expected [..., 3] for irreps 1x1o
    """
    check_last_dim(x, irreps_in)
    if x.dim() != 2:
        raise ValueError(f"x must be [num_nodes, {irreps_in.dim}], got {tuple(x.shape)}")
    check_edges(edge_src, edge_dst)


def radial_network(num_radial: int, hidden: Sequence[int], num_weights: int,
                   act: Optional[Callable]) -> FullyConnectedNet:
    """The radial network :math:`R`: ``[E, num_radial] -> [E, num_weights]`` through ``hidden``.

    >>> radial_network(8, (16,), 5, torch.nn.functional.silu).hs
    [8, 16, 5]
    """
    return FullyConnectedNet([num_radial, *hidden, num_weights], act)


def radial_embedding_modules(cutoff: Optional[float], num_radial: int
                             ) -> Tuple[Optional[BesselBasis], Optional[PolynomialCutoff]]:
    """The basis and the cutoff of :math:`B`, or ``(None, None)`` without a ``cutoff``.

    >>> basis, envelope = radial_embedding_modules(3.0, 6)
    >>> basis.num_basis, envelope.r_max
    (6, 3.0)
    """
    if cutoff is None:
        return None, None
    return BesselBasis(cutoff, num_radial), PolynomialCutoff(cutoff)


def edge_radial_embedding(lengths: torch.Tensor, basis: torch.nn.Module,
                          cutoff: torch.nn.Module) -> torch.Tensor:
    """``basis(r) * cutoff(r)``: ``[E] -> [E, num_basis]``, smoothly zero at the cutoff."""
    return basis(lengths) * cutoff(lengths).unsqueeze(-1)


def edge_lengths(edge_vec: torch.Tensor) -> torch.Tensor:
    r""":math:`|\vec r|` of ``[E, 3]`` vectors, with a zero (not NaN) gradient at zero length.

    >>> edge_lengths(torch.tensor([[3.0, 4.0, 0.0]]))
    tensor([5.])
    """
    return safe_sqrt(edge_vec.pow(2).sum(-1))


def edge_harmonics(ls: List[int], edge_vec: torch.Tensor) -> torch.Tensor:
    """``"component"``-normalised harmonics of the directions, one block per degree in ``ls``.

    >>> edge_harmonics([0, 1], torch.tensor([[0.0, 0.0, 2.0]]))
    tensor([[1.0000, 0.0000, 0.0000, 1.7321]])
    """
    return spherical_harmonics(ls, edge_vec, True, "component")
