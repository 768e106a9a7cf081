r"""Execute a :class:`~equinet.tp.kernels.torch_plan.Plan`: any slot of the product from the others.

A tensor product defines the multilinear form

.. math::

    \Phi(x_1, x_2, w, g) = \sum_z \langle g_z, \mathrm{TP}(x_1, x_2, w)_z \rangle ,

linear in each of its four *slots* (0: ``x1``, 1: ``x2``, 2: ``weight``,
3: ``out``). The product itself is the gradient of :math:`\Phi` with respect to
slot 3, and the gradients with respect to ``x1``, ``x2`` and ``weight`` are the
gradients with respect to slots 0, 1 and 2: :func:`run` computes any set of
them from the four slot tensors, sharing the intermediates, batch chunk by
batch chunk so that on CPU every temporary stays in cache.
"""
from typing import Dict, List, Optional, Sequence

import torch

from .torch_assembly import assemble
from .torch_threads import chunk_workers, worker_pool
from .torch_chunks import segment_rows
from .torch_plan import Plan, Segment

__all__ = ["run"]


class _Weights:
    """The weight tensors each segment needs, gathered once per call (shared) or per chunk.

    Paths without weights count with weight one, unless ``weight_free`` is
    False: then the weight slot holds a cotangent, a direction in weight space,
    along which the weight-free paths (constant in the weights) do not vary.
    """

    def __init__(self, plan: Plan, w: Optional[torch.Tensor], like: torch.Tensor,
                 weight_free: bool):
        if w is None:
            w = like.new_zeros(plan.weight_numel)
        if plan.needs_one:  # column ``weight_numel`` stands for the weight of weight-free paths
            one = w.new_full(w.shape[:-1] + (1,), float(weight_free))
            w = torch.cat([w, one], dim=-1)
        self.w = w
        self.batched = w.dim() == 2
        self.weight_free = weight_free

    def elem(self, e, Q: int):
        """``[(batch,) rows, Q]``: the weight of each row and pair."""
        if e.w_idx is None:
            return None if self.weight_free else self.w.new_zeros(())
        n = e.rows[1] - e.rows[0]
        if self.batched:
            return self.w.index_select(1, e.w_idx.flatten()).view(-1, n, Q)
        return self.w.index_select(0, e.w_idx.flatten()).view(n, Q)

    def mix(self, m):
        if m.w_idx is None:
            return self.w.new_full((m.pq, m.wd), float(self.weight_free))
        if self.batched:
            return self.w.index_select(1, m.w_idx.flatten()).view(-1, m.pq, m.wd)
        return self.w.index_select(0, m.w_idx.flatten()).view(m.pq, m.wd)


