r"""Tutorial: predict the Kohn-Sham matrix of water (PhiSNet / QHNet), and its orbitals.

Run::

    python examples/hamiltonian.py train --quick                # minutes on a CPU
    python examples/hamiltonian.py train                        # 500 / 500, as MD17 water
    python examples/hamiltonian.py evaluate --xyz water.xyz --json metrics.json --save out.npz
    torchrun --nproc_per_node=2 examples/hamiltonian.py train --quick

The shipped weights ``examples/weights/hamiltonian_water.pt`` (used by ``evaluate`` without
``--checkpoint``) were made with::

    OMP_NUM_THREADS=1 python examples/hamiltonian.py train --quick --epochs 200 \
        --out hamiltonian_quick
    python examples/hamiltonian.py export hamiltonian_quick/ckpt.pt \
        examples/weights/hamiltonian_water.pt

The data: water geometries drawn from the harmonic thermal distribution of its normal
modes (:func:`equinet.data.normal_mode_samples`, 500 K by default) around the PBE/def2-SVP
minimum, labelled with PySCF at PBE/def2-SVP with its default settings (grid level 3,
default ``conv_tol``): the converged Kohn-Sham matrix :math:`H` and the overlap :math:`S`.
Labels are generated once, in shards that resume after an interruption, into a folder of
``$EQUINET_CACHE/hamiltonian`` (or ``--data DIR``); 500 training and 500 validation
geometries by default, as in MD17 water (``--quick``: 60 and 20).

The model: :class:`equinet.models.HamiltonianNetwork`: gated equivariant convolutions, then
node features give each atom's diagonal block and pair features each off-diagonal block
through the :math:`l_1 \otimes l_2 \to L` Clebsch-Gordan blocks of
:class:`~equinet.models.matrix_head.MatrixHead`, so the predicted matrix rotates exactly
like the true one. Matrices live in equinet's AO order during training
(:class:`equinet.chem.BasisLayout` converts from and to PySCF's).

Training: the diagonal biases start at the training set's mean atomic blocks
(:meth:`MatrixHead.initialize_node_bias`, the large core energies), the loss is the mean
squared error of :math:`H` divided by its spread over the training set, Adam with a cosine
schedule, an exponential moving average of the weights (validation and saved model), a
tqdm bar, validation metrics every epoch, a checkpoint every epoch that resumes exactly
(``--resume``), a learning curve and a plot of the predicted orbital energies and of the
error of each block of :math:`H`. Under ``torchrun`` the processes share each global batch.

Evaluation (``evaluate --xyz FILE``): any multi-frame xyz file of the trained molecule;
PySCF's reference calculation is run here, and the metrics of PhiSNet are reported (MAE of
:math:`H` and of the occupied orbital energies in micro-Hartree, cosine similarity of the
occupied orbitals), with the energy of the predicted density matrix and the SCF cycles
from PySCF's ``minao`` guess and from the predicted :math:`H`.
"""
import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from equinet._cache import atomic_write, cache_dir
from equinet.chem import BasisLayout
from equinet.chem.labels import LevelOfTheory
from equinet.chem.orbitals import (density_matrix, generalized_eigh, hamiltonian_metrics,
                                   scf_from_hamiltonian, total_energy)
from equinet.data import ShardDataset, generate
from equinet.data.samplers import NormalModes, water_molecule
from equinet.models import HamiltonianNetwork
from equinet.train import (ExponentialMovingAverage, all_reduce_sum, init_distributed,
                           load_checkpoint, max_difference_across_ranks, plot_history,
                           rng_state, save_checkpoint, restore_training, shard, train_epoch)

