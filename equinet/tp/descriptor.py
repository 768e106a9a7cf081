r"""Compile irreps and instructions into the descriptor every backend executes.

A tensor product is a sum of *paths*. Path :math:`p` couples the block
``i_in1`` of the first input (multiplicity :math:`U`, degree :math:`l_1`) with
the block ``i_in2`` of the second (:math:`V`, :math:`l_2`) into the block
``i_out`` of the output (:math:`W`, :math:`l_3`):

.. math::

    z_{w k} \mathrel{+}= c_p \sum_{u v i j} w_{uvw}\, C_{ijk}\, x_{u i}\, y_{v j}

where :math:`C = \mathrm{wigner\_3j}(l_1, l_2, l_3)`, :math:`c_p` the path
coefficient fixed by the normalizations, and the channel pattern (``mode``)
says which of :math:`u, v, w` are tied together and which the weight carries
(see :data:`MODES`). A backend receives only the :class:`TensorProductDescriptor`:
dimensions and paths with their slices, weight slices, coefficients and the
sparse nonzeros of :math:`C`; it never sees irreps.
"""
import functools
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple

import torch

from ..o3 import Irreps, wigner_3j
from ..o3.irrep import as_int

__all__ = ["MODES", "Instruction", "Path", "TensorProductDescriptor", "build_descriptor",
           "path_shape"]

#: The channel patterns of e3nn. For each mode: the channel letters of the
#: weight, of input 1, input 2 and the output. ``p`` stands for a pair
#: ``u < v`` of channels of two inputs of equal multiplicity.
MODES = {
    "uvw": ("uvw", "u", "v", "w"),
    "uvu": ("uv", "u", "v", "u"),
    "uvv": ("uv", "u", "v", "v"),
    "uuw": ("uw", "u", "u", "w"),
    "uuu": ("u", "u", "u", "u"),
    "uvuv": ("uv", "u", "v", "uv"),
    "uvu<v": ("p", "u", "v", "p"),
    "u<vw": ("pw", "u", "v", "w"),
}


class Instruction(NamedTuple):
    """One e3nn instruction, normalised: ``path_weight`` is the final path coefficient.

    A named tuple, as e3nn's, so that code unpacking e3nn instructions works unchanged.
    """

    i_in1: int
    i_in2: int
    i_out: int
    connection_mode: str
    has_weight: bool
    path_weight: float
    path_shape: Tuple[int, ...]


