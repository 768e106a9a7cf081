r"""The original QM9 files: ``dsgdb9nsd_*.xyz`` (a folder, or the ``.xyz.tar.bz2`` archive).

Each molecule is one extended-xyz text (Ramakrishnan et al., Sci. Data 1, 140022, 2014)::

    n_atoms
    gdb <id> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv      (17 fields)
    <element> <x> <y> <z> <Mulliken charge>                          (n_atoms lines, Angstrom)
    <harmonic frequencies, cm^-1>
    <GDB SMILES> <B3LYP SMILES>
    <GDB InChI> <B3LYP InChI>

Units of line 2: A, B, C in GHz; mu in Debye; alpha in a0^3; homo, lumo, gap in Hartree;
r2 in a0^2; zpve, U0, U, H, G in Hartree; Cv in cal/(mol K). Numbers may be written in
Mathematica style with ``*^`` for the exponent (``1.2*^-6`` is ``1.2e-6``).

Examples
--------
>>> text = ("3\ngdb 3\t799.58812\t437.90386\t282.94545\t1.8511\t6.31\t-0.2928\t0.0687\t"
...         "0.3615\t19.0002\t0.021375\t-76.404702\t-76.401867\t-76.400922\t-76.422349\t6.002\n"
...         "O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.589706\n"
...         "H\t 0.0647664923\t 0.0205721989\t 0.0015346341\t 0.294853\n"
...         "H\t 0.8717903737\t 1.3007924048\t 6.931336*^-4\t 0.294853\n"
...         "1671.4222\t3803.6305\t3907.698\nO\tO\nInChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2\n")
>>> mol = parse_xyz(text)
>>> mol["index"], mol["z"], mol["props"][COLUMNS.index("U0")], mol["pos"][2][2]
(3, [8, 1, 1], -76.404702, 0.0006931336)
"""
import os
import re
import tarfile
from pathlib import Path
from typing import Dict, Iterator, List, Union

from ._qm9_cache import COLUMNS, SYMBOLS, assemble

__all__ = ["parse_xyz", "iter_xyz", "read_xyz", "xyz_files", "COLUMNS"]

_NAME = re.compile(r"dsgdb9nsd_(\d+)\.xyz$")


def _number(token: str, where: str) -> float:
    try:
        return float(token.replace("*^", "e"))
    except ValueError:
        raise ValueError(f"{where}: {token!r} is not a number") from None


def parse_xyz(text: str, name: str = "<xyz>") -> Dict:
    """Parse one QM9 xyz text into a dict of plain Python values.

    Returns
    -------
    dict
        ``index`` (int), ``z`` (list of int), ``pos`` (list of ``[x, y, z]``, Angstrom),
        ``mulliken`` (list of float), ``props`` (the 15 :data:`COLUMNS`, file units),
        ``smiles`` (the GDB SMILES).

    Raises
    ------
    ValueError
        Naming ``name`` and the line, for a truncated file or a malformed field.
    """
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{name}: empty file")
    try:
        n = int(lines[0].split()[0])
    except ValueError:
        raise ValueError(f"{name}: line 1 must be the number of atoms, got {lines[0]!r}") from None
    if len(lines) < n + 5:
        raise ValueError(f"{name}: truncated: {len(lines)} lines, a molecule of {n} atoms "
                         f"needs {n + 5}")
    head = lines[1].split()
    if len(head) != 2 + len(COLUMNS):
        raise ValueError(f"{name}: line 2 has {len(head)} fields, expected {2 + len(COLUMNS)} "
                         "(tag, id, A, B, C, mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, "
                         "G, Cv)")
    try:
        index = int(head[1])
    except ValueError:
        raise ValueError(f"{name}: line 2: molecule id {head[1]!r} is not an integer") from None
    props = [_number(t, f"{name}: line 2") for t in head[2:]]
    z, pos, charges = [], [], []
    for k in range(n):
        fields = lines[2 + k].split()
        where = f"{name}: line {3 + k}"
        if len(fields) != 5:
            raise ValueError(f"{where}: expected 'element x y z charge', got {lines[2 + k]!r}")
        if fields[0] not in SYMBOLS:
            raise ValueError(f"{where}: unknown element {fields[0]!r}")
        z.append(SYMBOLS[fields[0]])
        pos.append([_number(t, where) for t in fields[1:4]])
        charges.append(_number(fields[4], where))
    smiles = lines[n + 3].split()
    if not smiles:
        raise ValueError(f"{name}: line {n + 4}: missing SMILES")
    return {"index": index, "z": z, "pos": pos, "mulliken": charges, "props": props,
            "smiles": smiles[0]}


def xyz_files(folder: Union[str, os.PathLike]) -> List[Path]:
    """The ``dsgdb9nsd_*.xyz`` files of ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"QM9 xyz folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if _NAME.search(p.name))
    if not files:
        raise FileNotFoundError(f"{folder} holds no dsgdb9nsd_*.xyz files")
    return files


def iter_xyz(source: Union[str, os.PathLike]) -> Iterator[Dict]:
    """Yield :func:`parse_xyz` dicts from a folder of xyz files or a ``.tar.bz2`` archive.

    The archive is read as a stream (``tarfile`` mode ``r|*``), never unpacked to disk.
    """
    source = Path(source)
    if source.is_dir():
        for path in xyz_files(source):
            yield parse_xyz(path.read_text(encoding="latin-1"), str(path))
        return
    if not source.exists():
        raise FileNotFoundError(f"QM9 source {source} does not exist")
    found = 0
    try:
        with tarfile.open(source, "r|*") as archive:
            for member in archive:
                if not (member.isfile() and _NAME.search(member.name)):
                    continue
                data = archive.extractfile(member).read()
                found += 1
                yield parse_xyz(data.decode("latin-1"), f"{source}:{member.name}")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{source}: cannot read the archive (truncated or corrupt?): "
                         f"{type(err).__name__}: {err}") from None
    if not found:
        raise ValueError(f"{source} holds no dsgdb9nsd_*.xyz files")


def read_xyz(source: Union[str, os.PathLike]):
    """All molecules of a folder or archive as the flat arrays of the QM9 cache."""
    cols = {k: [] for k in ("index", "natoms", "z", "pos", "mulliken", "props", "smiles")}
    for mol in iter_xyz(source):
        cols["index"].append(mol["index"])
        cols["natoms"].append(len(mol["z"]))
        cols["z"] += mol["z"]
        cols["pos"] += mol["pos"]
        cols["mulliken"] += mol["mulliken"]
        cols["props"].append(mol["props"])
        cols["smiles"].append(mol["smiles"])
    return assemble(cols["index"], cols["natoms"], cols["z"], cols["pos"], cols["mulliken"],
                    cols["props"], None, cols["smiles"])
