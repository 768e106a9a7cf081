r"""The tensor square :math:`x \otimes x` of one input, reduced to irreps.

Squaring a tensor produces every product twice (:math:`x_u x_v` and
:math:`x_v x_u`); the tensor square keeps each once: pairs of different blocks,
pairs :math:`u < v` inside a block, and the diagonal :math:`u = v`, whose
products are symmetric and so only reach even degrees. The instructions,
their order and their path weights are e3nn's ``TensorSquare``.
"""
import math
from typing import Optional

import torch

from ..o3 import Irreps
from .products import _irrep_filter
from .tensor_product import TensorProduct

__all__ = ["TensorSquare"]


def _irrep_factor(normalization: str, ir1, ir2, ir_out) -> float:
    """The factor of ``irrep_normalization`` for a product of two different channels."""
    return {"component": ir_out.dim, "norm": ir1.dim * ir2.dim, "none": 1}[normalization]


def _diagonal_factor(normalization: str, ir1, ir_out) -> float:
    r"""The factor for the diagonal :math:`x_u \otimes x_u`.

    The product of a channel with itself is not a product of independent
    variables; these factors (e3nn's) give unit-variance outputs for
    unit-variance inputs: for degree 0 the squared norm of a ``2l+1`` vector,
    otherwise its traceless symmetric part.
    """
    if normalization == "component":
        return ir_out.dim / (ir1.dim + 2) if ir_out.l == 0 else ir_out.dim / 2
    if normalization == "norm":
        return ir_out.dim * ir1.dim if ir_out.l == 0 else ir1.dim * (ir1.dim + 2) / 2
    return 1.0


def _square_full(irreps_in: Irreps, keep, normalization: str):
    """Output irreps and weightless instructions: e3nn's square without ``irreps_out``."""
    blocks, instructions = [], []
    for i1, (mul1, ir1) in enumerate(irreps_in):
        for i2, (mul2, ir2) in enumerate(irreps_in):
            if i2 < i1:
                continue
            for ir_out in ir1 * ir2:
                if keep is not None and ir_out not in keep:
                    continue
                alpha = _irrep_factor(normalization, ir1, ir2, ir_out)
                if i1 < i2:
                    instructions.append((i1, i2, len(blocks), "uvuv", False, alpha))
                    blocks.append((mul1 * mul2, ir_out))
                    continue
                if mul1 > 1:
                    instructions.append((i1, i1, len(blocks), "uvu<v", False, alpha))
                    blocks.append((mul1 * (mul1 - 1) // 2, ir_out))
                if ir_out.l % 2 == 0:
                    instructions.append((i1, i1, len(blocks), "uuu", False,
                                         _diagonal_factor(normalization, ir1, ir_out)))
                    blocks.append((mul1, ir_out))
    irreps_out, p, _ = Irreps(blocks).sort()
    instructions = [(a, b, p[io], mode, w, alpha) for a, b, io, mode, w, alpha in instructions]
    return irreps_out, instructions


def _square_fully_connected(irreps_in: Irreps, irreps_out: Irreps, normalization: str):
    """Weighted instructions into the given ``irreps_out``: e3nn's square with ``irreps_out``."""
    instructions = []
    for i1, (mul1, ir1) in enumerate(irreps_in):
        for i2, (_, ir2) in enumerate(irreps_in):
            if i2 < i1:
                continue
            for io, (_, ir_out) in enumerate(irreps_out):
                if ir_out not in ir1 * ir2:
                    continue
                alpha = _irrep_factor(normalization, ir1, ir2, ir_out)
                if i1 < i2:
                    instructions.append((i1, i2, io, "uvw", True, alpha))
                    continue
                if mul1 > 1:
                    instructions.append((i1, i1, io, "u<vw", True, alpha))
                if ir_out.l % 2 == 0:
                    instructions.append((i1, i1, io, "uuw", True,
                                         _diagonal_factor(normalization, ir1, ir_out)))
    return instructions


class TensorSquare(TensorProduct):
    r"""The square :math:`x \otimes x` of one input, each distinct product once.

    Without ``irreps_out`` it has no weights and outputs every product: for
    blocks :math:`a < b` all :math:`x_{a,u} \otimes x_{b,v}` (``"uvuv"``), inside
    a block the pairs :math:`u < v` (``"uvu<v"``) and, for even output degrees,
    the squares :math:`x_u \otimes x_u` (``"uuu"``); the output blocks are
    sorted by irrep. With ``irreps_out`` the same products are mixed by weights
    into the given blocks (``"uvw"``, ``"u<vw"``, ``"uuw"``), like
    :class:`~equinet.tp.FullyConnectedTensorProduct`. Instructions, order and
    path weights are e3nn's; ``irrep_normalization`` enters through the path
    weights, with special factors for the diagonal :math:`u = v`.

    Parameters
    ----------
    irreps_in : Irreps or str
        The input (simplified).
    irreps_out : Irreps or str, optional
        The output (simplified); gives the weighted, fully connected square.
    filter_ir_out : irreps or iterable of Irrep, optional
        The output irreps to keep when ``irreps_out`` is not given.
    irrep_normalization : {"component", "norm", "none"}, optional
    **kwargs
        Passed to :class:`TensorProduct` (``path_normalization``, weight flags, ...).

    Examples
    --------
    >>> sq = TensorSquare("2x1o")
    >>> sq.irreps_out
    1x0e+2x0e+1x1e+1x2e+2x2e
    >>> sq(torch.randn(4, 6)).shape
    torch.Size([4, 21])
    >>> TensorSquare("2x1o", "3x0e").weight_numel  # u<v pairs: 1 x 3, squares: 2 x 3
    9
    """

    def __init__(self, irreps_in, irreps_out=None, filter_ir_out=None,
                 irrep_normalization: str = None, **kwargs) -> None:
        if irrep_normalization is None:
            irrep_normalization = "component"
        if irrep_normalization not in ("component", "norm", "none"):
            raise ValueError(f"irrep_normalization must be 'component', 'norm' or 'none', "
                             f"got {irrep_normalization!r}")
        irreps_in = Irreps(irreps_in).simplify()
        keep = _irrep_filter(filter_ir_out)
        if irreps_out is None:
            irreps_out, instructions = _square_full(irreps_in, keep, irrep_normalization)
        else:
            if keep is not None:
                raise ValueError("give irreps_out or filter_ir_out to TensorSquare, not both")
            irreps_out = Irreps(irreps_out).simplify()
            instructions = _square_fully_connected(irreps_in, irreps_out, irrep_normalization)
        super().__init__(irreps_in, irreps_in, irreps_out, instructions,
                         irrep_normalization="none", **kwargs)
        self.irreps_in = irreps_in

    def forward(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x`` of shape ``[..., irreps_in.dim]`` to ``[..., irreps_out.dim]``."""
        if x.shape[-1:] != (self.descriptor.dim_in1,):
            raise ValueError(f"x has shape {tuple(x.shape)}, expected last dimension "
                             f"{self.descriptor.dim_in1} for irreps_in = {self.irreps_in}")
        return super().forward(x, x, weight)

    def __repr__(self) -> str:
        npath = sum(math.prod(ins.path_shape) for ins in self.instructions)
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out.simplify()} | "
                f"{npath} paths | {self.weight_numel} weights)")
