"""Fused GPU tensor products: equinet (triton) against e3nn, cuEquivariance, OpenEquivariance.

Problems (OpenEquivariance's benchmark configurations, built the same way: one output
block per path, output blocks sorted by irrep):

- ``mace-large``  uvu  128x(0e+1o+2e) x (0e+1o+2e+3o) -> 128x(0e+1o+2e+3o) outputs
- ``nequip``      uvu  64x(0e+1o+2e+3o) x (0e+1o+2e+3o) -> 64x(0e+1o+2e+3o) outputs
- ``diffdock``    uvw  10x1o+10x1e+48x0e+48x0o x (0e+1o+2e) -> 10x1o+10x1e+48x0e+48x0o

all with per-sample weights, batch 50000, float32 and float64; forward, backward
(gradients of ``<out, g>`` with respect to both inputs and the weights, the graph built
once outside the timed region) and double backward (the gradient of ``<grads, r>``
with respect to the inputs and weights, the first-order graph built outside the timed
region). The fused convolution runs the same products on a random 3D point cloud with
about 150k edges (``equinet.graph.radius_graph``): ``y = index_add(dst, TP(x[src],
edge_attr, edge_weight))``, against the unfused gather / product / ``index_add`` of the
peers and OpenEquivariance's fused convolution.

Timing: CUDA events around each call, warm-up calls first (these include Triton's
compilation, cached on disk afterwards), median over the repeats. Memory: peak of
``torch.cuda.max_memory_allocated`` during one call, minus what was allocated before.
FLOPs (an algorithmic count, the same for every implementation): per sample and path,
``3 * nnz(C) * P`` for the coupling (two multiplications and one addition per nonzero
and channel pair, ``P = U*V`` pairs) plus ``2 * (2l_out+1) * W_p`` for the weights (one
multiply-add per weight and output component); backward counts 3 such products (one per
gradient), double backward 6. Peak FLOP/s are the vendor's non-tensor-core FP32 / FP64
numbers for known devices. Ratios are ``time(peer) / time(equinet triton)``.

Usage: ``python benchmarks/gpu_kernels.py [--quick] [--problems mace-large,diffdock]
[--dtypes float32,float64] [--no-conv] [--no-tp] [--repeats 20]``. On a machine without
CUDA it prints "CUDA not available" and exits with status 0; ``--device cpu`` runs the
script's logic on tiny sizes (the triton backend needs ``TRITON_INTERPRET=1`` there).
"""
import argparse
import contextlib
import statistics
import sys
import time

import torch

#: vendor peak, non-tensor-core (FP32, FP64) FLOP/s
PEAKS = {"H100 PCIe": (51.2e12, 25.6e12), "H100": (66.9e12, 33.5e12), "H200": (66.9e12, 33.5e12),
         "A100": (19.5e12, 9.7e12), "L40S": (91.6e12, 1.4e12), "A10": (31.2e12, 0.98e12)}


# -- problems --------------------------------------------------------------------------------

def _sorted_blocks(blocks, instructions):
    """Sort output blocks by irrep (stable, as e3nn's Irreps.sort) and renumber instructions."""
    order = sorted(range(len(blocks)), key=lambda k: (blocks[k][1].l, blocks[k][1].p, k))
    new = {old: i for i, old in enumerate(order)}
    out = "+".join(f"{blocks[k][0]}x{blocks[k][1]}" for k in order)
    return out, [(a, b, new[c], m, w) for a, b, c, m, w in instructions]


def channelwise(irreps1, irreps2, keep):
    from equinet.o3 import Irrep, Irreps
    irreps1, irreps2 = Irreps(irreps1), Irreps(irreps2)
    keep = [Irrep(ir) for ir in keep.split("+")]
    blocks, instructions = [], []
    for i, (mul, ir1) in enumerate(irreps1):
        for j, (_, ir2) in enumerate(irreps2):
            for ir in ir1 * ir2:
                if ir in keep:
                    instructions.append((i, j, len(blocks), "uvu", True))
                    blocks.append((mul, ir))
    out, instructions = _sorted_blocks(blocks, instructions)
    return str(irreps1), str(irreps2), out, instructions


def fully_connected(irreps1, irreps2, irreps_out):
    from equinet.o3 import Irreps
    irreps1, irreps2, irreps_out = Irreps(irreps1), Irreps(irreps2), Irreps(irreps_out)
    instructions = [(i, j, k, "uvw", True) for i, (_, a) in enumerate(irreps1)
                    for j, (_, b) in enumerate(irreps2) for k, (_, c) in enumerate(irreps_out)
                    if c in a * b]
    return str(irreps1), str(irreps2), str(irreps_out), instructions


