"""The ``triton`` backend against the ``reference`` backend, run by Triton's CPU interpreter.

``TRITON_INTERPRET=1`` makes the generated kernels run on CPU tensors (they avoid
Triton's pre-jitted standard library, so this works even when something imported
Triton before this module); shapes are tiny because the interpreter is slow. The
kernels are also compiled ahead of time for an sm_90 GPU (no GPU needed), which
catches what the interpreter does not check (types carried through loops). Tests
marked ``gpu`` run the compiled kernels on a CUDA device when one is present.
"""
import os

import pytest
import torch  # does not import triton

if not torch.cuda.is_available():
    # before triton is imported: the kernels run on CPU tensors (with CUDA present the
    # interpreter is switched on per test instead, leaving other triton users alone)
    os.environ["TRITON_INTERPRET"] = "1"

triton = pytest.importorskip("triton")

from equinet.tp.kernels import get_backend, triton_launch  # noqa: E402
from equinet.tp.kernels import triton as triton_backend  # noqa: E402
from equinet.tp.kernels.convolution import reference_convolution  # noqa: E402
from equinet.tp.kernels.triton_codegen import generate  # noqa: E402
from equinet.tp.kernels.triton_terms import Contraction, terms_of  # noqa: E402

BACKEND = "triton"

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")

# every supported mode, weighted and weight-free paths, several paths (and modes) into
# one block, the single summed channel of a weight-free "uuw", a block no path reaches
MIXED = ("3x0e + 3x1o + 2x1o", "0e + 2x1o",
         "3x0e + 2x0e + 3x1o + 2x1e + 4x2e + 1x0e + 2x1o + 1x0o",
         [(0, 0, 0, "uvu", True), (2, 1, 1, "uuu", False), (1, 0, 2, "uvw", True),
          (2, 1, 3, "uuw", True), (0, 1, 2, "uvw", True), (2, 1, 4, "uvuv", True),
          (1, 0, 2, "uvu", True), (2, 1, 5, "uuw", False), (0, 1, 6, "uvv", True)])


# a smaller product for the slower tests: uvu and uvw paths, one without weights
SMALL = ("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o + 3x1e",
         [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True), (1, 0, 1, "uvu", False),
          (0, 1, 1, "uvu", True), (1, 1, 2, "uvw", True)])


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_every_mode_against_reference(tp_case, tp_check, shared, interpreter):
    # the pair modes ("uvu<v", "u<vw") go through the torch fallback; the interpreter is
    # slow, so the double backward is checked here with per-sample weights only (shared
    # weights get theirs in test_tiny_tiles)
    desc = tp_check.descriptor(*tp_case)
    tp_check.compare(BACKEND, desc, shared, torch.float64, double_backward=not shared)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_mixed_modes(tp_check, dtype, shared, interpreter):
    tp_check.compare(BACKEND, tp_check.descriptor(*MIXED), shared, dtype)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_tiny_tiles(tp_check, shared, interpreter):
    # 2 rows per program and 2-wide channel vectors: several programs, partial sums of
    # shared-weight gradients across programs, chunked channel loops, masked tails
    desc = tp_check.descriptor(*MIXED)
    tp_check.compare(BACKEND, desc, shared, torch.float64, batch=5, block_rows=2,
                     vector_width=2)


