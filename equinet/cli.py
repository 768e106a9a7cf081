"""The ``equinet`` command: ``equinet info`` prints versions and available backends."""
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
        f"cuda {'available: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}",
    ]
    for name in ("e3nn", "triton", "sphericart.torch", "cuequivariance_torch", "openequivariance",
                 "pyscf"):
        lines.append(f"{name}: {_version(name)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="equinet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print versions and available backends")
    args = parser.parse_args(argv)
    if args.command == "info":
        print(info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