FORMAT = "equinet.examples.hamiltonian/1"
#: The PBE/def2-SVP minimum of water (O-H 0.9747 A, H-O-H 102.04 degrees, found by
#: minimising PySCF's energy over the two internal coordinates).
WATER = water_molecule(0.9747, 102.04)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "hamiltonian_water.pt"
LABELS = ("energy", "fock", "overlap")
#: Published results on MD17 water (PBE/def2-SVP, 500 training geometries):
#: (model, MAE of H in micro-Hartree, MAE of occupied orbital energies, orbital cosine in %).
PUBLISHED = [("SchNOrb", 165.4, 279.3, 100.0), ("PhiSNet", 15.67, 85.53, 100.0),
             ("QHNet", 10.79, 33.76, 99.99)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="generate the data (cached) and train (resumable)")
    train.add_argument("--xc", default="PBE", help="PySCF functional, or HF")
    train.add_argument("--basis", default="def2-SVP")
    train.add_argument("--temperature", type=float, default=500.0, help="Kelvin")
    train.add_argument("--n-train", type=int, default=None, help="default 500 (quick: 60)")
    train.add_argument("--n-valid", type=int, default=None, help="default 500 (quick: 20)")
    train.add_argument("--data", default=None, help="folder of the labels (default: in "
                       "$EQUINET_CACHE/hamiltonian)")
    train.add_argument("--workers", type=int, default=1, help="PySCF processes for the labels")
    train.add_argument("--mul", type=int, default=8, help="channels per hidden irrep")
    train.add_argument("--layers", type=int, default=2)
    train.add_argument("--lmax-sh", type=int, default=2, help="degree of the edge harmonics")
    train.add_argument("--cutoff", type=float, default=4.0, help="Angstrom")
    train.add_argument("--epochs", type=int, default=None, help="default 300 (quick: 60)")
    train.add_argument("--batch-size", type=int, default=4, help="global, over processes")
    train.add_argument("--lr", type=float, default=1e-2)
    train.add_argument("--ema-decay", type=float, default=0.99)
    train.add_argument("--quick", action="store_true", help="a run of minutes on a CPU")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                       help="float64: core energies of ~20 Hartree to micro-Hartree")
    train.add_argument("--out", default="hamiltonian_run", help="folder: checkpoint, plots")
    train.add_argument("--resume", action="store_true", help="continue out/ckpt.pt")
    train.add_argument("--stop-after", type=int, default=None,
                       help="stop after this many epochs in this call (resume later)")
    evaluate = sub.add_parser("evaluate", help="test on the structures of an xyz file")
    evaluate.add_argument("--checkpoint", default=None,
                          help=f"default: the shipped weights ({DEFAULT_WEIGHTS.name})")
    evaluate.add_argument("--xyz", required=True, help="one or more frames of the molecule")
    evaluate.add_argument("--save", default=None, help="write the predicted matrices (.npz, "
                          "key F, PySCF's AO order, Hartree)")
    evaluate.add_argument("--plot", default=None, help="write the orbital/block plot (PNG)")
    export = sub.add_parser("export", help="keep only the averaged weights (to ship them)")
    export.add_argument("checkpoint")
    export.add_argument("weights")
    for p in (train, evaluate):
        p.add_argument("--json", default=None, help="write the final metrics here")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads per "
                       "process (on a shared machine 1 is often fastest)")
    args = parser.parse_args(argv)
    if args.command == "train":
        quick = (dict(epochs=60, n_train=60, n_valid=20) if args.quick else
                 dict(epochs=300, n_train=500, n_valid=500))
        for key, value in quick.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


# ----------------------------------------------------------------------------------- data
def data_folder(args, level) -> Path:
    if args.data:
        return Path(args.data)
    name = (f"water_{level.xc}_{level.basis}_{args.temperature:g}K_seed{args.seed}_"
            f"{args.n_train}+{args.n_valid}")
    return cache_dir("hamiltonian", re.sub(r"[^A-Za-z0-9_.+-]", "_", name.lower()))


def sample_geometries(args, level, folder: Path):
    """The thermal geometries, drawn once and kept in the folder (so a rerun resumes)."""
    path = folder / "geometries.npz"
    count = args.n_train + args.n_valid
    if path.is_file():
        with np.load(path) as f:
            if len(f["pos"]) == count and float(f["temperature"]) == args.temperature:
                return [(f["z"], pos) for pos in f["pos"]]
        raise ValueError(f"{folder} holds other geometries (another --n-train/--n-valid or "
                         "--temperature); use another --data folder")
    modes = NormalModes.from_pyscf(WATER.z, WATER.pos, level)
    geoms = modes.sample(count, args.temperature, seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, z=WATER.z, pos=np.stack([g.pos for g in geoms]),
                 temperature=args.temperature)
    return [(g.z, g.pos) for g in geoms]


