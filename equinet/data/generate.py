r"""Label geometries with PySCF into a folder of shards: resumable, parallel, never mixed.

:func:`generate` runs :func:`equinet.chem.labels.compute_labels` on every geometry and
writes the results to ``out_dir``, which :class:`equinet.data.ShardDataset` reads:

``manifest.json``
    What the folder is: the format, the level of theory, the properties, the shard
    size and, for every geometry index, a hash of ``(z, pos, level)``. Written once;
    a later run in the same folder must ask for exactly the same (else
    :class:`FolderMismatch`), so data of two levels or two geometry sets never mix.
``metadata.json``
    The level settings and, per run, the PySCF, equinet, numpy and Python versions.
``shard_000000.npz`` ...
    Shard ``s`` holds geometries ``s*shard_size`` to ``(s+1)*shard_size - 1``: arrays
    ``index`` (int64, the labelled geometry indices), ``hash`` (str), ``failed`` (a JSON
    string: the geometries left out, with the reason and SCF cycles), and per labelled
    geometry ``i`` the arrays ``"{i}/z"``, ``"{i}/pos"`` (Angstrom) and ``"{i}/<property>"``
    in the units of :mod:`equinet.chem.labels` (PySCF AO order). Each shard is written
    atomically once complete, so a crash or Ctrl-C loses at most the shards in flight
    (with ``shard_size=1``: no finished molecule), and a rerun computes only the rest.
``failed.json``
    All geometries left out (an SCF that did not converge, or another error), rewritten
    at the end of every run. They are also warned about; they are never kept silently.

Workers are separate processes started with ``spawn`` (PySCF and torch do not fork
safely), each with ``cpus // workers`` OpenMP and BLAS threads. As with any ``spawn`` pool, a
script that calls :func:`generate` with ``workers > 1`` needs an
``if __name__ == "__main__":`` guard.
"""
import concurrent.futures as futures
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .._cache import atomic_write
from .shards import FORMAT, FORMAT_VERSION, read_manifest, read_shard_index, shard_path

__all__ = ["generate", "GenerationReport", "FolderMismatch", "geometry_hash", "as_geometries"]

DEFAULT_PROPERTIES = ("energy", "forces")


class FolderMismatch(ValueError):
    """The output folder already holds data of other geometries, level or properties."""


@dataclasses.dataclass
class GenerationReport:
    """What :func:`generate` did.

    Attributes
    ----------
    out_dir : pathlib.Path
    total : int
        Geometries asked for.
    labelled : int
        Geometries with labels in the folder after this run.
    computed : int
        Geometries run by this call (labelled or failed); the rest were done before.
    failed : list of dict
        Every geometry left out: ``index``, ``hash``, ``error``, ``reason``, ``cycles``.
    seconds : float
        Wall time of this call.
    """

    out_dir: Path
    total: int
    labelled: int
    computed: int
    failed: List[dict]
    seconds: float

    @property
    def molecules_per_minute(self) -> float:
        """Throughput of this call: geometries computed per minute of wall time."""
        return 60.0 * self.computed / self.seconds if self.seconds > 0 else float("nan")


def as_geometries(geometries: Iterable) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``(z int64 [n], pos float64 [n, 3])`` pairs from pairs or ``ase.Atoms``.

    >>> as_geometries([([1, 1], [[0, 0, 0], [0, 0, 0.74]])])[0][1].dtype
    dtype('float64')
    """
    out = []
    for i, g in enumerate(geometries):
        if hasattr(g, "get_atomic_numbers") and hasattr(g, "get_positions"):
            z, pos = g.get_atomic_numbers(), g.get_positions()
        else:
            z, pos = g
        z = np.ascontiguousarray(z, dtype=np.int64)
        pos = np.ascontiguousarray(pos, dtype=np.float64)
        if z.ndim != 1 or pos.shape != (len(z), 3) or len(z) == 0:
            raise ValueError(f"geometry {i}: need z [n] and pos [n, 3], n >= 1; got "
                             f"{z.shape} and {pos.shape}")
        out.append((z, pos))
    return out


def geometry_hash(z: np.ndarray, pos: np.ndarray, level) -> str:
    """SHA-256 (first 32 hex digits) of atomic numbers, exact positions and the level.

    >>> from equinet.chem.labels import LevelOfTheory
    >>> z, pos = np.array([1, 1]), np.array([[0, 0, 0], [0, 0, 0.74]])
    >>> geometry_hash(z, pos, LevelOfTheory()) == geometry_hash(z, pos, LevelOfTheory("HF"))
    False
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(z, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(pos, dtype=np.float64).tobytes())
    h.update(json.dumps(level.as_dict(), sort_keys=True).encode())
    return h.hexdigest()[:32]


