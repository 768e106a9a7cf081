r"""Compile, cache and launch the generated contraction kernels.

Each :class:`~equinet.tp.kernels.triton_codegen.Contraction` is generated once,
written to ``<cache>/triton/<sha256 of the source>.py`` in equinet's per-user, owner-only
cache folder (:func:`equinet._cache.cache_dir`) and run as a module; its ``kernel`` is cached
in memory by the contraction. The file is never trusted: one whose bytes are not the
generated source is rewritten, and the module is always compiled from the source in memory
(``triton.jit`` reads a kernel's source through :mod:`linecache`, which is given that same
source), so nothing planted in the folder is ever run. :func:`contract` evaluates one
slot of the form :math:`\Phi` from the three others for a :class:`Layout`: how the
rows of each slot are addressed (plain batches, or the gathers and scatters of a
graph convolution).
"""
import functools
import hashlib
import linecache
import os
import types
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..._cache import atomic_write, cache_dir
from ..descriptor import TensorProductDescriptor
from .triton_codegen import generate
from .triton_terms import Contraction, Term, terms_of

__all__ = ["Layout", "contract", "interpreting", "kernel_cache_dir"]

#: Tile of one program: rows x channel vector, about this many elements. Sized from
#: the register use of the kernels compiled for sm_90 (MACE-large, NequIP and DiffDock
#: products: no spills at 4 warps); not yet tuned by timing on a GPU.
_TILE_ELEMENTS = {torch.float64: 128}
_DEFAULT_TILE_ELEMENTS = 256
_VECTOR_WIDTH = {torch.float64: 32}
_DEFAULT_VECTOR_WIDTH = 64
_NUM_WARPS = 4


def kernel_cache_dir() -> Path:
    """Where the generated kernel sources are written: ``<equinet cache>/triton``.

    Per user and owner-only (``$EQUINET_CACHE`` or ``~/.cache/equinet``, see
    :func:`equinet._cache.cache_dir`); read at each compilation, so setting ``$EQUINET_CACHE``
    later moves it.
    """
    return cache_dir("triton")


def interpreting() -> bool:
    """Whether Triton runs its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


class Layout:
    """How the rows of each slot ``(x1, x2, weight, out)`` are addressed.

    Parameters
    ----------
    rows : int
        Number of iterations: samples of a plain product, edges of a convolution.
    kinds : tuple of str
        Per slot: ``"row"`` (row ``e``), ``"gather"`` (row ``index[s][e]``) or
        ``"shared"`` (one row for all iterations; the weights only).
    counts : tuple of int
        Number of rows of each slot's tensor (used to shape gradients).
    index : tuple of torch.Tensor or None
        The integer row index of each ``"gather"`` slot, ``[rows]``.
    deterministic : bool
        Sum into ``"gather"`` targets by segments over edges sorted by that index
        (CSR), instead of with atomic additions.
    block_rows, vector_width : int, optional
        Override the tile shape (tests use tiny tiles to cover the masking paths).
    """

    def __init__(self, rows: int, kinds: Sequence[str], counts: Sequence[int],
                 index: Sequence[Optional[torch.Tensor]] = (None,) * 4,
                 deterministic: bool = False, block_rows: Optional[int] = None,
                 vector_width: Optional[int] = None):
        self.rows, self.kinds, self.counts = int(rows), tuple(kinds), tuple(counts)
        self.index = tuple(index)
        self.deterministic = bool(deterministic)
        for name, value in (("block_rows", block_rows), ("vector_width", vector_width)):
            if value is not None and (value < 1 or value & (value - 1)):
                raise ValueError(f"{name} must be a power of two, got {value}")
        self.block_rows, self.vector_width = block_rows, vector_width
        self._csr = {}

    def csr(self, slot: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(perm, ptr)``: the iterations sorted (stably) by ``index[slot]``, and offsets."""
        if slot not in self._csr:
            index = self.index[slot]
            perm = torch.argsort(index, stable=True)
            counts = torch.bincount(index, minlength=self.counts[slot])
            ptr = torch.zeros(self.counts[slot] + 1, dtype=torch.int64, device=index.device)
            torch.cumsum(counts, 0, out=ptr[1:])
            self._csr[slot] = (perm, ptr)
        return self._csr[slot]


class _DescriptorKernels:
    """A descriptor's terms, and its compiled kernels and coverage by launch parameters."""

    def __init__(self, desc: TensorProductDescriptor):
        self.terms = terms_of(desc)
        self.kernels = {}
        self.covers = {}

    def covered(self, target: int, include_unweighted: bool, dim: int) -> bool:
        """Whether the terms write every column of the target (else it is zero-filled)."""
        key = (target, include_unweighted)
        if key not in self.covers:
            covered = [False] * dim
            for t in _active(self.terms, target, include_unweighted):
                size = t.comps[target]
                for a in t.letters[target]:
                    size *= t.extent(a)
                covered[t.starts[target]:t.starts[target] + size] = [True] * size
            self.covers[key] = all(covered)
        return self.covers[key]

    def kernel(self, contraction: Contraction, interpret: bool):
        c = contraction
        key = (c.target, c.kinds, c.mode, c.include_unweighted, c.acc_dtype, c.cast_inputs,
               c.block_rows, c.vector_width, interpret)
        if key not in self.kernels:
            self.kernels[key] = _kernel(contraction, interpret)
        return self.kernels[key]


@functools.lru_cache(maxsize=256)
def _state(desc: TensorProductDescriptor) -> _DescriptorKernels:
    return _DescriptorKernels(desc)


