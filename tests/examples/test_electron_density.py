"""The electron-density example end to end at a cheap level (PBE/STO-3G, density fitted on
def2-universal-jfit, 6 monomers + 6 dimers): training lowers the loss and eps, checkpoints
load with weights_only and resume bitwise, evaluate runs its own SCF and writes the JSON and
npz, and bad input fails clearly."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")
pytest.importorskip("ase")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "electron_density.py"
SMALL = ["--basis", "sto-3g", "--clusters", "1:6,2:6", "--workers", "1", "--mul", "4",
         "--layers", "1", "--no-progress", "--n-eps", "1"]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example module with a labelled folder (``example.data``) and a trained run."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQUINET_CACHE", str(cache))
        spec = importlib.util.spec_from_file_location("electron_density_example", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.data = str(tmp_path_factory.mktemp("data"))
        module.run = tmp_path_factory.mktemp("run")
        module.result = module.main(["train", "--data", module.data, "--out", str(module.run),
                                     "--epochs", "6", "--json", str(module.run / "train.json"),
                                     *SMALL])
        yield module


@pytest.fixture(scope="module")
def xyz(tmp_path_factory):
    import ase.io
    from ase import Atoms
    from equinet.data import water_clusters

    path = tmp_path_factory.mktemp("xyz") / "waters.xyz"
    frames = water_clusters(1, 1, seed=11) + water_clusters(2, 1, seed=12)
    ase.io.write(path, [Atoms(numbers=g.z, positions=g.pos) for g in frames])
    return path


def test_train_lowers_loss_and_eps(example):
    result = example.result
    assert result["train_loss"][-1] < 0.5 * result["train_loss"][0]
    assert result["valid_eps_percent"][-1] < result["valid_eps_percent"][0]
    assert json.loads((example.run / "train.json").read_text())["epochs"] == 6
    for png in ("learning_curve.png", "density_slice.png"):
        assert (example.run / png).stat().st_size > 1000
    state = torch.load(example.run / "ckpt.pt", weights_only=True)
    assert state["epoch"] == 6 and state["level"]["basis"] == "sto-3g"
    assert state["level"]["auxbasis"] == "def2-universal-jfit"
    assert state["config"]["elements"] == [1, 8]


def test_resume_is_bitwise(example, tmp_path):
    args = ["--data", example.data, "--epochs", "2", *SMALL]
    example.main(["train", "--out", str(tmp_path / "straight"), *args])
    example.main(["train", "--out", str(tmp_path / "resumed"), *args, "--stop-after", "1"])
    example.main(["train", "--out", str(tmp_path / "resumed"), *args, "--resume"])
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
        assert torch.equal(a, b), where
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def test_evaluate_writes_json_and_npz(example, xyz, tmp_path):
    out_json, out_npz = tmp_path / "metrics.json", tmp_path / "pred.npz"
    example.main(["evaluate", "--checkpoint", str(example.run / "ckpt.pt"), "--xyz", str(xyz),
                  "--spacing", "0.25", "--json", str(out_json), "--save", str(out_npz),
                  "--no-progress"])
    rows = json.loads(out_json.read_text())
    assert len(rows) == 2
    for row, electrons in zip(rows, (10, 20)):
        for key in ("eps_percent", "eps_percent_pyscf_grid", "eps_percent_vs_scf",
                    "eps_percent_fit_vs_scf"):
            assert 0 < row[key] < 100, key
        assert row["n_electrons_pred"] == pytest.approx(electrons, abs=1e-8)
        assert row["n_electrons_ref"] == pytest.approx(electrons, abs=0.05)
        assert set(row["scf_iterations"]) == {"minao", "atom", "huckel", "predicted"}
        assert all(isinstance(v, int) and v > 0 for v in row["scf_iterations"].values())
    saved = np.load(out_npz)
    assert str(saved["auxbasis"]) == "def2-universal-jfit" and str(saved["order"]) == "pyscf"
    assert saved["1/coefficients"].shape == saved["1/reference_coefficients"].shape == (142,)


def test_evaluate_cheap_paths(example, xyz, tmp_path):
    """--grid becke and no SCF guesses: the uniform-grid keys are null, nothing else runs."""
    rows = example.main(["evaluate", "--checkpoint", str(example.run / "ckpt.pt"), "--xyz",
                         str(xyz), "--grid", "becke", "--guesses", "", "--no-progress"])
    assert rows[0]["eps_percent"] is None and rows[0]["eps_percent_pyscf_grid"] > 0
    assert rows[0]["scf_iterations"] == {}


def test_bad_input_fails_clearly(example, tmp_path):
    ckpt = str(example.run / "ckpt.pt")
    methane = tmp_path / "methane.xyz"
    methane.write_text("2\n\nC 0 0 0\nH 0 0 1.09\n")
    with pytest.raises(ValueError, match=r"trained on \['H', 'O'\] only.*\['C'\]"):
        example.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(methane)])
    hydroxyl = tmp_path / "hydroxyl.xyz"
    hydroxyl.write_text("2\n\nO 0 0 0\nH 0 0 0.97\n")
    with pytest.raises(ValueError, match="structure 0: 9 electrons"):
        example.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(hydroxyl)])
    broken = tmp_path / "broken.xyz"
    broken.write_text("3\n\nO 0 0 0\nH 0 zero 1\n")
    with pytest.raises(ValueError, match="cannot read"):
        example.main(["evaluate", "--checkpoint", ckpt, "--xyz", str(broken)])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        example.main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--xyz",
                      str(methane)])
    with pytest.raises(ValueError, match="not a checkpoint"):
        torch.save({"format": "other"}, tmp_path / "other.pt")
        example.main(["evaluate", "--checkpoint", str(tmp_path / "other.pt"), "--xyz",
                      str(methane)])
    with pytest.raises(ValueError, match="--clusters"):
        example.main(["train", "--data", str(tmp_path / "d"), *SMALL, "--clusters", "two:3"])


def test_shipped_weights(example, tmp_path):
    """Without --checkpoint evaluate uses examples/weights/electron_density.pt (PBE/def2-SVP)."""
    if not example.WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    state = torch.load(example.WEIGHTS, weights_only=True)
    assert state["level"]["basis"] == "def2-SVP" and example.WEIGHTS.stat().st_size < 2e6
    water = tmp_path / "water.xyz"
    water.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    rows = example.main(["evaluate", "--xyz", str(water), "--grid", "becke", "--guesses", "",
                         "--no-progress"])
    assert rows[0]["eps_percent_pyscf_grid"] < 5
