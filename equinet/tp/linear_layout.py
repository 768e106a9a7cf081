r"""How :class:`~equinet.tp.Linear` lays out its instructions and weights.

:func:`linear_instructions` validates e3nn-style instructions ``(i_in, i_out[,
path_weight])`` and gives each its path coefficient

.. math::

    c_{ab} = \sqrt{\text{path\_weight} / n_{ab}},

where the fan-in :math:`n_{ab}` is the number of input channels summed into
output block :math:`b` over all its instructions (``"element"``), the channels
of :math:`a` times the number of instructions into :math:`b` (``"path"``), or 1
(``"none"``), times ``f_in`` when given; one instruction per bias follows.
The flat weights hold each instruction's ``(mul_in, mul_out)`` block row-major,
in instruction order (:func:`weighted_instructions` gives the offsets), as e3nn.

:func:`group_by_irrep` plans the fast evaluation: all instructions between
blocks of one irrep form one block matrix, applied with a single matrix product.
"""
import math
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..o3 import Irreps
from ..o3.irrep import as_int

__all__ = ["LinearInstruction", "linear_instructions", "weighted_instructions", "group_by_irrep"]


class LinearInstruction(NamedTuple):
    """One instruction of :class:`Linear`, as e3nn stores it.

    ``i_in`` is ``-1`` for a bias; ``path_weight`` is the final coefficient.
    """

    i_in: int
    i_out: int
    path_shape: tuple
    path_weight: float


class _Group(NamedTuple):
    """The instructions between blocks of one irrep, applied as one matrix."""

    dim: int                     # 2l + 1
    blocks_in: tuple             # ((i_in, mul), ...) in input order: the rows
    segments: tuple              # ((index into the split input, mul), ...) covering the rows
    blocks_out: tuple            # ((i_out, mul), ...) in output order
    entries: tuple               # ((row block, col block, weight offset, coefficient), ...)


def _check_instructions(instructions, irreps_in: Irreps, irreps_out: Irreps):
    out = []
    for k, ins in enumerate(instructions):
        if len(ins) not in (2, 3):
            raise ValueError(f"Linear instruction {k} {tuple(ins)!r} must be (i_in, i_out) or "
                             "(i_in, i_out, path_weight)")
        indices = []
        for name, i, irreps in (("i_in", ins[0], irreps_in), ("i_out", ins[1], irreps_out)):
            index = as_int(i)  # numpy/torch integers (e.g. from np.argsort) count as ints
            if index is None or not 0 <= index < len(irreps):
                raise ValueError(f"Linear instruction {k} {tuple(ins)!r}: {name}={i!r} is out of "
                                 f"range for irreps {irreps} ({len(irreps)} entries)")
            indices.append(index)
        i_in, i_out = indices
        if irreps_in[i_in].ir != irreps_out[i_out].ir:
            raise ValueError(f"Linear instruction {k} {tuple(ins)!r}: input block "
                             f"{irreps_in[i_in]} and output block {irreps_out[i_out]} are not "
                             "the same irrep (a linear map cannot change the irrep)")
        out.append((i_in, i_out, float(ins[2]) if len(ins) == 3 else 1.0))
    return out


