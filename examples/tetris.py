r"""Tutorial: classify the 8 tetris pieces in 3D, whatever their rotation or reflection.

Run: ``python examples/tetris.py`` (``--quick`` for a shorter run, ``--steps N``).

The data
--------
Eight pieces of four unit cubes (e3nn's tetris set). Two of them, the
"chiral" pieces, are mirror images of each other; the other six are achiral
(each is its own mirror image, up to a rotation).

The model: why a pseudoscalar
-----------------------------
:class:`~equinet.models.PointsNetwork` is equivariant under rotations *and*
the inversion :math:`x \mapsto -x`. Its invariant outputs (``0e``) are the
same for a piece and for its mirror image, so they can never tell the two
chiral pieces apart. A pseudoscalar (``0o``) output changes sign under
inversion: it can be positive for one chiral piece and negative for its
mirror image. So the network outputs ``irreps_out = "0o + 6x0e"`` (like
e3nn's tetris example) and the 8 class scores are

.. math:: (p, -p, s_1, \dots, s_6)

with :math:`p` the pseudoscalar and :math:`s_k` the scalars. Reflecting
chiral piece 0 turns it into (a rotated copy of) chiral piece 1, and the
model's scores swap exactly because :math:`p` flips sign: equivariance
predicts the right label of every reflected piece without ever seeing one.

Training uses only the 8 pieces in their original orientation, with a cross
entropy on the 8 scores. The held-out set is every piece under random
rotations, each also composed with the inversion (chiral labels swapped)
and randomly translated; we report its accuracy and the equivariance error
of the trained network (float64, :func:`equinet.testing.equivariance_error`).
The script exits with status 1 if the held-out accuracy is below 100%.
"""
import argparse
import sys
import time

import torch

from equinet.models import PointsNetwork
from equinet.o3 import quaternion_to_matrix
from equinet.testing import CARTESIAN_POINTS, equivariance_error

PIECES = [
    [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 1, 0)],  # chiral piece
    [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, -1, 0)],  # its mirror image
    [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)],  # square
    [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3)],  # line
    [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)],  # corner
    [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)],  # L
    [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1)],  # T
    [(0, 0, 0), (1, 0, 0), (1, 1, 0), (2, 1, 0)],  # zigzag
]
NAMES = ["chiral", "chiral (mirror)", "square", "line", "corner", "L", "T", "zigzag"]
#: label of a piece after a reflection: the two chiral pieces swap
MIRROR_LABEL = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])


def dataset(dtype=torch.float32):
    """Positions ``[32, 3]``, species ``[32]`` (all 0), batch ``[32]`` and labels ``[8]``."""
    pos = torch.tensor(PIECES, dtype=dtype).reshape(-1, 3)
    batch = torch.arange(len(PIECES)).repeat_interleave(4)
    return pos, torch.zeros_like(batch), batch, torch.arange(len(PIECES))


def held_out(num_rotations: int, generator: torch.Generator, dtype=torch.float32):
    """Every piece under ``num_rotations`` random rotations, each also reflected; shifted at random.

    Returns positions, species, batch and labels of ``2 * num_rotations * 8`` pieces.
    """
    pos, species, batch, labels = dataset(dtype)
    all_pos, all_labels = [], []
    for _ in range(num_rotations):
        for sign in (1.0, -1.0):  # proper rotation, then rotation composed with inversion
            quaternion = torch.randn(4, generator=generator, dtype=torch.float64)
            R = quaternion_to_matrix(quaternion / quaternion.norm()) * sign
            shift = 3 * torch.randn(len(PIECES), 1, 3, generator=generator, dtype=torch.float64)
            moved = (pos.double() @ R.T).reshape(len(PIECES), 4, 3) + shift
            all_pos.append(moved.reshape(-1, 3).to(dtype))
            all_labels.append(labels if sign > 0 else MIRROR_LABEL[labels])
    count = len(all_pos) * len(PIECES)
    batch = torch.arange(count).repeat_interleave(4)
    return torch.cat(all_pos), torch.zeros_like(batch), batch, torch.cat(all_labels)


def class_scores(out: torch.Tensor) -> torch.Tensor:
    """``[B, 7]`` outputs ``(p, s_1..s_6)`` to the 8 class scores ``(p, -p, s_1..s_6)``."""
    return torch.cat([out[:, :1], -out[:, :1], out[:, 1:]], dim=1)


def build_model() -> PointsNetwork:
    # cutoff 1.1: only the edges between touching cubes; ~1.5 neighbours per cube
    return PointsNetwork("0o + 6x0e", num_species=1, lmax=2, cutoff=1.1, num_layers=3, mul=8,
                         num_radial=4, radial_hidden=(16,), avg_num_neighbors=1.5, pool="mean")


def main(argv=None) -> dict:
    """Train, evaluate on the held-out set; returns accuracy, equivariance error, steps, time."""
    threads = torch.get_num_threads()
    # 32 points: one thread is faster than several (no work to split, only synchronisation)
    torch.set_num_threads(1)
    try:
        return _run(argv)
    finally:
        torch.set_num_threads(threads)


def _run(argv) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and test rotations")
    parser.add_argument("--steps", type=int, default=None, help="maximum training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else (150 if args.quick else 400)
    num_rotations = 8 if args.quick else 64

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pos, species, batch, labels = dataset()
    for step in range(1, steps + 1):
        scores = class_scores(model(pos, species, batch))
        loss = torch.nn.functional.cross_entropy(scores, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy = (scores.argmax(1) == labels).float().mean().item()
        if step % 25 == 0 or step == 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  train accuracy {accuracy:.3f}")
        if accuracy == 1.0 and loss.item() < 0.02:  # confident margins: stop
            print(f"step {step:4d}  loss {loss.item():.4f}  train accuracy {accuracy:.3f}")
            break
    train_time = time.perf_counter() - start

    model.eval()
    generator = torch.Generator().manual_seed(args.seed + 1)
    test_pos, test_species, test_batch, test_labels = held_out(num_rotations, generator)
    with torch.no_grad():
        predicted = class_scores(model(test_pos, test_species, test_batch)).argmax(1)
    test_accuracy = (predicted == test_labels).float().mean().item()
    wrong = sorted({NAMES[i] for i in test_labels[predicted != test_labels].tolist()})

    errors = equivariance_error(model, [CARTESIAN_POINTS, None, None], "0o + 6x0e",
                                [pos.double(), species, batch], ntrials=3)
    equivariance = max(float(e.detach().max()) for e in errors.values())
    print(f"trained in {train_time:.1f} s; held-out set: {len(test_labels)} rotated/reflected/"
          f"translated pieces, accuracy {100 * test_accuracy:.1f}%"
          + (f" (wrong: {', '.join(wrong)})" if wrong else ""))
    print(f"equivariance error (float64, rotations + inversion + translations): "
          f"{equivariance:.1e}")
    return {"accuracy": test_accuracy, "equivariance_error": equivariance, "steps": step,
            "train_time": train_time}


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["accuracy"] == 1.0 else 1)