def _check_manifest(out: Path, manifest: dict) -> None:
    path = out / "manifest.json"
    if not path.exists():
        stray = sorted(p.name for p in out.glob("shard_*.npz"))
        if stray:
            raise FolderMismatch(f"{out} holds shards ({stray[0]}, ...) but no manifest.json")
        with atomic_write(path, "w") as f:
            json.dump(manifest, f)
        return
    old = read_manifest(out)
    for key, what in (("level", "level of theory"), ("properties", "properties"),
                      ("shard_size", "shard size")):
        if old[key] != manifest[key]:
            raise FolderMismatch(f"{out} was generated with {what} {old[key]}, this run asks for "
                                 f"{manifest[key]}: use another folder")
    if old["hashes"] != manifest["hashes"]:
        n_old, n_new = len(old["hashes"]), len(manifest["hashes"])
        first = next((i for i, (a, b) in enumerate(zip(old["hashes"], manifest["hashes"]))
                      if a != b), min(n_old, n_new))
        raise FolderMismatch(f"{out} was generated from other geometries ({n_old} in the folder, "
                             f"{n_new} now; first difference at index {first}): use another "
                             "folder")


def _write_metadata(out: Path, level, properties) -> None:
    import equinet

    try:
        import pyscf
        pyscf_version = pyscf.__version__
    except ImportError:  # pragma: no cover
        pyscf_version = None
    path = out / "metadata.json"
    meta = {"level": level.as_dict(), "properties": list(properties), "runs": []}
    if path.exists():
        with open(path) as f:
            meta = json.load(f)
    meta["runs"].append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pyscf": pyscf_version, "equinet": equinet.__version__, "numpy": np.__version__,
        "python": platform.python_version()})
    if len({r["pyscf"] for r in meta["runs"]}) > 1:
        warnings.warn(f"{out}: runs with different PySCF versions "
                      f"{sorted({str(r['pyscf']) for r in meta['runs']})} in one folder")
    with atomic_write(path, "w") as f:
        json.dump(meta, f, indent=1)