class _SegmentChunk:
    """One segment on one chunk of the batch; intermediates are computed once, when needed."""

    def __init__(self, seg: Segment, x1, x2, weights: List, g):
        self.s, self.x1, self.x2, self.g = seg, x1, x2, g
        self.c = (x1 if x1 is not None else x2 if x2 is not None else g).shape[0]
        self.we, self.wm = weights
        self._cache: Dict[str, torch.Tensor] = {}

    def _get(self, name, make):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    # -- operands in row layout ------------------------------------------------------
    def a(self):  # [c, R1, Q]: input 1 on the channel pairs
        s = self.s

        def make():
            a = self.x1.index_select(1, s.a_idx).view(self.c, s.R1, s.U)
            return a if s.core in ("bmm", "diag") or s.u_q is None else a.index_select(2, s.u_q)
        return self._get("a", make)

    def b(self):  # nnz core: [c, R2, Q]
        s = self.s

        def make():
            b = self.x2.index_select(1, s.b_idx).view(self.c, s.R2, s.V)
            return b if s.v_q is None else b.index_select(2, s.v_q)
        return self._get("b", make)

    def m(self):  # bmm core: [c, R3, R1], the second input contracted with the coupling
        s = self.s

        def make():
            return (self.x2 @ s.coupling).view(self.c, s.R3, s.R1)
        return self._get("m", make)

    def scale(self):  # diag core: [c, R3, 1], the factor of each row
        s = self.s
        return self._get("scale", lambda: (self.x2.index_select(1, s.n_col2) * s.n_c)[..., None])

    def a_rows(self):  # diag core: [c, R3, U], input 1 on the rows of T
        s = self.s
        return self.a() if s.r1_identity else self._get(
            "a_rows", lambda: self.a().index_select(1, s.n_r1))

    def pairs(self):  # pairs core: [pairs, c, Q] each, the two inputs on the row pairs
        s = self.s

        def make():
            return (self.a().transpose(0, 1).index_select(0, s.pair_r1),
                    self.b().transpose(0, 1).index_select(0, s.pair_r2))
        return self._get("pairs", make)

    def _pairs_core_grad(self, gt, other, rows, n_rows):
        """Pairs core: the gradient on one input's rows, ``[c, n_rows, Q]``."""
        s = self.s
        g = (s.pair_coupling.t() @ gt.transpose(0, 1).reshape(s.R3, -1)).view(other.shape)
        g.mul_(other)
        g = g.new_zeros((n_rows,) + g.shape[1:]).index_add_(0, rows, g)
        return g.transpose(0, 1)

    # -- the core ------------------------------------------------------------------------
    def t(self):  # [c, R3, Q]
        s = self.s

        def make():
            if s.core == "bmm":
                return torch.bmm(self.m(), self.a())
            if s.core == "diag":
                return self.a_rows() * self.scale()
            if s.core == "pairs":
                a, b = self.pairs()
                t = s.pair_coupling @ (a * b).view(a.shape[0], -1)
                return t.view(s.R3, self.c, s.Q).transpose(0, 1).contiguous()
            prod = self.a().index_select(1, s.n_r1) * self.b().index_select(1, s.n_r2)
            prod.mul_(s.n_c[:, None])
            return prod.new_zeros(self.c, s.R3, s.Q).index_add_(1, s.n_r3, prod)
        return self._get("t", make)

    def core_x1(self, gt):  # [c, R1 * U]
        s = self.s
        if s.core == "bmm":
            ga = torch.bmm(self.m().transpose(1, 2), gt)
        elif s.core == "diag":
            ga = gt * self.scale()
            if not s.r1_identity:
                ga = ga.new_zeros(self.c, s.R1, s.U).index_add_(1, s.n_r1, ga)
        elif s.core == "pairs":
            ga = self._pairs_core_grad(gt, self.pairs()[1], s.pair_r1, s.R1)
            if s.u_q is not None:
                ga = ga.new_zeros(self.c, s.R1, s.U).index_add_(2, s.u_q, ga)
        else:
            prod = self.b().index_select(1, s.n_r2) * gt.index_select(1, s.n_r3)
            prod.mul_(s.n_c[:, None])
            ga = prod.new_zeros(self.c, s.R1, s.Q).index_add_(1, s.n_r1, prod)
            if s.u_q is not None:
                ga = ga.new_zeros(self.c, s.R1, s.U).index_add_(2, s.u_q, ga)
        return ga.reshape(self.c, -1)

    def core_x2(self, gt):  # bmm: [c, dim_in2]; nnz: [c, R2 * V]
        s = self.s
        if s.core == "bmm":
            # [c, R1, R3] rather than [c, R3, R1]: BLAS is ~3x slower on the narrow R1 columns
            gm = torch.bmm(self.a(), gt.transpose(1, 2)).view(self.c, -1)
            coupling = s.coupling.view(-1, s.R3, s.R1).transpose(1, 2).reshape(-1, s.R1 * s.R3)
            return gm @ coupling.t()
        if s.core == "diag":
            gs = (gt * self.a_rows()).sum(-1) * s.n_c
            return gs.new_zeros(self.c, s.dim_in2).index_add_(1, s.n_col2, gs)
        if s.core == "pairs":
            gb = self._pairs_core_grad(gt, self.pairs()[0], s.pair_r2, s.R2)
            if s.v_q is not None:
                gb = gb.new_zeros(self.c, s.R2, s.V).index_add_(2, s.v_q, gb)
            return gb.reshape(self.c, -1)
        prod = self.a().index_select(1, s.n_r1) * gt.index_select(1, s.n_r3)
        prod.mul_(s.n_c[:, None])
        gb = prod.new_zeros(self.c, s.R2, s.Q).index_add_(1, s.n_r2, prod)
        if s.v_q is not None:
            gb = gb.new_zeros(self.c, s.R2, s.V).index_add_(2, s.v_q, gb)
        return gb.reshape(self.c, -1)

    # -- the channel maps ---------------------------------------------------------------
    def _t_elem(self, e):  # [c, rows, Q]
        return self.t()[:, e.rows[0]:e.rows[1]]

    def _reduce(self, e, y):
        if e.reduce:
            y = y.view(y.shape[:-1] + (self.s.U, self.s.V)).sum(-1 if e.reduce == "v" else -2)
        return y

    def _g_elem(self, e):  # [c, rows, Q]: the output gradient on the rows, per pair
        def make():
            shape = (self.c, e.rows[1] - e.rows[0])
            gr = self.g.index_select(1, e.out_idx.flatten())
            if e.reduce == "v":
                gr = gr.view(shape + (self.s.U, 1)).expand(shape + (self.s.U, self.s.V))
            elif e.reduce == "u":
                gr = gr.view(shape + (1, self.s.V)).expand(shape + (self.s.U, self.s.V))
            return gr.contiguous().view(shape + (self.s.Q,))  # own memory: updated in place
        return self._get(("g", e.rows), make)

    def _g_block(self, m):  # [c, d3, wd]: the output gradient of a mix block, rows first
        def make():
            g = self.g[:, m.out_start:m.out_start + m.wd * m.d3].view(self.c, m.wd, m.d3)
            return g.transpose(1, 2).contiguous()
        return self._get(("gb", m.rows), make)

    def out_pieces(self, reuse: bool) -> List[torch.Tensor]:
        """The output; ``reuse``: the core output is not needed afterwards, overwrite it."""
        pieces = []
        for e, we in zip(self.s.elems, self.we):
            y = self._t_elem(e)
            if we is not None:
                y = y.mul_(we) if reuse else y * we
            pieces.append(self._reduce(e, y))
        t = self.t()
        for m, wm in zip(self.s.mixes, self.wm):
            y = _times(t[:, m.rows[0]:m.rows[1]].reshape(self.c, m.d3, m.pq), wm)
            # [c, wd, d3], the output layout; for d3 = 1 a plain view, which copies ~5x faster
            pieces.append(y.view(self.c, m.wd, 1) if m.d3 == 1 else y.transpose(1, 2))
        return pieces

    def gt(self, reuse: bool):
        """[c, R3, Q]: the gradient of Phi with respect to the core output.

        ``reuse``: the output gradient on the rows is not needed afterwards.
        """
        def make():
            rows = []
            for e, we in zip(self.s.elems, self.we):
                gq = self._g_elem(e)
                rows.append(gq if we is None else gq.mul_(we) if reuse else gq * we)
            for m, wm in zip(self.s.mixes, self.wm):
                gtb = _times(self._g_block(m), wm.transpose(-1, -2))
                rows.append(gtb.reshape(self.c, -1, self.s.Q))
            return rows[0] if len(rows) == 1 else torch.cat(rows, dim=1)
        return self._get("gt", make)

    def w_pieces(self, shared: bool) -> List[torch.Tensor]:
        t, s, pieces = self.t(), self.s, []
        for e in s.elems:
            if e.w_idx is None:
                continue
            prod = self._g_elem(e) * self._t_elem(e)
            n_paths = e.path_w_idx.shape[0]
            if shared:
                pieces.append(prod.new_zeros(n_paths, s.Q).index_add_(0, e.row_path, prod.sum(0)))
            else:
                pieces.append(prod.new_zeros(self.c, n_paths, s.Q).index_add_(1, e.row_path, prod))
        for m in s.mixes:
            if m.w_idx is None:
                continue
            tb = t[:, m.rows[0]:m.rows[1]].reshape(self.c, m.d3, m.pq)
            gb = self._g_block(m)
            if shared:
                pieces.append(tb.reshape(-1, m.pq).t() @ gb.view(-1, m.wd))
            else:
                pieces.append(torch.bmm(tb.transpose(1, 2), gb))
        return pieces