@dataclass(frozen=True)
class Path:
    """One path of a tensor product, as a backend sees it.

    Slices are ``(start, stop)`` into the flat last dimension of input 1, input
    2, output and weight (``weight`` is None for a path without weights).
    ``cg_indices`` are the ``(i, j, k)`` of the nonzero entries of
    :math:`C_{ijk}` and ``cg_values`` those entries (float64).
    """

    mode: str
    mul1: int
    mul2: int
    mul_out: int
    l1: int
    l2: int
    l_out: int
    in1: Tuple[int, int]
    in2: Tuple[int, int]
    out: Tuple[int, int]
    weight: Optional[Tuple[int, int]]
    weight_shape: Tuple[int, ...]
    coefficient: float
    cg_indices: Tuple[Tuple[int, int, int], ...]
    cg_values: Tuple[float, ...]

    @property
    def dims(self) -> Tuple[int, int, int]:
        """The irrep dimensions ``(2 l1 + 1, 2 l2 + 1, 2 l_out + 1)``."""
        return 2 * self.l1 + 1, 2 * self.l2 + 1, 2 * self.l_out + 1

    def cg_dense(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """The coupling tensor :math:`C` as a dense ``(d1, d2, d3)`` tensor."""
        c = torch.zeros(self.dims, dtype=dtype, device=device)
        if self.cg_indices:
            idx = torch.tensor(self.cg_indices, device=device).T
            c[idx[0], idx[1], idx[2]] = torch.tensor(self.cg_values, dtype=dtype, device=device)
        return c


@dataclass(frozen=True)
class TensorProductDescriptor:
    """Everything a backend needs: flat dimensions, weight size, and the paths.

    Frozen and hashable, so that backends can cache per-descriptor constants.
    Paths whose data would be empty (a multiplicity of zero) are left out.
    """

    dim_in1: int
    dim_in2: int
    dim_out: int
    weight_numel: int
    paths: Tuple[Path, ...]

    @functools.cached_property
    def output_covered(self) -> Tuple[bool, ...]:
        """For each output component, whether some path writes to it."""
        covered = [False] * self.dim_out
        for p in self.paths:
            for i in range(*p.out):
                covered[i] = True
        return tuple(covered)


def path_shape(mode: str, mul1: int, mul2: int, mul_out: int) -> Tuple[int, ...]:
    """The shape of one path's weights, as e3nn lays them out."""
    pairs = mul1 * (mul2 - 1) // 2
    return {
        "uvw": (mul1, mul2, mul_out),
        "uvu": (mul1, mul2),
        "uvv": (mul1, mul2),
        "uuw": (mul1, mul_out),
        "uuu": (mul1,),
        "uvuv": (mul1, mul2),
        "uvu<v": (pairs,),
        "u<vw": (pairs, mul_out),
    }[mode]


def _num_elements(mode: str, mul1: int, mul2: int) -> int:
    """How many (u, v) channel pairs feed one output channel: the fan-in of the path."""
    return {
        "uvw": mul1 * mul2,
        "uvu": mul2,
        "uvv": mul1,
        "uuw": mul1,
        "uuu": 1,
        "uvuv": 1,
        "uvu<v": 1,
        "u<vw": mul1 * (mul2 - 1) // 2,
    }[mode]


def _variances(var, irreps: Irreps, name: str) -> Tuple[float, ...]:
    if var is None:
        return (1.0,) * len(irreps)
    var = [float(v) for v in var]
    if len(var) != len(irreps):
        raise ValueError(f"{name} has {len(var)} entries but the irreps {irreps} have "
                         f"{len(irreps)}")
    for k, v in enumerate(var):  # a variance: finite and >= 0 (else sqrt fails or NaNs spread)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}[{k}] = {v!r}: variances must be finite and >= 0")
    return tuple(var)


def _check_instruction(k: int, ins: Sequence, irreps_in1: Irreps, irreps_in2: Irreps,
                       irreps_out: Irreps) -> tuple:
    if len(ins) not in (5, 6):
        raise ValueError(f"instruction {k} {tuple(ins)!r} must be (i_in1, i_in2, i_out, mode, "
                         "has_weight[, path_weight])")
    i1, i2, io, mode, has_weight = ins[:5]
    path_weight = float(ins[5]) if len(ins) == 6 else 1.0
    if not (math.isfinite(path_weight) and path_weight >= 0):  # it is square-rooted
        raise ValueError(f"instruction {k} {tuple(ins)!r}: path_weight = {path_weight!r} must be "
                         "finite and >= 0")
    indices = []
    for name, i, irreps in (("i_in1", i1, irreps_in1), ("i_in2", i2, irreps_in2),
                            ("i_out", io, irreps_out)):
        index = as_int(i)  # numpy/torch integers (e.g. from np.argsort) count as ints
        if index is None or not 0 <= index < len(irreps):
            raise ValueError(f"instruction {k} {tuple(ins)!r}: {name}={i!r} is out of range for "
                             f"irreps {irreps} ({len(irreps)} entries)")
        indices.append(index)
    i1, i2, io = indices
    if mode not in MODES:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: unknown connection mode {mode!r}; "
                         f"expected one of {sorted(MODES)}")
    (mul1, ir1), (mul2, ir2), (mul_out, ir_out) = irreps_in1[i1], irreps_in2[i2], irreps_out[io]
    if ir1.p * ir2.p != ir_out.p:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: {ir1} x {ir2} cannot give {ir_out} "
                         "(parity is not conserved)")
    if not abs(ir1.l - ir2.l) <= ir_out.l <= ir1.l + ir2.l:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: {ir1} x {ir2} cannot give {ir_out} "
                         f"(l must lie in [{abs(ir1.l - ir2.l)}, {ir1.l + ir2.l}])")
    expected_out = {"uvu": mul1, "uvv": mul2, "uuu": mul1, "uvuv": mul1 * mul2,
                    "uvu<v": mul1 * (mul2 - 1) // 2}.get(mode)
    if mode in ("uuw", "uuu", "uvu<v", "u<vw") and mul1 != mul2:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: mode {mode!r} needs equal input "
                         f"multiplicities, got {mul1} and {mul2}")
    if expected_out is not None and mul_out != expected_out:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: mode {mode!r} needs an output "
                         f"multiplicity of {expected_out}, got {mul_out}")
    if mode in ("uvw", "u<vw") and not has_weight:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: mode {mode!r} needs weights")
    if mode == "uuw" and not has_weight and mul_out != 1:
        raise ValueError(f"instruction {k} {tuple(ins)!r}: mode 'uuw' without weights sums over "
                         f"u into one channel; the output multiplicity must be 1, got {mul_out}")
    return i1, i2, io, mode, bool(has_weight), path_weight