def linear_instructions(irreps_in: Irreps, irreps_out: Irreps,
                        instructions: Optional[Sequence[Sequence]],
                        biases: Union[bool, Sequence[bool]], path_normalization: str,
                        f_in: Optional[int]) -> List[LinearInstruction]:
    """The weighted instructions with their coefficients, then one per bias, as e3nn stores them.

    ``instructions`` defaults to every pair of blocks of equal irreps, in input
    then output order; ``biases=True`` gives a bias to every ``0e`` output block.
    ``path_normalization`` is one of ``"element"``, ``"path"`` and ``"none"``.

    >>> for ins in linear_instructions(Irreps("4x0e + 1o"), Irreps("0e"), None, True,
    ...                                "element", None):
    ...     print(ins)
    LinearInstruction(i_in=0, i_out=0, path_shape=(4, 1), path_weight=0.5)
    LinearInstruction(i_in=-1, i_out=0, path_shape=(1,), path_weight=1.0)
    """
    if instructions is None:
        instructions = [(i, o) for i, (_, ir_in) in enumerate(irreps_in)
                        for o, (_, ir_out) in enumerate(irreps_out) if ir_in == ir_out]
    checked = _check_instructions(instructions, irreps_in, irreps_out)

    def coefficient(i_in, i_out, path_weight):
        siblings = [c for c in checked if c[1] == i_out]
        if path_normalization == "none":
            return math.sqrt(path_weight)
        if path_normalization == "element":
            x = sum(irreps_in[c[0]].mul for c in siblings)
        else:
            x = irreps_in[i_in].mul * len(siblings)
        x *= f_in if f_in is not None else 1
        return math.sqrt(path_weight) * (1.0 if x == 0 else x) ** -0.5

    out = [LinearInstruction(i_in, i_out, (irreps_in[i_in].mul, irreps_out[i_out].mul),
                             coefficient(i_in, i_out, pw))
           for i_in, i_out, pw in checked]

    if isinstance(biases, bool):
        biases = [biases and ir.is_scalar() for _, ir in irreps_out]
    biases = [bool(b) for b in biases]
    if len(biases) != len(irreps_out):
        raise ValueError(f"biases has {len(biases)} entries but irreps_out {irreps_out} has "
                         f"{len(irreps_out)} blocks")
    for b, (mul, ir) in zip(biases, irreps_out):
        if b and not ir.is_scalar():
            raise ValueError(f"only 0e blocks can have a bias, not {mul}x{ir}: a bias of "
                             "any other irrep would break equivariance")
    return out + [LinearInstruction(-1, i_out, (irreps_out[i_out].dim,), 1.0)
                  for i_out, b in enumerate(biases) if b]


def weighted_instructions(instructions: Sequence[LinearInstruction]
                          ) -> Iterator[Tuple[LinearInstruction, int]]:
    """``(instruction, flat weight offset)`` of every weighted instruction (not the biases).

    >>> compiled = linear_instructions(Irreps("2x0e + 1o"), Irreps("3x0e + 1o"), None, True,
    ...                                "none", None)
    >>> [offset for _, offset in weighted_instructions(compiled)]
    [0, 6]
    """
    offset = 0
    for ins in instructions:
        if ins.i_in >= 0:
            yield ins, offset
            offset += math.prod(ins.path_shape)


def group_by_irrep(instructions: Sequence[LinearInstruction], irreps_in: Irreps,
                   irreps_out: Irreps) -> Tuple[Tuple[_Group, ...], Tuple[int, ...]]:
    """The block matrix of each irrep, and the sizes of the segments to split the input into.

    Instructions with no weights (a zero multiplicity) are left out.
    """
    by_irrep = {}
    for ins, offset in weighted_instructions(instructions):
        if 0 in ins.path_shape:
            continue
        by_irrep.setdefault(irreps_in[ins.i_in].ir, []).append((ins, offset))
    owner = {ins.i_in: k for k, members in enumerate(by_irrep.values()) for ins, _ in members}
    # split the input once (its backward is one cat), merging neighbouring blocks
    # of one group into one segment so that they need no concatenation
    segments = []  # [size, group, mul]
    for i, (mul, ir) in enumerate(irreps_in):
        k = owner.get(i)
        if segments and k is not None and segments[-1][1] == k:
            segments[-1][0] += mul * ir.dim
            segments[-1][2] += mul
        else:
            segments.append([mul * ir.dim, k, mul])
    segment_sizes = tuple(size for size, _, _ in segments)
    groups = []
    for k, (ir, members) in enumerate(by_irrep.items()):
        rows = sorted({ins.i_in for ins, _ in members})
        cols = sorted({ins.i_out for ins, _ in members})
        entries = tuple((rows.index(ins.i_in), cols.index(ins.i_out), offset, ins.path_weight)
                        for ins, offset in members)
        groups.append(_Group(ir.dim, tuple((i, irreps_in[i].mul) for i in rows),
                             tuple((j, mul) for j, (_, g, mul) in enumerate(segments)
                                   if g == k),
                             tuple((o, irreps_out[o].mul) for o in cols), entries))
    return tuple(groups), segment_sizes
