r"""QM9 as shipped by the PyPI package ``qm9pack``: CSV files, one row per molecule.

``qm9pack/data/qm9_part{1,2,3}.csv`` hold the 130,831 molecules with the header
:data:`HEADER` (``Elements`` like ``['C','H']``, ``XYZ_Ang`` like ``[[x,y,z],...]`` in
Angstrom, the 15 numbers of the xyz format's line 2 in the same units, see
:mod:`equinet.data.qm9_xyz`). ``qm9_polarizability.csv`` adds a symmetric 3x3
polarizability (a0^3) per molecule as ``A_xx, A_xy, A_yy, A_xz, A_yz, A_zz``.

The files are located without importing qm9pack (its ``__init__`` needs
``pkg_resources`` and pandas): :func:`qm9pack_files` asks ``importlib`` for the
package's folder, which does not execute it.

Examples
--------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> row = ('"dsgdb9nsd_000003.xyz",3,"O","InChI=1S/H2O/h1H2",3,"[2,0,0,1,0]",'
...        '"[\'O\',\'H\',\'H\']","[[-0.03436,0.97754,0.00760],[0.06477,0.02057,0.00153],'
...        '[0.87179,1.30079,0.00069]]","[-0.589706,0.294853,0.294853]",'
...        '"[1671.4222,3803.6305,3907.698]",799.58812,437.90386,282.94545,1.8511,6.31,'
...        '-0.2928,0.0687,0.3615,19.0002,0.021375,-76.404702,-76.401867,-76.400922,'
...        '-76.422349,6.002')
>>> with open(os.path.join(folder, "qm9_part1.csv"), "w") as f:
...     _ = f.write(",".join(HEADER) + "\n" + row + "\n")
>>> arrays = read_csv(folder)
>>> arrays["index"].tolist(), arrays["z"].tolist(), float(arrays["props"][0, 10])
([3], [8, 1, 1], -76.404702)
"""
import csv
import importlib.util
import os
import re
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from ._qm9_cache import COLUMNS, SYMBOLS, assemble

__all__ = ["HEADER", "POLAR_HEADER", "qm9pack_files", "csv_files", "read_csv",
           "QM9PACK_SIZE"]

HEADER = ("XYZ_file", "Index", "SMILES", "InChi", "N_atoms", "Stoichiometry", "Elements",
          "XYZ_Ang", "Mulliken_pop", "Harmonic_Freq_cmi", "RotA_GHz", "RotB_GHz", "RotC_GHz",
          "Dipole_debye", "Polarizability_bohr3", "HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au",
          "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
          "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K")
POLAR_HEADER = ("XYZ_file", "A_xx", "A_xy", "A_yy", "A_xz", "A_yz", "A_zz")
#: Number of molecules in qm9pack 1.0.3 (all of QM9).
QM9PACK_SIZE = 130831
_PART = re.compile(r"qm9_part\d+\.csv$")
_POLAR = "qm9_polarizability.csv"
_STRIP = str.maketrans("", "", "[]'\" ")


def qm9pack_files() -> List[Path]:
    """The CSV files of the installed ``qm9pack`` (parts first, polarizability last).

    Raises
    ------
    FileNotFoundError
        If qm9pack is not installed (``pip install qm9pack``) or lacks its data files.
    """
    spec = importlib.util.find_spec("qm9pack")  # locates, does not execute the package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package qm9pack is not installed: pip install qm9pack "
                                "(or pass source=<folder or file> to QM9)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return csv_files(folder)


