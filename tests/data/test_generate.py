"""Label generation: resumable after SIGKILL, failures reported, folders never mixed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyscf")
from equinet.chem.labels import LevelOfTheory  # noqa: E402
from equinet.data.generate import FolderMismatch, generate, read_shard_index  # noqa: E402

LEVEL = LevelOfTheory("HF", "sto-3g")
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP thread: on a loaded 2-core machine two spinning threads are ~10x slower."""
    from pyscf import lib

    previous = lib.num_threads()
    lib.num_threads(1)
    yield
    lib.num_threads(previous)


def waters(count, seed=0):
    rng = np.random.default_rng(seed)
    return [([8, 1, 1], WATER + 0.05 * rng.standard_normal((3, 3))) for _ in range(count)]


def load_all(folder):
    """{geometry index: {key: array}} of every shard in a folder."""
    out = {}
    for path in sorted(Path(folder).glob("shard_*.npz")):
        with np.load(path) as f:
            for i in f["index"].tolist():
                out[i] = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(f"{i}/")}
    return out


def assert_same_data(a, b):
    assert sorted(a) == sorted(b)
    for i in a:
        assert sorted(a[i]) == sorted(b[i])
        for key in a[i]:
            np.testing.assert_allclose(a[i][key], b[i][key], rtol=0, atol=1e-9, err_msg=key)


SCRIPT = """
import sys, numpy as np
from pyscf import lib
lib.num_threads(1)
from equinet.chem.labels import LevelOfTheory
from equinet.data.generate import generate
g = np.load(sys.argv[1])
geoms = [(g["z"], p) for p in g["pos"]]
generate(geoms, LevelOfTheory("HF", "sto-3g"), sys.argv[2], properties=("energy", "forces"),
         progress=False)
"""


def test_killed_run_resumes_to_the_same_data(tmp_path):
    geoms = waters(24)   # ~20-100 ms each: the kill lands after a few
    np.savez(tmp_path / "geoms.npz", z=np.array([8, 1, 1]), pos=np.stack([p for _, p in geoms]))
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "geoms.npz"), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while len(list(out.glob("shard_*.npz"))) < 2 and proc.poll() is None:
        assert time.time() < deadline, "no shard appeared within 60 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(out.glob("shard_*.npz")))
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert 2 <= done_at_kill < len(geoms), "the run finished before it could be killed"

    resumed = generate(geoms, LEVEL, out, properties=("energy", "forces"), progress=False)
    assert resumed.computed == len(geoms) - done_at_kill and resumed.labelled == len(geoms)
    assert not list(out.glob(".shard_*"))    # no temporary file left behind

    # the uninterrupted reference runs in 2 spawned worker processes, 3 per shard
    reference = tmp_path / "reference"
    full = generate(geoms, LEVEL, reference, properties=("energy", "forces"), progress=False,
                    workers=2, shard_size=3)
    assert full.labelled == len(geoms) and full.failed == []
    assert len(list(reference.glob("shard_*.npz"))) == 8
    assert_same_data(load_all(out), load_all(reference))

    meta = json.loads((out / "metadata.json").read_text())
    import pyscf
    assert meta["level"] == LEVEL.as_dict() and len(meta["runs"]) == 2
    assert meta["runs"][0]["pyscf"] == pyscf.__version__
    assert json.loads((out / "failed.json").read_text()) == {"failed": []}


def test_unconverged_scf_is_reported_and_left_out(tmp_path):
    geoms = [([1, 1], [[0, 0, 0], [0, 0, 0.74]]), waters(1)[0], ([1, 1], [[0, 0, 0], [0, 0, 0.8]])]
    level = LevelOfTheory("HF", "sto-3g", max_cycle=2)   # enough for H2, not for water
    with pytest.warns(UserWarning, match="geometry 1 left out: SCFNotConverged"):
        report = generate(geoms, level, tmp_path, properties=("energy",), progress=False)
    assert report.labelled == 2 and report.computed == 3
    assert [(f["index"], f["error"], f["cycles"]) for f in report.failed] == \
        [(1, "SCFNotConverged", 2)]
    assert "not converged" in report.failed[0]["reason"]
    listed = json.loads((tmp_path / "failed.json").read_text())["failed"]
    assert [f["index"] for f in listed] == [1]
    assert sorted(load_all(tmp_path)) == [0, 2]
    # a rerun does not retry it (nor warn again) unless asked to
    again = generate(geoms, level, tmp_path, properties=("energy",), progress=False)
    assert again.computed == 0 and [f["index"] for f in again.failed] == [1]
    with pytest.warns(UserWarning, match="geometry 1"):
        retry = generate(geoms, level, tmp_path, properties=("energy",), progress=False,
                         retry_failed=True)
    assert retry.computed == 1


def test_other_level_geometries_or_properties_are_refused(tmp_path):
    geoms = [([1, 1], [[0, 0, 0], [0, 0, d]]) for d in (0.7, 0.74)]
    generate(geoms, LEVEL, tmp_path, properties=("energy",), progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FolderMismatch, match="level of theory"):
        generate(geoms, LevelOfTheory("HF", "6-31g"), tmp_path, properties=("energy",),
                 progress=False)
    with pytest.raises(FolderMismatch, match="properties"):
        generate(geoms, LEVEL, tmp_path, properties=("energy", "forces"), progress=False)
    with pytest.raises(FolderMismatch, match="first difference at index 1"):
        generate([geoms[0], ([1, 1], [[0, 0, 0], [0, 0, 0.75]])], LEVEL, tmp_path,
                 properties=("energy",), progress=False)
    with pytest.raises(FolderMismatch, match="other geometries"):
        generate(geoms + geoms, LEVEL, tmp_path, properties=("energy",), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    index, hashes, failed = read_shard_index(tmp_path / "shard_000001.npz")
    assert index.tolist() == [1] and failed == []


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown properties"):
        generate(waters(1), LEVEL, tmp_path, properties=("energies",), progress=False)
    with pytest.raises(ValueError, match="geometry 0"):
        generate([([8, 1], WATER)], LEVEL, tmp_path, progress=False)
    with pytest.raises(ValueError, match="basis"):
        generate(waters(1), LevelOfTheory("HF", "no-such-basis"), tmp_path / "b",
                 progress=False)
    assert not (tmp_path / "b" / "manifest.json").exists()   # the folder is still free