def build_descriptor(
    irreps_in1,
    irreps_in2,
    irreps_out,
    instructions: Sequence[Sequence],
    in1_var=None,
    in2_var=None,
    out_var=None,
    irrep_normalization: str = "component",
    path_normalization: str = "element",
) -> Tuple[TensorProductDescriptor, Tuple[Instruction, ...]]:
    r"""Validate e3nn-style instructions and compile them into a descriptor.

    The path coefficient is e3nn's :math:`c_p = \sqrt{\alpha_p}` with
    :math:`\alpha_p = n_\text{irrep} \cdot \sigma^2_\text{out} \cdot
    \text{path\_weight} / n_\text{path}`, where :math:`n_\text{irrep}` is
    :math:`2l_3+1` (``component``), :math:`(2l_1+1)(2l_2+1)` (``norm``) or 1,
    and :math:`n_\text{path}` is the fan-in of the output block summed over the
    paths into it (``element``), the fan-in of this path times the number of
    paths into the block (``path``), or 1 (``none``), each fan-in weighted by
    the input variances.

    Returns
    -------
    descriptor : TensorProductDescriptor
    instructions : tuple of Instruction
        The instructions with ``path_weight`` replaced by :math:`c_p`, as e3nn
        stores them.

    Examples
    --------
    >>> d, ins = build_descriptor("2x1o", "1o", "2x0e + 2x1e", [(0, 0, 0, "uvu", True),
    ...                                                       (0, 0, 1, "uvu", True)])
    >>> d.dim_in1, d.dim_in2, d.dim_out, d.weight_numel, len(d.paths)
    (6, 3, 8, 4, 2)
    >>> round(ins[0].path_weight, 6)  # sqrt(1 / 1): one path, fan-in 1, into a scalar
    1.0
    """
    irreps_in1, irreps_in2, irreps_out = Irreps(irreps_in1), Irreps(irreps_in2), Irreps(irreps_out)
    if irrep_normalization not in ("component", "norm", "none"):
        raise ValueError(f"irrep_normalization must be 'component', 'norm' or 'none', "
                         f"got {irrep_normalization!r}")
    if path_normalization not in ("element", "path", "none"):
        raise ValueError(f"path_normalization must be 'element', 'path' or 'none', "
                         f"got {path_normalization!r}")
    in1_var = _variances(in1_var, irreps_in1, "in1_var")
    in2_var = _variances(in2_var, irreps_in2, "in2_var")
    out_var = _variances(out_var, irreps_out, "out_var")
    checked = [_check_instruction(k, ins, irreps_in1, irreps_in2, irreps_out)
               for k, ins in enumerate(instructions)]

    def fan_in(i1, i2, mode):
        return in1_var[i1] * in2_var[i2] * _num_elements(mode, irreps_in1[i1].mul,
                                                         irreps_in2[i2].mul)

    s1, s2, so = irreps_in1.slices(), irreps_in2.slices(), irreps_out.slices()
    normalized, paths, weight_start = [], [], 0
    for i1, i2, io, mode, has_weight, path_weight in checked:
        (mul1, ir1), (mul2, ir2), (mul_out, ir_out) = irreps_in1[i1], irreps_in2[i2], irreps_out[io]
        alpha = {"component": ir_out.dim, "norm": ir1.dim * ir2.dim, "none": 1}[irrep_normalization]
        siblings = [c for c in checked if c[2] == io]
        if path_normalization == "element":
            x = sum(fan_in(c[0], c[1], c[3]) for c in siblings)
        elif path_normalization == "path":
            x = fan_in(i1, i2, mode) * len(siblings)
        else:
            x = 1.0
        if x > 0:
            alpha /= x
        alpha *= out_var[io] * path_weight
        coefficient = math.sqrt(alpha)
        shape = path_shape(mode, mul1, mul2, mul_out)
        numel = math.prod(shape) if has_weight else 0
        normalized.append(Instruction(i1, i2, io, mode, has_weight, coefficient, shape))
        weight = (weight_start, weight_start + numel) if has_weight else None
        weight_start += numel
        if min(mul1, mul2, mul_out) == 0:
            continue
        indices, values = _cg_nonzeros(ir1.l, ir2.l, ir_out.l)
        paths.append(Path(mode, mul1, mul2, mul_out, ir1.l, ir2.l, ir_out.l,
                          (s1[i1].start, s1[i1].stop), (s2[i2].start, s2[i2].stop),
                          (so[io].start, so[io].stop), weight, shape, coefficient,
                          indices, values))
    descriptor = TensorProductDescriptor(irreps_in1.dim, irreps_in2.dim, irreps_out.dim,
                                         weight_start, tuple(paths))
    return descriptor, tuple(normalized)


@functools.lru_cache(maxsize=None)
def _cg_nonzeros(l1: int, l2: int, l3: int):
    c = wigner_3j(l1, l2, l3, dtype=torch.float64, device="cpu")
    # exact zeros of the exactly computed symbol; rounding residue would be ~1e-17
    nz = (c.abs() > 1e-13).nonzero()
    indices = tuple(tuple(int(v) for v in row) for row in nz.tolist())
    values = tuple(float(c[i, j, k]) for i, j, k in indices)
    return indices, values
