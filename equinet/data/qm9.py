r"""QM9 (Ramakrishnan et al., Sci. Data 1, 140022, 2014): 130,831 small organic molecules.

Geometries and 15 properties at B3LYP/6-31G(2df,p) for molecules of up to nine heavy
atoms (C, N, O, F). :class:`QM9` reads them from the CSV files shipped in the PyPI
package ``qm9pack`` (default; see :mod:`equinet.data.qm9_csv`), or from the original
``dsgdb9nsd_*.xyz`` files / ``dsgdb9nsd.xyz.tar.bz2`` archive (:mod:`equinet.data.qm9_xyz`).
The first load parses the source (about 12 s for qm9pack's 230 MB on a busy 2-core
machine) into a tensor cache under ``$EQUINET_CACHE/qm9`` (:mod:`equinet.data._qm9_cache`);
later loads read the cache (about a second) after checking it against the source's sha256.

Units are those of the files (:data:`UNITS`); :meth:`QM9.convert` converts, e.g. Hartree
to eV with CODATA 2018 :math:`E_h = 27.211386245988` eV.

Examples
--------
>>> import os, tempfile
>>> from equinet.data.qm9_csv import HEADER
>>> folder = tempfile.mkdtemp()
>>> row = ('"dsgdb9nsd_000003.xyz",3,"O","InChI=1S/H2O/h1H2",3,"[2,0,0,1,0]",'
...        '"[\'O\',\'H\',\'H\']","[[-0.03436,0.97754,0.00760],[0.06477,0.02057,0.00153],'
...        '[0.87179,1.30079,0.00069]]","[-0.589706,0.294853,0.294853]",'
...        '"[1671.4222,3803.6305,3907.698]",799.58812,437.90386,282.94545,1.8511,6.31,'
...        '-0.2928,0.0687,0.3615,19.0002,0.021375,-76.404702,-76.401867,-76.400922,'
...        '-76.422349,6.002')
>>> with open(os.path.join(folder, "qm9_part1.csv"), "w") as f:
...     _ = f.write(",".join(HEADER) + "\n" + row + "\n")
>>> ds = QM9(root=tempfile.mkdtemp(), source=folder)
>>> mol = ds[0]
>>> len(ds), mol["z"].tolist(), mol["pos"].shape, float(mol["U0"])
(1, [8, 1, 1], torch.Size([3, 3]), -76.404702)
>>> round(float(QM9.convert("U0", mol["U0"] - ds.atomref("U0")[mol["z"]].sum(), "eV")), 4)
-9.2404
>>> batch = ds.collate([ds[0], ds[0]])
>>> batch.num_graphs, batch.species.tolist(), batch.U0.shape
(2, [8, 1, 1, 8, 1, 1], torch.Size([2]))
"""
import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .._cache import cache_dir
from ..graph import Batch, collate
from . import _qm9_cache
from ._qm9_cache import COLUMNS
from .qm9_csv import QM9PACK_SIZE, csv_files, qm9pack_files, read_csv
from .qm9_polar import polarizability_invariants, polarizability_matrix
from .qm9_xyz import read_xyz, xyz_files

__all__ = ["QM9", "PROPERTIES", "UNITS", "HARTREE_EV", "ATOMREF"]

#: The 12 standard targets, in the order of the literature's tables.
PROPERTIES = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
#: Units of every property as stored (those of the files).
UNITS = {"A": "GHz", "B": "GHz", "C": "GHz", "mu": "D", "alpha": "a0^3", "homo": "Ha",
         "lumo": "Ha", "gap": "Ha", "r2": "a0^2", "zpve": "Ha", "U0": "Ha", "U": "Ha",
         "H": "Ha", "G": "Ha", "Cv": "cal/(mol K)"}
