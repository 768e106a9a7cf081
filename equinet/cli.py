"""The ``equinet`` command.

``equinet info`` prints versions and available backends; ``equinet generate`` labels
geometries with PySCF into a folder of shards (see :func:`equinet.data.generate`)::

    equinet generate water-clusters --n 3 --count 100 --xc PBE --basis def2-SVP \\
        --auxbasis def2-universal-jfit --out clusters --workers 2
    equinet generate normal-modes --xyz water.xyz --temperature 300 --count 500 --out w
    equinet generate xyz --xyz frames.xyz --out frames
"""
import argparse
import importlib
import platform
import sys

__all__ = ["main"]


def _version(name: str) -> str:
    try:
        return getattr(importlib.import_module(name), "__version__", "installed")
    except ImportError:
        return "not installed"


def info() -> str:
    """A short report of the environment equinet runs in.

    >>> "equinet" in info()
    True
    """
    import torch

    import equinet

    lines = [
        f"equinet {equinet.__version__}",
        f"python {platform.python_version()} on {platform.machine()}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        "cuda " + ("available: " + torch.cuda.get_device_name() if torch.cuda.is_available()
                   else "not available"),
    ]
    for name in ("e3nn", "triton", "sphericart.torch", "cuequivariance_torch", "openequivariance",
                 "pyscf"):
        lines.append(f"{name}: {_version(name)}")
    return "\n".join(lines)


def _add_generate(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    level = common.add_argument_group("level of theory")
    level.add_argument("--xc", default="PBE", help="functional, or HF (default PBE)")
    level.add_argument("--basis", default="def2-SVP")
    level.add_argument("--auxbasis", default=None, help="e.g. def2-universal-jfit")
    level.add_argument("--charge", type=int, default=0)
    level.add_argument("--spin", type=int, default=0, help="2S (default 0)")
    level.add_argument("--conv-tol", type=float, default=1e-9)
    level.add_argument("--max-cycle", type=int, default=100)
    level.add_argument("--grids-level", type=int, default=3)
    run = common.add_argument_group("run")
    run.add_argument("--out", required=True, help="output folder (rerun to resume)")
    run.add_argument("--properties", default="energy,forces",
                     help="comma-separated labels (default energy,forces)")
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--shard-size", type=int, default=1)
    run.add_argument("--retry-failed", action="store_true")
    run.add_argument("--no-progress", action="store_true")

    gen = sub.add_parser("generate", help="label geometries with PySCF into a folder")
    kinds = gen.add_subparsers(dest="source", required=True)
    water = kinds.add_parser("water-clusters", parents=[common],
                             help="random water clusters at liquid density")
    water.add_argument("--n", type=int, required=True, help="molecules per cluster")
    water.add_argument("--count", type=int, required=True)
    water.add_argument("--seed", type=int, default=0)
    water.add_argument("--min-oo", type=float, default=2.5, help="minimum O-O distance (A)")
    modes = kinds.add_parser("normal-modes", parents=[common],
                             help="thermal normal-mode samples of one (optimised) molecule")
    modes.add_argument("--xyz", required=True, help="the minimum geometry (first frame)")
    modes.add_argument("--temperature", type=float, required=True, help="Kelvin")
    modes.add_argument("--count", type=int, required=True)
    modes.add_argument("--seed", type=int, default=0)
    modes.add_argument("--quantum", action="store_true",
                       help="quantum harmonic amplitudes (with zero-point motion)")
    modes.add_argument("--optimize", action="store_true",
                       help="optimise first (needs geomeTRIC or pyberny)")
    xyz = kinds.add_parser("xyz", parents=[common], help="every frame of an xyz file")
    xyz.add_argument("--xyz", required=True)


def generate_command(args) -> str:
    """Run ``equinet generate``; returns the summary it prints."""
    import ase.io

    from equinet.chem.labels import LevelOfTheory
    from equinet.data import generate, normal_mode_samples, water_clusters

    level = LevelOfTheory(xc=args.xc, basis=args.basis, auxbasis=args.auxbasis,
                          charge=args.charge, spin=args.spin, conv_tol=args.conv_tol,
                          max_cycle=args.max_cycle, grids_level=args.grids_level)
    if args.source == "water-clusters":
        geometries = water_clusters(args.n, args.count, seed=args.seed, min_oo=args.min_oo)
    elif args.source == "normal-modes":
        atoms = ase.io.read(args.xyz, index=0)
        geometries = normal_mode_samples(atoms.numbers, atoms.positions, level,
                                         args.temperature, args.count, seed=args.seed,
                                         quantum=args.quantum, optimize=args.optimize)
    else:
        geometries = ase.io.read(args.xyz, index=":")
    properties = [p.strip() for p in args.properties.split(",") if p.strip()]
    report = generate(geometries, level, args.out, properties=properties, workers=args.workers,
                      shard_size=args.shard_size, progress=not args.no_progress,
                      retry_failed=args.retry_failed)
    return (f"{report.out_dir}: {report.labelled}/{report.total} labelled, "
            f"{report.computed} computed now in {report.seconds:.1f} s "
            f"({report.molecules_per_minute:.1f} molecules/min), {len(report.failed)} failed "
            f"(listed in {report.out_dir / 'failed.json'})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="equinet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print versions and available backends")
    _add_generate(sub)
    args = parser.parse_args(argv)
    if args.command == "info":
        print(info())
    elif args.command == "generate":
        try:
            print(generate_command(args))
        except (ValueError, FileNotFoundError) as error:  # FolderMismatch is a ValueError
            print(f"equinet generate: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
