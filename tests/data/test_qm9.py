"""QM9: the qm9pack CSV format, the raw xyz format (folder and tar.bz2), the cache, splits."""
import importlib.util
import io
import tarfile
import time
import warnings

import pytest
import torch

from equinet.data import QM9, qm9_csv, qm9_xyz
from equinet.data import _qm9_cache

# Three real QM9 molecules (ids 1, 3, 5) and an invented linear one (id 21): symbol, x, y, z,
# Mulliken charge per atom; the 15 line-2 properties; polarizability (xx, xy, yy, xz, yz, zz).
MOLECULES = [
    (1, "C", [("C", -0.0126981359, 1.0858041578, 0.0080009958, -0.535689),
              ("H", 0.002150416, -0.0060313176, 0.0019761204, 0.133921),
              ("H", 1.0117308433, 1.4637511618, 0.0002765748, 0.133922),
              ("H", -0.540815069, 1.4475266138, -0.8766437152, 0.133923),
              ("H", -0.5238136345, 1.4379326443, 0.9063972942, 0.133923)],
     [157.7118, 157.70997, 157.70699, 0.0, 13.21, -0.3877, 0.1171, 0.5048, 35.3641,
      0.044749, -40.47893, -40.476062, -40.475117, -40.498597, 6.469],
     [13.211, 0.0, 13.211, 0.0, 0.0, 13.211]),
    (3, "O", [("O", -0.0343604951, 0.9775395708, 0.0076015923, -0.589706),
              ("H", 0.0647664923, 0.0205721989, 0.0015346341, 0.294853),
              ("H", 0.8717903737, 1.3007924048, 0.0006931336, 0.294853)],
     [799.58812, 437.90386, 282.94545, 1.8511, 6.31, -0.2928, 0.0687, 0.3615, 19.0002,
      0.021375, -76.404702, -76.401867, -76.400922, -76.422349, 6.002],
     [4.492, 0.0, 8.049, 0.0, 0.0, 6.398]),
    (5, "C#N", [("C", -0.0133239314, 1.1324657151, 0.0082758861, -0.049656),
                ("N", 0.0023107217, -0.0191585871, 0.0019287305, -0.188473),
                ("H", -0.0278026991, 2.1989492963, 0.0141537903, 0.238128)],
     [0.0, 44.593883, 44.593883, 2.8937, 12.99, -0.3604, 0.0191, 0.3796, 48.7476,
      0.016601, -93.411888, -93.40937, -93.408425, -93.431246, 6.278],
     [9.553, 0.0, 9.553, 0.0, 0.0, 19.879]),
    (21, "N#CC#N", [("N", 0.0, 0.0, -1.8, -0.2), ("C", 0.0, 0.0, -0.64, 0.2),
                    ("C", 0.0, 0.0, 0.64, 0.2), ("N", 0.0, 0.0, 1.8, -0.2)],
     [0.0, 4.7, 4.7, 0.0, 38.1, -0.37, -0.09, 0.28, 160.0, 0.016, -185.3, -185.29,
      -185.28, -185.31, 10.5],
     [20.0, 0.0, 20.0, 0.0, 0.0, 74.3]),
]
Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def _num(x):
    return repr(float(x))


def write_csv(folder, molecules=MOLECULES, parts=2, polar=True):
    chunks = [molecules[k::parts] for k in range(parts)]
    for k, chunk in enumerate(chunks):
        lines = [",".join(qm9_csv.HEADER)]
        for idx, smiles, atoms, props, _ in sorted(chunk):
            els = "[" + ",".join(f"'{a[0]}'" for a in atoms) + "]"
            xyz = "[" + ",".join("[" + ",".join(_num(v) for v in a[1:4]) + "]"
                                 for a in atoms) + "]"
            mull = "[" + ",".join(_num(a[4]) for a in atoms) + "]"
            stoich = "[" + ",".join(str(sum(a[0] == e for a in atoms)) for e in "HCNOF") + "]"
            lines.append(f'"dsgdb9nsd_{idx:06d}.xyz",{idx},"{smiles}","InChI=1S/x",'
                         f'{len(atoms)},"{stoich}","{els}","{xyz}","{mull}","[1.0,2.0]",'
                         + ",".join(_num(p) for p in props))
        (folder / f"qm9_part{k + 1}.csv").write_text("\n".join(lines) + "\n")
    if polar:
        lines = [",".join(qm9_csv.POLAR_HEADER)] + [
            f'"dsgdb9nsd_{m[0]:06d}.xyz",' + ",".join(f"{v:.3f}" for v in m[4])
            for m in molecules]
        (folder / "qm9_polarizability.csv").write_text("\n".join(lines) + "\n")
    return folder


