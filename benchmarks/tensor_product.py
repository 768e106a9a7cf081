"""Tensor-product speed and memory: equinet backends against e3nn, on CPU.

Five problems, float32, batch 20000 (``--quick``: 512), ``torch.set_num_threads(2)``:

1. ``uvu32``    ChannelWise (NequIP/MACE message): 32x(0e+1o+2e) x (0e+1o+2e), per-sample weights
2. ``fc16``     FullyConnected: 16x(0e+1o+2e) x (0e+1o+2e) -> 16x(0e+1o+2e), shared weights
3. ``mace128``  ChannelWise: 128x(0e+1o+2e) x (0e+1o+2e+3o), per-sample weights
4. ``uuu32``    Elementwise: 32x(0e+1o+2e) x 32x(0e+1o+2e), no weights
5. ``linear128`` Linear 128x(0e+1o+2e) -> 128x(0e+1o+2e): e3nn's ``o3.Linear``; the backends
   run it as ``uvw`` with a constant second input ``1x0e`` equal to one (same numbers), and
   ``tp.Linear`` is :class:`equinet.tp.Linear`.

Times are medians over repeats after a warm-up; ``fwd+bwd`` is the forward and a
backward to every input. Peak memory is the growth of the process's resident
set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each
measured call, after ``malloc_trim`` has returned freed heap memory to the OS)
during one forward+backward: everything the call touched, torch tensors and
allocator overheads alike, minus what was resident before (inputs included
there). The script prints; it never asserts.

Usage: ``python benchmarks/tensor_product.py [--quick] [--threads 2] [--problems uvu32,fc16]
[--backends reference,torch] [--no-e3nn]``
"""
import argparse
import gc
import os
import statistics
import time

import torch

from equinet.tp import build_descriptor
from equinet.tp.kernels import get_backend


def channelwise(irreps1: str, irreps2: str):
    from equinet.o3 import Irreps
    irreps1, irreps2 = Irreps(irreps1), Irreps(irreps2)
    outs, instructions = [], []
    for i1, (mul, ir1) in enumerate(irreps1):
        for i2, (_, ir2) in enumerate(irreps2):
            for ir3 in ir1 * ir2:
                instructions.append((i1, i2, len(outs), "uvu", True))
                outs.append(f"{mul}x{ir3}")
    return str(irreps1), str(irreps2), "+".join(outs), instructions, False


def fully_connected(irreps1: str, irreps2: str, irreps_out: str):
    from equinet.o3 import Irreps
    irreps1, irreps2, irreps_out = Irreps(irreps1), Irreps(irreps2), Irreps(irreps_out)
    instructions = [(i1, i2, io, "uvw", True)
                    for i1, (_, ir1) in enumerate(irreps1) for i2, (_, ir2) in enumerate(irreps2)
                    for io, (_, ir3) in enumerate(irreps_out) if ir3 in ir1 * ir2]
    return str(irreps1), str(irreps2), str(irreps_out), instructions, True


def elementwise(irreps: str):
    from equinet.o3 import Irreps
    irreps = Irreps(irreps)
    outs, instructions = [], []
    for i, (mul, ir) in enumerate(irreps):
        for ir3 in ir * ir:
            instructions.append((i, i, len(outs), "uuu", False))
            outs.append(f"{mul}x{ir3}")
    return str(irreps), str(irreps), "+".join(outs), instructions, True


def linear(irreps: str):
    from equinet.o3 import Irreps
    irreps = Irreps(irreps)
    instructions = [(i, 0, i, "uvw", True) for i in range(len(irreps))]
    return str(irreps), "0e", str(irreps), instructions, True


PROBLEMS = {
    "uvu32": lambda: channelwise("32x0e+32x1o+32x2e", "0e+1o+2e"),
    "fc16": lambda: fully_connected("16x0e+16x1o+16x2e", "0e+1o+2e", "16x0e+16x1o+16x2e"),
    "mace128": lambda: channelwise("128x0e+128x1o+128x2e", "0e+1o+2e+3o"),
    "uuu32": lambda: elementwise("32x0e+32x1o+32x2e"),
    "linear128": lambda: linear("128x0e+128x1o+128x2e"),
}