def _label_shard(items, level, properties, labeller) -> dict:
    """Run one shard: ``items`` are ``(index, hash, z, pos)``. Runs in a worker."""
    from ..chem.labels import SCFNotConverged, compute_labels

    labeller = compute_labels if labeller is None else labeller
    arrays: Dict[str, np.ndarray] = {}
    index, hashes, failed = [], [], []
    for i, h, z, pos in items:
        try:
            labels = labeller(z, pos, level, properties)
        except SCFNotConverged as error:
            failed.append({"index": i, "hash": h, "error": "SCFNotConverged",
                           "reason": str(error), "cycles": error.cycles})
            continue
        except Exception as error:  # recorded and warned about, never silently dropped
            failed.append({"index": i, "hash": h, "error": type(error).__name__,
                           "reason": str(error), "cycles": None})
            continue
        arrays[f"{i}/z"], arrays[f"{i}/pos"] = z, pos
        for key, value in labels.items():
            arrays[f"{i}/{key}"] = np.asarray(value)
        index.append(i)
        hashes.append(h)
    arrays["index"] = np.asarray(index, dtype=np.int64)
    arrays["hash"] = np.asarray(hashes, dtype="<U32")
    arrays["failed"] = np.asarray(json.dumps(failed))
    return arrays


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _thread_environment(threads: int):
    """Set the thread counts in the environment the workers are spawned with.

    BLAS libraries read them once, when numpy loads, before any initializer runs.
    """
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _init_worker(threads: int) -> None:
    from pyscf import lib

    lib.num_threads(threads)
    with contextlib.suppress(ImportError):
        import torch
        torch.set_num_threads(threads)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _folder_lock(out: Path):
    """An exclusive lock on ``out`` for the run (POSIX only): two runs never share a folder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another equinet generate is running in {out}") from None
        yield


def generate(geometries: Iterable, level, out_dir, *,
             properties: Sequence[str] = DEFAULT_PROPERTIES, workers: int = 1,
             shard_size: int = 1, progress: bool = True, retry_failed: bool = False,
             labeller: Optional[Callable] = None) -> GenerationReport:
    r"""Label ``geometries`` at ``level`` into shards in ``out_dir`` (resumable).

    Parameters
    ----------
    geometries : iterable
        ``(z, pos)`` pairs (positions in Angstrom), ``ase.Atoms`` or a sampler's output
        (:mod:`equinet.data.samplers`). Geometry ``i`` is identified by ``i`` and by
        :func:`geometry_hash`.
    level : equinet.chem.labels.LevelOfTheory
    out_dir : str or path
        Created if missing. A rerun with the same arguments computes only what is missing.
    properties : sequence of str
        Keys of :data:`equinet.chem.labels.PROPERTIES`.
    workers : int
        Processes; 1 runs in this process.
    shard_size : int
        Geometries per file (1: a crash loses no finished molecule).
    progress : bool
        Show a tqdm progress bar.
    retry_failed : bool
        Run the geometries that failed in an earlier run again.
    labeller : callable, optional
        ``labeller(z, pos, level, properties) -> dict`` in place of ``compute_labels``
        (picklable, for ``workers > 1``).

    Returns
    -------
    GenerationReport

    Raises
    ------
    FolderMismatch
        If ``out_dir`` holds data of other geometries, level, properties or shard size.

    Examples
    --------
    >>> import tempfile
    >>> from equinet.chem.labels import LevelOfTheory
    >>> h2 = [([1, 1], [[0, 0, 0], [0, 0, d]]) for d in (0.70, 0.74)]
    >>> out = tempfile.mkdtemp()
    >>> r = generate(h2, LevelOfTheory("HF", "sto-3g"), out, progress=False)
    >>> r.labelled, r.computed, r.failed
    (2, 2, [])
    >>> generate(h2, LevelOfTheory("HF", "sto-3g"), out, progress=False).computed
    0
    """
    start = time.perf_counter()
    geoms = as_geometries(geometries)
    properties = list(properties)
    from ..chem.labels import PROPERTIES

    unknown = sorted(set(properties) - set(PROPERTIES))
    if unknown:
        raise ValueError(f"unknown properties {unknown}; choose from {PROPERTIES}")
    if shard_size < 1 or workers < 1:
        raise ValueError(f"shard_size and workers must be >= 1, got {shard_size}, {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hashes = [geometry_hash(z, pos, level) for z, pos in geoms]
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "level": level.as_dict(),
                "properties": properties, "shard_size": shard_size, "count": len(geoms),
                "same_atoms": all(np.array_equal(z, geoms[0][0]) for z, _ in geoms),
                "hashes": hashes}
    with _folder_lock(out):
        for stale in out.glob(".shard_*.tmp"):  # left by a killed run; we hold the lock
            stale.unlink()
        if geoms:   # a wrong basis or charge fails here, not N times, and writes nothing
            level.build_mole(*geoms[0])
        _check_manifest(out, manifest)
        _write_metadata(out, level, properties)
        n_shards = -(-len(geoms) // shard_size)
        pending, done = [], 0
        for s in range(n_shards):
            path = shard_path(out, s)
            if path.exists():
                index, _, failed = read_shard_index(path)
                if not (retry_failed and failed):
                    done += len(index) + len(failed)
                    continue
            pending.append(s)
        computed = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(geoms), initial=done, unit="mol", desc="generate")

        def items(s):
            lo, hi = s * shard_size, min(len(geoms), (s + 1) * shard_size)
            return [(i, hashes[i], *geoms[i]) for i in range(lo, hi)]

        def finish(s, arrays):
            nonlocal computed
            with atomic_write(shard_path(out, s), "wb") as f:
                np.savez(f, **arrays)
            failed = json.loads(str(arrays["failed"]))
            for entry in failed:
                warnings.warn(f"geometry {entry['index']} left out: {entry['error']}: "
                              f"{entry['reason']}")
            n = len(arrays["index"]) + len(failed)
            computed += n
            if bar is not None:
                bar.update(n)

        try:
            if workers == 1 or len(pending) <= 1:
                for s in pending:
                    finish(s, _label_shard(items(s), level, properties, labeller))
            else:
                threads = max(1, _cpus() // workers)
                pool = futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(threads,))
                try:
                    with _thread_environment(threads):  # workers start on submit
                        jobs = {pool.submit(_label_shard, items(s), level, properties,
                                            labeller): s for s in pending}
                    for job in futures.as_completed(jobs):
                        finish(jobs[job], job.result())
                finally:  # on Ctrl-C or an error: drop queued shards, keep written ones
                    pool.shutdown(wait=False, cancel_futures=True)
        finally:
            if bar is not None:
                bar.close()
        return _summarise(out, len(geoms), computed, time.perf_counter() - start)


def _summarise(out: Path, total: int, computed: int, seconds: float) -> GenerationReport:
    labelled, failed = 0, []
    for path in sorted(out.glob("shard_*.npz")):
        index, _, fails = read_shard_index(path)
        labelled += len(index)
        failed.extend(fails)
    with atomic_write(out / "failed.json", "w") as f:
        json.dump({"failed": failed}, f, indent=1)
    return GenerationReport(out, total, labelled, computed, failed, seconds)