#: Hartree in eV (CODATA 2018).
HARTREE_EV = 27.211386245988
_BOHR_ANGSTROM = 0.529177210903  # CODATA 2018
_FACTORS = {
    ("Ha", "eV"): HARTREE_EV, ("Ha", "meV"): 1000 * HARTREE_EV,
    ("Ha", "kcal/mol"): 627.5094740631, ("Ha", "kJ/mol"): 2625.4996394799,
    ("D", "e*Angstrom"): 0.20819433622, ("D", "e*a0"): 0.39343031369,
    ("a0^3", "Angstrom^3"): _BOHR_ANGSTROM ** 3, ("a0^2", "Angstrom^2"): _BOHR_ANGSTROM ** 2,
}
#: Free-atom energies (Ha) at B3LYP/6-31G(2df,p), QM9's ``atomref`` table, indexed by
#: atomic number (H, C, N, O, F; zero elsewhere): ``E - ATOMREF[key][z].sum()`` is the
#: atomisation energy (negative) of a molecule.
ATOMREF = {key: torch.zeros(10, dtype=torch.float64).index_put_(
    (torch.tensor([1, 6, 7, 8, 9]),), torch.tensor(values, dtype=torch.float64))
    for key, values in {
        "U0": [-0.500273, -37.846772, -54.583861, -75.064579, -99.718730],
        "U": [-0.498857, -37.845355, -54.582445, -75.063163, -99.717314],
        "H": [-0.497912, -37.844411, -54.581501, -75.062219, -99.716370],
        "G": [-0.510927, -37.861317, -54.598897, -75.079532, -99.733544],
    }.items()}
_ARCHIVE = re.compile(r"\.(tar|tar\.bz2|tbz2|tar\.gz|tgz|tar\.xz)$")


def _resolve(source) -> Tuple[str, list, bool]:
    """(kind, files to fingerprint, fingerprint contents?) of a source."""
    if isinstance(source, str) and source == "qm9pack":
        return "qm9pack", qm9pack_files(), True
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"QM9 source {path} does not exist")
    if path.is_dir():
        if any(path.glob("qm9_part*.csv")):
            return "csv", csv_files(path), True
        return "xyz", xyz_files(path), False
    if path.suffix == ".csv":
        return "csv", [path], True
    if _ARCHIVE.search(path.name):
        return "xyz", [path], True
    raise ValueError(f"QM9 source {path}: expected 'qm9pack', a folder of qm9_part*.csv or "
                     "dsgdb9nsd_*.xyz files, a .csv file or a .tar.bz2 archive")


