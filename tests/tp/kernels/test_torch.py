"""The ``torch`` backend against the ``reference`` backend (the oracle), on the same descriptors."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from equinet.tp import build_descriptor
from equinet.tp.kernels import get_backend, resolve_backend
from equinet.tp.kernels import torch as torch_backend

BACKEND = "torch"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_every_mode_against_reference(tp_case, tp_check, dtype, shared):
    desc = tp_check.descriptor(*tp_case)
    tp_check.compare(BACKEND, desc, shared, dtype)


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_batch_chunks_agree(tp_check, chunk, shared):
    # CPU execution splits the batch; the shared-weight gradient sums over chunks
    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 1o", "3x0e + 2x1o + 2x1e",
                               [(0, 0, 0, "uvw", True), (1, 1, 0, "uvw", True),
                                (1, 1, 2, "uvu", True), (1, 0, 1, "uvu", False)])
    tp_check.compare(BACKEND, desc, shared, torch.float64, batch=7, chunk=chunk)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_gradcheck_and_gradgradcheck(shared):
    desc, _ = build_descriptor("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o + 2x1e + 1x0e",
                               [(0, 0, 0, "uvu", True), (1, 1, 0, "uuu", True),
                                (1, 1, 2, "uvu", False), (1, 0, 1, "uvw", True),
                                (1, 1, 3, "uuw", False)])
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(3, desc.dim_in1, dtype=torch.float64, generator=g, requires_grad=True)
    x2 = torch.randn(3, desc.dim_in2, dtype=torch.float64, generator=g, requires_grad=True)
    shape = (desc.weight_numel,) if shared else (3, desc.weight_numel)
    w = torch.randn(shape, dtype=torch.float64, generator=g, requires_grad=True)

    def fn(a, b, c):
        return torch_backend.tensor_product(desc, a, b, c, chunk=2)
    assert torch.autograd.gradcheck(fn, (x1, x2, w))
    assert torch.autograd.gradgradcheck(fn, (x1, x2, w))


def test_random_descriptors(tp_check):
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(desc=tp_check.descriptors(), shared=st.booleans())
    def check(desc, shared):
        tp_check.compare(BACKEND, desc, shared, torch.float64, batch=3)
    check()


def test_empty_batch_and_zero_multiplicities(tp_check):
    desc = tp_check.descriptor("0x0e + 2x1o", "1x0e + 0x1o", "2x1o + 0x0e + 2x1e",
                               [(0, 0, 1, "uvu", True), (1, 0, 0, "uvu", True),
                                (1, 1, 2, "uvw", True)])
    for batch in (0, 4):
        tp_check.compare(BACKEND, desc, False, torch.float64, batch=batch)
        tp_check.compare(BACKEND, desc, True, torch.float64, batch=batch)
    nothing = tp_check.descriptor("0x0e", "1x0e", "0x0e + 3x0e", [])
    x1, x2, w = tp_check.inputs(nothing, 4, True, torch.float64)
    out = torch_backend.tensor_product(nothing, x1, x2, w)
    assert out.shape == (4, 3) and not out.any()


def test_torch_compile_fullgraph(tp_check):
    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o + 2x1e",
                               [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
                                (1, 1, 2, "uvu", False), (1, 0, 1, "uvw", True)])
    x1, x2, w = tp_check.inputs(desc, 5, False, torch.float32)

    def fn(a, b, c):
        return torch_backend.tensor_product(desc, a, b, c)
    compiled = torch.compile(fn, fullgraph=True)
    eager = tp_check.derivatives(fn, (x1, x2, w), double_backward=False)
    ours = tp_check.derivatives(compiled, (x1, x2, w), double_backward=False)
    for a, b in zip(ours, eager):
        tp_check.assert_close(a, b, torch.float32, "compiled")


def test_auto_picks_torch_on_cpu(tp_check):
    desc = tp_check.descriptor("2x0e", "0e", "2x0e", [(0, 0, 0, "uvu", True)])
    assert torch_backend.supports(desc, torch.device("cpu"))
    assert resolve_backend("auto", desc, torch.device("cpu")) in ("torch", "triton")
    assert get_backend(BACKEND) is torch_backend


def test_plans_are_cached_per_device_and_dtype(tp_check):
    desc = tp_check.descriptor("2x0e", "0e", "2x0e", [(0, 0, 0, "uvu", True)])
    a = torch_backend.plan_for(desc, "cpu", torch.float32)
    assert torch_backend.plan_for(desc, "cpu", torch.float32) is a
    assert torch_backend.plan_for(desc, "cpu", torch.float64) is not a
    assert a.segments[0].n_c.dtype == torch.float32


def test_bad_input_raises(tp_check):
    desc = tp_check.descriptor("2x0e", "0e", "2x0e", [(0, 0, 0, "uvu", True)])
    x1, x2, w = tp_check.inputs(desc, 3, False, torch.float32)
    with pytest.raises(ValueError, match="x1"):
        torch_backend.tensor_product(desc, x1[:, :1], x2, w)
    with pytest.raises(ValueError, match="batch"):
        torch_backend.tensor_product(desc, x1, x2[:2], w)
    with pytest.raises(ValueError, match=r"weight.*\[3, 2\].*batch of 3"):
        torch_backend.tensor_product(desc, x1, x2, w[:, :1])
    with pytest.raises(ValueError, match=r"weight.*\[3, 2\].*got \(2, 2\)"):
        torch_backend.tensor_product(desc, x1, x2, w[:2])
    with pytest.raises(TypeError, match="dtype"):
        torch_backend.tensor_product(desc, x1, x2.double(), w)
    with pytest.raises(ValueError, match="chunk"):
        torch_backend.tensor_product(desc, x1, x2, w, chunk=0)
    with pytest.raises(ValueError, match="weights"):
        torch_backend.tensor_product(desc, x1, x2, None)


def test_chunk_threads_leave_thread_settings_alone(tp_check):
    import threading

    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
                               [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
                                (1, 0, 1, "uvu", True)])
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        tp_check.compare(BACKEND, desc, False, torch.float64, batch=9, chunk=2)
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert torch.get_num_threads() == 2 and seen == [2]
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("form", ["bmm", "nnz", "blocks"])
def test_core_forms_agree(tp_check, monkeypatch, form, dtype):
    # a full product of degree 2 by degree 2 (one channel): ``bmm`` when dense products are
    # allowed, the sparse core otherwise, one segment per pair of input blocks when split
    from equinet.tp.kernels import torch_plan

    monkeypatch.setattr(torch_plan, "BMM_DENSITY", 1e9 if form == "bmm" else 0.0)
    monkeypatch.setattr(torch_plan, "NNZ_PER_BLOCK", 0 if form == "blocks" else 10 ** 9)
    irreps = "0e + 1o + 2e"
    instructions, outs = [], []
    for i1, l1 in enumerate(range(3)):
        for i2, l2 in enumerate(range(3)):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                instructions.append((i1, i2, len(outs), "uvuv", False))
                outs.append(f"{l3}{'eo'[(l1 + l2) % 2]}")
    desc = tp_check.descriptor(irreps, irreps, " + ".join(outs), instructions)
    plan = torch_plan.build_plan(desc)
    cores = {s.core for s in plan.segments}
    assert (cores == {"bmm"}) if form == "bmm" else ("bmm" not in cores)
    assert (len(plan.segments) == 9) == (form == "blocks")
    tp_check.compare(BACKEND, desc, False, dtype, batch=7)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_large_segments_run_in_sub_chunks(tp_check, monkeypatch, shared):
    # segments of different channel structures, the largest over its own budget: it runs each
    # chunk in sub-chunks (outputs concatenated, shared weight gradients summed)
    from equinet.tp.kernels import torch_chunks, torch_plan

    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 3x1o", "3x0e + 6x1e + 6x1o + 2x1o",
                               [(0, 0, 0, "uvw", True), (1, 1, 1, "uvuv", True),
                                (0, 1, 2, "uvuv", False), (1, 0, 3, "uvu", True)])
    plan = torch_plan.build_plan(desc)
    sizes = sorted(s.per_sample_size for s in plan.segments)
    assert len(sizes) > 1 and sizes[-1] > sizes[0]
    budget = 3 * sizes[-1] - 1  # the largest segment: sub-chunks of 2 samples in chunks of 7
    monkeypatch.setattr(torch_chunks, "_budget", lambda device: budget)
    seen = []
    real = torch_chunks.segment_rows
    monkeypatch.setattr("equinet.tp.kernels.torch_exec.segment_rows",
                        lambda seg, rows, device: seen.append(real(seg, rows, device)) or seen[-1])
    tp_check.compare(BACKEND, desc, shared, torch.float64, batch=7, chunk=7)
    assert 2 in seen and 7 in seen


def _product_in_child(desc, queue):
    # runs in a forked child: the same chunked product, on two chunk threads
    x1, x2, w = _fork_inputs(desc)
    out = torch_backend.tensor_product(desc, x1, x2, w, chunk=2)
    queue.put(float(out.sum()))


def _fork_inputs(desc):
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(9, desc.dim_in1, generator=gen, dtype=torch.float64)
    x2 = torch.randn(9, desc.dim_in2, generator=gen, dtype=torch.float64)
    w = torch.randn(desc.weight_numel, generator=gen, dtype=torch.float64)
    return x1, x2, w


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python >= 3.12 warns
def test_forked_child_gets_fresh_chunk_threads(tp_check):
    # A child forked after the parent used the chunk threads inherits the pool without its
    # threads; it must make new ones, not wait forever on the parent's (absent) threads.
    import multiprocessing

    desc = tp_check.descriptor("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
                               [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
                                (1, 0, 1, "uvu", True)])
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        x1, x2, w = _fork_inputs(desc)
        expected = float(torch_backend.tensor_product(desc, x1, x2, w, chunk=2).sum())
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_product_in_child, args=(desc, queue))
        child.start()
        child.join(timeout=60)
        if child.is_alive():  # the bug: the child blocks forever; never hang the suite
            child.kill()
            child.join()
            pytest.fail("the forked child hung in the chunked product")
        assert child.exitcode == 0
        assert queue.get(timeout=10) == pytest.approx(expected, rel=1e-12)
    finally:
        torch.set_num_threads(previous)
