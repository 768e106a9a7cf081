"""Gaunt products against Clebsch-Gordan full tensor products on CPU.

Computes, for two spherical functions with harmonic coefficients of degrees
0..L (irreps 0e + 1o + 2e + ... + L), the product truncated at lmax_out = L:

- equinet.tp.gaunt_product with each method (dense / grid / fft; auto is one of them);
- equinet.tp.FullTensorProduct and e3nn.o3.FullTensorProduct restricted to the same
  parity-even paths (filter_ir_out = 0e, 1o, 2e, ..., i.e. l1 + l2 + l3 even, l3 <= L).
  The CG products return every path separately (more outputs, same paths); the
  Gaunt product sums them with the fixed Gaunt weights.

Two workloads: 2000 samples x 1 channel, and 64 samples x 128 channels (the CG
products see the 8192 (sample, channel) rows, which is the same per-row work).
float32, torch.set_num_threads(2), forward only. Times are the minimum over
repeats after a warm-up call (table construction is excluded), the columns
timed in interleaved passes, because this machine is shared and the minimum is
the least disturbed estimate; ``--quiet X`` also waits (up to 3 minutes per
size) until at most X other tasks are runnable on average. A column whose next
size is predicted (an L^4 extrapolation for the dense and CG products, their
observed scaling here) or measured to exceed the cap (30 s per call) is skipped,
noted under the table. Never used as a test: it prints numbers only.

Run: python benchmarks/gaunt.py [--ls 2,4,6,8,12,16] [--threads 2] [--cap 30] [--quiet 0.5]
"""
import argparse
import math
import time

import torch

from equinet.tp import FullTensorProduct, gaunt_product

try:
    from e3nn import o3 as e3nn_o3
except ImportError:  # pragma: no cover - e3nn is a benchmark extra
    e3nn_o3 = None

METHODS = ("dense", "grid", "fft")
# Exponents used only to predict whether the next size would exceed the cap (measured ~4 for the
# CG products between L = 8 and 16 on this machine; their asymptotic O(L^6) is not reached yet).
SCALING = {"dense": 4, "grid": 3, "fft": 3, "equinet CG": 4, "e3nn": 4}


def _time_round_robin(fns, cap: float, budget: float = 2.0, max_reps: int = 30):
    """Minimum wall time (s) of each callable, in interleaved passes after one warm-up call each.

    Interleaving spreads the disturbance of other processes over all columns alike; a
    callable whose warm-up exceeds ``cap`` is not repeated (its warm-up time is returned).
    """
    best, target = {}, {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        best[name] = time.perf_counter() - start
        reps = max(3, min(max_reps, int(budget / max(best[name], 1e-6))))
        target[name] = 0 if best[name] > cap else reps
    for rep in range(max(target.values(), default=0)):
        for name, fn in fns.items():
            if rep < target[name]:
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def _other_runnable_tasks(seconds: float = 2.0, samples: int = 20) -> float:
    """Mean number of runnable tasks besides this one (from /proc/loadavg), over ``seconds``."""
    total = 0
    for _ in range(samples):
        with open("/proc/loadavg") as f:
            total += int(f.read().split()[3].split("/")[0]) - 1
        time.sleep(seconds / samples)
    return total / samples


def _wait_until_quiet(max_other: float, max_wait: float = 180.0) -> None:
    """On a shared machine, wait (bounded) until few other tasks compete for the cores."""
    if max_other < 0:
        return
    deadline = time.time() + max_wait
    try:
        while _other_runnable_tasks() > max_other and time.time() < deadline:
            pass
    except (OSError, ValueError, IndexError):  # no /proc/loadavg: do not wait
        return


def _irreps(L: int) -> str:
    return " + ".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))


def _columns(L, x1, x2):
    rows1, rows2 = x1.reshape(-1, x1.shape[-1]), x2.reshape(-1, x2.shape[-1])
    cols = {m: (lambda m=m: gaunt_product(x1, x2, L, method=m)) for m in METHODS}
    keep = [f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1)]
    cols["equinet CG"] = lambda: FullTensorProduct(_irreps(L), _irreps(L), filter_ir_out=keep)
    if e3nn_o3 is not None:
        cols["e3nn"] = lambda: e3nn_o3.FullTensorProduct(_irreps(L), _irreps(L), filter_ir_out=keep)
    return cols, rows1, rows2