def supported(desc: TensorProductDescriptor) -> bool:
    """Whether every path of ``desc`` has a kernel (the pair modes have none)."""
    return _state(desc).terms is not None


def _active(terms: Tuple[Term, ...], target: int, include_unweighted: bool) -> List[Term]:
    """The terms that contribute to ``target``: the weight slot sees only weighted paths."""
    keep_unweighted = include_unweighted and target != 2
    return [t for t in terms if t.weighted or keep_unweighted]


def _kernel(contraction: Contraction, interpret: bool):
    """The jitted ``kernel`` of ``contraction``, generated, written and run as a module."""
    source = generate(contraction)
    data = source.encode()
    digest = hashlib.sha256(data).hexdigest()[:32]
    path = str(_write_source(kernel_cache_dir() / f"{digest}.py", data))
    # Compiled from the source in memory, never from the file: whatever replaces the file
    # between the check and now is not run. triton.jit reads the kernel's source with
    # inspect, i.e. through linecache, which gets the same text (an entry without mtime is
    # never reloaded from disk).
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    module = types.ModuleType(f"equinet_triton_{digest}")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 (our generated source)
    return module.kernel


def _write_source(path: Path, data: bytes) -> Path:
    """``path`` holding exactly ``data``: kept if it does, else (re)written atomically."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except FileNotFoundError:
        pass
    # missing, truncated by a crash, or planted: written whole then renamed over it (another
    # process may be reading the old file meanwhile)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def _vector_width_used(terms: Tuple[Term, ...], cap: int) -> int:
    widest = max((e for t in terms for _, e in t.extents), default=1)
    return min(1 << max(0, (widest - 1).bit_length()), cap)


def _block_rows(terms, dtype, vector_width: int, interpret: bool) -> int:
    if interpret:  # the interpreter's cost is per operation: few, large programs
        return 16
    tile = _TILE_ELEMENTS.get(dtype, _DEFAULT_TILE_ELEMENTS)
    width = _vector_width_used(terms, vector_width)
    return max(2, min(128, tile // width))


def _partial_programs(device: torch.device, interpret: bool) -> int:
    """Programs that sum the shared-weight gradient: a few per multiprocessor."""
    if interpret:
        return 2  # tests: several blocks per program, and several programs
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 64


def contract(desc: TensorProductDescriptor, layout: Layout, target: int,
             include_unweighted: bool, slots: List[Optional[torch.Tensor]]) -> torch.Tensor:
    r"""The slot ``target`` of :math:`\Phi` (its gradient with respect to that slot).

    ``slots`` are ``(x1, x2, weight, out)`` laid out by ``layout``; the entry of
    the target is ignored. ``include_unweighted=False`` leaves out the paths without
    weights (the weight slot then holds a cotangent, along which they are constant).
    """
    state = _state(desc)
    terms = state.terms
    dims = (desc.dim_in1, desc.dim_in2, desc.weight_numel, desc.dim_out)
    like = next(s for s in slots if s is not None)
    dtype, device = like.dtype, like.device
    kind = layout.kinds[target]
    shape = (dims[target],) if kind == "shared" else (layout.counts[target] if kind == "gather"
                                                      else layout.rows, dims[target])
    if not _active(terms, target, include_unweighted) or not layout.rows or not dims[target]:
        return torch.zeros(shape, dtype=dtype, device=device)

    if all(t.weighted for t in terms):  # the flag changes nothing: share the kernels
        include_unweighted = True
    interpret = interpreting()
    acc_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    vector_width = layout.vector_width or _VECTOR_WIDTH.get(dtype, _DEFAULT_VECTOR_WIDTH)
    block_rows = layout.block_rows or _block_rows(terms, dtype, vector_width, interpret)
    covers = state.covered(target, include_unweighted, dims[target])
    perm = ptr = None
    if kind == "row":
        mode, n = "store", layout.rows
        out = (torch.empty if covers else torch.zeros)(shape, dtype=dtype, device=device)
        buffer = out
    elif kind == "gather" and layout.deterministic:
        mode, n = "segment", layout.counts[target]
        perm, ptr = layout.csr(target)
        out = (torch.empty if covers else torch.zeros)(shape, dtype=dtype, device=device)
        buffer = out
    elif kind == "gather":
        mode, n = "atomic", layout.rows
        buffer = torch.zeros(shape, dtype=acc_dtype, device=device)
    else:
        mode, n = "partial", layout.rows
        blocks = -(-layout.rows // block_rows)
        per_program = -(-blocks // _partial_programs(device, interpret))
        programs = -(-blocks // per_program)
        buffer = torch.zeros((programs, dims[target]), dtype=acc_dtype, device=device)

    contraction = Contraction(terms, dims, target, layout.kinds, mode, include_unweighted,
                              "float64" if acc_dtype == torch.float64 else "float32",
                              dtype != acc_dtype, block_rows, vector_width)
    kernel = state.kernel(contraction, interpret)
    args = [buffer if s == target or slots[s] is None or slots[s].numel() == 0
            else slots[s].contiguous() for s in range(4)]
    index = [i if i is not None else buffer for i in layout.index]
    grid = (programs,) if mode == "partial" else (-(-n // block_rows),)
    if grid[0] > 0:
        kernel[grid](*args, *index, perm if perm is not None else buffer,
                     ptr if ptr is not None else buffer, n,
                     per_program if mode == "partial" else 1, num_warps=_NUM_WARPS,
                     enable_fp_fusion=True)
    if mode == "partial":
        return buffer.sum(0).to(dtype)
    if mode == "atomic":
        return buffer.to(dtype)
    return out
