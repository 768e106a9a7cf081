r"""The compact tensor cache behind :class:`equinet.data.QM9`, and the column layout it shares.

A source (qm9pack's CSV files, a folder of ``dsgdb9nsd_*.xyz`` files or the
``dsgdb9nsd.xyz.tar.bz2`` archive) is parsed once into flat arrays:

======================  ===========  ====================================================
name                    dtype        shape / meaning
======================  ===========  ====================================================
``index``               int64        ``[M]`` QM9 id of each molecule (sorted)
``ptr``                 int64        ``[M + 1]`` molecule ``i`` owns atoms ``ptr[i]:ptr[i+1]``
``z``                   int8         ``[N]`` atomic numbers
``pos``                 float64      ``[N, 3]`` positions in Angstrom
``mulliken``            float64      ``[N]`` Mulliken charges (e)
``props``               float64      ``[M, 15]`` the columns :data:`COLUMNS` in file units
``polar``               float64      ``[M, 6]`` ``xx, xy, yy, xz, yz, zz`` (a0^3), CSV only
``smiles``              uint8        concatenated GDB SMILES strings (ASCII)
``smiles_ptr``          int64        ``[M + 1]`` offsets into ``smiles``
======================  ===========  ====================================================

The cache file holds these as tensors together with a header: the format name and
:data:`FORMAT_VERSION`, a fingerprint of the source, and the sha256 of the arrays' own
bytes. :func:`load` accepts a file only if all of them match, so a truncated or
foreign file, a cache of another version, or one built from other source files is
rebuilt (:class:`CacheInvalid` says why), never silently read. Writes are atomic
(:func:`equinet._cache.atomic_write`).
"""
import hashlib
import os
from pathlib import Path
from typing import Dict, Iterable, Union

import numpy as np
import torch

from .._cache import atomic_write

__all__ = ["COLUMNS", "SYMBOLS", "FORMAT_VERSION", "CacheInvalid", "fingerprint", "save",
           "load", "assemble"]

#: The 15 numbers of line 2 of a QM9 xyz file after the tag and the id, in file order.
COLUMNS = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
           "U0", "U", "H", "G", "Cv")
#: Element symbols of QM9 and their atomic numbers.
SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
#: Bumped whenever the arrays or their meaning change; older caches are rebuilt.
FORMAT_VERSION = 1
_FORMAT = "equinet-qm9-cache"
_ARRAYS = ("index", "ptr", "z", "pos", "mulliken", "props", "polar", "smiles", "smiles_ptr")


class CacheInvalid(Exception):
    """A cache file that must not be used; the message says why."""


def _sha256_file(path: Path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 22)
            if not block:
                break
            h.update(block)
    return h


def fingerprint(files: Iterable[Union[str, os.PathLike]], contents: bool = True) -> str:
    """sha256 over the files' names, sizes and (``contents=True``) full bytes.

    With ``contents=False`` (used for folders of 130k small xyz files, where reading
    every file on each load would cost seconds) the modification times stand in for
    the bytes.
    """
    h = hashlib.sha256()
    for path in files:
        path = Path(path)
        st = path.stat()
        h.update(f"{path.name}\0{st.st_size}\0".encode())
        if contents:
            _sha256_file(path, h)
        else:
            h.update(f"{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _content_sha(arrays: Dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in _ARRAYS:
        t = arrays[name].contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def save(path: Union[str, os.PathLike], arrays: Dict[str, np.ndarray], source: str) -> None:
    """Write ``arrays`` (see the module table) atomically with their header."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in _ARRAYS}
    header = {"format": _FORMAT, "version": FORMAT_VERSION, "source": source,
              "sha256": _content_sha(tensors)}
    with atomic_write(path, "wb") as f:
        torch.save({"header": header, "arrays": tensors}, f)


def load(path: Union[str, os.PathLike], source: str) -> Dict[str, torch.Tensor]:
    """Read a cache file, checking format, version, source fingerprint and content hash.

    Raises
    ------
    FileNotFoundError
        No cache file yet.
    CacheInvalid
        The file exists but is unreadable (e.g. truncated), of another format version,
        built from another source, or its arrays do not match their recorded sha256.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, ...
        raise CacheInvalid(f"cannot read {path} ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("header"), dict):
        raise CacheInvalid(f"{path} is not an equinet QM9 cache")
    header, arrays = blob["header"], blob.get("arrays")
    if header.get("format") != _FORMAT:
        raise CacheInvalid(f"{path} is not an equinet QM9 cache")
    if header.get("version") != FORMAT_VERSION:
        raise CacheInvalid(f"{path} has format version {header.get('version')}, "
                           f"this equinet writes version {FORMAT_VERSION}")
    if header.get("source") != source:
        raise CacheInvalid(f"{path} was built from other source files (fingerprint differs)")
    if not isinstance(arrays, dict) or set(arrays) != set(_ARRAYS):
        raise CacheInvalid(f"{path} lacks some arrays")
    if _content_sha(arrays) != header.get("sha256"):
        raise CacheInvalid(f"{path}: content checksum mismatch (corrupt file)")
    return arrays


def assemble(index, natoms, z, pos, mulliken, props, polar, smiles) -> Dict[str, np.ndarray]:
    """Flat arrays (the module table) from per-molecule lists, sorted by QM9 id."""
    index = np.asarray(index, dtype=np.int64)
    natoms = np.asarray(natoms, dtype=np.int64)
    m = len(index)
    ptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(natoms, out=ptr[1:])
    z = np.asarray(z, dtype=np.int8)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    mulliken = np.asarray(mulliken, dtype=np.float64)
    props = np.asarray(props, dtype=np.float64).reshape(m, len(COLUMNS))
    polar = (np.full((m, 6), np.nan) if polar is None
             else np.asarray(polar, dtype=np.float64).reshape(m, 6))
    if not (len(z) == len(pos) == len(mulliken) == ptr[-1]):
        raise ValueError(f"atom counts disagree: N_atoms sum {ptr[-1]}, {len(z)} elements, "
                         f"{len(pos)} positions, {len(mulliken)} charges")
    encoded = [s.encode("ascii") for s in smiles]
    sptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum([len(s) for s in encoded], out=sptr[1:])
    sblob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    out = {"index": index, "ptr": ptr, "z": z, "pos": pos, "mulliken": mulliken,
           "props": props, "polar": polar, "smiles": sblob, "smiles_ptr": sptr}
    order = np.argsort(index, kind="stable")
    if np.any(order != np.arange(m)):
        out = _reorder(out, order)
    if m and np.any(np.diff(out["index"]) == 0):
        dup = out["index"][1:][np.diff(out["index"]) == 0][0]
        raise ValueError(f"molecule id {dup} occurs more than once")
    return out


def _reorder(a: Dict[str, np.ndarray], order: np.ndarray) -> Dict[str, np.ndarray]:
    def gather(values, ptr):
        pieces = [values[ptr[i]:ptr[i + 1]] for i in order]
        new_ptr = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in pieces], out=new_ptr[1:])
        return (np.concatenate(pieces) if pieces else values[:0]), new_ptr

    out = dict(a)
    for name in ("z", "pos", "mulliken"):
        out[name], ptr = gather(a[name], a["ptr"])
    out["ptr"] = ptr
    out["smiles"], out["smiles_ptr"] = gather(a["smiles"], a["smiles_ptr"])
    for name in ("index", "props", "polar"):
        out[name] = a[name][order]
    return out
