"""The tetris tutorial reaches 100% on rotated and reflected pieces, in quick mode."""
import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "tetris.py"


@pytest.fixture(scope="module")
def tetris():
    spec = importlib.util.spec_from_file_location("tetris_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_reaches_full_accuracy(tetris):
    result = tetris.main(["--quick"])
    assert result["accuracy"] == 1.0
    assert result["equivariance_error"] < 1e-8


def _properly_congruent(a, b):
    """Whether a proper rotation, a translation and a relabelling of the points map a onto b."""
    import itertools

    import torch

    a, b = a - a.mean(0), b - b.mean(0)
    for perm in itertools.permutations(range(len(a))):
        target = b[list(perm)]
        u, _, vh = torch.linalg.svd(a.T @ target)  # Kabsch, restricted to det = +1
        d = torch.sign(torch.det(u @ vh))
        R = u @ torch.diag(torch.tensor([1.0, 1.0, d], dtype=a.dtype)) @ vh
        if torch.allclose(a @ R, target, atol=1e-9):
            return True
    return False


def test_mirror_labels_are_the_mirror_images(tetris):
    """Reflecting piece k gives a rotated piece MIRROR_LABEL[k]: the labels of the held-out set."""
    import torch

    pos, _, _, _ = tetris.dataset(torch.float64)
    pieces = pos.reshape(8, 4, 3)
    for k in range(8):
        assert _properly_congruent(-pieces[k], pieces[int(tetris.MIRROR_LABEL[k])])
    assert not _properly_congruent(pieces[0], pieces[1])  # the chiral pair is really chiral