def csv_files(source: Union[str, os.PathLike]) -> List[Path]:
    """``qm9_part*.csv`` (sorted) and, if present, ``qm9_polarizability.csv`` of a folder.

    ``source`` may also be a single CSV file with the :data:`HEADER`.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"QM9 CSV source {source} does not exist")
    parts = sorted((p for p in source.iterdir() if _PART.search(p.name)),
                   key=lambda p: int(re.findall(r"\d+", p.name)[-1]))
    if not parts:
        raise FileNotFoundError(f"{source} holds no qm9_part*.csv files")
    polar = source / _POLAR
    return parts + ([polar] if polar.is_file() else [])


def _rows(path: Path, header: Sequence[str]):
    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            first = next(reader, None)
            if first is None or tuple(first) != tuple(header):
                raise ValueError(f"{path}: unexpected header {first!r}, expected "
                                 f"{','.join(header)}")
            rows = list(reader)
        except csv.Error as err:
            raise ValueError(f"{path}: line {reader.line_num}: {err} (truncated file?)") from None
    for k, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {k + 1} has {len(row)} fields, expected "
                             f"{len(header)} (truncated file?)")
    return rows


def _floats(strings: List[str], count: int, what: str, path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # np.fromstring(text, sep=...)
        values = np.fromstring(",".join(strings).translate(_STRIP), sep=",")
    if values.size != count:
        raise ValueError(f"{path}: {what}: {values.size} numbers for {count} expected "
                         "(malformed or truncated field)")
    return values


def _read_part(path: Path):
    rows = _rows(path, HEADER)
    natoms = np.array([int(r[4]) for r in rows], dtype=np.int64)
    total = int(natoms.sum())
    elements = ",".join(r[6] for r in rows).translate(_STRIP).split(",") if rows else []
    if len(elements) != total:
        raise ValueError(f"{path}: {len(elements)} elements for {total} atoms (N_atoms)")
    try:
        z = [SYMBOLS[e] for e in elements]
    except KeyError as err:
        raise ValueError(f"{path}: unknown element {err.args[0]!r}") from None
    try:
        pos = _floats([r[7] for r in rows], 3 * total, "XYZ_Ang", path)
        mulliken = _floats([r[8] for r in rows], total, "Mulliken_pop", path)
    except ValueError:
        for k, r in enumerate(rows):  # name the first bad row
            if r[7].count(",") != 3 * natoms[k] - 1 or r[8].count(",") != natoms[k] - 1:
                raise ValueError(f"{path}: row {k + 1} ({r[0]}): XYZ_Ang or Mulliken_pop "
                                 f"does not have N_atoms = {natoms[k]} entries") from None
        raise
    props = _floats([",".join(r[10:]) for r in rows], len(rows) * len(COLUMNS),
                    "property columns", path).reshape(-1, len(COLUMNS))
    try:
        index = np.array([int(r[1]) for r in rows], dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"{path}: Index column: {err}") from None
    return index, natoms, z, pos, mulliken, props, [r[2] for r in rows]


def _read_polar(path: Path) -> Dict[int, np.ndarray]:
    rows = _rows(path, POLAR_HEADER)
    try:
        ids = [int(r[0][r[0].rindex("_") + 1:r[0].rindex(".")]) for r in rows]
    except ValueError:
        raise ValueError(f"{path}: XYZ_file names must look like dsgdb9nsd_000001.xyz") from None
    values = _floats([",".join(r[1:]) for r in rows], 6 * len(rows), "tensor", path)
    return dict(zip(ids, values.reshape(-1, 6)))


def read_csv(source: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
             ) -> Dict[str, np.ndarray]:
    """Parse CSV files (a folder, one file, or a list of files) into the cache arrays.

    Molecules missing from ``qm9_polarizability.csv`` (or all, without that file) get
    ``NaN`` polarizabilities.
    """
    files = csv_files(source) if isinstance(source, (str, os.PathLike)) else \
        [Path(p) for p in source]
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"QM9 CSV file {p} does not exist")
    parts = [p for p in files if p.name != _POLAR]
    polar_files = [p for p in files if p.name == _POLAR]
    pieces = [_read_part(p) for p in parts]
    index, natoms, z, pos, mulliken, props, smiles = (
        [x for piece in pieces for x in piece[k]] if k in (2, 6) else
        np.concatenate([piece[k] for piece in pieces]) for k in range(7))
    polar = None
    if polar_files:
        table = _read_polar(polar_files[0])
        nan = np.full(6, np.nan)
        polar = np.stack([table.get(int(i), nan) for i in index]) if len(index) else None
    return assemble(index, natoms, z, pos, mulliken, props, polar, smiles)
