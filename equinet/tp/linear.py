r"""The equivariant linear map: mixing channels of equal irreps.

An O(3)-equivariant linear map between data laid out by irreps can only mix
channels of the same irrep (Schur's lemma), and acts on each channel as a
multiple of the identity:

.. math::

    y_{w k} = \sum_{\text{instructions } (a \to b)} c_{ab} \sum_u W^{(ab)}_{u w}\, x^{(a)}_{u k}
    \;+\; \text{bias}_{w}\ (\text{scalar output blocks only})

Conventions, path coefficients and the flat layout of weights and biases are
e3nn's ``o3.Linear``.

Implementation: instead of one small product per instruction, all instructions
between blocks of the same irrep are gathered into one block matrix
:math:`W_{\text{ir}}` of shape ``(sum of input channels, sum of output channels)``
and applied with a single matrix product per irrep (one GEMM over
``batch x (2l+1)`` rows); ``backend="reference"`` evaluates the instructions
one by one instead, as the readable definition.
"""
import math
from typing import List, Optional, Sequence, Union

import torch

from ..o3 import Irreps
from .kernels import BACKENDS
# LinearInstruction and _Group were defined here before linear_layout: importable from here, they
# keep the public name and Linear modules pickled before the move working
from .linear_layout import (LinearInstruction, _Group, group_by_irrep,  # noqa: F401
                            linear_instructions, weighted_instructions)

__all__ = ["Linear", "LinearInstruction"]