def _times(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x [c, n, k] @ w``: one matrix product for a shared ``w [k, m]``, else batched."""
    if w.dim() == 3:
        return torch.bmm(x, w)
    return (x.reshape(-1, x.shape[-1]) @ w).view(x.shape[0], x.shape[1], w.shape[-1])


def _rows_of(prepared, y0: int, y1: int, batched: bool):
    """Prepared weights of a segment (see `run`) on chunk rows ``y0:y1``."""
    if not batched:
        return prepared

    def rows(w):
        return w[y0:y1] if w is not None and w.dim() == 3 else w
    elems, mixes = prepared
    return [rows(w) for w in elems], [rows(w) for w in mixes]


def _batch_size(slots) -> int:
    for i in (0, 1, 3):
        if slots[i] is not None:
            return slots[i].shape[0]
    w = slots[2]
    return w.shape[0] if w is not None and w.dim() == 2 else 0


def run(plan: Plan, targets: Sequence[int], slots: Sequence[Optional[torch.Tensor]],
        chunk: int, weight_free: bool = True) -> List[torch.Tensor]:
    """The gradients of :math:`\\Phi` with respect to the ``targets`` slots.

    ``slots`` are ``(x1, x2, weight, out)``; the tensor in a target slot is not
    used for that target. Weight results have the weight's shape (summed over
    the batch when the weight is shared). ``weight_free=False`` leaves out the
    paths without weights (see :class:`_Weights`).
    """
    x1, x2, w, g = slots
    like = next(x for x in slots if x is not None)
    Z = _batch_size(slots)
    shared = w is None or w.dim() == 1
    dims = (plan.dim_in1, plan.dim_in2, plan.weight_numel, plan.dim_out)
    asms = (plan.x1_asm, plan.x2_asm, plan.w_asm, plan.out_asm)
    weights = _Weights(plan, w, like, weight_free)

    def prepared(wt, z0, z1):
        if not wt.batched:
            pre = wt
        else:
            pre = _Weights.__new__(_Weights)
            pre.w, pre.batched, pre.weight_free = wt.w[z0:z1], True, wt.weight_free
        return [([pre.elem(e, s.Q) for e in s.elems],
                 [pre.mix(m) for m in s.mixes]) for s in plan.segments]

    shared_pre = None if weights.batched else prepared(weights, 0, Z)

    def segment_pieces(s, p, z0, z1):
        """The pieces of each target from segment ``s`` on samples ``z0:z1``."""
        part = _SegmentChunk(s, None if x1 is None else x1[z0:z1],
                             None if x2 is None else x2[z0:z1], p,
                             None if g is None else g[z0:z1])
        pieces = {}
        # the weight gradient needs the core output and the row gradients unweighted: do it first
        for t in sorted(targets, key=lambda t: t != 2):
            if t == 3:
                pieces[t] = part.out_pieces(reuse=True)
            elif t == 0:
                pieces[t] = [part.core_x1(part.gt(reuse=True))]
            elif t == 1:
                pieces[t] = [part.core_x2(part.gt(reuse=True))]
            else:
                pieces[t] = part.w_pieces(shared)
        return pieces

    def compute(z0, z1, outs=None):
        pre = shared_pre if shared_pre is not None else prepared(weights, z0, z1)
        c = z1 - z0
        collected = {t: [] for t in targets}
        for s, p in zip(plan.segments, pre):
            rows = segment_rows(s, c, like.device) if not torch.compiler.is_compiling() else c
            if rows >= c:
                subs = [segment_pieces(s, p, z0, z1)]
            else:  # a segment with large temporaries: sub-chunks of its own, joined
                subs = [segment_pieces(s, _rows_of(p, y0, min(c, y0 + rows), weights.batched),
                                       z0 + y0, z0 + min(c, y0 + rows))
                        for y0 in range(0, c, rows)]
            for t in targets:
                if len(subs) == 1:
                    collected[t].extend(subs[0][t])
                    continue
                by_piece = zip(*(sub[t] for sub in subs))
                if t == 2 and shared:  # summed over the batch
                    collected[t].extend(sum(parts) for parts in by_piece)
                else:
                    collected[t].extend(torch.cat(parts) for parts in by_piece)
        results = []
        for t in sorted(targets, key=lambda t: t != 2):
            pieces = collected[t]
            batch = () if (t == 2 and shared) else (c,)
            dest = None if outs is None or (t == 2 and shared) else outs[targets.index(t)][z0:z1]
            res = assemble(asms[t], pieces, batch, like, out=dest)
            if res is not None and dest is not None:
                dest.copy_(res)
            results.append((t, res))
        return [dict(results)[t] for t in targets]

    if Z <= chunk or torch.compiler.is_compiling():
        return compute(0, Z) if Z > 0 else [
            like.new_zeros((dims[t],) if (t == 2 and shared) else (0, dims[t])) for t in targets]
    outs = [like.new_zeros(dims[2]) if (t == 2 and shared) else like.new_empty(Z, dims[t])
            for t in targets]
    starts = list(range(0, Z, chunk))
    workers = chunk_workers(like, len(starts))

    def work(first):
        with torch.no_grad():
            total = [None] * len(targets)
            for z0 in starts[first::workers]:
                z1 = min(Z, z0 + chunk)
                for i, (t, res) in enumerate(zip(targets, compute(z0, z1, outs))):
                    if t == 2 and shared:
                        total[i] = res if total[i] is None else total[i] + res
            return total

    totals = [work(0)] if workers == 1 else list(worker_pool(workers).map(work, range(workers)))
    for total in totals:
        for out, part in zip(outs, total):
            if part is not None:
                out.add_(part)
    return outs