def e3nn_module(name, irreps1, irreps2, irreps_out, instructions, shared):
    from e3nn import o3
    if name == "linear128":
        return o3.Linear(irreps1, irreps_out)
    return o3.TensorProduct(irreps1, irreps2, irreps_out, instructions,
                            shared_weights=shared, internal_weights=False)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _release_free_memory():
    """Hand memory the C allocator keeps after frees back to the OS, so that reuse shows."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory_mb(fn) -> float:
    """Growth of the resident set during ``fn()``, in MB (nan where it cannot be read)."""
    gc.collect()
    _release_free_memory()
    if not os.path.exists("/proc/self/status") or not _reset_peak():
        return float("nan")
    before = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - before) / 1024


def timed(fn, repeats: int, budget_s: float) -> float:
    """Median wall time in ms after one warm-up; fewer repeats when a call is slow."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def measure(forward, inputs, repeats, budget_s):
    def fwd():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        out = forward()
        grads = torch.autograd.grad(out, inputs, torch.ones_like(out))
        del out, grads

    return timed(fwd, repeats, budget_s), timed(fwd_bwd, repeats, budget_s), \
        peak_memory_mb(fwd_bwd)


def bench_problem(name, batch, backends, with_e3nn, repeats, budget_s):
    """Rows ``(impl, fwd ms, fwd+bwd ms, peak MB)`` for one problem."""
    dtype = torch.float32
    irreps1, irreps2, irreps_out, instructions, shared = PROBLEMS[name]()
    desc, _ = build_descriptor(irreps1, irreps2, irreps_out, instructions)
    x1 = torch.randn(batch, desc.dim_in1, dtype=dtype, requires_grad=True)
    if name == "linear128":  # the constant second input of a Linear written as a product
        x2 = torch.ones(batch, desc.dim_in2, dtype=dtype)
    else:
        x2 = torch.randn(batch, desc.dim_in2, dtype=dtype, requires_grad=True)
    wshape = (desc.weight_numel,) if shared else (batch, desc.weight_numel)
    w = torch.randn(wshape, dtype=dtype, requires_grad=desc.weight_numel > 0)
    inputs = [t for t in (x1, x2, w) if t.requires_grad]
    calls = []
    if with_e3nn:
        try:
            module = e3nn_module(name, irreps1, irreps2, irreps_out, instructions, shared)
        except ImportError:
            module = None
        if module is not None:
            args = (x1, w) if name == "linear128" else (
                (x1, x2) if desc.weight_numel == 0 else (x1, x2, w))
            calls.append(("e3nn", lambda: module(*args)))
    for backend in backends:
        kernel = get_backend(backend).tensor_product
        calls.append((backend, lambda k=kernel: k(desc, x1, x2, w)))
    if name == "linear128":
        from equinet.tp import Linear
        linear = Linear(irreps1, irreps_out, internal_weights=False)
        calls.append(("tp.Linear", lambda: linear(x1, w)))
    return [(impl,) + measure(call, inputs, repeats, budget_s) for impl, call in calls]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 512, few repeats")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--backends", default="reference,torch")
    parser.add_argument("--no-e3nn", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = args.batch or (512 if args.quick else 20000)
    repeats = args.repeats or (3 if args.quick else 7)
    budget_s = 2.0 if args.quick else 20.0
    backends = [b for b in args.backends.split(",") if b]
    print(f"CPU, {torch.get_num_threads()} threads, float32, batch {batch}; times in ms "
          f"(median of up to {repeats}), peak = RSS growth in MB during one fwd+bwd")
    header = f"{'problem':<10} {'impl':<10} {'fwd':>9} {'fwd+bwd':>9} {'peak MB':>8} " \
             f"{'e3nn/x fwd':>10} {'e3nn/x f+b':>10}"
    print(header)
    print("-" * len(header))
    for name in args.problems.split(","):
        rows = bench_problem(name, batch, backends, not args.no_e3nn, repeats, budget_s)
        base = rows[0] if rows and rows[0][0] == "e3nn" else None
        for impl, fwd, fb, mem in rows:
            ratio_f = f"{base[1] / fwd:10.2f}" if base else f"{'':>10}"
            ratio_b = f"{base[2] / fb:10.2f}" if base else f"{'':>10}"
            print(f"{name:<10} {impl:<10} {fwd:9.1f} {fb:9.1f} {mem:8.0f} {ratio_f} {ratio_b}",
                  flush=True)
        gc.collect()


if __name__ == "__main__":
    main()