def test_block_written_with_two_channel_structures(tp_check, interpreter):
    # "uvuv" (channels u, v) and "uvu" (channel u) write the same 4x0e block: the
    # second group of the kernel adds to what the first stored
    desc = tp_check.descriptor("2x0e + 4x0e", "2x0e", "4x0e",
                               [(0, 0, 0, "uvuv", True), (1, 0, 0, "uvu", True)])
    tp_check.compare(BACKEND, desc, False, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_accumulates_in_float32(tp_check, dtype, interpreter):
    desc = tp_check.descriptor(*MIXED)
    x1, x2, w = tp_check.inputs(desc, 6, False, torch.float32)
    low = [t.to(dtype).requires_grad_(True) for t in (x1, x2, w)]
    out = triton_backend.tensor_product(desc, *low)
    assert out.dtype == dtype
    exact = get_backend("reference").tensor_product(desc, *[t.detach().float() for t in low])
    scale = float(exact.abs().max())
    assert float((out.detach().float() - exact).abs().max()) <= 2e-2 * scale
    grads = torch.autograd.grad(out.float().square().sum(), low)
    assert all(g.dtype == dtype and torch.isfinite(g.float()).all() for g in grads)


def test_tensor_product_module_on_this_backend(tp_check, interpreter):
    from equinet.tp import TensorProduct
    ours = TensorProduct(*MIXED, backend="triton")
    theirs = TensorProduct(*MIXED, backend="reference")
    theirs.load_state_dict(ours.state_dict())
    x1, x2 = torch.randn(2, 3, ours.irreps_in1.dim), torch.randn(2, 3, ours.irreps_in2.dim)
    tp_check.assert_close(ours(x1, x2), theirs(x1, x2), torch.float32, "module")


def test_pair_modes_fall_back_to_torch(tp_check, monkeypatch, interpreter):
    desc = tp_check.descriptor("3x1o + 2x0e", "3x1o + 2x0e", "3x0e + 3x1e",
                               [(0, 0, 0, "uvu<v", True), (0, 0, 1, "uvu<v", False)])
    assert not triton_backend.supports(desc, "cpu")
    torch_backend = get_backend("torch")
    calls = []
    original = torch_backend.tensor_product

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(torch_backend, "tensor_product", spy)
    x1, x2, w = tp_check.inputs(desc, 4, False, torch.float64)
    out = triton_backend.tensor_product(desc, x1, x2, w)
    assert calls, "the torch backend was not used"
    expected = get_backend("reference").tensor_product(desc, x1, x2, w)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_supports_cpu_only_under_the_interpreter(tp_check, monkeypatch):
    desc = tp_check.descriptor("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not triton_backend.supports(desc, "cpu")
    # without the interpreter the CPU call still works, on the torch backend
    x1, x2, w = tp_check.inputs(desc, 3, True, torch.float64)
    expected = get_backend("reference").tensor_product(desc, x1, x2, w)
    torch.testing.assert_close(triton_backend.tensor_product(desc, x1, x2, w), expected)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_backend.supports(desc, "cpu")
    assert triton_backend.supports(desc, "cuda")


def test_one_launch_per_product_and_per_gradient(tp_check, monkeypatch, interpreter):
    launches = []
    compiled = triton_launch._DescriptorKernels.kernel

    class Counting:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                launches.append(grid)
                return self.kernel[grid](*args, **kwargs)
            return launch
    monkeypatch.setattr(triton_launch._DescriptorKernels, "kernel",
                        lambda *a: Counting(compiled(*a)))
    desc = tp_check.descriptor(*MIXED)
    assert len(desc.paths) == 9
    x1, x2, w = (t.requires_grad_(True) for t in tp_check.inputs(desc, 5, True, torch.float64))
    out = triton_backend.tensor_product(desc, x1, x2, w)
    assert len(launches) == 1
    torch.autograd.grad(out.sum(), (x1, x2, w))
    assert len(launches) == 4


def test_generated_source_is_cached_in_a_file(tp_check, interpreter, tmp_path, monkeypatch):
    monkeypatch.setenv("EQUINET_CACHE", str(tmp_path))
    desc = tp_check.descriptor("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    x1, x2, w = tp_check.inputs(desc, 3, True, torch.float64)
    triton_backend.tensor_product(desc, x1, x2, w)
    kernel = triton_launch._kernel(Contraction(
        terms_of(desc), (6, 3, 2, 2), 3, ("row", "row", "shared", "row"), "store", True,
        "float64", False, 16, 64), True)
    path = kernel.fn.__code__.co_filename
    # in the per-user cache folder, owner-only
    assert os.path.dirname(path) == str(tmp_path / "triton")
    assert os.stat(tmp_path / "triton").st_mode & 0o777 == 0o700
    with open(path) as f:
        source = f.read()
    assert "def kernel(" in source and repr(1 / 3 ** 0.5)[:12] in source


def test_planted_kernel_file_is_never_run(tp_check, interpreter, tmp_path, monkeypatch):
    # Another local user (or a stale file) puts code under the name of a kernel's source
    # hash: it must be replaced by the generated source, and never be imported.
    import hashlib

    monkeypatch.setenv("EQUINET_CACHE", str(tmp_path / "cache"))
    desc = tp_check.descriptor("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    contraction = Contraction(terms_of(desc), (6, 3, 2, 2), 3, ("row", "row", "shared", "row"),
                              "store", True, "float64", False, 16, 64)
    source = generate(contraction)
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    marker = tmp_path / "planted_code_ran"
    planted = triton_launch.kernel_cache_dir() / f"{digest}.py"
    planted.write_text(f"open({str(marker)!r}, 'w').close()\n"
                       "raise RuntimeError('planted code ran')\nkernel = None\n")
    kernel = triton_launch._kernel(contraction, True)
    assert not marker.exists()
    assert planted.read_text() == source  # rewritten
    # and the kernel is the generated one: it computes the product
    x1, x2, w = tp_check.inputs(desc, 3, True, torch.float64)
    out = torch.empty(3, 2, dtype=torch.float64)
    kernel[(1,)](x1, x2, w, out, out, out, out, out, out, out, 3, 1, num_warps=4)
    expected = get_backend("reference").tensor_product(desc, x1, x2, w)
    torch.testing.assert_close(out, expected)


# -- the fused convolution -------------------------------------------------------------------

def _graph(nodes, edges, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, nodes, (edges,), generator=g)
    dst = torch.randint(0, nodes - 2, (edges,), generator=g)  # the last two nodes get nothing
    src[:3], dst[:3] = 1, 0  # a repeated edge
    return src, dst


def _conv_derivatives(fn, inputs, tp_check):
    return tp_check.derivatives(fn, inputs, double_backward=True)


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-edge"])
def test_convolution_against_index_add(tp_check, dtype, shared, deterministic, interpreter):
    desc = tp_check.descriptor(*SMALL)
    nodes, edges = 7, 12
    src, dst = _graph(nodes, edges, 0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(nodes, desc.dim_in1, generator=g, dtype=dtype)
    a = torch.randn(edges, desc.dim_in2, generator=g, dtype=dtype)
    w = torch.randn((desc.weight_numel,) if shared else (edges, desc.weight_numel), generator=g,
                    dtype=dtype)

    def ours(x, a, w):
        return triton_backend.convolution(desc, x, a, w, src, dst, nodes, deterministic,
                                          block_rows=4)

    def theirs(x, a, w):
        return reference_convolution(desc, x, a, w, src, dst, nodes)
    names = ["out", "d/dx", "d/dattr", "d/dw", "dd/dx", "dd/dattr", "dd/dw"]
    for name, p, q in zip(names, _conv_derivatives(ours, (x, a, w), tp_check),
                          _conv_derivatives(theirs, (x, a, w), tp_check)):
        tp_check.assert_close(p, q, dtype, name)


def test_convolution_int32_indices_and_bipartite(tp_check, interpreter):
    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
                               [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
                                (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True)])
    src, dst = _graph(6, 9, 1)
    x, a, w = torch.randn(6, 8), torch.randn(9, 4), torch.randn(9, desc.weight_numel)
    for deterministic in (False, True):
        out = triton_backend.convolution(desc, x, a, w, src.int(), dst.int(), 10, deterministic)
        expected = reference_convolution(desc, x, a, w, src, dst, 10)
        tp_check.assert_close(out, expected, torch.float32, "out")


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_module_runs_the_fused_convolution(tp_check, monkeypatch, deterministic, interpreter):
    from equinet.tp import TensorProductConv
    conv = TensorProductConv(*SMALL, backend="triton", deterministic=deterministic)
    reference = TensorProductConv(*SMALL, backend="reference")
    assert conv.backend_for("cpu") == "triton"
    calls = []
    original = triton_launch.contract
    monkeypatch.setattr(triton_backend, "contract",
                        lambda *args: calls.append(args[2]) or original(*args))
    src, dst = _graph(5, 8, 5)
    x, a = torch.randn(5, conv.irreps_in1.dim), torch.randn(8, conv.irreps_in2.dim)
    w = torch.randn(8, conv.weight_numel)
    out = conv(x, a, w, src, dst, num_nodes=6)
    assert calls == [3]
    tp_check.assert_close(out, reference(x, a, w, src, dst, num_nodes=6), torch.float32, "out")


def test_convolution_fallback_for_pair_modes(tp_check, interpreter):
    desc = tp_check.descriptor("3x1o", "3x1o", "3x0e", [(0, 0, 0, "uvu<v", True)])
    src, dst = _graph(5, 8, 2)
    x, a, w = torch.randn(5, 9), torch.randn(8, 9), torch.randn(8, desc.weight_numel)
    out = triton_backend.convolution(desc, x, a, w, src, dst, 5, chunk=3)
    tp_check.assert_close(out, reference_convolution(desc, x, a, w, src, dst, 5),
                          torch.float32, "out")


# -- compiled for a GPU, without one ---------------------------------------------------------

_SIGNATURE_TYPES = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16],
                         ids=["fp32", "fp64", "bf16"])
def test_kernels_compile_for_sm90(tp_check, dtype, monkeypatch):
    compiler = pytest.importorskip("triton.compiler")
    target = pytest.importorskip("triton.backends.compiler").GPUTarget("cuda", 90, 32)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    desc = tp_check.descriptor(*SMALL)
    dims = (desc.dim_in1, desc.dim_in2, desc.weight_numel, desc.dim_out)
    acc = "float64" if dtype == torch.float64 else "float32"
    cases = [(3, ("row", "row", "row", "row"), "store"),
             (0, ("gather", "row", "row", "gather"), "atomic")]
    if dtype == torch.float32:  # every target and row mode once
        cases += [(t, ("row", "row", "row", "row"), "store") for t in range(3)]
        cases += [(2, ("gather", "row", "shared", "gather"), "partial"),
                  (3, ("gather", "row", "shared", "gather"), "segment")]
    for target_slot, kinds, mode in cases:
        signature = {f"S{s}": "*" + _SIGNATURE_TYPES[dtype] for s in range(4)}
        if mode in ("atomic", "partial"):  # these sum into an accumulator-typed buffer
            signature[f"S{target_slot}"] = "*fp64" if dtype == torch.float64 else "*fp32"
        signature.update({f"I{s}": "*i64" for s in range(4)})
        signature.update(PERM="*i64", PTR="*i64", NROWS="i32", NBLOCKS="i32")
        c = Contraction(terms_of(desc), dims, target_slot, kinds, mode, True, acc,
                        dtype == torch.bfloat16, 8, 4)
        kernel = triton_launch._kernel(c, False)
        try:
            compiled = triton.compile(compiler.ASTSource(kernel, signature), target=target,
                                      options={"num_warps": 4, "enable_fp_fusion": True})
        except compiler.CompilationError:
            print(generate(c))
            raise
        except Exception as err:  # no CUDA toolchain in this triton install
            pytest.skip(f"cannot compile for sm_90 here: {type(err).__name__}: {err}")
        assert compiled.asm["ptx"]


# -- on a real GPU ---------------------------------------------------------------------------

@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_cuda_against_torch_backend(tp_check, dtype, shared, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    desc = tp_check.descriptor("32x0e + 32x1o + 32x2e", "0e + 1o + 2e",
                               "32x0e + 32x1o + 32x2e",
                               [(a, b, c, "uvu", True) for a in range(3) for b in range(3)
                                for c in range(3) if abs(a - b) <= c <= a + b
                                and (a + b + c) % 2 == 0])
    x1, x2, w = (t.cuda() for t in tp_check.inputs(desc, 1000, shared, dtype))
    ours = tp_check.derivatives(lambda *t: triton_backend.tensor_product(desc, *t), (x1, x2, w))
    theirs = tp_check.derivatives(lambda *t: get_backend("torch").tensor_product(desc, *t),
                                  (x1, x2, w))
    for p, q in zip(ours, theirs):
        tp_check.assert_close(p, q, dtype, "cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_cuda_convolution(tp_check, dtype, deterministic, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    desc = tp_check.descriptor(*MIXED)
    src, dst = (t.cuda() for t in _graph(300, 5000, 4))
    x = torch.randn(300, desc.dim_in1, dtype=dtype, device="cuda")
    a = torch.randn(5000, desc.dim_in2, dtype=dtype, device="cuda")
    w = torch.randn(5000, desc.weight_numel, dtype=dtype, device="cuda")
    ours = tp_check.derivatives(lambda *t: triton_backend.convolution(
        desc, *t, src, dst, 300, deterministic), (x, a, w))
    theirs = tp_check.derivatives(lambda *t: reference_convolution(
        desc, *t, src, dst, 300, backend="torch"), (x, a, w))
    for p, q in zip(ours, theirs):
        tp_check.assert_close(p, q, dtype, "cuda convolution")
    if deterministic:
        again = triton_backend.convolution(desc, x, a, w, src, dst, 300, True)
        assert torch.equal(again, ours[0])