class Linear(torch.nn.Module):
    r"""Equivariant linear map from ``irreps_in`` to ``irreps_out``, e3nn's ``o3.Linear``.

    .. math::

        y^{(b)}_{w k} = \sum_{a \to b} c_{ab} \sum_u W^{(ab)}_{u w}\, x^{(a)}_{u k} + \beta^{(b)}_w

    with :math:`c_{ab} = \sqrt{\text{path\_weight} / n_{ab}}`, where the fan-in
    :math:`n_{ab}` is the number of input channels summed into block :math:`b`
    over all its instructions (``"element"``), the channels of :math:`a` times
    the number of instructions into :math:`b` (``"path"``), or 1 (``"none"``),
    times ``f_in`` when given.

    Parameters
    ----------
    irreps_in, irreps_out : Irreps or str
    f_in, f_out : int, optional
        An extra feature axis (give both): inputs ``[..., f_in, irreps_in.dim]``,
        outputs ``[..., f_out, irreps_out.dim]``, weights ``[f_in, f_out, weight_numel]``.
    internal_weights : bool, optional
        Whether the module owns ``weight`` (and ``bias``); default ``True``
        unless ``shared_weights=False``.
    shared_weights : bool, optional
        Default ``True``; with ``False`` weights (and biases) are given per sample.
    instructions : list of tuple, optional
        ``(i_in, i_out)`` or ``(i_in, i_out, path_weight)``; by default every
        pair of blocks of equal irreps, in input then output order.
    biases : bool or list of bool
        A bias per output block; ``True`` gives one to every ``0e`` block. Only
        ``0e`` blocks can have one.
    path_normalization : {"element", "path", "none"}
    backend : str
        ``"reference"`` evaluates instruction by instruction; any other choice
        (``"auto"``) uses one matrix product per irrep.

    Attributes
    ----------
    weight_numel, bias_numel : int
        Sizes of the flat weights and biases: weights in instruction order, each
        ``(mul_in, mul_out)`` row-major; biases in output order (e3nn's layout).
    instructions : list of LinearInstruction
        The weighted instructions, then one per bias (``i_in = -1``), as e3nn.

    Examples
    --------
    >>> lin = Linear("4x0e + 16x1o", "8x0e + 8x1o", biases=True)
    >>> lin.weight_numel, lin.bias_numel
    (160, 8)
    >>> lin(torch.randn(3, 52)).shape
    torch.Size([3, 32])
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        *,
        f_in: Optional[int] = None,
        f_out: Optional[int] = None,
        internal_weights: Optional[bool] = None,
        shared_weights: Optional[bool] = None,
        instructions: Optional[Sequence[Sequence]] = None,
        biases: Union[bool, Sequence[bool]] = False,
        path_normalization: str = "element",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        irreps_in, irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        if path_normalization not in ("element", "path", "none"):
            raise ValueError(f"path_normalization must be 'element', 'path' or 'none', "
                             f"got {path_normalization!r}")
        if (f_in is None) != (f_out is None):
            raise ValueError("give both f_in and f_out, or neither")
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected 'auto' or one of "
                             f"{list(BACKENDS)}")
        self.instructions: List[LinearInstruction] = linear_instructions(
            irreps_in, irreps_out, instructions, biases, path_normalization, f_in)

        if shared_weights is False and internal_weights is None:
            internal_weights = False
        shared_weights = True if shared_weights is None else bool(shared_weights)
        internal_weights = True if internal_weights is None else bool(internal_weights)
        if internal_weights and not shared_weights:
            raise ValueError("internal_weights=True requires shared_weights=True")
        self.irreps_in, self.irreps_out = irreps_in, irreps_out
        self.f_in, self.f_out = f_in, f_out
        self.shared_weights, self.internal_weights = shared_weights, internal_weights
        self.path_normalization = path_normalization
        self.backend = backend
        self.weight_numel = sum(math.prod(ins.path_shape) for ins in self.instructions
                                if ins.i_in >= 0)
        self.bias_numel = sum(ins.path_shape[0] for ins in self.instructions if ins.i_in < 0)
        self._groups, self._segment_sizes = group_by_irrep(self.instructions, irreps_in,
                                                           irreps_out)
        # plain ints for forward: torch.compile guards cannot inspect Irrep objects
        self._dim_in, self._dim_out = irreps_in.dim, irreps_out.dim
        biased = {ins.i_out for ins in self.instructions if ins.i_in < 0}
        self._out_blocks = tuple((i, mul, mul * ir.dim, i in biased)
                                 for i, (mul, ir) in enumerate(irreps_out) if mul > 0)
        self._in_sizes = tuple(mul_ir.dim for mul_ir in irreps_in)
        self._reference_steps = tuple(
            (ins.i_out, ins.i_in, ins.path_shape, irreps_in[ins.i_in].ir.dim, offset,
             ins.path_weight)
            for ins, offset in weighted_instructions(self.instructions)
            if 0 not in ins.path_shape)

        features = (f_in, f_out) if f_in is not None else ()
        if internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(*features, self.weight_numel))
        else:
            self.register_parameter("weight", None)
        if internal_weights and self.bias_numel > 0:
            # zero biases: the initial map is linear, not affine (as e3nn)
            self.bias = torch.nn.Parameter(torch.zeros(*features[1:], self.bias_numel))
        else:
            self.register_parameter("bias", None)

    # -- weights -------------------------------------------------------------------------
    def _feature_dims(self) -> int:
        return 0 if self.f_in is None else 2

    def _resolve(self, given, internal, numel: int, name: str, like: torch.Tensor,
                 trailing: tuple):
        if given is None:
            if numel == 0:
                return like.new_zeros(trailing + (0,))
            if not self.internal_weights:
                raise ValueError(f"this Linear has no internal {name}s: pass {name} of shape "
                                 f"{list(trailing) + [numel]} (or with leading batch dimensions)")
            return internal
        if self.internal_weights:
            raise ValueError(f"this Linear has internal weights (internal_weights=True); build "
                             f"it with internal_weights=False to pass {name}")
        expected = trailing + (numel,)
        if self.shared_weights:
            if tuple(given.shape) != expected:
                raise ValueError(f"{name} has shape {tuple(given.shape)}, expected "
                                 f"{list(expected)} (shared_weights=True)")
        elif given.dim() < len(expected) + 1 or tuple(given.shape[-len(expected):]) != expected:
            raise ValueError(f"{name} has shape {tuple(given.shape)}, expected [..., "
                             f"{', '.join(map(str, expected))}] (shared_weights=False)")
        return given

    def weight_views(self, weight: Optional[torch.Tensor] = None,
                     yield_instruction: bool = False):
        """Views of the weights of each instruction, shaped ``[...] + (mul_in, mul_out)``.

        >>> [tuple(w.shape) for w in Linear("2x0e + 1o", "3x0e + 1o").weight_views()]
        [(2, 3), (1, 1)]
        """
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise ValueError("this Linear has no internal weights: pass weight")
            weight = self.weight if self.weight is not None else torch.zeros(0)
        batch = weight.shape[:-1]
        for index, (ins, offset) in enumerate(weighted_instructions(self.instructions)):
            size = math.prod(ins.path_shape)
            view = weight.narrow(-1, offset, size).view(batch + ins.path_shape)
            yield (index, ins, view) if yield_instruction else view

    # -- evaluation ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Map ``x`` ``[..., (f_in,) irreps_in.dim]`` to ``[..., (f_out,) irreps_out.dim]``.

        ``weight`` (``[(f_in, f_out,) weight_numel]``, with leading batch
        dimensions when the weights are not shared) and ``bias``
        (``[(f_out,) bias_numel]``) are required when the module has no
        internal weights.
        """
        nf = self._feature_dims()
        dim_in = self._dim_in
        expected = ((self.f_in,) if nf else ()) + (dim_in,)
        if x.dim() < len(expected) or tuple(x.shape[x.dim() - len(expected):]) != expected:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected [..., "
                             f"{', '.join(map(str, expected))}] for irreps_in = {self.irreps_in}")
        w_trailing = (self.f_in, self.f_out) if nf else ()
        weight = self._resolve(weight, self.weight, self.weight_numel, "weight", x, w_trailing)
        bias = self._resolve(bias, self.bias, self.bias_numel, "bias", x, w_trailing[1:])
        for name, t in (("weight", weight), ("bias", bias)):
            if t.numel() > 0 and t.dtype != x.dtype:
                raise TypeError(f"x has dtype {x.dtype} but {name} {t.dtype}; convert the input "
                                "or the module (.to(dtype)) to one dtype")
        shapes = [x.shape[:x.dim() - 1 - (nf // 2)]]
        if not self.shared_weights:
            shapes += [weight.shape[:weight.dim() - 1 - nf] if self.weight_numel else (),
                       bias.shape[:bias.dim() - 1 - nf // 2] if self.bias_numel else ()]
        try:
            batch = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ValueError("the leading dimensions of x, weight and bias do not broadcast: "
                             f"{[tuple(s) for s in shapes]}") from None
        feat_in = (self.f_in,) if nf else ()
        feat_out = (self.f_out,) if nf else ()
        z = math.prod(batch)  # explicit: reshape(-1, ..., 0) is ambiguous for empty irreps
        x = x.expand(batch + feat_in + (dim_in,)).reshape((z,) + feat_in + (dim_in,))
        if not self.shared_weights:
            if self.weight_numel:
                weight = weight.expand(batch + w_trailing + (self.weight_numel,))
                weight = weight.reshape((z,) + w_trailing + (self.weight_numel,))
            if self.bias_numel:
                bias = bias.expand(batch + feat_out + (self.bias_numel,))
                bias = bias.reshape((z,) + feat_out + (self.bias_numel,))
        if self.backend == "reference":
            blocks = self._blocks_reference(x, weight)
        else:
            blocks = self._blocks_grouped(x, weight)
        out = self._assemble(blocks, bias, x)
        return out.reshape(batch + feat_out + (self._dim_out,))

    def _einsum(self, per_sample: bool) -> str:
        if self.f_in is None:
            return "zui,zuw->zwi" if per_sample else "zui,uw->zwi"
        return "zxui,zxyuw->zywi" if per_sample else "zxui,xyuw->zywi"

    def _blocks_grouped(self, x: torch.Tensor, weight: torch.Tensor) -> dict:
        """Output blocks ``{i_out: [Z, (f_out,) mul, 2l+1]}``, one matrix product per irrep."""
        z, feat = x.shape[0], x.shape[1:-1]
        per_sample = not self.shared_weights
        lead = weight.shape[:-1]  # ([Z],) (f_in, f_out)
        blocks = {}
        pieces = x.split(self._segment_sizes, dim=-1)
        for g in self._groups:
            xs = [pieces[i].reshape((z,) + feat + (mul, g.dim)) for i, mul in g.segments]
            xg = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-2)
            rows = [[None] * len(g.blocks_out) for _ in g.blocks_in]
            for r, c, offset, coefficient in g.entries:
                mul_in, mul_out = g.blocks_in[r][1], g.blocks_out[c][1]
                w = coefficient * weight.narrow(-1, offset, mul_in * mul_out).reshape(
                    lead + (mul_in, mul_out))
                rows[r][c] = w if rows[r][c] is None else rows[r][c] + w
            wg = torch.cat([torch.cat([
                w if w is not None else weight.new_zeros(lead + (g.blocks_in[r][1], mul_out))
                for w, (_, mul_out) in zip(row, g.blocks_out)], dim=-1)
                for r, row in enumerate(rows)], dim=-2)
            yg = torch.einsum(self._einsum(per_sample), xg, wg)
            start = 0
            for i_out, mul in g.blocks_out:
                blocks[i_out] = yg[..., start:start + mul, :]
                start += mul
        return blocks

    def _blocks_reference(self, x: torch.Tensor, weight: torch.Tensor) -> dict:
        """Output blocks, one einsum per instruction: the readable definition."""
        z, feat = x.shape[0], x.shape[1:-1]
        lead = weight.shape[:-1]
        blocks = {}
        pieces = x.split(self._in_sizes, dim=-1)
        for i_out, i_in, (mul_in, mul_out), d, offset, coefficient in self._reference_steps:
            xi = pieces[i_in].reshape((z,) + feat + (mul_in, d))
            w = weight.narrow(-1, offset, mul_in * mul_out).reshape(lead + (mul_in, mul_out))
            y = coefficient * torch.einsum(self._einsum(not self.shared_weights), xi, w)
            blocks[i_out] = blocks[i_out] + y if i_out in blocks else y
        return blocks

    def _assemble(self, blocks: dict, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z, feat = x.shape[0], (self.f_out,) if self.f_in is not None else ()
        pieces, bias_offset = [], 0
        for i_out, mul, dim, biased in self._out_blocks:
            block = blocks.get(i_out)
            block = (block.reshape((z,) + feat + (dim,)) if block is not None
                     else x.new_zeros((z,) + feat + (dim,)))
            if biased:
                block = block + bias.narrow(-1, bias_offset, mul)
                bias_offset += mul
            pieces.append(block)
        if not pieces:
            return x.new_zeros((z,) + feat + (0,))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out} | "
                f"{self.weight_numel} weights)")
