"""Checkpoints: plain types only (weights_only loading), RNG states round trip, atomic writes."""
import random

import numpy as np
import pytest
import torch

from equinet.train import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_with_optimizer_and_scheduler(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.SGD([torch.zeros(1)], 1.0))
    plateau.step(1.0)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "plateau": plateau.state_dict(), "epoch": 3,
             "rng": rng_state(), "history": {"loss": [1.0, 0.5]}, "name": "x", "none": None}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert loaded["epoch"] == 3 and loaded["history"] == {"loss": [1.0, 0.5]}
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_rng_states_resume_every_generator(tmp_path):
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_refuses_objects_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1})
    with pytest.raises(TypeError, match="only"):
        save_checkpoint(path, {"epoch": 2, "model": torch.nn.Linear(1, 1)})
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_load_checks_format_and_config(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"format": "demo/1", "config": {"lmax": 1, "mul": 8}})
    assert load_checkpoint(path, format="demo/1", config={"lmax": 1, "mul": 8})["config"]
    with pytest.raises(ValueError, match="not a checkpoint of examples/demo.py"):
        load_checkpoint(path, format="demo/2", writer="examples/demo.py")
    with pytest.raises(ValueError, match=r"another model.*'lmax': \(1, 2\)"):
        load_checkpoint(path, config={"lmax": 2, "mul": 8})
    with pytest.raises(ValueError, match="another model.*'mul'"):
        load_checkpoint(path, config={"lmax": 1})  # a setting missing on one side counts
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