def load_data(args, level, ctx) -> dict:
    """Generate the labels (once; rank 0) and read them as tensors in equinet's AO order."""
    folder = data_folder(args, level)
    if ctx.is_main:
        geoms = sample_geometries(args, level, folder)
        generate(geoms, level, folder, properties=LABELS, workers=args.workers,
                 progress=not args.no_progress)
    ctx.barrier()
    ds = ShardDataset(folder, keys=LABELS)
    items = [ds[k] for k in range(len(ds))]
    z = items[0]["z"]
    layout = BasisLayout(level.build_mole(z.tolist(), items[0]["pos"].numpy()))
    index = torch.tensor(ds.indices)
    return {"z": z, "layout": layout, "index": index,
            "pos": torch.stack([it["pos"] for it in items]),
            "fock": layout.to_equinet(torch.stack([it["fock"] for it in items]), kind="matrix"),
            "overlap": layout.to_equinet(torch.stack([it["overlap"] for it in items]),
                                         kind="matrix"),
            "train": torch.nonzero(index < args.n_train).flatten(),
            "valid": torch.nonzero(index >= args.n_train).flatten()}


def species_of(z) -> tuple:
    """Integer species of each atom (in order of first appearance) and the distinct elements."""
    kinds = list(dict.fromkeys(int(a) for a in z))
    return torch.tensor([kinds.index(int(a)) for a in z]), kinds


# ---------------------------------------------------------------------------- the model
def build_model(config: dict) -> HamiltonianNetwork:
    return HamiltonianNetwork(config["shells"], lmax_sh=config["lmax_sh"], mul=config["mul"],
                              num_layers=config["num_layers"], cutoff=config["cutoff"])


def model_config(args, layout, species) -> dict:
    first = [int(torch.nonzero(species == a)[0]) for a in range(int(species.max()) + 1)]
    shells = [[list(s) for s in layout.atom_shells[i]] for i in first]
    return {"shells": shells, "lmax_sh": args.lmax_sh, "mul": args.mul,
            "num_layers": args.layers, "cutoff": args.cutoff}


def predict(model, pos, species):
    """``[B, nao, nao]`` matrices (equinet's order) of ``B`` geometries of one molecule."""
    b, n = pos.shape[:2]
    batch = torch.arange(b, device=pos.device).repeat_interleave(n)
    return torch.stack(model(pos.reshape(b * n, 3), species.repeat(b), batch))


def normalise(model, data, species) -> float:
    """Start the diagonal blocks at their training mean; return the spread of H (Hartree)."""
    fock = data["fock"][data["train"]]
    nodes = torch.cat([model.head.decompose(h, species)[0] for h in fock])
    model.head.initialize_node_bias(nodes, species.repeat(len(fock)))
    # the loss scale: what is left of H once each atom's diagonal block is its mean
    means = torch.stack([nodes[species.repeat(len(fock)) == a].mean(0)
                         for a in range(int(species.max()) + 1)])
    n = len(species)
    edges = torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j]).T
    base = model.head.assemble(means[species], nodes.new_zeros(edges.shape[1],
                               model.head.num_edge_blocks), species, edges.reshape(2, -1))
    return float((fock - base).pow(2).mean().sqrt())


def make_loss(data, species, scale, dtype, device):
    def loss_fn(model, batch):
        (idx,) = batch
        pos = data["pos"][idx].to(device=device, dtype=dtype)
        ref = data["fock"][idx].to(device=device, dtype=dtype)
        loss = (predict(model, pos, species.to(device)) - ref).pow(2).mean() / scale ** 2
        return loss, len(idx)
    return loss_fn


@torch.no_grad()
def predict_all(model, data, indices, species, dtype, device, batch_size=32):
    model.eval()
    out = [predict(model, data["pos"][idx].to(device=device, dtype=dtype), species.to(device))
           for idx in indices.split(batch_size)]
    return torch.cat(out).double().cpu() if out else torch.zeros(0)


def metrics(h_pred, h_ref, s, nocc, ctx=None) -> dict:
    """PhiSNet's metrics (micro-Hartree, cosine), averaged over all processes' structures."""
    m = hamiltonian_metrics(h_pred, h_ref, s, nocc) if len(h_pred) else {
        "hamiltonian_mae": 0.0, "orbital_energy_mae": 0.0, "orbital_cosine": 0.0}
    total = torch.tensor([m["hamiltonian_mae"], m["orbital_energy_mae"], m["orbital_cosine"],
                          1.0], dtype=torch.float64) * len(h_pred)
    if ctx is not None:
        total = all_reduce_sum(total, ctx)
    total = total / total[-1].clamp(min=1)
    return {"mae_H_uHa": float(total[0]), "mae_occ_eps_uHa": float(total[1]),
            "psi_cosine": float(total[2])}


