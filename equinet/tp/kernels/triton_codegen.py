r"""Generate the Triton source of one *contraction* of a tensor-product descriptor.

A descriptor defines the multilinear form

.. math::

    \Phi(x_1, x_2, w, g) = \sum_z \sum_p c_p \sum C^{(p)}_{ijk}\,
    w_{(uvw)}\, x_{1, z u i}\, x_{2, z v j}\, g_{z w k},

linear in each of its four *slots* (0: ``x1``, 1: ``x2``, 2: weights, 3: output
cotangent), with the channel letters of each slot fixed by the path's mode
(:data:`~equinet.tp.kernels.triton_terms.MODE_LETTERS`). The product is
:math:`\partial\Phi/\partial g`, and the gradient with respect to any other slot is
:math:`\partial\Phi/\partial` that slot: the same sum, with another slot left free. A
:class:`~equinet.tp.kernels.triton_terms.Contraction` names the free
slot (the *target*) and how each slot's rows are addressed, and :func:`generate`
writes one ``@triton.jit`` kernel for it in which

- the Clebsch-Gordan nonzeros (times the path coefficients) are literal constants,
  grouped so that each tile multiply-add serves several nonzeros;
- one channel letter per group of paths is a vector axis of the tile (``tl.arange``),
  the other letters are loops, and every partial sum lives in registers until the
  target block is written once;
- all paths run in one launch: one program handles ``BZ`` rows (samples, edges or,
  in segment mode, destination nodes whose incoming edges it walks in CSR order).

Row addressing (``kinds``): ``"row"`` (row ``e`` of the slot), ``"gather"``
(row ``I_s[e]``), ``"shared"`` (one row for all, the shared weights). The target is
written by ``"store"`` (row ``e``), ``"atomic"`` (``atomic_add`` to row ``I_t[e]``),
``"segment"`` (row ``n``, summing edges ``PERM[PTR[n]:PTR[n+1]]``, no atomics) or
``"partial"`` (shared weights: the sum over the program's ``NBLOCKS`` blocks of rows
to row ``pid`` of a buffer the caller sums).
"""
from typing import Dict, List, Sequence, Tuple

from .triton_terms import Contraction, Group, Term, groups, pow2, summed_letters

__all__ = ["generate"]

_CG_SLOTS = (0, 1, 3)  # the slots carrying an irrep index: i, j, k of the nonzeros


class _Source:
    """Python source text with indentation."""

    def __init__(self):
        self.lines: List[str] = []
        self.depth = 0

    def __call__(self, line: str):
        self.lines.append("    " * self.depth + line)

    def open(self, header: str):
        self(header)
        self.depth += 1

    def close(self, n: int = 1):
        self.depth -= n

    def loop(self, var: str, extent: int) -> int:
        """Bind ``var`` to 0..extent-1; returns the number of levels opened."""
        if extent == 1:
            self(f"{var} = 0")
            return 0
        self.open(f"for {var} in range({extent}):")
        return 1


def _channel_offset(term: Term, slot: int, names: Dict[str, str]) -> str:
    """Flat column (without the component) of the current channel in ``slot``."""
    letters, flat, stride = term.letters[slot], [], 1
    for a in reversed(letters):
        name = names[a]
        if name != "0":
            flat.append(name if stride == 1 else f"{name} * {stride}")
        stride *= term.extent(a)
    offset = " + ".join(reversed(flat))
    start = term.starts[slot]
    if not offset:
        return str(start)
    scaled = offset if term.comps[slot] == 1 else f"({offset}) * {term.comps[slot]}"
    return scaled if start == 0 else f"{start} + {scaled}"


