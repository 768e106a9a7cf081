r"""Compile a descriptor into the index tensors the ``torch`` backend executes.

Inside the backend a block of multiplicity :math:`Q` and degree :math:`l` is held
as :math:`2l+1` *rows* of :math:`Q` channels, ``[batch, rows, Q]`` (the
``ir_mul`` order: the channel index innermost and contiguous). The paths are
grouped into *segments* (paths with one channel structure) and every segment
is split into two factors, each evaluated for all its paths at once:

* the **core**, weight-free and diagonal in the channel pairs :math:`q = (u, v)`
  that the modes use:
  :math:`T_{z, r_3, q} = \sum_n c_n\, A_{z, r_1(n), u(q)}\, B_{z, r_2(n), v(q)}`
  over the nonzeros :math:`n = (r_1, r_2, r_3, c_n)` of the coupling tensors;
* the **channel map**, which applies the weights: elementwise in :math:`q`
  (modes ``uvu uvv uuu uvuv uvu<v``, with a sum over the unused channel for
  ``uvu``/``uvv``), or one matrix product per output block (``uvw uuw u<vw``).

The core takes one of four forms, chosen at plan time:

* ``bmm`` (second input with one channel, e.g. spherical harmonics): the second
  input is first contracted with the nonzeros into a per-sample matrix
  :math:`M_{z, r_3, r_1} = \sum_n c_n\, x_{2, z, j(n)}` (``x2 @ coupling``), then
  :math:`T = M A` is one batched matrix product over all paths;
* ``diag`` (second input of degree 0 only, e.g. a Linear written as a product):
  each row of :math:`T` is one row of :math:`A` times a per-sample factor;
* ``pairs`` (the others, when it pays): the products of the distinct row pairs
  :math:`(r_1, r_2)` are formed once and mixed by one matrix product with
  ``pair_coupling`` ``[R3, pairs]``;
* ``nnz`` (the rest): gather the rows of each nonzero, multiply, add rows.

``coupling`` and ``pair_coupling`` are the coupling nonzeros scattered into small
matrices (``dim_in2 x R3 R1`` and ``R3 x pairs``), used where one small matrix
product beats the sparse scatter it replaces; paths are only a plan-time notion.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch

from ..descriptor import TensorProductDescriptor
from .torch_assembly import Assembly

__all__ = ["ElemGroup", "MixBlock", "Plan", "Segment", "build_plan"]

_LONG = torch.long


@dataclass
class ElemGroup:
    """Rows of ``T`` whose weights act elementwise on the channel pairs.

    ``reduce`` is ``""`` (output channel = pair), ``"v"`` (``uvu``: sum over v)
    or ``"u"`` (``uvv``: sum over u), leaving ``wd`` output channels.
    ``out_idx[row, w]`` is the output column of each result; ``w_idx[row, q]``
    the weight column of each row and pair (``None`` when unweighted),
    ``row_path`` the group-local path of each row and ``path_w_idx[path, q]``
    the weight columns of each path (for the weight gradient).
    """

    rows: Tuple[int, int]
    reduce: str
    wd: int
    out_idx: torch.Tensor
    w_idx: Optional[torch.Tensor]
    row_path: Optional[torch.Tensor]
    path_w_idx: Optional[torch.Tensor]


@dataclass
class MixBlock:
    """Rows of ``T`` feeding one output block through a matrix of weights.

    The rows are ordered ``(k, path)``, so that for each sample the block is a
    ``[d3, paths * Q]`` matrix multiplied by ``W[paths * Q, wd]``. ``w_idx``
    holds the weight column of each entry of ``W`` (``weight_numel`` stands for
    a constant one, used by unweighted paths); ``None`` when all are ones.
    """

    rows: Tuple[int, int]
    d3: int
    pq: int
    wd: int
    out_start: int
    w_idx: Optional[torch.Tensor]


@dataclass
class Segment:
    """Paths sharing one channel structure, executed together."""

    core: str  # "bmm", "diag" (second input has one channel); "pairs", "nnz" (the others)
    U: int
    V: int
    Q: int
    R1: int
    R2: int
    R3: int
    a_idx: torch.Tensor          # [R1 * U] input-1 column of (row, u)
    b_idx: torch.Tensor          # [R2 * V] input-2 column of (row, v)
    u_q: Optional[torch.Tensor]  # [Q] channel of input 1 for pair q (None: q = u)
    v_q: Optional[torch.Tensor]  # [Q] channel of input 2 for pair q (None: q = v)
    n_r1: torch.Tensor           # nonzeros: row of input 1, input 2, T; value
    n_r2: torch.Tensor
    n_r3: torch.Tensor
    n_c: torch.Tensor
    coupling: Optional[torch.Tensor]  # bmm core: [dim_in2, R3 * R1], see build_plan
    n_col2: Optional[torch.Tensor]    # diag core: input-2 column of each nonzero
    r1_identity: bool                 # diag core: row r of T comes from row r of input 1
    pair_r1: Optional[torch.Tensor]   # pairs core: the distinct (row 1, row 2) of the nonzeros
    pair_r2: Optional[torch.Tensor]
    pair_coupling: Optional[torch.Tensor]  # pairs core: [R3, pairs]
    dim_in2: int
    elems: List[ElemGroup] = field(default_factory=list)
    mixes: List[MixBlock] = field(default_factory=list)

    @property
    def per_sample_size(self) -> int:
        """Elements per sample of the largest temporary (sets the chunk size)."""
        if self.core == "bmm":
            return max(self.R3 * (self.Q + self.R1), self.R1 * self.U)
        if self.core == "diag":
            return 2 * self.R3 * self.Q
        if self.core == "pairs":
            return (3 * len(self.pair_r1) + 2 * self.R3) * self.Q
        return 2 * len(self.n_c) * self.Q + self.R3 * self.Q


@dataclass
class Plan:
    """The compiled descriptor: segments plus how their pieces assemble."""

    dim_in1: int
    dim_in2: int
    dim_out: int
    weight_numel: int
    segments: List[Segment]
    out_asm: Assembly
    x1_asm: Assembly
    x2_asm: Assembly
    w_asm: Assembly
    needs_one: bool  # some weight matrix mixes weighted and unweighted paths
    per_sample: int  # elements per sample of a typical segment's temporaries (sets the chunk)

    def to(self, device, dtype) -> "Plan":
        def move(x):
            if x is None:
                return None
            return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)

        segments = []
        for s in self.segments:
            t = Segment(**{k: move(v) if isinstance(v, torch.Tensor) else v
                           for k, v in s.__dict__.items() if k not in ("elems", "mixes")})
            t.elems = [ElemGroup(e.rows, e.reduce, e.wd, move(e.out_idx), move(e.w_idx),
                                 move(e.row_path), move(e.path_w_idx)) for e in s.elems]
            t.mixes = [MixBlock(m.rows, m.d3, m.pq, m.wd, m.out_start, move(m.w_idx))
                       for m in s.mixes]
            segments.append(t)
        return Plan(self.dim_in1, self.dim_in2, self.dim_out, self.weight_numel, segments,
                    self.out_asm.to(device), self.x1_asm.to(device), self.x2_asm.to(device),
                    self.w_asm.to(device), self.needs_one, self.per_sample)


# -- channel structure of each mode ----------------------------------------------------------

def _structure(path) -> Tuple[str, str, int, int]:
    """(core, pair structure, U, V) of a path; equal tuples share a segment."""
    u, v = path.mul1, path.mul2
    mode = path.mode
    if mode in ("uuu", "uuw") and u == 1:
        mode = {"uuu": "uvu", "uuw": "uvw"}[mode]  # one channel: tied and free agree
    if v == 1 and mode in ("uvu", "uvw", "uvv", "uvuv"):
        return "bmm", "uv", u, 1
    pairs = {"uvw": "uv", "uvu": "uv", "uvv": "uv", "uvuv": "uv", "uuw": "uu", "uuu": "uu",
             "uvu<v": "pair", "u<vw": "pair"}[mode]
    return "nnz", pairs, u, v


def _pairs(structure: str, U: int, V: int):
    """Channels (u_q, v_q) of the pairs q, or None where q is the channel itself."""
    if structure == "uv":
        if V == 1:
            return None, torch.zeros(U, dtype=_LONG)
        u_q = torch.arange(U).repeat_interleave(V)
        v_q = torch.arange(V).repeat(U)
        return u_q, v_q
    if structure == "uu":
        return None, None
    iu, iv = torch.triu_indices(U, U, 1)
    return iu, iv


def _channel_map(path, Q: int, U: int, V: int):
    """('elem', reduce, wd) or ('mix', wd) for the channel map of a path."""
    mode = path.mode
    if mode in ("uvw", "uuw", "u<vw"):
        return "mix", "", path.mul_out
    if mode == "uvv":
        return ("mix", "", 1) if V == 1 else ("elem", "u", V)
    if mode == "uvu" and V > 1:
        return "elem", "v", U
    return "elem", "", Q


def build_plan(desc: TensorProductDescriptor) -> Plan:
    """Group the descriptor's paths into segments and build all index tensors (on CPU).

    Examples
    --------
    >>> from equinet.tp import build_descriptor
    >>> d, _ = build_descriptor("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o + 4x1e",
    ...                         [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
    ...                          (0, 1, 1, "uvu", True), (1, 1, 2, "uvu", True)])
    >>> [(s.core, s.R1, s.R3, s.Q) for s in build_plan(d).segments]  # rows of x1, T; channels
    [('bmm', 4, 8, 4)]
    """
    groups = {}
    for path in desc.paths:
        if path.mode in ("uvu<v", "u<vw") and path.mul1 < 2:
            continue  # no channel pair u < v: the path contributes nothing
        groups.setdefault(_structure(path), []).append(path)
    segments = []
    for key, paths in groups.items():
        seg = _build_segment(key, paths, desc.weight_numel, desc.dim_in2)
        blocks = {}
        for p in paths:
            blocks.setdefault((p.in1, p.in2), []).append(p)
        if seg.core == "nnz" and len(blocks) > 1 and len(seg.n_c) > NNZ_PER_BLOCK * len(blocks):
            # large sparse products (full products of high degree): one segment per pair of
            # input blocks, each a dense ``pairs`` product, beats gathers over all nonzeros
            # (measured 4x at degree 8); smaller blocks do not pay for their Python calls
            segments.extend(_build_segment(key, b, desc.weight_numel, desc.dim_in2)
                            for b in blocks.values())
        else:
            segments.append(seg)

    out_cols, x1_cols, x2_cols, w_cols = [], [], [], []
    for s in segments:
        x1_cols.append(s.a_idx)
        x2_cols.append(s.b_idx if s.core in ("nnz", "pairs") else torch.arange(desc.dim_in2))
        for e in s.elems:
            out_cols.append(e.out_idx.flatten())
            if e.path_w_idx is not None:
                w_cols.append(e.path_w_idx.flatten())
        for m in s.mixes:
            out_cols.append(torch.arange(m.out_start, m.out_start + m.wd * m.d3))
            if m.w_idx is not None:
                w_cols.append(m.w_idx.flatten())
    return Plan(desc.dim_in1, desc.dim_in2, desc.dim_out, desc.weight_numel, segments,
                Assembly(out_cols, desc.dim_out), Assembly(x1_cols, desc.dim_in1),
                Assembly(x2_cols, desc.dim_in2), Assembly(w_cols, desc.weight_numel),
                any(m.w_idx is not None and bool((m.w_idx == desc.weight_numel).any())
                    for s in segments for m in s.mixes),
                _typical_size([s.per_sample_size for s in segments]))


def _typical_size(sizes: List[int]) -> int:
    """Per-sample temporaries that set the chunk: the median segment's (at least 1).

    Segments with larger temporaries run the chunk in sub-chunks of their own
    (`~equinet.tp.kernels.torch_chunks.segment_rows`), so that one large segment does
    not shrink the chunks of many small ones: each chunk costs every segment a few
    Python calls.
    """
    return max(1, sorted(sizes)[len(sizes) // 2]) if sizes else 1


def _block_rows(blocks, mul: int):
    """First row of each distinct block ``(slice, dim)``; flat column of each (row, channel)."""
    starts, cols = {}, []
    for sl, d in blocks:
        if sl not in starts:
            starts[sl] = len(cols) // mul
            for i in range(d):
                cols.extend(sl[0] + c * d + i for c in range(mul))
    return starts, torch.tensor(cols, dtype=_LONG)


#: Largest ratio of the ``bmm`` core's multiply-adds per sample (dense ``x2 @ coupling``
#: and the batched product) to the nonzeros times channels for which it is still used:
#: matrix products run several times faster per multiply-add than gathers and row additions.
BMM_DENSITY = 16.0
#: Average nonzeros per pair of input blocks above which a sparse segment is split by blocks
#: (full products of one channel, 2000 rows, 2 threads: L = 4 (46 per block) 4.6 ms whole
#: against 6.6 ms split; L = 6 (132 per block) 24 ms whole against 16 ms split).
NNZ_PER_BLOCK = 100
#: Largest ratio of the ``pairs`` core's multiply-adds (``R3 x pairs``) to the nonzeros for which
#: it replaces the ``nnz`` core's gathers and row additions (full product of one channel at
#: L = 16, 2000 rows, 2 threads: 1530 ms at 16, 690 ms at 24, 800 ms at 32).
PAIRS_DENSITY = 24.0


def _dense_over_sparse(dim_in2: int, R3: int, R1: int, U: int, nnz: int) -> float:
    return (dim_in2 * R3 * R1 + R3 * R1 * U) / max(1, nnz * U)


def _build_segment(key, paths, weight_numel: int, dim_in2: int) -> Segment:
    core, structure, U, V = key
    u_q, v_q = _pairs(structure, U, V)
    Q = U * V if structure == "uv" else (U if structure == "uu" else U * (U - 1) // 2)
    if core == "bmm":
        Q = U
    starts1, a_idx = _block_rows([(p.in1, p.dims[0]) for p in paths], U)
    starts2, b_idx = _block_rows([(p.in2, p.dims[1]) for p in paths], V)
    R1, R2 = len(a_idx) // U, len(b_idx) // V

    # rows of T: elementwise groups first, then one block per output slice
    kinds = [(p, _channel_map(p, Q, U, V)) for p in paths]
    elem_keys, mix_keys = [], []
    for p, (kind, reduce, wd) in kinds:
        k = (reduce, p.weight is not None) if kind == "elem" else p.out
        target = elem_keys if kind == "elem" else mix_keys
        if k not in target:
            target.append(k)
    row_of = {}  # (path index, k) -> row
    n_rows = 0
    elems, mixes = [], []
    for ek in elem_keys:
        members = [(i, p, m) for i, (p, m) in enumerate(kinds) if m[0] == "elem"
                   and (m[1], p.weight is not None) == ek]
        reduce, weighted = ek
        wd = members[0][2][2]
        start = n_rows
        out_idx, w_idx, row_path = [], [], []
        for local, (i, p, _) in enumerate(members):
            d3 = p.dims[2]
            for k in range(d3):
                row_of[(i, k)] = n_rows
                n_rows += 1
                out_idx.append([p.out[0] + w * d3 + k for w in range(wd)])
                row_path.append(local)
                if weighted:
                    w_idx.append([p.weight[0] + q for q in range(Q)])
        path_w = [[p.weight[0] + q for q in range(Q)] for _, p, _ in members] if weighted else None
        elems.append(ElemGroup(
            (start, n_rows), reduce, wd, torch.tensor(out_idx, dtype=_LONG),
            torch.tensor(w_idx, dtype=_LONG) if weighted else None,
            torch.tensor(row_path, dtype=_LONG) if weighted else None,
            torch.tensor(path_w, dtype=_LONG) if weighted else None))
    for out_slice in mix_keys:
        members = [(i, p, m) for i, (p, m) in enumerate(kinds) if m[0] == "mix"
                   and p.out == out_slice]
        d3, wd, P = members[0][1].dims[2], members[0][2][2], len(members)
        start = n_rows
        for local, (i, p, _) in enumerate(members):
            for k in range(d3):
                row_of[(i, k)] = start + k * P + local
        n_rows += d3 * P
        w_idx = torch.full((P * Q, wd), weight_numel, dtype=_LONG)
        for local, (i, p, _) in enumerate(members):
            if p.weight is not None:
                w_idx[local * Q:(local + 1) * Q] = (
                    p.weight[0] + torch.arange(Q)[:, None] * wd + torch.arange(wd))
        any_weight = any(p.weight is not None for _, p, _ in members)
        mixes.append(MixBlock((start, n_rows), d3, P * Q, wd, out_slice[0],
                              w_idx if any_weight else None))

    n_r1, n_r2, n_r3, n_c = [], [], [], []
    for i, (p, _) in enumerate(kinds):
        for (a, b, k), value in zip(p.cg_indices, p.cg_values):
            n_r1.append(starts1[p.in1] + a)
            n_r2.append(starts2[p.in2] + b)
            n_r3.append(row_of[(i, k)])
            n_c.append(value * p.coefficient)
    n_r1, n_r2, n_r3 = (torch.tensor(n, dtype=_LONG) for n in (n_r1, n_r2, n_r3))
    n_c = torch.tensor(n_c, dtype=torch.float64)
    coupling, col2, identity = None, None, False
    if core == "bmm" and len(n_r3) == n_rows and bool((n_r3.sort().values
                                                      == torch.arange(n_rows)).all()):
        # every row of T is one nonzero (second inputs of degree 0, e.g. Linear): T is input 1
        # gathered by rows and scaled per sample, no matrix product needed
        core = "diag"
        order = torch.argsort(n_r3)
        n_r1, n_r2, n_r3, n_c = n_r1[order], n_r2[order], n_r3[order], n_c[order]
        col2 = b_idx[n_r2]
        identity = len(n_r1) == R1 and bool((n_r1 == torch.arange(R1)).all())
    if core == "bmm" and _dense_over_sparse(dim_in2, n_rows, R1, U, len(n_c)) > BMM_DENSITY:
        # M is mostly zeros (many paths and few channels, e.g. a full product of high
        # degree): the per-sample matrices would cost far more than the nonzeros themselves
        core = "nnz"
    pair_r1 = pair_r2 = pair_coupling = None
    if core == "nnz":
        pairs, pair_of = torch.unique(torch.stack([n_r1, n_r2], 1), dim=0, return_inverse=True)
        # T = C P with P the products of the distinct row pairs: one matrix product, worth
        # its zeros (measured ~3x faster than per-nonzero products when 16x the nonzeros)
        if n_rows * len(pairs) <= PAIRS_DENSITY * len(n_c):
            core = "pairs"
            pair_r1, pair_r2 = pairs[:, 0].contiguous(), pairs[:, 1].contiguous()
            pair_coupling = torch.zeros(n_rows, len(pairs), dtype=torch.float64)
            pair_coupling.index_put_((n_r3, pair_of), n_c, accumulate=True)
    if core == "bmm":
        # M = x2 @ coupling scatters the nonzeros into the per-sample [R3, R1] matrices: one
        # small matrix product, measured 3-4x faster than gather + index_add for it
        coupling = torch.zeros(dim_in2, n_rows * R1, dtype=torch.float64)
        coupling.index_put_((b_idx[n_r2], n_r3 * R1 + n_r1), n_c, accumulate=True)
    return Segment(core, U, V, Q, R1, R2, n_rows, a_idx, b_idx, u_q, v_q, n_r1, n_r2, n_r3,
                   n_c, coupling, col2, identity, pair_r1, pair_r2, pair_coupling, dim_in2,
                   elems, mixes)
