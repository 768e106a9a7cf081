"""The Hamiltonian example end to end on a cheap level (HF/sto-3g, 8 + 4 water geometries):
training lowers the loss, checkpoints load with weights_only and resume bitwise, evaluate
runs PySCF itself and writes the JSON and the matrices in PySCF's order, bad input fails
clearly."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")
pytest.importorskip("ase")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "hamiltonian.py"
SMALL = ["--xc", "HF", "--basis", "sto-3g", "--n-train", "8", "--n-valid", "4", "--mul", "4",
         "--batch-size", "4", "--lr", "1e-2", "--no-progress"]


@pytest.fixture(scope="module")
def ham(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQUINET_CACHE", str(cache))
        spec = importlib.util.spec_from_file_location("hamiltonian_example", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.cache = str(cache)
        yield module


@pytest.fixture(scope="module")
def trained(ham, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = ham.main(["train", *SMALL, "--epochs", "3", "--out", str(out / "run"),
                       "--json", str(out / "train.json")])
    return out, result


def write_xyz(path, frames, symbols=("O", "H", "H")):
    lines = []
    for pos in frames:
        lines += [str(len(symbols)), "water"]
        lines += [f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z) in zip(symbols, pos)]
    path.write_text("\n".join(lines) + "\n")


def test_train_lowers_loss_and_saves(ham, trained):
    out, result = trained
    assert result["train_loss"][-1] < result["train_loss"][0]
    metrics = json.loads((out / "train.json").read_text())
    assert metrics["n_train"] == 8 and metrics["n_valid"] == 4 and metrics["epochs"] == 3
    assert set(metrics["valid"]) == {"mae_H_uHa", "mae_occ_eps_uHa", "psi_cosine"}
    for name in ("learning_curve.png", "predictions.png"):
        assert (out / "run" / name).stat().st_size > 1000
    state = torch.load(out / "run" / "ckpt.pt", weights_only=True)
    assert state["epoch"] == 3 and state["z"] == [8, 1, 1]
    assert state["level"]["xc"] == "HF" and state["level"]["basis"] == "sto-3g"


def test_resume_is_exact(ham, trained, tmp_path):
    out, result = trained
    ham.main(["train", *SMALL, "--epochs", "3", "--out", str(tmp_path), "--stop-after", "2"])
    again = ham.main(["train", *SMALL, "--epochs", "3", "--out", str(tmp_path), "--resume"])
    assert again["train_loss"] == result["train_loss"]
    a = torch.load(out / "run" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_processes_equal_one(ham, trained, tmp_path):
    _, result = trained  # its data are in the cache: the processes only train
    env = dict(os.environ, EQUINET_CACHE=ham.cache, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(SCRIPT), "train", *SMALL, "--epochs", "3",
               "--stop-after", "1", "--out", str(tmp_path), "--json", str(tmp_path / "m.json")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["world_size"] == 2 and metrics["rank_weight_difference"] == 0.0
    assert metrics["train_loss"][0] == pytest.approx(result["train_loss"][0], rel=1e-10)


def test_evaluate_writes_metrics_and_matrices(ham, trained, tmp_path):
    out, _ = trained
    rng = np.random.default_rng(0)
    frames = [ham.WATER.pos + 0.02 * rng.standard_normal((3, 3)) for _ in range(2)]
    write_xyz(tmp_path / "w.xyz", frames)
    result = ham.main(["evaluate", "--checkpoint", str(out / "run" / "ckpt.pt"),
                       "--xyz", str(tmp_path / "w.xyz"), "--save", str(tmp_path / "f.npz"),
                       "--json", str(tmp_path / "m.json"), "--plot", str(tmp_path / "p.png"),
                       "--no-progress"])
    metrics = json.loads((tmp_path / "m.json").read_text())
    for key in ("mae_H_uHa", "mae_occ_eps_uHa", "psi_cosine", "energy_error_uHa"):
        assert np.isfinite(metrics[key]) and metrics[key] == result[key]
    assert 0 <= metrics["psi_cosine"] <= 1 + 1e-9
    assert set(metrics["scf_iterations"]) == {"minao", "predicted"}
    assert metrics["scf_iterations"]["minao"] >= 1
    saved = np.load(tmp_path / "f.npz")
    assert saved["F"].shape == (2, 7, 7)  # sto-3g water: 7 functions
    assert np.allclose(saved["F"], saved["F"].transpose(0, 2, 1))
    # PySCF's order: the model's matrix of frame 0, converted, equals the saved one
    from equinet.chem import BasisLayout
    from equinet.chem.labels import LevelOfTheory

    state = torch.load(out / "run" / "ckpt.pt", weights_only=True)
    model = ham.build_model(state["config"]).double()
    ema = ham.ExponentialMovingAverage(model)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    ema.copy_to()
    layout = BasisLayout(LevelOfTheory("HF", "sto-3g").build_mole([8, 1, 1], frames[0]))
    with torch.no_grad():
        h = model(torch.as_tensor(frames[0]), torch.tensor([0, 1, 1]))
    np.testing.assert_allclose(layout.to_pyscf(h.numpy(), kind="matrix"), saved["F"][0],
                               atol=1e-6)  # the xyz file rounds to 1e-8 A


def test_export_keeps_the_averaged_weights(ham, trained, tmp_path):
    out, _ = trained
    write_xyz(tmp_path / "w.xyz", [ham.WATER.pos])
    ham.main(["export", str(out / "run" / "ckpt.pt"), str(tmp_path / "weights.pt")])
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert "ema" not in state and "optimizer" not in state
    runs = [ham.main(["evaluate", "--checkpoint", str(path), "--xyz", str(tmp_path / "w.xyz"),
                      "--save", str(tmp_path / f"{k}.npz"), "--no-progress"])
            for k, path in enumerate((out / "run" / "ckpt.pt", tmp_path / "weights.pt"))]
    # the reference SCF of each evaluate may differ in its last bits (threaded PySCF sums)
    assert runs[0]["mae_H_uHa"] == pytest.approx(runs[1]["mae_H_uHa"], rel=1e-9)
    np.testing.assert_allclose(np.load(tmp_path / "0.npz")["F"], np.load(tmp_path / "1.npz")["F"],
                               rtol=1e-12, atol=1e-14)


def test_shipped_weights(ham, tmp_path, monkeypatch):
    write_xyz(tmp_path / "w.xyz", [ham.WATER.pos])
    if ham.DEFAULT_WEIGHTS.is_file():  # PBE/def2-SVP: one frame, the reference run here
        result = ham.main(["evaluate", "--xyz", str(tmp_path / "w.xyz"), "--no-progress"])
        assert result["mae_H_uHa"] < 1e4 and result["psi_cosine"] > 0.9
    monkeypatch.setattr(ham, "DEFAULT_WEIGHTS", tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="shipped weights"):
        ham.main(["evaluate", "--xyz", str(tmp_path / "w.xyz")])


def test_bad_input_fails_clearly(ham, trained, tmp_path):
    out, _ = trained
    ckpt = str(out / "run" / "ckpt.pt")
    write_xyz(tmp_path / "nh3.xyz", [np.zeros((3, 3))], symbols=("N", "H", "H"))
    with pytest.raises(ValueError, match="trained on"):
        ham.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(tmp_path / "nh3.xyz")])
    (tmp_path / "bad.xyz").write_text("3\nwater\nO 0 0 zero\nH 1 0\n")
    with pytest.raises(ValueError, match="not a readable xyz"):
        ham.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(tmp_path / "bad.xyz")])
    with pytest.raises(FileNotFoundError, match="no xyz file"):
        ham.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(tmp_path / "none.xyz")])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ham.main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"),
                  "--xyz", str(tmp_path / "nh3.xyz")])
