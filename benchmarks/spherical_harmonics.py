"""Speed of spherical harmonics of degrees 0..L: equinet vs e3nn vs sphericart-torch (CPU).

    python benchmarks/spherical_harmonics.py [--n 200000] [--threads 2] [--repeats 9]

Forward: ``Y = f(x)`` for random float32 vectors ``x`` of shape ``[n, 3]``.
Forward+backward: ``f(x).sum().backward()`` with ``x.requires_grad``.
equinet and e3nn are called identically,
``spherical_harmonics(list(range(L + 1)), x, normalize=True)`` (normalization "integral").
sphericart-torch uses its own conventions (Wikipedia's real harmonics: z as polar axis, another
sign and ordering of the components) and is run at the same L with its defaults
(``SphericalHarmonics(L).compute(x)``, unit directions); its numbers measure the same amount of
work, not the same output.

The implementations are timed round-robin (one call of each per round), after a warmup, and the
median over rounds is printed in milliseconds; ratios are e3nn time / equinet time. On a shared
machine a round during which other processes used more than ``--max-other-load`` CPUs (read from
/proc, Linux only) is dropped and rerun; the last column counts the dropped rounds (forward,
forward+backward). This script reports, it never asserts (timings are not tests).
"""
import argparse
import os
import statistics
import time

import torch

from equinet.o3 import spherical_harmonics

try:
    from e3nn import o3 as e3nn_o3
except ImportError:  # pragma: no cover
    e3nn_o3 = None
try:
    import sphericart.torch as sphericart_torch
except ImportError:  # pragma: no cover
    sphericart_torch = None


def _forward_and_backward(fn, x):
    def run():
        xg = x.detach().requires_grad_(True)
        fn(xg).sum().backward()
    return run


def _implementations(lmax):
    ls = list(range(lmax + 1))
    impls = {"equinet": lambda x: spherical_harmonics(ls, x, normalize=True)}
    if e3nn_o3 is not None:
        impls["e3nn"] = lambda x: e3nn_o3.spherical_harmonics(ls, x, normalize=True)
    if sphericart_torch is not None:
        calculator = sphericart_torch.SphericalHarmonics(lmax)
        impls["sphericart"] = calculator.compute
    return impls


def _cpu_jiffies():
    """(busy jiffies of the machine, jiffies of this process), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        return sum(fields) - fields[3] - fields[4], int(own[11]) + int(own[12])
    except (OSError, ValueError, IndexError):
        return None


def _other_load(before, after, seconds):
    """CPUs' worth of time that other processes used between two :func:`_cpu_jiffies`."""
    if before is None or after is None or seconds <= 0:
        return 0.0
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other) / (os.sysconf("SC_CLK_TCK") * seconds)


def _time_round_robin(calls, repeats, max_other_load, warmup=2):
    """Median ms per call; a round during which other processes took more than
    ``max_other_load`` CPUs is dropped and run again (at most ``10 * repeats`` drops)."""
    times = {name: [] for name in calls}
    for _ in range(warmup):
        for call in calls.values():
            call()
    dropped = 0
    while len(times[next(iter(calls))]) < repeats:
        before, start = _cpu_jiffies(), time.perf_counter()
        this_round = {}
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            this_round[name] = time.perf_counter() - t
        load = _other_load(before, _cpu_jiffies(), time.perf_counter() - start)
        if load > max_other_load and dropped < 10 * repeats:
            dropped += 1
            time.sleep(0.2)
            continue
        for name, t in this_round.items():
            times[name].append(t)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}, dropped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="number of vectors")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 8, 12])
    parser.add_argument("--max-other-load", type=float, default=0.3,
                        help="drop and rerun rounds during which other processes used more "
                             "than this many CPUs (inf: keep all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.n, 3, dtype=torch.float32)
    print(f"n={args.n} float32 CPU, torch {torch.__version__}, {args.threads} threads, "
          f"median of {args.repeats} round-robin repeats, ms")
    print(f"sphericart-torch: {'installed' if sphericart_torch else 'not installed'}; "
          f"e3nn: {'installed' if e3nn_o3 else 'not installed'}")
    names = ["equinet", "e3nn", "sphericart"]
    header = (["L"] + [f"{k} fwd" for k in names] + [f"{k} fwd+bwd" for k in names]
              + ["e3nn/equinet fwd", "e3nn/equinet fwd+bwd", "dropped rounds"])
    print(" | ".join(f"{h:>14}" for h in header))
    for lmax in args.lmax:
        impls = _implementations(lmax)
        with torch.no_grad():
            forward, dropped_fwd = _time_round_robin(
                {k: (lambda f=f: f(x)) for k, f in impls.items()}, args.repeats,
                args.max_other_load)
        both, dropped_both = _time_round_robin(
            {k: _forward_and_backward(f, x) for k, f in impls.items()}, args.repeats,
            args.max_other_load)
        row = [str(lmax)]
        row += [f"{forward[k]:.2f}" if k in forward else "not installed" for k in names]
        row += [f"{both[k]:.2f}" if k in both else "not installed" for k in names]
        row += [f"{forward['e3nn'] / forward['equinet']:.2f}x" if "e3nn" in forward else "-",
                f"{both['e3nn'] / both['equinet']:.2f}x" if "e3nn" in both else "-",
                f"{dropped_fwd}, {dropped_both}"]
        print(" | ".join(f"{v:>14}" for v in row), flush=True)


if __name__ == "__main__":
    main()
