r"""Tutorial: learn the electron density of water clusters (Rackers et al.; SCFbench).

Run::

    python examples/electron_density.py train --quick        # a few minutes on 2 CPU cores
    python examples/electron_density.py train                # ~30 min of data, then training
    python examples/electron_density.py evaluate --xyz clusters.xyz --json metrics.json
    python examples/electron_density.py evaluate --checkpoint density_run/ckpt.pt \
        --xyz clusters.xyz --grid becke --save predicted.npz
    torchrun --nproc_per_node=2 examples/electron_density.py train --quick

Shipped weights (``examples/weights/electron_density.pt``, used by ``evaluate`` when no
``--checkpoint`` is given) were made with::

    OMP_NUM_THREADS=1 python examples/electron_density.py train --quick \
        --clusters 1:20,2:40,3:20 --epochs 100 --out ed_ship       # ~6 min labels, ~5 min training
    python -c "import runpy; runpy.run_path('examples/electron_density.py')\
['export_weights']('ed_ship/ckpt.pt')"

(72 training, 8 validation clusters of 1-3 waters; validation eps 1.07% against the fitted
reference on PySCF's grid, from 11.7% for the free atoms superposed.)

The data: random clusters of rigid waters (:func:`equinet.data.water_clusters`), labelled
with PySCF at PBE/def2-SVP (``--xc``, ``--basis``); the SCF density is fitted onto the
auxiliary basis def2-universal-jfit (``--auxbasis``) in the Coulomb metric. The labels
are cached (resumable, settings recorded in the folder) under equinet's cache or ``--data``.

The model: :class:`equinet.models.DensityNetwork` predicts each atom's auxiliary
coefficients as the free atom's plus a learned equivariant correction, shifted so that
the molecule holds exactly its electrons. The loss is the Coulomb energy of the error
density, :math:`(c - c_{ref})^\top J (c - c_{ref})`, which is what the fit minimises too.

The metric: :math:`\epsilon = 100 \int|\rho_{ML} - \rho_{ref}| / \int \rho_{ref}` on a
0.1 A grid padded 3 A (Rackers et al.), against the fitted reference (the learning
error) and against the SCF density (the total error, of which the fit's own error is
the floor); ``evaluate`` also seeds PySCF's SCF with the predicted density and counts the
iterations against PySCF's ``minao``, ``atom`` and ``huckel`` guesses.
"""
import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from equinet.chem.basis_layout import BasisLayout
from equinet.chem.coulomb import conserve_charge, coulomb_loss, coulomb_metric
from equinet.chem.density import (aux_integrals, becke_grid, density_error, eval_density,
                                  fit_density, uniform_grid)
from equinet.chem.guess import density_guess, scf_cycles_from_guess
from equinet.chem.labels import LevelOfTheory, run_scf
from equinet.models import DensityNetwork
from equinet.train import (ExponentialMovingAverage, all_reduce_sum, init_distributed,
                           load_checkpoint, plot_history, rng_state, save_checkpoint,
                           restore_training, train_epoch)

