r"""The paths of a descriptor as terms of a multilinear form, and what one kernel computes.

Path :math:`p` contributes

.. math::

    \Phi_p(x_1, x_2, w, g) = \sum_z c_p \sum C^{(p)}_{ijk}\, w_{(\ldots)}\,
    x_{1, z\,\cdot\, i}\, x_{2, z\,\cdot\, j}\, g_{z\,\cdot\, k}

to the form :math:`\Phi = \sum_z \langle g_z, \mathrm{TP}(x_1, x_2, w)_z\rangle`,
where the dots are the channel letters of each slot (:data:`MODE_LETTERS`). A
:class:`Term` is one such path with its slices, channel extents and scaled
Clebsch-Gordan nonzeros; a :class:`Contraction` is one kernel: which slot is left
free (the *target*), how each slot's rows are addressed and how the target is
written. See :mod:`~equinet.tp.kernels.triton_codegen` for the generated code.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..descriptor import TensorProductDescriptor

__all__ = ["MODE_LETTERS", "Term", "Contraction", "Group", "terms_of", "groups"]

#: Channel letters of (x1, x2, weight, out) for the modes the kernels support; the
#: pair modes ("uvu<v", "u<vw") are left to the torch backend.
MODE_LETTERS = {
    "uvw": ("u", "v", "uvw", "w"),
    "uvu": ("u", "v", "uv", "u"),
    "uvv": ("u", "v", "uv", "v"),
    "uuw": ("u", "u", "uw", "w"),
    "uuu": ("u", "u", "u", "u"),
    "uvuv": ("u", "v", "uv", "uv"),
}


@dataclass(frozen=True)
class Term:
    """One path as the kernels see it.

    ``letters[s]`` are the channel letters of slot ``s`` (row-major in memory),
    ``extents`` the size of each letter, ``starts[s]`` the first flat column of the
    path's block in slot ``s``, ``comps[s]`` the components per channel (``2l+1``,
    1 for weights), ``nonzeros`` the ``(i, j, k, c_p C_ijk)``.
    """

    letters: Tuple[str, str, str, str]
    weighted: bool
    extents: Tuple[Tuple[str, int], ...]
    starts: Tuple[int, int, int, int]
    comps: Tuple[int, int, int, int]
    nonzeros: Tuple[Tuple[int, int, int, float], ...]

    def extent(self, letter: str) -> int:
        return dict(self.extents)[letter]

    def slots(self, target: int) -> Tuple[int, ...]:
        """The source slots of this term when ``target`` is free."""
        used = (0, 1, 2, 3) if self.weighted else (0, 1, 3)
        return tuple(s for s in used if s != target)


def terms_of(desc: TensorProductDescriptor) -> Optional[Tuple[Term, ...]]:
    """The terms of ``desc``, or None when a path's mode has no kernel."""
    terms = []
    for p in desc.paths:
        if p.mode not in MODE_LETTERS:
            return None
        letters = MODE_LETTERS[p.mode]
        extents = {"u": p.mul1, "v": p.mul2, "w": p.mul_out}
        used = sorted(set("".join(letters)))
        d1, d2, d3 = p.dims
        weighted = p.weight is not None
        nonzeros = tuple((i, j, k, p.coefficient * c)
                         for (i, j, k), c in zip(p.cg_indices, p.cg_values))
        terms.append(Term(letters, weighted, tuple((a, extents[a]) for a in used),
                          (p.in1[0], p.in2[0], p.weight[0] if weighted else 0, p.out[0]),
                          (d1, d2, 1, d3), nonzeros))
    return tuple(terms)


@dataclass(frozen=True)
class Contraction:
    """Everything one generated kernel is specialised on (hashable: the cache key)."""

    terms: Tuple[Term, ...]
    dims: Tuple[int, int, int, int]      # row length of each slot
    target: int
    kinds: Tuple[str, str, str, str]     # "row" | "gather" | "shared" per slot
    mode: str                            # "store" | "atomic" | "segment" | "partial"
    include_unweighted: bool             # False when slot 2 holds a cotangent
    acc_dtype: str                       # "float32" | "float64"
    cast_inputs: bool                    # inputs narrower than acc_dtype (fp16/bf16)
    block_rows: int
    vector_width: int                    # the largest vector tile (power of two)

    def active_terms(self) -> Tuple[Term, ...]:
        if self.target == 2:
            return tuple(t for t in self.terms if t.weighted)
        return tuple(t for t in self.terms if t.weighted or self.include_unweighted)


def pow2(n: int) -> int:
    """The smallest power of two >= n."""
    return 1 << max(0, (n - 1).bit_length())


@dataclass
class Group:
    """Terms writing one target block with one free-channel structure.

    ``free`` are the extents of the target's channel letters; ``vector`` the
    position of the one on the tile axis (None: each term puts one of its summed
    letters there, reduced before the sum into the group's accumulators).
    """

    start: int
    free: Tuple[int, ...]
    comps: int
    terms: List[Term]
    vector: Optional[int] = None  # position of the free letter on the tile axis


def groups(c: Contraction) -> List[Group]:
    """The terms of ``c`` grouped by target block, each with its vector letter."""
    found: Dict[tuple, Group] = {}
    t = c.target
    for term in c.active_terms():
        free = tuple(term.extent(a) for a in term.letters[t])
        key = (term.starts[t], free, term.comps[t])
        if key not in found:
            found[key] = Group(term.starts[t], free, term.comps[t], [])
        found[key].terms.append(term)
    for g in found.values():
        if g.free:
            best = max(range(len(g.free)), key=lambda p: (g.free[p], p))
            summed = [term.extent(a) for term in g.terms for a in summed_letters(term, t)]
            if g.free[best] >= 8 or max(summed, default=1) <= g.free[best]:
                g.vector = best
    return list(found.values())


def summed_letters(term: Term, target: int) -> List[str]:
    """The channel letters summed over when ``target`` is free."""
    present = "".join(term.letters[s] for s in term.slots(target))
    return sorted(set(present) - set(term.letters[target]))