PROBLEMS = {
    "mace-large": lambda: channelwise("128x0e+128x1o+128x2e", "0e+1o+2e+3o", "0e+1o+2e+3o"),
    "nequip": lambda: channelwise("64x0e+64x1o+64x2e+64x3o", "0e+1o+2e+3o", "0e+1o+2e+3o"),
    "diffdock": lambda: fully_connected("10x1o+10x1e+48x0e+48x0o", "0e+1o+2e",
                                        "10x1o+10x1e+48x0e+48x0o"),
}


def forward_flops(desc) -> float:
    """FLOPs of one sample's forward product (see the module docstring)."""
    total = 0
    for p in desc.paths:
        pairs = {"uvu": p.mul1 * p.mul2, "uvw": p.mul1 * p.mul2}.get(p.mode, p.mul1 * p.mul2)
        weights = 1
        for n in p.weight_shape:
            weights *= n
        total += 3 * len(p.cg_values) * pairs + 2 * (2 * p.l_out + 1) * weights
    return float(total)


# -- timing ----------------------------------------------------------------------------------

class Timer:
    def __init__(self, device, warmup, repeats):
        self.cuda = device.type == "cuda"
        self.warmup, self.repeats = warmup, repeats

    def __call__(self, fn):
        """(median seconds, peak MB) of ``fn()``."""
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        peak = float("nan")
        if self.cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        return statistics.median(times), peak


def directions(fn, inputs, seed=0):
    """``{"forward", "backward", "double backward"}``: closures timing each direction of ``fn``."""
    g = torch.Generator(device=inputs[0].device).manual_seed(seed)

    def forward():
        with torch.no_grad():
            fn(*inputs)

    def make_backward():
        xs = [x.detach().requires_grad_(True) for x in inputs]
        out = fn(*xs)
        cot = torch.randn(out.shape, generator=g, device=out.device, dtype=out.dtype)
        return lambda: torch.autograd.grad(out, xs, cot, retain_graph=True)

    def make_double():
        xs = [x.detach().requires_grad_(True) for x in inputs]
        out = fn(*xs)
        cot = torch.randn(out.shape, generator=g, device=out.device, dtype=out.dtype)
        grads = torch.autograd.grad(out, xs, cot, create_graph=True)
        loss = sum((gr * torch.randn(gr.shape, generator=g, device=gr.device,
                                     dtype=gr.dtype)).sum() for gr in grads)
        return lambda: torch.autograd.grad(loss, xs, retain_graph=True, allow_unused=True)
    return {"forward": lambda: forward, "backward": make_backward,
            "double backward": make_double}


# -- implementations -------------------------------------------------------------------------

def e3nn_tp(problem, dtype, device):
    import e3nn.o3
    irreps1, irreps2, irreps_out, instructions = problem
    tp = e3nn.o3.TensorProduct(irreps1, irreps2, irreps_out, instructions,
                               shared_weights=False, internal_weights=False)
    return tp.to(device=device, dtype=dtype)


def cueq_tp(problem, dtype, device, kind):
    import cuequivariance as cue
    import cuequivariance_torch as cuet
    irreps1, irreps2, irreps_out, _ = problem
    i1, i2 = cue.Irreps("O3", irreps1), cue.Irreps("O3", irreps2)
    if kind == "uvu":
        keep = sorted({ir for _, ir in cue.Irreps("O3", irreps_out)}, key=str)
        tp = cuet.ChannelWiseTensorProduct(i1, i2, filter_irreps_out=keep, layout=cue.mul_ir,
                                           shared_weights=False, internal_weights=False,
                                           device=device, dtype=dtype, math_dtype=dtype)
    else:
        tp = cuet.FullyConnectedTensorProduct(i1, i2, cue.Irreps("O3", irreps_out),
                                              layout=cue.mul_ir, shared_weights=False,
                                              internal_weights=False, device=device, dtype=dtype,
                                              math_dtype=dtype)
    return tp, tp.weight_numel


def oeq_problem(problem, dtype):
    import numpy as np
    import openequivariance as oeq
    irreps1, irreps2, irreps_out, instructions = problem
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    return oeq.TPProblem(irreps1, irreps2, irreps_out, instructions, shared_weights=False,
                         internal_weights=False, irrep_dtype=np_dtype, weight_dtype=np_dtype)