# ------------------------------------------------------------------------------ training
def train(args, ctx) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    if args.batch_size % ctx.world_size:
        raise ValueError(f"--batch-size {args.batch_size} must be a multiple of the number "
                         f"of processes ({ctx.world_size})")
    level = LevelOfTheory(args.xc, args.basis)
    data = load_data(args, level, ctx)
    if len(data["train"]) == 0 or len(data["valid"]) == 0:
        raise ValueError(f"no training or validation structures in the data "
                         f"({len(data['train'])}, {len(data['valid'])})")
    species, _ = species_of(data["z"])
    config = model_config(args, data["layout"], species)
    model = build_model(config).to(torch.float64)
    scale = normalise(model, data, species)
    model.to(device=ctx.device, dtype=dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    ema = ExponentialMovingAverage(model, args.ema_decay)
    history = {"train_loss": [], "mae_H_uHa": [], "mae_occ_eps_uHa": [], "psi_cosine": [],
               "lr": []}
    epoch, wall = 0, 0.0
    out = Path(args.out)
    ckpt_path = out / "ckpt.pt"
    if args.resume:
        state = restore_training(read_checkpoint(ckpt_path, config), model, optimizer,
                                 scheduler, ema)
        history, epoch, wall = state["history"], state["epoch"], state["wall_time_s"]
    net = ctx.wrap(model)
    train_set = torch.utils.data.TensorDataset(data["train"])
    sampler = ctx.sampler(train_set, seed=args.seed)
    train_loader = torch.utils.data.DataLoader(train_set, args.batch_size // ctx.world_size,
                                               sampler=sampler)
    loss_fn = make_loss(data, species, scale, dtype, ctx.device)
    nocc = int(data["z"].sum()) // 2
    valid = shard(data["valid"], ctx)
    stop = args.epochs if args.stop_after is None else min(args.epochs, epoch + args.stop_after)
    start = time.perf_counter()
    while epoch < stop:
        sampler.set_epoch(epoch)
        loss = train_epoch(net, train_loader, loss_fn, optimizer, ema, ctx,
                           progress=not args.no_progress, desc=f"epoch {epoch + 1}")
        with ema.average_parameters():
            pred = predict_all(model, data, valid, species, dtype, ctx.device)
        m = metrics(pred, data["fock"][valid], data["overlap"][valid], nocc, ctx)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        history["train_loss"].append(loss)
        for key, value in m.items():
            history[key].append(value)
        epoch += 1
        if ctx.is_main:
            print(f"epoch {epoch:3d}  train loss {loss:.4g}  valid MAE H "
                  f"{m['mae_H_uHa']:.1f} uHa, occ. eps {m['mae_occ_eps_uHa']:.1f} uHa, "
                  f"cosine {m['psi_cosine']:.5f}  lr {history['lr'][-1]:.2e}", flush=True)
            save_checkpoint(ckpt_path, {
                "format": FORMAT, "config": config, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "ema": ema.state_dict(), "rng": rng_state(), "epoch": epoch,
                "history": history, "args": vars(args), "level": level.as_dict(),
                "z": data["z"].tolist(), "scale": scale, "n_train": len(data["train"]),
                "wall_time_s": wall + time.perf_counter() - start})
            plot_history({"train loss": history["train_loss"],
                          "valid MAE H / spread": [v * 1e-6 / scale
                                                   for v in history["mae_H_uHa"]]},
                         out / "learning_curve.png", title=f"water, {args.xc}/{args.basis}",
                         ylabel="MSE / spread^2, MAE / spread")
        ctx.barrier()
    result = {"epochs": epoch, "n_train": len(data["train"]), "n_valid": len(data["valid"]),
              "device": str(ctx.device), "world_size": ctx.world_size,
              "wall_time_s": wall + time.perf_counter() - start,
              "train_loss": history["train_loss"],
              "valid": {k: history[k][-1] for k in ("mae_H_uHa", "mae_occ_eps_uHa",
                                                     "psi_cosine")} if history["lr"] else {},
              "rank_weight_difference": max_difference_across_ranks(model, ctx)}
    if ctx.is_main and history["lr"]:
        with ema.average_parameters():
            pred = predict_all(model, data, data["valid"], species, dtype, ctx.device)
        plot_predictions(pred, data["fock"][data["valid"]], data["overlap"][data["valid"]],
                         nocc, data["layout"], out / "predictions.png")
        print_table(result["valid"], "validation")
    finish(args, result, ctx)
    return result


def read_checkpoint(path, config=None) -> dict:
    """Load a checkpoint of this example; with ``config``, check it is the same model."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (train first, or check --out / "
                                "--checkpoint)")
    return load_checkpoint(path, format=FORMAT, config=config, writer="examples/hamiltonian.py")


def finish(args, result, ctx):
    if ctx.is_main and args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


# ---------------------------------------------------------------------------- evaluation
def read_frames(path, z_trained) -> list:
    """The positions of every frame of ``path``, checked to be the trained molecule."""
    import ase.io
    from ase.data import chemical_symbols

    if not Path(path).is_file():
        raise FileNotFoundError(f"no xyz file at {path}")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as err:  # ase raises many kinds on malformed files
        raise ValueError(f"{path} is not a readable xyz file: {type(err).__name__}: "
                         f"{err}") from None
    if not frames:
        raise ValueError(f"{path} holds no structures")
    want = [chemical_symbols[a] for a in z_trained]
    for k, atoms in enumerate(frames):
        if atoms.numbers.tolist() != list(z_trained):
            raise ValueError(f"{path}: frame {k} has atoms {atoms.get_chemical_symbols()}, but "
                             f"the model was trained on {want} (same elements, same order)")
    return [atoms.positions.astype(np.float64) for atoms in frames]


def evaluate(args, ctx) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.checkpoint) if args.checkpoint else DEFAULT_WEIGHTS
    if args.checkpoint is None and not path.is_file():
        raise FileNotFoundError(f"the shipped weights {path} are missing: train a model "
                                "(python examples/hamiltonian.py train --quick) and pass "
                                "--checkpoint hamiltonian_run/ckpt.pt")
    state = read_checkpoint(path)
    model = build_model(state["config"])
    dtype = getattr(torch, state["args"]["dtype"])
    model.to(dtype=dtype)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit its model: {err}") from None
    if "ema" in state:  # a training checkpoint: use the averaged weights
        ema = ExponentialMovingAverage(model)
        ema.load_state_dict(state["ema"])
        ema.copy_to()
    model.eval()
    level = LevelOfTheory.from_dict(state["level"])
    z = state["z"]
    frames = read_frames(args.xyz, z)
    species, _ = species_of(z)
    from tqdm.auto import tqdm

    start = time.perf_counter()
    rows = {k: [] for k in ("pred", "ref", "s", "e_pred", "e_ref", "minao", "predicted")}
    for pos in tqdm(frames, desc="evaluate", disable=args.no_progress, leave=False):
        mol = level.build_mole(z, pos)
        layout = BasisLayout(mol)
        with torch.no_grad():
            h = model(torch.as_tensor(pos, dtype=dtype), species, layouts=layout)
        h = h.double().numpy()
        mf, cycles = scf_from_hamiltonian(mol, level)  # the reference, from minao
        _, guessed = scf_from_hamiltonian(mol, level, h=h)
        if not mf.converged:
            raise RuntimeError(f"the reference SCF did not converge for a frame of {args.xyz}")
        s = mol.intor_symmetric("int1e_ovlp")
        _, c = generalized_eigh(h, s)
        rows["pred"].append(h)
        rows["ref"].append(np.asarray(mf.get_fock(dm=mf.make_rdm1())))
        rows["s"].append(s)
        rows["e_pred"].append(float(total_energy(mol, density_matrix(c, mol.nelectron // 2),
                                                 level)))
        rows["e_ref"].append(float(mf.e_tot))
        rows["minao"].append(cycles)
        rows["predicted"].append(guessed)
    pred, ref, s = (np.stack(rows[k]) for k in ("pred", "ref", "s"))
    nocc = sum(z) // 2
    energy_error = np.array(rows["e_pred"]) - np.array(rows["e_ref"])
    result = {**metrics(pred, ref, s, nocc), "n_structures": len(frames),
              "energy_error_uHa": float(np.abs(energy_error).mean() * 1e6),
              "energy_error_max_uHa": float(np.abs(energy_error).max() * 1e6),
              "scf_iterations": {k: float(np.mean(rows[k])) for k in ("minao", "predicted")},
              "level": level.as_dict(), "checkpoint": str(path),
              "wall_time_s": time.perf_counter() - start,
              "published": [dict(zip(("model", "mae_H_uHa", "mae_occ_eps_uHa",
                                      "psi_cosine_percent"), row)) for row in PUBLISHED]}
    if args.save:
        with atomic_write(args.save, "wb") as f:
            np.savez(f, F=pred, z=np.asarray(z), pos=np.stack(frames))
    if args.plot:
        plot_predictions(pred, ref, s, nocc, None, args.plot)
    print_table(result, f"{len(frames)} structures of {args.xyz}")
    print(f"energy of the predicted density: {result['energy_error_uHa']:.1f} uHa from the "
          f"reference (mean abs.); SCF iterations from minao "
          f"{result['scf_iterations']['minao']:.1f}, from the predicted H "
          f"{result['scf_iterations']['predicted']:.1f}")
    finish(args, result, ctx)
    return result


def export(args, ctx) -> dict:
    """Write the averaged weights of a training checkpoint alone (no optimiser state)."""
    state = read_checkpoint(args.checkpoint)
    model = build_model(state["config"]).to(getattr(torch, state["args"]["dtype"]))
    model.load_state_dict(state["model"])
    ema = ExponentialMovingAverage(model)
    ema.load_state_dict(state["ema"])
    ema.copy_to()
    keep = ("format", "config", "args", "level", "z", "scale", "epoch", "n_train",
            "history", "wall_time_s")
    weights = {**{k: state[k] for k in keep}, "model": model.state_dict()}
    if ctx.is_main:
        Path(args.weights).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(args.weights, weights)
    return {"weights": str(args.weights), "epoch": state["epoch"]}


# ---------------------------------------------------------------------------- reporting
def print_table(m: dict, what: str) -> None:
    """This run's metrics beside the published MD17-water ones."""
    print(f"this run: {what}")
    print(f"{'':22s} {'MAE H (uHa)':>12s} {'MAE occ. eps (uHa)':>19s} {'cosine (%)':>11s}")
    print(f"{'this run':22s} {m['mae_H_uHa']:12.2f} {m['mae_occ_eps_uHa']:19.2f} "
          f"{100 * m['psi_cosine']:11.3f}")
    for name, mae_h, mae_eps, cosine in PUBLISHED:
        print(f"{name + ' (MD17 water)':22s} {mae_h:12.2f} {mae_eps:19.2f} {cosine:11.2f}")


def plot_predictions(pred, ref, s, nocc, layout, path) -> None:
    """Predicted against reference orbital energies, and the MAE of each entry of H."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred, ref, s = (torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (pred, ref, s))
    e_pred, _ = generalized_eigh(pred, s)
    e_ref, _ = generalized_eigh(ref, s)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    occ = torch.zeros(e_ref.shape[-1], dtype=torch.bool)
    occ[:nocc] = True
    for mask, label in ((occ, "occupied"), (~occ, "virtual")):
        ax1.scatter(e_ref[:, mask].flatten(), e_pred[:, mask].flatten(), s=6, label=label)
    lo, hi = float(e_ref.min()), float(e_ref.max())
    ax1.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax1.set_xlabel("reference orbital energy (Hartree)")
    ax1.set_ylabel("predicted (Hartree)")
    ax1.set_xscale("symlog", linthresh=1.0)
    ax1.set_yscale("symlog", linthresh=1.0)
    ax1.legend()
    error = (pred - ref).abs().mean(0) * 1e6
    image = ax2.imshow(error.numpy(), cmap="viridis")
    if layout is not None:  # atom boundaries
        for sl in layout.atom_slices[1:]:
            ax2.axhline(sl.start - 0.5, color="w", lw=0.8)
            ax2.axvline(sl.start - 0.5, color="w", lw=0.8)
    ax2.set_title("MAE of each entry of H (uHa)")
    fig.colorbar(image, ax=ax2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    ctx = init_distributed()
    try:  # the model (DDP) is freed when train returns, before the process group
        return {"train": train, "evaluate": evaluate, "export": export}[args.command](args, ctx)
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