FORMAT = "equinet.examples.electron_density/1"
WEIGHTS = Path(__file__).resolve().parent / "weights" / "electron_density.pt"
#: Clusters per size, "waters:count,...": the default set and the quick one.
CLUSTERS = {"full": "1:100,2:200,3:150,4:60", "quick": "1:20,2:20"}
GUESSES = ("minao", "atom", "huckel", "predicted")
#: Published anchors, printed next to this run's numbers.
ANCHORS = ("Rackers et al. (arXiv:2201.03726): eps < ~1% against the fitted reference, "
           "also on large water clusters",
           "SCFbench: a learned density guess needs 33.3% fewer SCF iterations than "
           "PySCF's default (minao)",
           "the jfit fit alone is ~1.5% from the SCF density (the floor of eps vs SCF)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="label water clusters (cached) and train (resumable)")
    train.add_argument("--clusters", default=None, help="waters:count,... (default "
                       f"{CLUSTERS['full']}, quick {CLUSTERS['quick']})")
    train.add_argument("--xc", default="PBE")
    train.add_argument("--basis", default="def2-SVP")
    train.add_argument("--auxbasis", default="def2-universal-jfit")
    train.add_argument("--data", default=None, help="label folder (default: equinet's cache)")
    train.add_argument("--workers", type=int, default=2, help="processes labelling data")
    train.add_argument("--valid-fraction", type=float, default=0.1)
    train.add_argument("--lmax", type=int, default=None, help="hidden degree (default: the "
                       "auxiliary basis' largest l)")
    train.add_argument("--mul", type=int, default=None, help="channels per irrep (16; quick 8)")
    train.add_argument("--layers", type=int, default=None, help="3 (quick 2)")
    train.add_argument("--cutoff", type=float, default=4.0, help="Angstrom")
    train.add_argument("--epochs", type=int, default=None, help="200 (quick 60)")
    train.add_argument("--batch-size", type=int, default=8, help="global, over processes")
    train.add_argument("--lr", type=float, default=1e-2)
    train.add_argument("--ema-decay", type=float, default=0.99)
    train.add_argument("--n-eps", type=int, default=8, help="validation clusters whose eps "
                       "(PySCF grid) is tracked every epoch")
    train.add_argument("--quick", action="store_true", help="a run of a few minutes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="density_run", help="folder: checkpoint, plots")
    train.add_argument("--resume", action="store_true", help="continue out/ckpt.pt")
    train.add_argument("--stop-after", type=int, default=None,
                       help="stop after this many epochs in this call (resume later)")
    evaluate = sub.add_parser("evaluate", help="run PySCF on an xyz file and compare")
    evaluate.add_argument("--checkpoint", default=None, help=f"default {WEIGHTS}")
    evaluate.add_argument("--xyz", required=True, help="(multi-frame) xyz of water clusters")
    evaluate.add_argument("--grid", choices=("uniform", "becke", "both"), default="both",
                          help="uniform: the paper's 0.1 A box (slow for big clusters); "
                          "becke: PySCF's integration grid")
    evaluate.add_argument("--spacing", type=float, default=0.1, help="uniform grid, Angstrom")
    evaluate.add_argument("--guesses", default=",".join(GUESSES),
                          help="SCF guesses to count iterations for ('' for none)")
    evaluate.add_argument("--save", default=None, help="predicted coefficients (.npz)")
    for p in (train, evaluate):
        p.add_argument("--json", default=None, help="write the metrics here")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.command == "train":
        quick = dict(epochs=60, mul=8, layers=2) if args.quick else dict(epochs=200, mul=16,
                                                                          layers=3)
        for key, value in quick.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        if args.clusters is None:
            args.clusters = CLUSTERS["quick" if args.quick else "full"]
        parse_clusters(args.clusters)  # a bad spec fails before any work
    return args


# ----------------------------------------------------------------------------------- data
def parse_clusters(spec: str) -> list:
    """``"1:20,2:20"`` -> ``[(1, 20), (2, 20)]`` (waters per cluster, clusters)."""
    try:
        pairs = [tuple(int(x) for x in part.split(":")) for part in spec.split(",")]
        assert pairs and all(len(p) == 2 and p[0] >= 1 and p[1] >= 0 for p in pairs)
    except (ValueError, AssertionError):
        raise ValueError(f"--clusters must look like '1:20,2:20' (waters:count,...), "
                         f"got {spec!r}") from None
    return pairs


def label_data(args, level) -> Path:
    """Label the clusters with PySCF into a folder (cached; a rerun computes what is left)."""
    from equinet._cache import cache_dir
    from equinet.data import generate, water_clusters

    geometries = []
    for n, count in parse_clusters(args.clusters):
        geometries += water_clusters(n, count, seed=args.seed + 1000 * n)
    if args.data:
        folder = Path(args.data)
    else:
        name = f"{args.xc}_{args.basis}_{args.auxbasis}_{args.clusters}_seed{args.seed}"
        folder = cache_dir("electron_density", re.sub(r"[^A-Za-z0-9_.-]+", "-", name))
    report = generate(geometries, level, folder, properties=("density_matrix",
                      "df_coefficients"), workers=args.workers, progress=not args.no_progress)
    if report.labelled == 0:
        raise RuntimeError(f"no cluster in {folder} was labelled: see {folder}/failed.json")
    if report.computed:
        print(f"labelled {report.computed} clusters in {report.seconds:.0f} s -> {folder}")
    return folder


def species_of(z, elements) -> torch.Tensor:
    """Indices into the model's elements; a clear error for an element it does not know."""
    from pyscf.data.elements import ELEMENTS

    unknown = sorted({int(a) for a in z} - set(elements))
    if unknown:
        raise ValueError(f"the model was trained on {[ELEMENTS[e] for e in elements]} only; "
                         f"this structure has {[ELEMENTS[e] for e in unknown]}")
    return torch.tensor([elements.index(int(a)) for a in z], dtype=torch.long)


def load_molecules(folder, level, elements=None) -> tuple:
    """Every labelled cluster: tensors for training and PySCF objects for the metrics."""
    from equinet.data import ShardDataset
    from pyscf.df.addons import make_auxmol

    ds = ShardDataset(folder, keys=["df_coefficients", "density_matrix"])
    if ds.level != level.as_dict():
        raise ValueError(f"{folder} holds labels at {ds.level}, not {level.as_dict()}")
    if elements is None:
        elements = sorted({int(a) for k in range(len(ds)) for a in ds[k]["z"]})
    molecules = []
    for k in range(len(ds)):
        item = ds[k]
        mol = level.build_mole(item["z"].numpy(), item["pos"].numpy())
        auxmol = make_auxmol(mol, level.auxbasis)
        layout = BasisLayout(auxmol)
        molecules.append({
            "pos": item["pos"], "species": species_of(item["z"].tolist(), elements),
            "c": torch.as_tensor(layout.to_equinet(item["df_coefficients"].numpy(), "vector")),
            "metric": torch.as_tensor(coulomb_metric(auxmol, order="equinet")),
            "mol": mol, "auxmol": auxmol, "layout": layout,
            "dm": item["density_matrix"].numpy()})
    return molecules, elements


def collate(items) -> dict:
    """A batch: atoms concatenated (``batch`` says whose), coefficients and metrics listed."""
    return {"pos": torch.cat([m["pos"] for m in items]),
            "species": torch.cat([m["species"] for m in items]),
            "batch": torch.cat([torch.full((len(m["species"]),), k, dtype=torch.long)
                                for k, m in enumerate(items)]),
            "c": [m["c"] for m in items], "metric": [m["metric"] for m in items]}


# ---------------------------------------------------------------------------- the model
def make_model(config: dict) -> DensityNetwork:
    """The network of a config (references from free-atom SCFs at the same level, cached)."""
    return DensityNetwork.from_basis(
        config["elements"], config["basis"], config["auxbasis"], config["xc"],
        lmax_hidden=config["lmax"], mul=config["mul"], num_layers=config["layers"],
        cutoff=config["cutoff"])


def batch_losses(net, batch, device, dtype) -> torch.Tensor:
    """The Coulomb error (Hartree) of each cluster of the batch."""
    model = getattr(net, "module", net)
    species, index = batch["species"].to(device), batch["batch"].to(device)
    c = net(batch["pos"].to(device=device, dtype=dtype), species, index)
    return torch.stack([
        coulomb_loss(pred, ref.to(device=device, dtype=dtype), metric.to(device=device,
                     dtype=dtype))
        for pred, ref, metric in zip(model.split(c, species, index), batch["c"],
                                     batch["metric"])])


def make_loss(device, dtype):
    def loss_fn(net, batch):
        losses = batch_losses(net, batch, device, dtype)
        return losses.mean(), len(losses)
    return loss_fn


@torch.no_grad()
def predict(model, molecule) -> np.ndarray:
    """Predicted coefficients of one cluster, float64, PySCF's order of its auxmol."""
    param = next(model.parameters())
    c = model(molecule["pos"].to(param), molecule["species"].to(param.device))
    return molecule["layout"].to_pyscf(c.double().cpu().numpy(), "vector")


def atoms_only(model, molecule) -> np.ndarray:
    """The baseline: free atoms superposed, charge-conserved (PySCF's order)."""
    species = molecule["species"]
    refs = model.references.double().cpu().index_select(0, species)
    width = torch.arange(refs.shape[1])
    mask = width < model.dims.cpu().index_select(0, species)[:, None]
    c = conserve_charge(refs[mask], model.coefficient_integrals(species).double().cpu(),
                        float(molecule["mol"].nelectron))
    return molecule["layout"].to_pyscf(c.numpy(), "vector")


def becke_eps(molecule, c) -> float:
    """eps (percent) against the fitted reference on PySCF's grid (cheap; for monitoring)."""
    coords, weights = becke_grid(molecule["mol"])
    auxmol = molecule["auxmol"]
    ref = molecule["layout"].to_pyscf(molecule["c"].numpy(), "vector")
    return density_error(eval_density(None, (c, auxmol), coords),
                         eval_density(None, (ref, auxmol), coords), weights)


# ------------------------------------------------------------------------------ training
def train(args, ctx) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.batch_size % ctx.world_size:
        raise ValueError(f"--batch-size {args.batch_size} must be a multiple of the number "
                         f"of processes ({ctx.world_size})")
    level = LevelOfTheory(args.xc, args.basis, args.auxbasis)
    folder = label_data(args, level) if ctx.is_main else None
    ctx.barrier()
    if folder is None:  # other ranks: the folder rank 0 labelled (read, not recomputed)
        folder = label_data(args, level)
    molecules, elements = load_molecules(folder, level)
    order = torch.randperm(len(molecules), generator=torch.Generator().manual_seed(args.seed))
    n_valid = max(1, int(round(args.valid_fraction * len(molecules))))
    if len(molecules) < 2:
        raise ValueError(f"need at least 2 labelled clusters, {folder} has {len(molecules)}")
    valid = [molecules[i] for i in order[:n_valid].tolist()]
    train_set = [molecules[i] for i in order[n_valid:].tolist()]
    aux_lmax = max(ir.l for m in molecules for _, ir in m["layout"].irreps)
    config = {"elements": elements, "basis": args.basis, "auxbasis": args.auxbasis,
              "xc": args.xc, "lmax": args.lmax if args.lmax is not None else aux_lmax,
              "mul": args.mul, "layers": args.layers, "cutoff": args.cutoff}
    model = make_model(config).to(ctx.device)
    dtype = torch.float32
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    ema = ExponentialMovingAverage(model, args.ema_decay)
    history = {"train_loss": [], "valid_loss": [], "valid_eps": [], "lr": []}
    epoch, wall = 0, 0.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    if args.resume:
        state = restore_training(read_checkpoint(ckpt_path, config), model, optimizer,
                                 scheduler, ema)
        history, epoch, wall = state["history"], state["epoch"], state["wall_time_s"]
    tracked = valid[:args.n_eps]
    if ctx.is_main and epoch == 0:
        base = np.mean([becke_eps(m, atoms_only(model, m)) for m in tracked])
        print(f"{len(train_set)} training, {len(valid)} validation clusters; free atoms "
              f"superposed: eps {base:.2f}% (PySCF grid)", flush=True)
    net = ctx.wrap(model)
    sampler = ctx.sampler(train_set, seed=args.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size //
                                         ctx.world_size, sampler=sampler, collate_fn=collate)
    loss_fn, stop = make_loss(ctx.device, dtype), args.epochs
    if args.stop_after is not None:
        stop = min(stop, epoch + args.stop_after)
    start = time.perf_counter()
    while epoch < stop:
        sampler.set_epoch(epoch)
        loss = train_epoch(net, loader, loss_fn, optimizer, ema, ctx,
                           progress=not args.no_progress, desc=f"epoch {epoch + 1}")
        history["lr"].append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        with ema.average_parameters():
            valid_loss = validation_loss(model, valid, ctx, dtype)
            eps = (float(np.mean([becke_eps(m, predict(model, m)) for m in tracked]))
                   if ctx.is_main else float("nan"))
        history["train_loss"].append(loss)
        history["valid_loss"].append(valid_loss)
        history["valid_eps"].append(eps)
        epoch += 1
        if ctx.is_main:
            print(f"epoch {epoch:3d}  train loss {loss:.3e}  valid loss {valid_loss:.3e} Ha  "
                  f"valid eps {eps:.2f}% (PySCF grid)  lr {history['lr'][-1]:.2e}", flush=True)
            save_checkpoint(ckpt_path, {
                "format": FORMAT, "config": config, "level": level.as_dict(),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "ema": ema.state_dict(),
                "rng": rng_state(), "epoch": epoch, "history": history, "args": vars(args),
                "data": str(folder), "n_train": len(train_set), "n_valid": len(valid),
                "wall_time_s": wall + time.perf_counter() - start})
            plot_history({"train loss": history["train_loss"],
                          "valid loss": history["valid_loss"]}, out / "learning_curve.png",
                         title=f"water clusters, {args.xc}/{args.basis} -> {args.auxbasis}",
                         ylabel="Coulomb error (Hartree)")
        ctx.barrier()
    result = {"epochs": epoch, "n_train": len(train_set), "n_valid": len(valid),
              "data": str(folder), "world_size": ctx.world_size,
              "wall_time_s": wall + time.perf_counter() - start,
              "train_loss": history["train_loss"], "valid_loss": history["valid_loss"],
              "valid_eps_percent": history["valid_eps"]}
    if ctx.is_main and epoch > 0:
        with ema.average_parameters():
            biggest = max(valid, key=lambda m: len(m["species"]))
            plot_slice(biggest["mol"], (predict(model, biggest), biggest["auxmol"]),
                       biggest["dm"], out / "density_slice.png")
        print(f"valid eps {history['valid_eps'][-1]:.2f}% (fitted reference, PySCF grid); "
              f"slice: {out / 'density_slice.png'}")
        for line in ANCHORS[:1]:
            print("  published:", line)
    finish(args, result, ctx)
    return result


@torch.no_grad()
def validation_loss(model, molecules, ctx, dtype) -> float:
    """Mean Coulomb error over ``molecules``, shared among processes."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    mine = molecules[ctx.rank::ctx.world_size]
    for k in range(0, len(mine), 16):
        losses = batch_losses(model, collate(mine[k:k + 16]), ctx.device, dtype)
        total += torch.tensor([float(losses.sum()), len(losses)], dtype=torch.float64)
    total = all_reduce_sum(total, ctx)
    return float(total[0] / total[1].clamp(min=1))


def plot_slice(mol, pred, dm, path, size=160) -> None:
    """rho_ML, rho_QM (SCF) and their difference on the plane of the cluster's two widest
    principal axes, through its centre."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = mol.atom_coords(unit="Bohr")
    centre = pos.mean(0)
    axes = np.linalg.svd(pos - centre)[2] if len(pos) > 2 else np.eye(3)
    half = np.abs((pos - centre) @ axes[:2].T).max() + 3.0 / 0.529177
    u = np.linspace(-half, half, size)
    grid = centre + u[:, None, None] * axes[0] + u[None, :, None] * axes[1]
    coords = grid.reshape(-1, 3)
    rho_ml = eval_density(mol, pred, coords).reshape(size, size)
    rho_qm = eval_density(mol, dm, coords).reshape(size, size)
    fig, panels = plt.subplots(1, 3, figsize=(13, 4))
    extent = [-half * 0.529177, half * 0.529177] * 2
    top = np.log10(max(rho_qm.max(), 1e-6))
    for ax, rho, title in ((panels[0], rho_ml, "rho_ML"), (panels[1], rho_qm, "rho_QM (SCF)")):
        im = ax.imshow(np.log10(np.clip(rho, 1e-4, None)).T, origin="lower", extent=extent,
                       vmin=-4, vmax=top, cmap="viridis")
        ax.set_title(f"log10 {title} (e/Bohr^3)")
        fig.colorbar(im, ax=ax)
    diff = rho_ml - rho_qm
    limit = float(np.abs(diff).max()) or 1.0
    limit = min(limit, 0.05)
    im = panels[2].imshow(diff.T, origin="lower", extent=extent, cmap="RdBu_r",
                          vmin=-limit, vmax=limit)
    panels[2].set_title("rho_ML - rho_QM (e/Bohr^3)")
    fig.colorbar(im, ax=panels[2])
    for ax in panels:
        ax.set_xlabel("A")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_checkpoint(path, config=None) -> dict:
    """Load a checkpoint of this example; with ``config``, check it is the same model."""
    if not Path(path).is_file():
        hint = ("train one first (examples/electron_density.py train --quick) or pass "
                "--checkpoint" if Path(path) == WEIGHTS else "train first, or check --out")
        raise FileNotFoundError(f"no checkpoint at {path}: {hint}")
    return load_checkpoint(path, format=FORMAT, config=config,
                           writer="examples/electron_density.py")


def export_weights(checkpoint, path=WEIGHTS) -> None:
    """A small file for ``evaluate``: the averaged weights, config and level only."""
    state = read_checkpoint(checkpoint)
    model = make_model(state["config"])
    model.load_state_dict(state["model"])
    ema = ExponentialMovingAverage(model)
    ema.load_state_dict(state["ema"])
    ema.copy_to()
    keep = {k: state[k] for k in ("format", "config", "level", "epoch", "history", "args",
                                  "n_train", "n_valid", "wall_time_s")}
    save_checkpoint(path, {**keep, "model": model.state_dict(), "ema": ema.state_dict()})


def finish(args, result, ctx):
    if ctx.is_main and args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


# ---------------------------------------------------------------------------- evaluation
def read_structures(path) -> list:
    """All frames of an xyz file (ase), as ``(z, pos)``; a clear error if unreadable."""
    import ase.io

    if not Path(path).is_file():
        raise FileNotFoundError(f"no file {path}")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as error:
        raise ValueError(f"cannot read {path} as xyz: {type(error).__name__}: {error}") from None
    if not frames:
        raise ValueError(f"{path} holds no structures")
    return [(a.get_atomic_numbers(), a.get_positions()) for a in frames]


def evaluate(args, ctx) -> list:
    if args.threads:
        torch.set_num_threads(args.threads)
    state = read_checkpoint(args.checkpoint or WEIGHTS)
    config, level = state["config"], LevelOfTheory.from_dict(state["level"])
    guesses = [g for g in args.guesses.split(",") if g]
    bad = sorted(set(guesses) - set(GUESSES))
    if bad:
        raise ValueError(f"unknown guesses {bad}; choose from {GUESSES}")
    structures = read_structures(args.xyz)
    for k, (z, _) in enumerate(structures):  # fail before any SCF
        try:
            species_of(z, config["elements"])
            if int(np.sum(z)) % 2:
                raise ValueError(f"{int(np.sum(z))} electrons: this example runs neutral "
                                 "closed-shell structures only")
        except ValueError as error:
            raise ValueError(f"{args.xyz}, structure {k}: {error}") from None
    model = make_model(config)
    model.load_state_dict(state["model"])
    ema = ExponentialMovingAverage(model)
    ema.load_state_dict(state["ema"])
    ema.copy_to()
    model.double().eval()
    results, saved = [], {}
    from tqdm.auto import tqdm
    for k, (z, pos) in enumerate(tqdm(structures, desc="evaluate", disable=args.no_progress)):
        start = time.perf_counter()
        row, c_pred, c_fit = evaluate_one(model, config, level, z, pos, args, guesses)
        row["seconds"] = time.perf_counter() - start
        results.append(row)
        saved.update({f"{k}/z": z, f"{k}/pos": pos, f"{k}/coefficients": c_pred,
                      f"{k}/reference_coefficients": c_fit})
    if ctx.is_main:
        print_table(results)
        if args.save:
            np.savez(args.save, auxbasis=level.auxbasis, basis=level.basis, xc=level.xc,
                     order="pyscf", count=len(results), **saved)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    return results


def evaluate_one(model, config, level, z, pos, args, guesses) -> tuple:
    """The reference SCF of one structure, the prediction, the errors and SCF cycles."""
    mol = level.build_mole(z, pos)
    dm = run_scf(mol, level).make_rdm1()
    c_fit, auxmol = fit_density(mol, dm, level.auxbasis)
    layout = BasisLayout(auxmol)
    molecule = {"pos": torch.as_tensor(pos, dtype=torch.float64),
                "species": species_of(z, config["elements"]), "layout": layout}
    c_pred = predict(model, molecule)
    q = aux_integrals(auxmol)
    row = {"n_atoms": len(z), "n_electrons": int(mol.nelectron),
           "n_electrons_pred": float(q @ c_pred), "n_electrons_ref": float(q @ c_fit)}
    grids = {"uniform": ("", lambda: _uniform(mol, args.spacing)),
             "becke": ("_pyscf_grid", lambda: becke_grid(mol, level.grids_level))}
    for name, (suffix, make) in grids.items():
        for key in ("eps_percent", "eps_percent_vs_scf", "eps_percent_fit_vs_scf"):
            row[key + suffix] = None
        if args.grid not in (name, "both"):
            continue
        coords, weights = make()
        rho_pred = eval_density(None, (c_pred, auxmol), coords)
        rho_fit = eval_density(None, (c_fit, auxmol), coords)
        rho_scf = eval_density(mol, dm, coords)
        row["eps_percent" + suffix] = density_error(rho_pred, rho_fit, weights)
        row["eps_percent_vs_scf" + suffix] = density_error(rho_pred, rho_scf, weights)
        row["eps_percent_fit_vs_scf" + suffix] = density_error(rho_fit, rho_scf, weights)
    row["scf_iterations"] = {}
    for guess in guesses:
        dm0 = density_guess(mol, c_pred, auxmol, level.xc) if guess == "predicted" else guess
        row["scf_iterations"][guess] = scf_cycles_from_guess(mol, level, dm0)
    return row, c_pred, c_fit


def _uniform(mol, spacing):
    coords, volume = uniform_grid(mol, spacing=spacing)
    return coords, volume


def print_table(results: list) -> None:
    """Per-structure errors and SCF iterations, then the means next to published anchors."""
    def fmt(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    guesses = list(results[0]["scf_iterations"]) if results else []
    print(f"{'#':>3s} {'atoms':>5s} {'eps':>6s} {'eps_pg':>6s} {'vsSCF':>6s} {'fit':>6s} "
          f"{'N_pred':>8s} {'N_ref':>8s}  SCF iterations " + " ".join(guesses))
    for k, r in enumerate(results):
        vs_scf, floor = (r["eps_percent_vs_scf"], r["eps_percent_fit_vs_scf"])
        if vs_scf is None:  # only the PySCF grid was asked for
            vs_scf, floor = (r["eps_percent_vs_scf_pyscf_grid"],
                             r["eps_percent_fit_vs_scf_pyscf_grid"])
        print(f"{k:3d} {r['n_atoms']:5d} {fmt(r['eps_percent']):>6s} "
              f"{fmt(r['eps_percent_pyscf_grid']):>6s} {fmt(vs_scf):>6s} {fmt(floor):>6s} "
              f"{r['n_electrons_pred']:8.3f} {r['n_electrons_ref']:8.3f}  "
              + " ".join(str(r["scf_iterations"][g]) for g in guesses))
    print("eps: % vs the fitted reference (uniform grid; eps_pg: PySCF's grid); vsSCF: vs the "
          "SCF density; fit: the fit's own error (the floor)")
    cycles = {g: [r["scf_iterations"][g] for r in results] for g in guesses}
    if "predicted" in cycles and "minao" in cycles:
        pairs = [(p, m) for p, m in zip(cycles["predicted"], cycles["minao"])
                 if p is not None and m is not None]
        if pairs:
            saved = 100.0 * (1.0 - sum(p for p, _ in pairs) / sum(m for _, m in pairs))
            print(f"SCF iterations saved by the predicted guess against minao: {saved:.1f}%")
    for line in ANCHORS:
        print("  published:", line)


def main(argv=None):
    args = parse_args(argv)
    ctx = init_distributed()
    try:
        return (train if args.command == "train" else evaluate)(args, ctx)
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