def product_impls(problem, desc, dtype, device, peers):
    """name -> (callable(x1, x2, w), weight_numel) for every importable implementation."""
    from equinet.tp.kernels import get_backend
    impls = {"equinet triton": (lambda a, b, w: get_backend("triton").tensor_product(
        desc, a, b, w), desc.weight_numel),
        "equinet torch": (lambda a, b, w: get_backend("torch").tensor_product(desc, a, b, w),
                          desc.weight_numel)}
    kind = problem[3][0][3]
    if "e3nn" in peers:
        impls["e3nn"] = lambda: (e3nn_tp(problem, dtype, device), desc.weight_numel)
    if "e3nn-compile" in peers:
        impls["e3nn compiled"] = lambda: (torch.compile(e3nn_tp(problem, dtype, device)),
                                          desc.weight_numel)
    if "cueq" in peers:
        impls["cuEquivariance"] = lambda: cueq_tp(problem, dtype, device, kind)
    if "oeq" in peers:
        def make_oeq():
            import openequivariance as oeq
            p = oeq_problem(problem, dtype)
            return oeq.TensorProduct(p, torch_op=True), p.weight_numel
        impls["OpenEquivariance"] = make_oeq
    return impls


def conv_impls(problem, desc, dtype, device, peers, src, dst, nodes):
    from equinet.tp.kernels import get_backend
    from equinet.tp.kernels.convolution import chunked_convolution
    tk = get_backend("triton")

    def unfused(tp):
        return lambda x, a, w: torch.zeros(nodes, desc.dim_out, dtype=x.dtype, device=x.device) \
            .index_add(0, dst, tp(x.index_select(0, src), a, w))
    impls = {
        "equinet fused": lambda: (lambda x, a, w: tk.convolution(desc, x, a, w, src, dst, nodes),
                                  desc.weight_numel),
        "equinet fused deterministic": lambda: (lambda x, a, w: tk.convolution(
            desc, x, a, w, src, dst, nodes, deterministic=True), desc.weight_numel),
        "equinet unfused": lambda: (unfused(lambda a, b, w: tk.tensor_product(desc, a, b, w)),
                                    desc.weight_numel),
        "equinet torch chunked": lambda: (lambda x, a, w: chunked_convolution(
            desc, x, a, w, src, dst, nodes), desc.weight_numel),
    }
    if "e3nn" in peers:
        impls["e3nn unfused"] = lambda: (unfused(e3nn_tp(problem, dtype, device)),
                                         desc.weight_numel)
    if "e3nn-compile" in peers:
        impls["e3nn compiled unfused"] = lambda: (
            unfused(torch.compile(e3nn_tp(problem, dtype, device))), desc.weight_numel)
    if "cueq" in peers:
        def make_cueq():
            tp, numel = cueq_tp(problem, dtype, device, problem[3][0][3])
            return unfused(tp), numel
        impls["cuEquivariance unfused"] = make_cueq
    if "oeq" in peers:
        def make_oeq(deterministic):
            import openequivariance as oeq
            p = oeq_problem(problem, dtype)
            conv = oeq.TensorProductConv(p, torch_op=True, deterministic=deterministic)
            if not deterministic:
                return (lambda x, a, w: conv.forward(x, a, w, dst, src)), p.weight_numel
            order = torch.argsort(dst, stable=True)  # by receiver, plus the sender permutation
            rs, ss = dst[order], src[order]
            sender_perm = torch.argsort(ss, stable=True)
            return (lambda x, a, w: conv.forward(x, a[order], w[order], rs, ss, sender_perm),
                    p.weight_numel)
        impls["OpenEquivariance fused"] = lambda: make_oeq(False)
        impls["OpenEquivariance fused deterministic"] = lambda: make_oeq(True)
    return impls


# -- driver ----------------------------------------------------------------------------------

