"""The ``equinet`` command: info and generate (in process, at HF/sto-3g)."""
import json

import pytest

from equinet.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    lib = pytest.importorskip("pyscf.lib")
    previous = lib.num_threads()
    lib.num_threads(1)
    yield
    lib.num_threads(previous)


CHEAP = ["--xc", "HF", "--basis", "sto-3g", "--no-progress"]


def test_info(capsys):
    assert main(["info"]) == 0
    assert "equinet" in capsys.readouterr().out


def test_generate_xyz_and_resume(tmp_path, capsys):
    from equinet.data import ShardDataset

    xyz = tmp_path / "h2.xyz"
    xyz.write_text("".join(f"2\nframe {i}\nH 0 0 0\nH 0 0 {0.7 + 0.05 * i}\n" for i in range(3)))
    out = tmp_path / "out"
    argv = ["generate", "xyz", "--xyz", str(xyz), "--out", str(out), *CHEAP,
            "--properties", "energy,dipole", "--shard-size", "2"]
    assert main(argv) == 0
    assert "3/3 labelled, 3 computed" in capsys.readouterr().out
    assert main(argv) == 0
    assert "3/3 labelled, 0 computed" in capsys.readouterr().out
    ds = ShardDataset(out)
    assert len(ds) == 3 and sorted(ds[2]) == ["dipole", "energy", "index", "pos", "scf_cycles", "z"]
    assert abs(ds[1]["pos"][1, 2].item() - 0.75) < 1e-12
    assert json.loads((out / "metadata.json").read_text())["level"]["xc"] == "HF"


def test_generate_water_clusters_and_normal_modes(tmp_path, capsys):
    from equinet.data import ShardDataset

    out = tmp_path / "clusters"
    assert main(["generate", "water-clusters", "--n", "2", "--count", "2", "--out", str(out),
                 *CHEAP]) == 0
    ds = ShardDataset(out)
    assert len(ds) == 2 and ds[0]["z"].tolist() == [8, 1, 1] * 2 and ds[0]["forces"].shape == (6, 3)

    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    out = tmp_path / "modes"
    assert main(["generate", "normal-modes", "--xyz", str(xyz), "--temperature", "300",
                 "--count", "2", "--out", str(out), *CHEAP, "--properties", "energy"]) == 0
    assert "2/2 labelled" in capsys.readouterr().out
    pos = ShardDataset(out)[0]["pos"]
    assert 0 < (pos[0] - pos.new_tensor([0, 0, 0.1173])).norm() < 0.1


def test_generate_refuses_another_level(tmp_path, capsys):
    xyz = tmp_path / "h2.xyz"
    xyz.write_text("2\n\nH 0 0 0\nH 0 0 0.74\n")
    base = ["generate", "xyz", "--xyz", str(xyz), "--out", str(tmp_path / "o"), "--no-progress",
            "--xc", "HF", "--properties", "energy"]
    assert main(base + ["--basis", "sto-3g"]) == 0
    assert main(base + ["--basis", "6-31g"]) == 2
    assert "generated with level of theory" in capsys.readouterr().err