class QM9(torch.utils.data.Dataset):
    r"""The QM9 data set as a map-style dataset of molecule dicts.

    Parameters
    ----------
    root : str or path, optional
        Folder of the tensor cache; default ``equinet._cache.cache_dir("qm9")``, i.e.
        ``$EQUINET_CACHE/qm9`` (``~/.cache/equinet/qm9``).
    source : str or path
        ``"qm9pack"`` (the installed package's CSV files), a folder of ``qm9_part*.csv``
        files, one such ``.csv`` file, a folder of ``dsgdb9nsd_*.xyz`` files, or the
        ``dsgdb9nsd.xyz.tar.bz2`` archive.
    dtype : torch.dtype
        Floating dtype of ``pos`` (default ``torch.float32``; the files have 10 decimals,
        float64 keeps them). Properties are always float64: total energies of ~-400 Ha
        would lose meV in float32.
    cache : bool
        Read and write the tensor cache (default). ``False`` parses the source every time.

    Notes
    -----
    ``ds[i]`` is a dict:

    * ``pos`` ``[n, 3]`` (``dtype``, Angstrom), ``z`` and ``species`` ``[n]`` (int64, the
      same tensor: atomic numbers; ``species`` is what :func:`equinet.graph.collate` and
      the models expect),
    * ``index`` (int64 scalar, the QM9 id: ``dsgdb9nsd_<index>.xyz``),
    * the 12 :data:`PROPERTIES` as float64 scalars in :data:`UNITS`,
    * for sources with polarizability tensors (qm9pack; :attr:`has_polarizability`):
      ``alpha_principal`` ``[3]`` (float64, a0^3, ascending eigenvalues) and
      ``alpha_aniso`` (float64, a0^3, anisotropy), rotation invariants of the tensor
      (:func:`equinet.data.qm9_polar.polarizability_invariants`; the isotropic part is
      ``alpha``). The tensor itself is not given in the xyz frame: its frame could not be
      established (see :mod:`equinet.data.qm9_polar`), so it is not rotated into the
      molecule's coordinates; :meth:`polarizability_tensor` returns it as stored.

    Batch the dicts with :meth:`collate` (a ``collate_fn`` for a DataLoader), which
    declares ``z`` per-node and the properties per-graph to :func:`equinet.graph.collate`.

    The rotational constants ``A, B, C`` (GHz), Mulliken charges and GDB SMILES are
    available as :meth:`property` / :meth:`mulliken` / :meth:`smiles`.
    """

    node_keys = ("z",)
    graph_keys = ("index",) + PROPERTIES + ("alpha_principal", "alpha_aniso")

    def __init__(self, root: Optional[Union[str, os.PathLike]] = None,
                 source: Union[str, os.PathLike] = "qm9pack", dtype: torch.dtype = torch.float32,
                 cache: bool = True):
        kind, files, contents = _resolve(source)
        self.source, self.dtype = source, dtype
        arrays = None
        if cache:
            fp = f"{kind}:" + _qm9_cache.fingerprint(files, contents)
            folder = Path(root) if root is not None else cache_dir("qm9")
            where = files[0].parent if kind == "qm9pack" else Path(source)
            name = hashlib.sha256(os.path.abspath(where).encode()).hexdigest()[:16]
            path = folder / f"{kind}-{name}.pt"
            try:
                arrays = _qm9_cache.load(path, fp)
            except FileNotFoundError:
                pass
            except _qm9_cache.CacheInvalid as err:
                warnings.warn(f"QM9 cache rebuilt: {err}", RuntimeWarning, stacklevel=2)
        if arrays is None:
            raw = read_xyz(source) if kind == "xyz" else read_csv(files)
            if kind == "qm9pack" and len(raw["index"]) != QM9PACK_SIZE:
                raise ValueError(f"qm9pack's CSV files hold {len(raw['index'])} molecules, "
                                 f"expected {QM9PACK_SIZE} (truncated installation?)")
            if cache:
                _qm9_cache.save(path, raw, fp)
            arrays = {k: torch.from_numpy(v) for k, v in raw.items()}
        self._a = arrays
        self._z = arrays["z"].long()
        self._pos = arrays["pos"].to(dtype)
        self._props = {k: arrays["props"][:, j] for j, k in enumerate(COLUMNS)}
        self._targets = torch.stack([self._props[k] for k in PROPERTIES], 1)
        polar = arrays["polar"]
        known = ~torch.isnan(polar).any(-1)  # molecules missing from the tensor file: NaN
        self.has_polarizability = bool(known.any())
        if self.has_polarizability:
            inv = polarizability_invariants(polar[known])
            self._alpha_principal = torch.full((len(polar), 3), float("nan"), dtype=torch.float64)
            self._alpha_aniso = torch.full((len(polar),), float("nan"), dtype=torch.float64)
            self._alpha_principal[known], self._alpha_aniso[known] = inv["principal"], inv["aniso"]

    def __len__(self) -> int:
        return len(self._a["index"])

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"molecule {i} out of range for QM9 of {len(self)} molecules")
        s, e = int(self._a["ptr"][i]), int(self._a["ptr"][i + 1])
        # copies, not views: a view would carry the whole data set's storage along
        # (e.g. into a DataLoader worker's shared memory)
        z = self._z[s:e].clone()
        out = {"pos": self._pos[s:e].clone(), "z": z, "species": z,
               "index": self._a["index"][i].clone()}
        out.update(zip(PROPERTIES, self._targets[i].clone().unbind()))
        if self.has_polarizability:
            out["alpha_principal"] = self._alpha_principal[i].clone()
            out["alpha_aniso"] = self._alpha_aniso[i].clone()
        return out

    @classmethod
    def collate(cls, graphs: Sequence[Dict[str, torch.Tensor]]) -> Batch:
        """:func:`equinet.graph.collate` with QM9's keys declared (a DataLoader collate_fn)."""
        return collate(graphs, node_keys=cls.node_keys, graph_keys=cls.graph_keys)

    # ------------------------------------------------------------------ whole-set accessors
    @property
    def index(self) -> torch.Tensor:
        """QM9 ids ``[M]`` (int64), sorted."""
        return self._a["index"]

    @property
    def num_atoms(self) -> torch.Tensor:
        """Atoms per molecule ``[M]`` (int64)."""
        return self._a["ptr"].diff()

    def property(self, key: str) -> torch.Tensor:
        """All values ``[M]`` (float64, :data:`UNITS`) of one of the 15 columns."""
        if key not in self._props:
            raise KeyError(f"unknown QM9 property {key!r}; known: {', '.join(COLUMNS)}")
        return self._props[key]

    def mulliken(self, i: int) -> torch.Tensor:
        """Mulliken charges (e) of molecule ``i``, float64 ``[n]``."""
        return self._a["mulliken"][self._a["ptr"][i]:self._a["ptr"][i + 1]]

    def polarizability_tensor(self, i: int) -> torch.Tensor:
        """qm9pack's 3x3 tensor (a0^3, float64) of molecule ``i`` in its own frame.

        Not the xyz frame of ``pos``, and not rotatable into it (unknown axis signs):
        use only its rotation invariants with the coordinates. NaN without a tensor.
        """
        return polarizability_matrix(self._a["polar"][i])

    def smiles(self, i: int) -> str:
        """The GDB SMILES string of molecule ``i``."""
        p = self._a["smiles_ptr"]
        return bytes(self._a["smiles"][p[i]:p[i + 1]].numpy()).decode("ascii")

    def counts(self) -> torch.Tensor:
        """Element counts ``[M, 5]`` (float64) of H, C, N, O, F per molecule."""
        mol = torch.repeat_interleave(torch.arange(len(self)), self.num_atoms)
        out = torch.zeros(len(self), 10, dtype=torch.float64)
        out.index_put_((mol, self._z), torch.ones(len(mol), dtype=torch.float64),
                       accumulate=True)
        return out[:, [1, 6, 7, 8, 9]]

    # ------------------------------------------------------------- splits, references, units
    def split(self, train: int = 110000, valid: int = 10000, test: Optional[int] = None,
              seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Disjoint random index sets (int64 positions into this dataset).

        The permutation is ``torch.randperm(len(self), generator=torch.Generator()
        .manual_seed(seed))`` (CPU generator: identical on every platform); train is its
        first ``train`` entries, validation the next ``valid``, test the next ``test``
        (default: all the rest). The defaults give the standard 110,000 / 10,000 / 10,831
        split; a smaller ``train`` with the same seed is a prefix of a larger one.
        """
        n_test = len(self) - train - valid if test is None else test
        if min(train, valid, n_test) < 0 or train + valid + n_test > len(self):
            raise ValueError(f"split sizes train={train}, valid={valid}, test={test} do not "
                             f"fit a dataset of {len(self)} molecules")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return (perm[:train], perm[train:train + valid],
                perm[train + valid:train + valid + n_test])

    def fit_reference(self, key: str = "U0", indices: Optional[torch.Tensor] = None
                      ) -> torch.Tensor:
        r"""Per-element reference energies fit by least squares, indexed by atomic number.

        Solves :math:`\min_e \sum_m (E_m - \sum_{Z} c_{mZ} e_Z)^2` over the molecules
        ``indices`` (e.g. the training split; default all), with :math:`c_{mZ}` the
        number of atoms of element ``Z`` (H, C, N, O, F) and no intercept, so the
        reference is a sum over atoms (size-extensive) like a model's output.
        Elements absent from ``indices`` get 0.

        Returns
        -------
        torch.Tensor
            float64 ``[10]`` in the unit of ``key``: ``E - ref[z].sum()`` per molecule.
        """
        counts, y = self.counts(), self.property(key)
        if indices is not None:
            counts, y = counts[indices], y[indices]
        present = counts.sum(0) > 0
        coef = torch.linalg.lstsq(counts[:, present], y[:, None]).solution[:, 0]
        ref = torch.zeros(10, dtype=torch.float64)
        ref[torch.tensor([1, 6, 7, 8, 9])[present]] = coef
        return ref

    @staticmethod
    def atomref(key: str) -> torch.Tensor:
        """QM9's free-atom energies :data:`ATOMREF` (Ha, ``[10]`` by atomic number)."""
        if key not in ATOMREF:
            raise KeyError(f"free-atom references exist for {sorted(ATOMREF)}, not {key!r}")
        return ATOMREF[key].clone()

    @staticmethod
    def convert(key: str, values, unit: str):
        r"""Convert ``values`` of property ``key`` from its file unit to ``unit``.

        Known conversions: Ha to eV, meV, kcal/mol, kJ/mol; D to e*Angstrom, e*a0; a0^3
        to Angstrom^3; a0^2 to Angstrom^2 (CODATA 2018 constants). The file unit itself
        is accepted (factor 1).

        Examples
        --------
        >>> round(QM9.convert("gap", 0.25, "eV"), 6)
        6.802847
        """
        if key not in UNITS:
            raise KeyError(f"unknown QM9 property {key!r}")
        if unit == UNITS[key]:
            return values
        factor = _FACTORS.get((UNITS[key], unit))
        if factor is None:
            options = [b for a, b in _FACTORS if a == UNITS[key]]
            raise ValueError(f"cannot convert {key} from {UNITS[key]} to {unit!r}; "
                             f"known: {options}")
        return values * factor
