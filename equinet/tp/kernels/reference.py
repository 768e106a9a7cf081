r"""The reference backend: one einsum per path, the readable definition.

Slow on purpose; every other backend is tested against it. Gradients of any
order come from autograd through the einsums.
"""
import functools

import torch

from ..descriptor import MODES, TensorProductDescriptor

__all__ = ["tensor_product"]


@functools.lru_cache(maxsize=None)
def _pairs(mul: int) -> torch.Tensor:
    """The channel pairs ``u < v`` in e3nn's order (row-major upper triangle)."""
    return torch.triu_indices(mul, mul, 1)


def _einsum_formula(mode: str, weighted: bool, batched_weight: bool) -> str:
    w, a, b, out = MODES[mode]
    if "p" in w:  # the pair modes gather both inputs onto the pair index first
        a = b = "p"
    operands = [f"z{a}i", f"z{b}j", "ijk"]
    if weighted:
        operands.append(("z" if batched_weight else "") + w)
    else:  # unweighted "uuw": the single output channel w is the sum over u
        out = "".join(c for c in out if c in a + b)
    return ",".join(operands) + f"->z{out}k"


def _einsum(formula: str, operands) -> torch.Tensor:
    if not torch.compiler.is_compiling():
        return torch.einsum(formula, *operands)
    # Traced (torch.compile, torch.export): opt_einsum would choose the contraction order
    # from the example's sizes and so pin the number of samples, which must stay symbolic
    # (a molecular-dynamics step changes it). Two-operand einsums consult no path optimiser:
    # contract x1 with the coupling first (the smallest intermediate), then x2, the weights.
    inputs, output = formula.split("->")
    terms = inputs.split(",")
    order = [0, 2, 1] + list(range(3, len(terms)))
    result, indices = operands[0], terms[0]
    for position, k in enumerate(order[1:], start=1):
        later = "".join(terms[j] for j in order[position + 1:]) + output
        kept = "".join(dict.fromkeys(c for c in indices + terms[k] if c in later))
        result = torch.einsum(f"{indices},{terms[k]}->{kept}", result, operands[k])
        indices = kept
    return torch.einsum(f"{indices}->{output}", result)


def tensor_product(desc: TensorProductDescriptor, x1: torch.Tensor, x2: torch.Tensor,
                   weight: torch.Tensor) -> torch.Tensor:
    r"""Evaluate the descriptor's paths one by one.

    Parameters
    ----------
    desc : TensorProductDescriptor
    x1, x2 : torch.Tensor
        ``[Z, dim_in1]`` and ``[Z, dim_in2]``.
    weight : torch.Tensor
        ``[weight_numel]`` (shared) or ``[Z, weight_numel]`` (one set per sample).

    Returns
    -------
    torch.Tensor
        ``[Z, dim_out]``: :math:`\sum_p c_p\, \mathrm{einsum}(x_1, x_2, C_p, w_p)`.
    """
    z = x1.shape[0]
    batched_weight = weight.dim() == 2
    blocks = {}
    for p in desc.paths:
        d1, d2, d3 = p.dims
        a = x1[:, p.in1[0]:p.in1[1]].reshape(z, p.mul1, d1)
        b = x2[:, p.in2[0]:p.in2[1]].reshape(z, p.mul2, d2)
        if p.mode in ("uvu<v", "u<vw"):
            iu, iv = _pairs(p.mul1).to(x1.device)
            a, b = a[:, iu], b[:, iv]
        operands = [a, b, p.cg_dense(dtype=x1.dtype, device=x1.device)]
        if p.weight is not None:
            w = weight[..., p.weight[0]:p.weight[1]]
            operands.append(w.reshape(((z,) if batched_weight else ()) + p.weight_shape))
        formula = _einsum_formula(p.mode, p.weight is not None, batched_weight)
        block = p.coefficient * _einsum(formula, operands).reshape(z, p.mul_out * d3)
        blocks[p.out] = blocks[p.out] + block if p.out in blocks else block
    pieces, position = [], 0
    for start, stop in sorted(blocks):
        if start > position:
            pieces.append(x1.new_zeros(z, start - position))
        pieces.append(blocks[(start, stop)])
        position = stop
    if position < desc.dim_out or not pieces:
        pieces.append(x1.new_zeros(z, desc.dim_out - position))
    return torch.cat(pieces, dim=1)