def run_case(title, impls, make_inputs, flops, timer, which, peak_flops):
    print(f"\n## {title}")
    print(f"{'implementation':38s} {'direction':16s} {'time ms':>10s} {'peak MB':>9s} "
          f"{'TFLOP/s':>8s} {'% peak':>7s} {'x triton':>9s}")
    reference = {}
    for name, make in impls.items():
        try:
            fn, numel = make() if not isinstance(make, tuple) else make
        except ImportError as err:
            print(f"{name:38s} not installed ({err.name or err})")
            continue
        except Exception as err:  # noqa: BLE001 - a peer that cannot build this problem
            print(f"{name:38s} unavailable: {type(err).__name__}: {str(err)[:80]}")
            continue
        inputs = make_inputs(numel)
        for direction, factory in directions(fn, inputs).items():
            if direction not in which:
                continue
            try:
                seconds, peak = timer(factory())
            except Exception as err:  # noqa: BLE001 - report and go on (OOM, unsupported)
                print(f"{name:38s} {direction:16s} failed: {type(err).__name__}: "
                      f"{str(err).splitlines()[0][:60] if str(err) else ''}")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            rate = flops[direction] / seconds
            if name.startswith("equinet fused") or name == "equinet triton":
                reference.setdefault(direction, seconds)
            ratio = seconds / reference[direction] if direction in reference else float("nan")
            share = 100 * rate / peak_flops if peak_flops else float("nan")
            print(f"{name:38s} {direction:16s} {1e3 * seconds:10.3f} {peak:9.1f} "
                  f"{rate / 1e12:8.2f} {share:7.1f} {ratio:9.2f}", flush=True)
        del inputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 5000, ~20k edges")
    parser.add_argument("--batch", type=int, default=50000)
    parser.add_argument("--edges", type=int, default=150000, help="about this many edges")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--directions", default="forward,backward,double backward")
    parser.add_argument("--peers", default="e3nn,e3nn-compile,cueq,oeq")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-tp", action="store_true")
    parser.add_argument("--no-conv", action="store_true")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA not available")
        return 0
    if args.quick or device.type == "cpu":
        args.batch, args.edges = min(args.batch, 5000), min(args.edges, 20000)
    if device.type == "cpu":
        args.batch, args.edges, args.repeats, args.warmup = 8, 30, 1, 0

    from equinet.graph import radius_graph
    from equinet.tp import build_descriptor
    peers = set(args.peers.split(",")) if args.peers else set()
    which = set(args.directions.split(","))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peaks = next((v for k, v in PEAKS.items() if k in name), None)
    print(f"# device: {name}; torch {torch.__version__}")
    print("# peak FP32/FP64 FLOP/s: " + (f"{peaks[0] / 1e12:.1f} / {peaks[1] / 1e12:.1f} T"
                                         if peaks else "unknown (no % of peak)"))
    timer = Timer(device, args.warmup, args.repeats)
    gen = torch.Generator(device=device).manual_seed(0)
    factors = {"forward": 1, "backward": 3, "double backward": 6}

    for problem_name in args.problems.split(","):
        problem = PROBLEMS[problem_name]()
        desc = build_descriptor(*problem)[0]
        per_sample = forward_flops(desc)
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            peak = (peaks[0] if dtype != torch.float64 else peaks[1]) if peaks else None

            def randn(*shape):
                return torch.randn(*shape, generator=gen, device=device, dtype=dtype)
            if not args.no_tp:
                z = args.batch
                run_case(f"{problem_name} tensor product, {dtype_name}, batch {z}",
                         product_impls(problem, desc, dtype, device, peers),
                         lambda numel: (randn(z, desc.dim_in1), randn(z, desc.dim_in2),
                                        randn(z, numel)),
                         {d: f * per_sample * z for d, f in factors.items()}, timer, which, peak)
            if not args.no_conv:
                src, dst, nodes = point_cloud(args.edges, device, radius_graph)
                run_case(f"{problem_name} convolution, {dtype_name}, {nodes} nodes, "
                         f"{src.numel()} edges",
                         conv_impls(problem, desc, dtype, device, peers, src, dst, nodes),
                         lambda numel: (randn(nodes, desc.dim_in1),
                                        randn(src.numel(), desc.dim_in2),
                                        randn(src.numel(), numel)),
                         {d: f * per_sample * src.numel() for d, f in factors.items()}, timer,
                         which, peak)
    return 0


def point_cloud(edges, device, radius_graph, degree=30.0):
    """Uniform points in a unit cube, cutoff set for ``degree`` neighbours: ~``edges`` edges."""
    nodes = max(4, int(edges / degree))
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(nodes, 3, generator=g, dtype=torch.float64)
    r = (3 * degree / (4 * 3.141592653589793 * nodes)) ** (1 / 3)
    with contextlib.suppress(Exception):
        src, dst = radius_graph(pos, 1.05 * r)  # boundary points have fewer neighbours
        return src.to(device), dst.to(device), nodes
    raise RuntimeError("radius_graph failed")


if __name__ == "__main__":
    sys.exit(main())