class _Writer:
    """Writes one contraction kernel.

    Triton carries a variable through a loop when it is bound before the loop and
    assigned inside, and then requires one type for it; so every group and every
    term names its variables with its own index.
    """

    def __init__(self, c: Contraction):
        self.c, self.src = c, _Source()
        self.cast = ".to(ACC)" if c.cast_inputs else ""
        self.terms = 0
        self.pointer = {s: f"p{s}" for s in range(4)}
        self.mask = "m2"

    # -- rows ------------------------------------------------------------------------
    def source_rows(self, slots: Sequence[int], tag: str, rows: str, mask: str):
        c, src = self.c, self.src
        for s in slots:
            p = self.pointer[s] = f"p{tag}{s}"
            if c.kinds[s] == "shared":
                src(f"{p} = S{s}")
            elif c.kinds[s] == "row":
                src(f"{p} = S{s} + {rows}[:, None] * {c.dims[s]}")
            else:
                src(f"{p} = S{s} + tl.load(I{s} + {rows}, mask={mask}, other=0)"
                    f".to(tl.int64)[:, None] * {c.dims[s]}")
        self.mask = f"m{tag}"
        src(f"{self.mask} = {mask}[:, None]")

    def target_rows(self):
        c, src, t = self.c, self.src, self.c.target
        if c.mode in ("store", "segment"):
            src(f"pt = S{t} + r64[:, None] * {c.dims[t]}")
        elif c.mode == "atomic":
            src(f"pt = S{t} + tl.load(I{t} + r64, mask=rm, other=0).to(tl.int64)"
                f"[:, None] * {c.dims[t]}")
        else:  # partial
            src(f"pt = S{t} + pid.to(tl.int64) * {c.dims[t]} + tl.full([1, 1], 0, tl.int64)")
        src("mt = rm[:, None]")

    # -- kernel ----------------------------------------------------------------------
    def kernel(self) -> str:
        c, src = self.c, self.src
        src("import triton")
        src("import triton.language as tl")
        src("")
        src(f"ACC = tl.constexpr(tl.{c.acc_dtype})")
        src(f"BZ = tl.constexpr({c.block_rows})")
        src("")
        src("")
        # own combine functions rather than tl.sum / tl.max / tl.zeros: those are jitted
        # when triton is imported, and so would not run under an interpreter switched
        # on later (TRITON_INTERPRET is read when a kernel is decorated)
        src("@triton.jit")
        src("def _add(a, b):")
        src("    return a + b")
        src("")
        src("")
        src("@triton.jit")
        src("def _max(a, b):")
        src("    return tl.maximum(a, b)")
        src("")
        src("")
        src("@triton.jit")
        src.open("def kernel(S0, S1, S2, S3, I0, I1, I2, I3, PERM, PTR, NROWS, NBLOCKS):")
        src("pid = tl.program_id(0)")
        src("r = pid * BZ + tl.arange(0, BZ)")
        src("rm = r < NROWS")
        src("r64 = r.to(tl.int64)")
        used = sorted({s for term in c.active_terms() for s in term.slots(c.target)})
        self.target_rows()
        if c.mode == "segment":  # rows are destination nodes; their edges are walked below
            src("first = tl.load(PTR + r64, mask=rm, other=0)")
            src("degree = tl.load(PTR + r64 + 1, mask=rm, other=0) - first")
            src("max_degree = tl.reduce(degree, 0, _max)")
        elif c.mode != "partial":  # partial: each program walks NBLOCKS blocks of rows below
            self.source_rows(used, "", "r64", "rm")
        written: List[Tuple[int, int]] = []
        for index, group in enumerate(groups(c)):
            size = group.comps
            for n in group.free:
                size *= n
            span = (group.start, group.start + size)
            overlaps = any(a < span[1] and span[0] < b for a, b in written)
            self.group(group, index, used, accumulate=overlaps)
            written.append(span)
        if not c.active_terms():
            src("pass")
        src.close()
        return "\n".join(src.lines) + "\n"

    def free_names(self, group: Group, gi: int, term: Term) -> Dict[str, str]:
        names = {}
        for p, a in enumerate(term.letters[self.c.target]):
            if p == group.vector:
                names[a] = f"va{gi}"
            else:
                names[a] = f"f{gi}_{p}" if group.free[p] > 1 else "0"
        return names

    def group(self, group: Group, gi: int, used: Sequence[int], accumulate: bool):
        c, src = self.c, self.src
        src(f"# target block at column {group.start}: channels {group.free} x "
            f"{group.comps} components, {len(group.terms)} path(s)")
        opened = 0
        if group.vector is not None:
            extent = group.free[group.vector]
            width = min(pow2(extent), c.vector_width)
            if width < extent:
                src.open(f"for c{gi} in range(0, {extent}, {width}):")
                opened += 1
                src(f"va{gi} = c{gi} + tl.arange(0, {width})[None, :]")
            else:
                src(f"va{gi} = tl.arange(0, {width})[None, :]")
            src(f"vm{gi} = va{gi} < {extent}")
            tile = f"[BZ, {width}]"
        else:
            tile = "[BZ, 1]"
        for p, n in enumerate(group.free):
            if p != group.vector:
                opened += src.loop(f"f{gi}_{p}", n)
        target_offset = _channel_offset(group.terms[0], c.target,
                                        self.free_names(group, gi, group.terms[0]))
        for m in range(group.comps):
            src(f"acc{gi}_{m} = tl.full({tile}, 0, ACC)")
        if c.mode == "segment":
            src.open(f"for j{gi} in range(0, max_degree):")
            src(f"em{gi} = rm & (j{gi} < degree)")
            src(f"e{gi} = tl.load(PERM + first + j{gi}, mask=em{gi}, other=0).to(tl.int64)")
            self.source_rows(used, str(gi), f"e{gi}", f"em{gi}")
        elif c.mode == "partial":
            src.open(f"for j{gi} in range(0, NBLOCKS):")
            src(f"e{gi} = (pid * NBLOCKS + j{gi}) * BZ + tl.arange(0, BZ)")
            src(f"em{gi} = e{gi} < NROWS")
            src(f"e{gi} = e{gi}.to(tl.int64)")
            self.source_rows(used, str(gi), f"e{gi}", f"em{gi}")
        for term in group.terms:
            self.term(group, gi, term)
        if c.mode in ("segment", "partial"):
            src.close()
        self.store(group, gi, target_offset, accumulate)
        src.close(opened)

    def term(self, group: Group, gi: int, term: Term):
        c, src, t = self.c, self.src, self.c.target
        ti = self.terms
        self.terms += 1
        names = self.free_names(group, gi, term)
        summed = summed_letters(term, t)
        vec = None
        if group.vector is None:
            big = [a for a in summed if term.extent(a) > 1]
            vec = max(big, key=term.extent) if big else None
        vector_letters = {term.letters[t][group.vector]} if group.vector is not None else set()
        vmask = f"vm{gi}" if group.vector is not None else f"vbm{ti}"
        opened = 0
        if vec is not None:
            extent = term.extent(vec)
            width = min(pow2(extent), c.vector_width)
            for m in range(group.comps):
                src(f"tacc{ti}_{m} = tl.full([BZ, {width}], 0, ACC)")
            if width < extent:
                src.open(f"for b{ti} in range(0, {extent}, {width}):")
                opened += 1
                src(f"vb{ti} = b{ti} + tl.arange(0, {width})[None, :]")
            else:
                src(f"vb{ti} = tl.arange(0, {width})[None, :]")
            src(f"vbm{ti} = vb{ti} < {extent}")
            names[vec] = f"vb{ti}"
            vector_letters.add(vec)
        bound = set(names)
        values: Dict[Tuple[int, int], str] = {}
        loaded, tiles = set(), set()

        def load_ready():
            for s in term.slots(t):
                if s in loaded or not set(term.letters[s]) <= bound:
                    continue
                loaded.add(s)
                offset = _channel_offset(term, s, names)
                has_vector = bool(set(term.letters[s]) & vector_letters)
                if has_vector:
                    tiles.add(s)
                if c.kinds[s] == "shared":
                    mask = vmask if has_vector else None
                else:
                    mask = f"{self.mask} & {vmask}" if has_vector else self.mask
                base = f"ptr{ti}_{s}"
                src(f"{base} = {self.pointer[s]} + ({offset})")
                if mask and "&" in mask:
                    src(f"mask{ti}_{s} = {mask}")
                    mask = f"mask{ti}_{s}"
                masked = f", mask={mask}, other=0.0" if mask else ""
                for m in self.used_components(term, s):
                    var = f"x{ti}_{s}_{m}"
                    at = base if m == 0 else f"{base} + {m}"
                    src(f"{var} = tl.load({at}{masked}){self.cast}")
                    values[(s, m)] = var

        load_ready()
        for a in summed:
            if a == vec:
                continue
            name = f"q{ti}_{a}"
            names[a] = name if term.extent(a) > 1 else "0"
            opened += src.loop(name, term.extent(a))
            bound.add(a)
            load_ready()
        acc = f"tacc{ti}_" if vec is not None else f"acc{gi}_"
        for m, expr in self.contributions(term, values, tiles):
            src(f"{acc}{m} = {acc}{m} + {expr}")
        src.close(opened)
        if vec is not None:
            for m in range(group.comps):
                src(f"acc{gi}_{m} = acc{gi}_{m} + tl.reduce(tacc{ti}_{m}, 1, _add, keep_dims=True)")

    @staticmethod
    def used_components(term: Term, slot: int) -> List[int]:
        if slot == 2:
            return [0]
        pos = _CG_SLOTS.index(slot)
        return sorted({nz[pos] for nz in term.nonzeros})

    def contributions(self, term: Term, values, tiles):
        """``(m, expression)``: what the term adds to target component ``m``."""
        t = self.c.target
        weight = values[(2, 0)] if term.weighted and t != 2 else None
        sources = [s for s in _CG_SLOTS if s != t]
        # the operand on the tile axis goes outside: one tile multiply per distinct index
        outer = next((s for s in sources if s in tiles), sources[0])
        inner = [s for s in sources if s != outer]
        by_target: Dict[int, Dict[int, List[str]]] = {}
        for nz in term.nonzeros:
            index = dict(zip(_CG_SLOTS, nz[:3]))
            m = index[t] if t != 2 else 0
            factors = " * ".join(values[(s, index[s])] for s in inner)
            by_target.setdefault(m, {}).setdefault(index[outer], []).append(
                f"{factors} * ({nz[3]!r})")
        for m in sorted(by_target):
            parts = []
            for o, products in sorted(by_target[m].items()):
                parts.append(f"{values[(outer, o)]} * ({' + '.join(products)})")
            expr = " + ".join(parts)
            yield m, f"({expr}) * {weight}" if weight else f"({expr})"

    def store(self, group: Group, gi: int, offset: str, accumulate: bool):
        c, src, t = self.c, self.src, self.c.target
        narrow = f".to(S{t}.dtype.element_ty)" if c.cast_inputs and c.mode != "atomic" else ""
        vm = f"vm{gi}" if group.vector is not None else None
        src(f"out{gi} = pt + ({offset})")
        if vm and c.mode != "partial":
            src(f"outm{gi} = mt & {vm}")
        for m in range(group.comps):
            ptr = f"out{gi}" if m == 0 else f"out{gi} + {m}"
            acc = f"acc{gi}_{m}"
            if c.mode == "partial":
                mask = f", mask={vm}" if vm else ""
                src(f"tl.store({ptr}, tl.reduce({acc}, 0, _add, keep_dims=True){narrow}{mask})")
                continue
            mask = f"outm{gi}" if vm else "mt"
            if c.mode == "atomic":
                src(f"tl.atomic_add({ptr}, {acc}, mask={mask})")
            elif accumulate:
                src(f"tl.store({ptr}, (tl.load({ptr}, mask={mask}, other=0.0){self.cast} + "
                    f"{acc}){narrow}, mask={mask})")
            else:
                src(f"tl.store({ptr}, {acc}{narrow}, mask={mask})")


def generate(c: Contraction) -> str:
    """The Python source of a module defining ``kernel``, the jitted contraction ``c``.

    The kernel takes ``(S0, S1, S2, S3, I0, I1, I2, I3, PERM, PTR, NROWS, NBLOCKS)``:
    the four slot tensors (the target's is the output), the gather/scatter indices
    of each slot, the CSR permutation and offsets (segment mode), the number of rows
    (or segments) and, in partial mode, the blocks of ``BZ`` rows each program sums.
    Unused pointers may be any tensor.

    Examples
    --------
    >>> from equinet.tp import build_descriptor
    >>> from equinet.tp.kernels.triton_terms import terms_of
    >>> d, _ = build_descriptor("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    >>> c = Contraction(terms_of(d), (6, 3, 2, 2), 3, ("row", "row", "row", "row"), "store",
    ...                 True, "float32", False, 16, 64)
    >>> source = generate(c)
    >>> "def kernel(" in source and "0.5773502691896" in source  # 1/sqrt(3): C * c_p
    True
    """
    return _Writer(c).kernel()
