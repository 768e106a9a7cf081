"""The QM9 example on 400 real molecules (a subset of qm9pack's CSV): training lowers the
loss, checkpoints load with weights_only and resume bitwise, torchrun with 2 processes
equals one process with the same global batch, evaluate reproduces the test MAE, and bad
input fails clearly."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "qm9.py"
SMALL = ["--split", "300,50", "--mul", "8", "--layers", "2", "--batch-size", "16",
         "--no-progress"]


@pytest.fixture(scope="module")
def qm9(tmp_path_factory):
    """The example module, with ``source``: a folder of 400 real molecules (every 97th row)."""
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    from equinet.data.qm9_csv import qm9pack_files

    folder = tmp_path_factory.mktemp("qm9_source")
    with open(qm9pack_files()[0]) as f:
        lines = f.readlines()
    (folder / "qm9_part1.csv").write_text(lines[0] + "".join(lines[97::97][:400]))
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQUINET_CACHE", str(cache))
        spec = importlib.util.spec_from_file_location("qm9_example", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.source = str(folder)
        module.cache = str(cache)
        yield module


def train(qm9, out, *extra):
    return qm9.main(["train", "--source", qm9.source, "--out", str(out), *SMALL, *extra])


def test_train_lowers_loss_and_evaluate_reproduces(qm9, tmp_path):
    result = train(qm9, tmp_path / "run", "--target", "U0,mu", "--epochs", "4",
                   "--n-train", "256", "--lr", "1e-2", "--json", str(tmp_path / "train.json"))
    assert result["train_loss"][-1] < 0.9 * result["train_loss"][0]
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert set(metrics["test_mae"]) == {"U0", "mu"} and metrics["n_train"] == 256
    assert metrics["device"] == "cpu" and metrics["wall_time_s"] > 0
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert state["epoch"] == 4
    again = qm9.main(["evaluate", "--checkpoint", str(tmp_path / "run" / "ckpt.pt"),
                      "--source", qm9.source, "--no-progress"])
    for t, v in metrics["test_mae"].items():
        assert again["test_mae"][t] == pytest.approx(v, rel=1e-12)
    # the exported file, to ship: no optimizer state, and the same test errors
    qm9.main(["export", str(tmp_path / "run" / "ckpt.pt"), str(tmp_path / "model.pt")])
    shipped = torch.load(tmp_path / "model.pt", weights_only=True)
    assert not {"optimizer", "scheduler", "rng"} & set(shipped) and shipped["epoch"] == 4
    exported = qm9.main(["evaluate", "--checkpoint", str(tmp_path / "model.pt"),
                         "--source", qm9.source, "--no-progress"])
    assert exported["test_mae"] == again["test_mae"]


def test_shipped_weights_load():
    """examples/weights/qm9_U0_quick.pt: the model the docstring's command made."""
    state = torch.load(SCRIPT.parent / "weights" / "qm9_U0_quick.pt", weights_only=True)
    spec = importlib.util.spec_from_file_location("qm9_example_shipped", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert state["format"] == module.FORMAT and state["config"]["targets"] == ["U0"]
    model = module.QM9Network(**state["config"])
    model.load_state_dict(state["model"])
    assert state["n_train"] == 10000 and len(state["test_indices"]) == 10831


def test_resume_is_bitwise(qm9, tmp_path):
    args = ["--target", "U0,mu", "--epochs", "2", "--n-train", "64", "--schedule", "plateau"]
    train(qm9, tmp_path / "straight", *args)
    train(qm9, tmp_path / "resumed", *args, "--stop-after", "1")
    assert torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=True)["epoch"] == 1
    train(qm9, tmp_path / "resumed", *args, "--resume")
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "ema", "history"):
        assert_identical(b[key], a[key], key)


def assert_identical(a, b, where):
    """Bitwise equality of nested dicts/lists of tensors, numbers and strings."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{k}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def test_torchrun_two_processes_equal_one(qm9, tmp_path):
    args = ["--target", "U0,mu", "--epochs", "1", "--n-train", "64", "--dtype", "float64"]
    env = dict(os.environ, EQUINET_CACHE=qm9.cache, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(SCRIPT), "train", "--source", qm9.source,
               "--out", str(tmp_path / "ddp"), "--json", str(tmp_path / "ddp.json"),
               *SMALL, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp.json").read_text())
    assert metrics["world_size"] == 2 and metrics["rank_weight_difference"] == 0.0
    single = train(qm9, tmp_path / "one", *args)
    assert single["world_size"] == 1
    a = torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "ckpt.pt", weights_only=True)["model"]
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    assert metrics["train_loss"] == pytest.approx(single["train_loss"], rel=1e-10)


def test_bad_input(qm9, tmp_path):
    with pytest.raises(ValueError, match="unknown QM9 target"):
        train(qm9, tmp_path / "x", "--target", "energy", "--epochs", "1", "--n-train", "16")
    with pytest.raises(ValueError, match="larger than the train split"):
        train(qm9, tmp_path / "x", "--n-train", "301", "--epochs", "1")
    with pytest.raises(ValueError, match="do not fit"):  # the standard split, 400 molecules
        qm9.main(["train", "--source", qm9.source, "--epochs", "1", "--out", str(tmp_path)])
    train(qm9, tmp_path / "l0", "--lmax", "0", "--epochs", "1", "--n-train", "16")
    with pytest.raises(ValueError, match="another model.*lmax"):
        train(qm9, tmp_path / "l0", "--lmax", "1", "--epochs", "2", "--n-train", "16",
              "--resume")
    torch.save({"model": torch.nn.Linear(1, 1).state_dict()}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint of examples/qm9.py"):
        qm9.main(["evaluate", "--checkpoint", str(tmp_path / "other.pt"),
                  "--source", qm9.source])
