r"""A :class:`torch.utils.data.Dataset` over a folder written by :func:`equinet.data.generate`.

``ds[i]`` is a dict of tensors for the ``i``-th labelled geometry (in geometry-index
order; geometries that failed are absent):

=================  ===============================  ====================================
key                shape                            collated by :meth:`collate` as
=================  ===============================  ====================================
``pos``            ``[n, 3]`` Angstrom              per node
``z``              ``[n]`` int64                    per node
``index``          ``[]`` int64                     per graph: the geometry index
``energy``         ``[]`` Hartree                   per graph
``forces``         ``[n, 3]`` Hartree/Angstrom      per node
``dipole``         ``[3]`` Debye                    per graph
``scf_cycles``     ``[]`` int64                     per graph
AO-sized labels    e.g. ``fock`` ``[nao, nao]``     per graph, see below
=================  ===============================  ====================================

The AO-sized labels (:data:`AO_LABELS`: ``fock``, ``overlap``, ``density_matrix``,
``orbital_energies``, ``orbital_coefficients``, ``df_coefficients``) are stacked into
``[B, ...]`` when every geometry of the folder has the same atoms (then they have the
same shapes), and kept as lists of ``B`` tensors otherwise (``list_keys`` of
:func:`equinet.graph.collate`).

AO matrices are in PySCF's AO order (see :mod:`equinet.chem.labels`). The files are
opened per item, so the dataset pickles to DataLoader workers and works with
``DistributedSampler``. :func:`read_manifest` and :func:`read_shard_index` read the
folder format (described in :mod:`equinet.data.generate`) without the labels.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..graph import Batch, collate

__all__ = ["ShardDataset", "NODE_LABELS", "FIXED_LABELS", "AO_LABELS", "read_manifest",
           "read_shard_index", "shard_path", "FORMAT"]

#: ``manifest.json["format"]`` of a folder written by :func:`equinet.data.generate`.
FORMAT = "equinet-shards"
FORMAT_VERSION = 1

#: Labels with one row per atom.
NODE_LABELS = ("forces",)
#: Labels with the same shape for every molecule.
FIXED_LABELS = ("energy", "dipole", "scf_cycles")
#: Labels whose size follows the basis (the same shape only for the same atoms).
AO_LABELS = ("fock", "overlap", "density_matrix", "orbital_energies",
             "orbital_coefficients", "df_coefficients")


def read_manifest(folder) -> dict:
    """The ``manifest.json`` of a generated folder (``FileNotFoundError`` if none)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no manifest.json: not a generated folder")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format {manifest.get('format')!r} version "
                         f"{manifest.get('version')!r}, expected {FORMAT!r} {FORMAT_VERSION}")
    return manifest


def shard_path(folder, shard: int) -> Path:
    """The file of shard number ``shard`` (geometries ``shard * shard_size`` onwards)."""
    return Path(folder) / f"shard_{shard:06d}.npz"


def read_shard_index(path) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """``(index, hash, failed)`` of one shard file, without reading its labels."""
    with np.load(path) as f:
        return f["index"], f["hash"], json.loads(str(f["failed"]))


class ShardDataset(torch.utils.data.Dataset):
    r"""The labelled geometries of a generated folder, one dict of tensors per item.

    Parameters
    ----------
    folder : str or path
        A folder written by :func:`equinet.data.generate` (complete or not: whatever
        shards exist are read).
    keys : sequence of str, optional
        Labels to return (default: every stored property and ``scf_cycles``).
    dtype : torch.dtype
        Floating point dtype of the tensors (the files hold float64).

    Attributes
    ----------
    level : dict
        The level of theory (``LevelOfTheory.as_dict()``).
    indices : list of int
        Geometry index of each item.
    failed : list of dict
        Geometries left out by the generator, with the reason.

    Examples
    --------
    >>> import tempfile
    >>> from equinet.chem.labels import LevelOfTheory
    >>> from equinet.data.generate import generate
    >>> out = tempfile.mkdtemp()
    >>> h2 = [([1, 1], [[0, 0, 0], [0, 0, d]]) for d in (0.70, 0.74, 0.78)]
    >>> _ = generate(h2, LevelOfTheory("HF", "sto-3g"), out, progress=False,
    ...              properties=("energy", "forces", "fock"))
    >>> ds = ShardDataset(out)
    >>> len(ds), sorted(ds[0])
    (3, ['energy', 'fock', 'forces', 'index', 'pos', 'scf_cycles', 'z'])
    >>> b = ds.collate([ds[0], ds[2]])
    >>> b.energy.shape, b.forces.shape, b.fock.shape, b.z.tolist()
    (torch.Size([2]), torch.Size([4, 3]), torch.Size([2, 2, 2]), [1, 1, 1, 1])
    """

    def __init__(self, folder, keys: Optional[Sequence[str]] = None,
                 dtype: torch.dtype = torch.float64):
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        self.level = manifest["level"]
        self.same_atoms = bool(manifest["same_atoms"])
        stored = [p for p in manifest["properties"]
                  if p != "df_coefficients" or self.level.get("auxbasis")] + ["scf_cycles"]
        if keys is None:
            keys = stored
        missing = sorted(set(keys) - set(stored))
        if missing:
            raise KeyError(f"{self.folder} has no labels {missing}; it has {stored}")
        self.keys = list(keys)
        self.dtype = dtype
        hashes = manifest["hashes"]
        entries, self.failed = [], []
        for path in sorted(self.folder.glob("shard_*.npz")):
            index, hash_, failed = read_shard_index(path)
            for i, h in zip(index.tolist(), hash_.tolist()):
                if i >= len(hashes) or hashes[i] != h:
                    raise ValueError(f"{path}: geometry {i} does not belong to this folder's "
                                     "manifest (mixed data?)")
                entries.append((i, path.name))
            self.failed.extend(failed)
        entries.sort()
        self.indices: List[int] = [i for i, _ in entries]
        self._files: List[str] = [name for _, name in entries]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> Dict[str, torch.Tensor]:
        i = self.indices[item]
        with np.load(self.folder / self._files[item]) as f:
            out = {"index": torch.tensor(i, dtype=torch.long),
                   "z": torch.from_numpy(f[f"{i}/z"]).long()}
            for key in ["pos"] + self.keys:
                value = torch.from_numpy(np.asarray(f[f"{i}/{key}"]))
                out[key] = value.to(self.dtype) if value.is_floating_point() else value
        return out

    @property
    def node_keys(self) -> List[str]:
        """Keys :meth:`collate` concatenates per node."""
        return ["z"] + [k for k in self.keys if k in NODE_LABELS]

    @property
    def graph_keys(self) -> List[str]:
        """Keys :meth:`collate` stacks per graph."""
        fixed = [k for k in self.keys if k not in NODE_LABELS and k not in AO_LABELS]
        return ["index"] + fixed + (self._ao_keys() if self.same_atoms else [])

    @property
    def list_keys(self) -> List[str]:
        """Keys :meth:`collate` keeps as lists (AO labels of molecules that differ)."""
        return [] if self.same_atoms else self._ao_keys()

    def _ao_keys(self) -> List[str]:
        return [k for k in self.keys if k in AO_LABELS]

    def collate(self, items: Sequence[Dict[str, torch.Tensor]]) -> Batch:
        """:func:`equinet.graph.collate` with this dataset's keys (for ``collate_fn``)."""
        return collate(items, node_keys=self.node_keys, graph_keys=self.graph_keys,
                       list_keys=self.list_keys)