def xyz_text(idx, smiles, atoms, props, mathematica=True):
    head = "\t".join(["gdb", str(idx)] + [_num(p) for p in props])
    body = []
    for k, (el, x, y, z, q) in enumerate(atoms):
        zs = _num(z)
        if mathematica and k == 0:  # Mathematica-style exponent, as in the real files
            zs = f"{z * 1e4:.10f}*^-4"
        body.append(f"{el}\t{_num(x)}\t{_num(y)}\t{zs}\t{_num(q)}")
    return "\n".join([str(len(atoms)), head] + body + [
        "1.0\t2.0", f"{smiles}\t{smiles}", "InChI=1S/x\tInChI=1S/x"]) + "\n"


def write_xyz(folder, molecules=MOLECULES):
    for m in molecules:
        (folder / f"dsgdb9nsd_{m[0]:06d}.xyz").write_text(xyz_text(*m[:4]))
    return folder


def write_tar(path, molecules=MOLECULES):
    with tarfile.open(path, "w:bz2") as tar:
        for m in reversed(molecules):  # any order in the archive; the dataset sorts by id
            data = xyz_text(*m[:4]).encode()
            info = tarfile.TarInfo(f"dsgdb9nsd_{m[0]:06d}.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def check_against_fixture(ds, polar):
    assert len(ds) == len(MOLECULES)
    assert ds.index.tolist() == [m[0] for m in MOLECULES]
    for i, (idx, smiles, atoms, props, tensor) in enumerate(MOLECULES):
        mol = ds[i]
        assert int(mol["index"]) == idx and ds.smiles(i) == smiles
        assert mol["z"].dtype == torch.long and mol["z"].tolist() == [Z[a[0]] for a in atoms]
        assert mol["species"] is mol["z"]
        assert mol["pos"].dtype == torch.float32 and mol["pos"].shape == (len(atoms), 3)
        expected = torch.tensor([a[1:4] for a in atoms], dtype=torch.float64)
        torch.testing.assert_close(ds._pos[ds._a["ptr"][i]:ds._a["ptr"][i + 1]].double(),
                                   expected.float().double(), rtol=0, atol=1e-7)
        torch.testing.assert_close(ds.mulliken(i), torch.tensor([a[4] for a in atoms],
                                                                dtype=torch.float64))
        for key, value in zip(qm9_xyz.COLUMNS, props):
            assert ds.property(key)[i].item() == value
            if key in mol:
                assert mol[key].dtype == torch.float64 and mol[key].item() == value
        assert ("alpha_principal" in mol) == ("alpha_aniso" in mol) == polar
        if polar:
            p = ds.polarizability_tensor(i)
            assert p.shape == (3, 3) and torch.equal(p, p.T)
            assert p[0, 0].item() == tensor[0] and p[1, 0].item() == tensor[1]
            assert abs(mol["alpha_principal"].sum().item() / 3 - props[4]) < 0.006
            assert torch.equal(mol["alpha_principal"], torch.linalg.eigvalsh(p))


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_csv_fixture(tmp_path, cache):
    (tmp_path / "src").mkdir()
    src = write_csv(tmp_path / "src")
    check_against_fixture(QM9(root=cache, source=src), polar=True)
    # a single CSV file is a source too (no polarizabilities then)
    check_against_fixture(QM9(root=cache, source=write_csv(src, parts=1) / "qm9_part1.csv"),
                          polar=False)


def test_xyz_folder_and_archive(tmp_path, cache):
    (tmp_path / "xyz").mkdir()
    folder = write_xyz(tmp_path / "xyz")
    assert "*^" in (folder / "dsgdb9nsd_000001.xyz").read_text()
    check_against_fixture(QM9(root=cache, source=folder), polar=False)
    archive = write_tar(tmp_path / "dsgdb9nsd.xyz.tar.bz2")
    check_against_fixture(QM9(root=cache, source=archive, cache=False), polar=False)


def test_parse_xyz_mathematica_exponent():
    mol = qm9_xyz.parse_xyz(xyz_text(*MOLECULES[1][:4]).replace("-0.2928", "-2.928*^-1"))
    assert mol["props"][qm9_xyz.COLUMNS.index("homo")] == pytest.approx(-0.2928, abs=1e-15)
    assert mol["pos"][0][2] == pytest.approx(0.0076015923, abs=1e-15)


def test_cache_reuse_and_rebuild(tmp_path, cache, monkeypatch):
    (tmp_path / "src").mkdir()
    src = write_csv(tmp_path / "src")
    QM9(root=cache, source=src)
    (path,) = list(cache.glob("*.pt"))
    # a second load reads the cache, not the CSV
    monkeypatch.setattr("equinet.data.qm9.read_csv", lambda *a: pytest.fail("re-parsed"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_fixture(QM9(root=cache, source=src), polar=True)
    monkeypatch.undo()

    def rebuilt(match):
        with pytest.warns(RuntimeWarning, match=match):
            ds = QM9(root=cache, source=src)
        check_against_fixture(ds, polar=True)
        with warnings.catch_warnings():  # and the rebuilt cache is valid again
            warnings.simplefilter("error")
            QM9(root=cache, source=src)

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    rebuilt("cannot read")
    blob = torch.load(path, weights_only=True)
    blob["arrays"]["props"][1, 10] += 1.0  # flipped content, header unchanged
    torch.save(blob, path)
    rebuilt("checksum")
    monkeypatch.setattr(_qm9_cache, "FORMAT_VERSION", _qm9_cache.FORMAT_VERSION + 1)
    rebuilt("format version")
    monkeypatch.undo()
    rebuilt("format version")  # back to the current version: rebuilt once more
    path.write_bytes(b"not a cache")
    rebuilt("cannot read")
    # an edited source invalidates the cache: new values are read
    text = (src / "qm9_part2.csv").read_text().replace("-76.404702", "-76.5")
    (src / "qm9_part2.csv").write_text(text)
    with pytest.warns(RuntimeWarning, match="other source"):
        ds = QM9(root=cache, source=src)
    assert ds[1]["U0"].item() == -76.5


def test_missing_sources(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        QM9(root=cache, source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dsgdb9nsd"):
        QM9(root=cache, source=tmp_path / "empty")
    (tmp_path / "odd.txt").write_text("x")
    with pytest.raises(ValueError, match="expected"):
        QM9(root=cache, source=tmp_path / "odd.txt")


def test_partial_polarizability_file(tmp_path, cache):
    (tmp_path / "src").mkdir()
    src = write_csv(tmp_path / "src")
    polar = src / "qm9_polarizability.csv"
    lines = polar.read_text().splitlines()
    polar.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # drop molecule 3
    ds = QM9(root=cache, source=src)
    assert ds.has_polarizability and torch.isnan(ds[1]["alpha_aniso"])
    assert torch.isnan(ds[1]["alpha_principal"]).all() and not torch.isnan(ds[0]["alpha_aniso"])


def test_truncated_csv(tmp_path, cache):
    (tmp_path / "src").mkdir()
    src = write_csv(tmp_path / "src", parts=1, polar=False)
    part = src / "qm9_part1.csv"
    text = part.read_text()
    part.write_text(text[: text.rindex("[[") + 30])  # cut inside the last row's XYZ_Ang
    with pytest.raises(ValueError, match="qm9_part1.csv.*truncated"):
        QM9(root=cache, source=src)
    part.write_text(text.replace("XYZ_file", "xyz_file"))
    with pytest.raises(ValueError, match="header"):
        QM9(root=cache, source=src)
    part.write_text(text.replace("[[", "[[1.0,", 1))  # one coordinate too many
    with pytest.raises(ValueError, match="row 1 .*N_atoms"):
        QM9(root=cache, source=src)


def test_truncated_xyz(tmp_path, cache):
    (tmp_path / "xyz").mkdir()
    folder = write_xyz(tmp_path / "xyz")
    bad = folder / "dsgdb9nsd_000003.xyz"
    bad.write_text("\n".join(bad.read_text().splitlines()[:4]))
    with pytest.raises(ValueError, match="dsgdb9nsd_000003.xyz: truncated"):
        QM9(root=cache, source=folder)
    bad.write_text(xyz_text(*MOLECULES[1][:4]).replace("0.021375", "0.02x"))
    with pytest.raises(ValueError, match="line 2.*'0.02x'"):
        QM9(root=cache, source=folder)
    archive = write_tar(tmp_path / "a.tar.bz2")
    archive.write_bytes(archive.read_bytes()[:-60])
    with pytest.raises(ValueError, match="a.tar.bz2.*truncated"):
        QM9(root=cache, source=archive)


def test_split_collate_loader(tmp_path, cache):
    (tmp_path / "src").mkdir()
    ds = QM9(root=cache, source=write_csv(tmp_path / "src"))
    train, valid, test = ds.split(train=2, valid=1)
    assert (len(train), len(valid), len(test)) == (2, 1, 1)
    assert sorted(torch.cat([train, valid, test]).tolist()) == [0, 1, 2, 3]
    assert all(torch.equal(a, b) for a, b in zip(ds.split(2, 1), (train, valid, test)))
    assert torch.equal(ds.split(1, 1, seed=0)[0], train[:1])  # smaller train: a prefix
    with pytest.raises(ValueError, match="do not fit"):
        ds.split()  # the standard sizes need the full set
    b = ds.collate([ds[0], ds[1]])
    assert b.num_graphs == 2 and b.ptr.tolist() == [0, 5, 8]
    assert b.species.tolist() == [6, 1, 1, 1, 1, 8, 1, 1] and torch.equal(b.z, b.species)
    assert b.index.tolist() == [1, 3] and b.U0.dtype == torch.float64
    assert b.alpha_principal.shape == (2, 3) and b.alpha_aniso.shape == (2,)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=QM9.collate,
                                         num_workers=2)
    batches = list(loader)
    assert [bb.index.tolist() for bb in batches] == [[1, 3], [5, 21]]
    assert torch.equal(batches[1].pos, torch.cat([ds[2]["pos"], ds[3]["pos"]]))


def test_polarizability_invariants_are_invariant():
    from equinet.data import polarizability_invariants
    from equinet.data.qm9_polar import polarizability_matrix
    a = torch.randn(5, 3, 3, dtype=torch.float64)
    a = a @ a.transpose(1, 2)
    q, _ = torch.linalg.qr(torch.randn(5, 3, 3, dtype=torch.float64))
    b = q @ a @ q.transpose(1, 2)

    def six(m):
        return torch.stack([m[:, 0, 0], m[:, 0, 1], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2],
                            m[:, 2, 2]], -1)

    assert torch.equal(polarizability_matrix(six(a)), a)
    ia, ib = polarizability_invariants(six(a)), polarizability_invariants(six(b))
    for key in ("principal", "iso", "aniso"):
        torch.testing.assert_close(ia[key], ib[key], rtol=0, atol=1e-12)
    torch.testing.assert_close(ia["iso"], ia["principal"].mean(-1), rtol=0, atol=1e-12)


def test_units():
    assert QM9.convert("U0", 1.0, "eV") == 27.211386245988
    assert QM9.convert("gap", 2.0, "meV") == 2000 * 27.211386245988
    assert QM9.convert("mu", 1.0, "D") == 1.0
    with pytest.raises(ValueError, match="cannot convert"):
        QM9.convert("mu", 1.0, "eV")
    with pytest.raises(KeyError):
        QM9.convert("energy", 1.0, "eV")


# ----------------------------------------------------------------------------- real data
needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None,
                                   reason="qm9pack is not installed")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("qm9cache")
    t0 = time.perf_counter()
    ds = QM9(root=root)
    t1 = time.perf_counter()
    again = QM9(root=root)
    t2 = time.perf_counter()
    print(f"\nQM9 first load {t1 - t0:.1f} s, cached load {t2 - t1:.1f} s")
    return ds, again


@needs_qm9pack
def test_real_data(real):
    ds, again = real
    assert len(ds) == len(again) == 130831
    for name in ds._a:
        assert torch.equal(ds._a[name], again._a[name]) or name == "polar"
    water = ds[2]
    assert int(water["index"]) == 3 and water["z"].tolist() == [8, 1, 1]
    assert water["U0"].item() == -76.404702 and ds.smiles(2) == "O"
    assert ds.index[-1].item() == 133885 and ds.num_atoms.max().item() == 29
    assert set(torch.unique(ds._z).tolist()) == {1, 6, 7, 8, 9}
    # every molecule is bound relative to QM9's free atoms
    atomisation = ds.property("U0") - QM9.atomref("U0")[ds._z].new_zeros(len(ds)).index_add_(
        0, torch.repeat_interleave(torch.arange(len(ds)), ds.num_atoms),
        QM9.atomref("U0")[ds._z])
    assert (atomisation < 0).all()
    # polarizability: its trace / 3 is the alpha column (file rounding)
    assert ds.has_polarizability
    assert (ds._alpha_principal.mean(-1) - ds.property("alpha")).abs().max() < 0.006
    assert (ds._alpha_principal > 0).all() and (ds._alpha_aniso >= 0).all()
    # ... but the tensor is not in the xyz frame: water lies in the xy plane with its H-H
    # axis ~58 degrees off x, yet its stored tensor is diagonal (see equinet.data.qm9_polar)
    hh = water["pos"][2] - water["pos"][1]
    assert abs(float(torch.atan2(hh[1], hh[0]))) > 0.5
    p = ds.polarizability_tensor(2)
    assert torch.equal(p, torch.diag(p.diagonal())) and len(set(p.diagonal().tolist())) == 3


@needs_qm9pack
def test_real_split_and_reference(real):
    ds, _ = real
    train, valid, test = ds.split()
    assert (len(train), len(valid), len(test)) == (110000, 10000, 10831)
    assert len(torch.unique(torch.cat([train, valid, test]))) == len(ds)
    assert torch.equal(ds.split()[0], train) and not torch.equal(ds.split(seed=1)[0], train)
    assert torch.equal(ds.split(train=10000, valid=1000)[0], train[:10000])
    for key in ("U0", "U", "H", "G"):
        ref = ds.fit_reference(key, train)
        residual = ds.property(key) - ds.counts() @ ref[[1, 6, 7, 8, 9]]
        assert residual[test].std() < 0.02 * ds.property(key)[test].std()
        assert residual[test].abs().mean() < 0.05  # Ha (~1 eV) against ~400 Ha totals
    b = ds.collate([ds[i] for i in range(5)])
    assert b.num_graphs == 5 and b.num_nodes == int(ds.num_atoms[:5].sum())


def test_qm9pack_missing(monkeypatch, cache):
    monkeypatch.setattr(qm9_csv.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install qm9pack"):
        QM9(root=cache)


def test_qm9pack_located_without_import():
    import sys
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    before = "qm9pack" in sys.modules
    files = qm9_csv.qm9pack_files()
    assert [f.name for f in files] == ["qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv",
                                       "qm9_polarizability.csv"]
    assert ("qm9pack" in sys.modules) == before  # found, not executed


def test_items_are_copies(tmp_path, cache):
    (tmp_path / "src").mkdir()
    ds = QM9(root=cache, source=write_csv(tmp_path / "src"))
    mol = ds[1]
    assert mol["pos"].untyped_storage().nbytes() == 3 * 3 * 4
    mol["pos"] += 1.0
    assert not torch.equal(ds[1]["pos"], mol["pos"])
    assert ds[-1]["index"].item() == 21
    with pytest.raises(IndexError):
        ds[4]


def test_default_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUINET_CACHE", str(tmp_path / "home-cache"))
    (tmp_path / "src").mkdir()
    QM9(source=write_csv(tmp_path / "src"))
    assert len(list((tmp_path / "home-cache" / "qm9").glob("csv-*.pt"))) == 1