def run(ls, threads: int, cap: float, quiet: float = -1.0):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    workloads = [("2000 samples x 1 channel", (2000,)), ("64 samples x 128 channels", (64, 128))]
    results = {}
    for title, lead in workloads:
        table, notes, last = {}, [], {}
        for L in ls:
            D = (L + 1) ** 2
            x1, x2 = torch.randn(lead + (D,)), torch.randn(lead + (D,))
            cols, rows1, rows2 = _columns(L, x1, x2)
            _wait_until_quiet(quiet)
            fns = {}
            for name, make in cols.items():
                # extrapolate only from calls long enough to be measured reliably on a busy machine
                predicted = 0.0
                if name in last:
                    predicted = last[name][1] * (L / last[name][0]) ** SCALING[name]
                if predicted > cap and last[name][1] > 0.5:
                    table[name, L] = None
                    notes.append(f"{name} at L={L} skipped: predicted {predicted:.0f} s per call "
                                 f"(L^{SCALING[name]} from L={last[name][0]}) > cap {cap:g} s")
                    continue
                # construction (tables, plans, modules) is not timed
                t0 = time.perf_counter()
                with torch.no_grad():
                    if name in ("equinet CG", "e3nn"):
                        module = make()
                        fns[name] = (lambda module=module: module(rows1, rows2))
                    else:
                        fns[name] = make
                        make()
                build = time.perf_counter() - t0
                if build > 5:
                    notes.append(f"{name} at L={L}: construction took {build:.0f} s (not timed)")
            with torch.no_grad():
                times = _time_round_robin(fns, cap)
            for name, t in times.items():
                table[name, L] = t
                last[name] = (L, t)
                if t > cap:
                    notes.append(f"{name} at L={L}: one call took {t:.0f} s > cap; "
                                 "larger L skipped")
                    last[name] = (L, math.inf)
            print(f"  [{title}] L={L} done", flush=True)
        results[title] = (table, notes)
    return results


def _fit_exponent(table, name, ls):
    pts = [(math.log(L), math.log(table[name, L])) for L in ls if table.get((name, L))]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def report(results, ls):
    names = list(METHODS) + ["equinet CG"] + (["e3nn"] if e3nn_o3 is not None else [])
    fit_ls = [L for L in ls if 8 <= L <= 16]
    for title, (table, notes) in results.items():
        print(f"\n### {title} (float32, ms per call, lmax_out = L)\n")
        print("| L | " + " | ".join(names) + " | best Gaunt vs e3nn |")
        print("|---" * (len(names) + 2) + "|")
        for L in ls:
            cells = [f"{table[n, L] * 1e3:.2f}" if table.get((n, L)) else "skipped" for n in names]
            best = min(table[m, L] for m in METHODS if table.get((m, L)))
            ratio = f"{table['e3nn', L] / best:.0f}x" if table.get(("e3nn", L)) else "-"
            print(f"| {L} | " + " | ".join(cells) + f" | {ratio} |")
        exps = []
        for n in names:
            e = _fit_exponent(table, n, fit_ls)
            exps.append(f"{e:.2f}" if e is not None else "-")
        print(f"| exponent (fit L={fit_ls[0]}..{fit_ls[-1]}) | " + " | ".join(exps) + " | |")
        for note in notes:
            print(f"- {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ls", default="2,4,6,8,12,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cap", type=float, default=30.0,
                        help="seconds per call before a column is dropped")
    parser.add_argument("--quiet", type=float, default=-1.0,
                        help="before each size, wait (up to 3 min) until the mean number of other "
                             "runnable tasks is at most this (negative: do not wait)")
    args = parser.parse_args()
    ls = [int(v) for v in args.ls.split(",")]
    if e3nn_o3 is None:
        print("e3nn is not installed: its column is omitted")
    report(run(ls, args.threads, args.cap, args.quiet), ls)


if __name__ == "__main__":
    main()
