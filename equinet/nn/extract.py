r"""Pick blocks out of an irreps layout into one or several new layouts.

Output :math:`k` is the concatenation of the input blocks listed in
``instructions[k]``: for ``instructions = [(2, 0)]`` it is block 2 followed
by block 0. A selection is a permutation matrix between equal irreps, so it
is trivially equivariant.
"""
from typing import Sequence, Tuple

import torch

from ..o3 import Irrep, Irreps
from ._irrep_index import block_ranges, check_last_dim

__all__ = ["Extract", "ExtractIr"]


class Extract(torch.nn.Module):
    r"""Extract subsets of the blocks of ``irreps_in`` (e3nn's ``nn.Extract``).

    Parameters
    ----------
    irreps_in : Irreps or str
    irreps_outs : sequence of Irreps or str
        The layout of each output.
    instructions : sequence of tuple of int
        For each output, the index of the input block that fills each of its
        blocks; ``irreps_outs[k][j]`` must equal ``irreps_in[instructions[k][j]]``.
    squeeze_out : bool
        Return a tensor instead of a 1-tuple when there is a single output.

    Examples
    --------
    >>> c = Extract("1e + 0e + 0e", ["0e", "0e"], [(1,), (2,)])
    >>> c(torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0]))
    (tensor([1.]), tensor([2.]))
    """

    def __init__(self, irreps_in, irreps_outs: Sequence, instructions: Sequence[Sequence[int]],
                 squeeze_out: bool = False) -> None:
        super().__init__()
        self.irreps_in = Irreps(irreps_in)
        if isinstance(irreps_outs, (str, Irreps)):
            raise TypeError("irreps_outs must be a list of irreps (one per output), got "
                            f"{irreps_outs!r}; wrap it in a list")
        self.irreps_outs = tuple(Irreps(irreps) for irreps in irreps_outs)
        self.instructions = [tuple(ins) for ins in instructions]
        if len(self.irreps_outs) != len(self.instructions):
            raise ValueError(f"got {len(self.irreps_outs)} outputs but {len(self.instructions)} "
                             "instructions: give one tuple of block indices per output")
        ranges = block_ranges(self.irreps_in)
        self._plans = []
        for k, (irreps_out, ins) in enumerate(zip(self.irreps_outs, self.instructions)):
            if len(irreps_out) != len(ins):
                raise ValueError(f"output {k} has {len(irreps_out)} blocks ({irreps_out}) but its "
                                 f"instruction {ins} lists {len(ins)} input blocks")
            plan = []
            for j, i_in in enumerate(ins):
                if isinstance(i_in, bool) or not isinstance(i_in, int) or \
                        not 0 <= i_in < len(self.irreps_in):
                    raise ValueError(f"instruction {ins} of output {k}: {i_in!r} is not a block "
                                     f"index of irreps_in = {self.irreps_in}")
                if irreps_out[j] != self.irreps_in[i_in]:
                    raise ValueError(f"output {k}, block {j} is {irreps_out[j]} but input block "
                                     f"{i_in} is {self.irreps_in[i_in]}")
                start, length = ranges[i_in]
                if plan and plan[-1][0] + plan[-1][1] == start:  # contiguous: one slice
                    plan[-1] = (plan[-1][0], plan[-1][1] + length)
                else:
                    plan.append((start, length))
            self._plans.append(tuple(plan))
        self.squeeze_out = bool(squeeze_out)

    def forward(self, x: torch.Tensor):
        """Return the tuple of outputs ``[..., irreps_outs[k].dim]`` (or the only one)."""
        check_last_dim(x, self.irreps_in)
        outs: Tuple[torch.Tensor, ...] = tuple(self._gather(x, plan) for plan in self._plans)
        if self.squeeze_out and len(outs) == 1:
            return outs[0]
        return outs

    @staticmethod
    def _gather(x: torch.Tensor, plan) -> torch.Tensor:
        if not plan:
            return x.new_zeros(x.shape[:-1] + (0,))
        pieces = [x.narrow(-1, start, length) for start, length in plan]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in} -> "
                f"{', '.join(str(i) for i in self.irreps_outs)})")


class ExtractIr(Extract):
    r"""The blocks of ``irreps_in`` that are the irrep ``ir``, as one tensor.

    Examples
    --------
    >>> e = ExtractIr("2x0e + 1o + 3x0e", "0e")
    >>> e.irreps_out
    2x0e+3x0e
    >>> e(torch.arange(8.0)).tolist()
    [0.0, 1.0, 5.0, 6.0, 7.0]
    """

    def __init__(self, irreps_in, ir) -> None:
        ir = Irrep(ir)
        irreps_in = Irreps(irreps_in)
        blocks = [i for i, mul_ir in enumerate(irreps_in) if mul_ir.ir == ir]
        irreps_out = Irreps([irreps_in[i] for i in blocks])
        super().__init__(irreps_in, [irreps_out], [tuple(blocks)], squeeze_out=True)
        self.irreps_out = irreps_out
