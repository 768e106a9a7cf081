"""TensorProductConv against the explicit gather / TensorProduct / index_add it stands for."""
import numpy as np
import pytest
import torch

from equinet.testing import assert_equivariant
from equinet.tp import TensorProduct, TensorProductConv
from equinet.tp.kernels import convolution

ARGS = ("3x0e + 2x1o", "0e + 1o + 2e", "3x0e + 2x1o + 2x1e + 1x2o",
        [(0, 0, 0, "uvu", True), (1, 1, 0, "uvw", True), (1, 0, 1, "uvu", True),
         (0, 1, 1, "uvw", True), (1, 1, 2, "uvu", False), (1, 2, 3, "uvw", True)])


def _graph(nodes, edges, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, nodes, (edges,), generator=g)
    dst = torch.randint(0, nodes - 2, (edges,), generator=g)  # the last nodes get nothing
    src[:3], dst[:3] = 1, 0  # a repeated edge
    return src, dst


def _inputs(conv, nodes, edges, dtype=torch.float64, shared=False):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(nodes, conv.irreps_in1.dim, generator=g, dtype=dtype)
    a = torch.randn(edges, conv.irreps_in2.dim, generator=g, dtype=dtype)
    w = torch.randn((conv.weight_numel,) if shared else (edges, conv.weight_numel),
                    generator=g, dtype=dtype)
    return x, a, w


def _explicit(tp, x, a, w, src, dst, num_nodes):
    """The definition: messages on every edge, summed at the destination."""
    messages = tp(x[src], a, w)
    return torch.zeros(num_nodes, messages.shape[1], dtype=x.dtype).index_add(0, dst, messages)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-edge", "shared"])
def test_matches_explicit_index_add(compare_with_oracle, dtype, backend, shared):
    conv = TensorProductConv(*ARGS, shared_weights=shared, internal_weights=False,
                             backend=backend, chunk_size=4)
    tp = TensorProduct(*ARGS, shared_weights=shared, internal_weights=False,
                       backend="reference")
    src, dst = _graph(7, 13)
    atol = {torch.float32: 1e-4, torch.float64: 1e-10}[dtype]
    out = compare_with_oracle(lambda x, a, w: conv(x, a, w, src, dst),
                              lambda x, a, w: _explicit(tp, x, a, w, src, dst, 7),
                              _inputs(conv, 7, 13, dtype, shared), atol=atol)
    assert not out[-2:].any()  # nodes without incoming edges


def test_chunking_gives_the_same_result(compare_with_oracle):
    src, dst = _graph(6, 17, seed=2)
    inputs = _inputs(TensorProductConv(*ARGS), 6, 17)
    whole = TensorProductConv(*ARGS, backend="torch", chunk_size=1000)
    for chunk in (1, 5, 16):
        chunked = TensorProductConv(*ARGS, backend="torch", chunk_size=chunk)
        compare_with_oracle(lambda *t: chunked(*t, src, dst), lambda *t: whole(*t, src, dst),
                            inputs, atol=1e-12)


def test_chunks_keep_no_edge_sized_tensors_for_backward():
    # the point of chunking: autograd holds no [edges, ...] tensor but the inputs
    edges = 64
    src, dst = _graph(10, edges)
    saved = []

    def record(t):
        saved.append(t)
        return t
    for backend, expect_edge_rows in (("reference", True), ("torch", False)):
        conv = TensorProductConv(*ARGS, backend=backend, chunk_size=8)
        x, a, w = (t.requires_grad_(True) for t in _inputs(conv, 10, edges))
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(record, lambda t: t):
            conv(x, a, w, src, dst).sum().backward()
        inputs = {a.data_ptr(), w.data_ptr(), src.data_ptr(), dst.data_ptr()}
        wide = [tuple(t.shape) for t in saved if t.dim() == 2 and t.shape[0] == edges
                and t.data_ptr() not in inputs]
        assert bool(wide) == expect_edge_rows, (backend, wide)


def test_default_chunk_bounds_a_chunk_to_64_megabytes():
    conv = TensorProductConv(*ARGS)
    desc = conv.descriptor
    chunk = convolution.default_chunk(desc, True, torch.float32)
    row = 4 * (desc.dim_in1 + desc.dim_in2 + desc.dim_out + desc.weight_numel)
    assert chunk * row <= 64 * 2 ** 20 < (chunk + 1) * row


def test_internal_shared_weights_and_bipartite_graphs(compare_with_oracle):
    conv = TensorProductConv(*ARGS, shared_weights=True, backend="torch", chunk_size=3)
    tp = TensorProduct(*ARGS, shared_weights=True, internal_weights=False, backend="reference")
    assert conv.internal_weights and conv.weight is not None
    src, dst = _graph(5, 9)
    x, a, _ = _inputs(conv, 5, 9)
    conv = conv.double()
    ours = conv(x, a, None, src, dst, num_nodes=8)
    theirs = _explicit(tp, x, a, conv.weight, src, dst, 8)
    assert ours.shape == (8, conv.irreps_out.dim)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    grad, = torch.autograd.grad(ours.square().sum(), conv.weight)
    expected, = torch.autograd.grad(theirs.square().sum(), conv.weight)
    torch.testing.assert_close(grad, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_equivariance(backend):
    conv = TensorProductConv(*ARGS, backend=backend, chunk_size=5)
    src, dst = _graph(6, 11)
    _, _, w = _inputs(conv, 6, 11)
    assert_equivariant(lambda x, a: conv(x, a, w, src, dst), [conv.irreps_in1, conv.irreps_in2],
                       conv.irreps_out, [torch.randn(6, conv.irreps_in1.dim, dtype=torch.float64),
                                         torch.randn(11, conv.irreps_in2.dim,
                                                     dtype=torch.float64)])


def test_no_edges_and_no_paths():
    conv = TensorProductConv(*ARGS, backend="torch")
    x, a, w = _inputs(conv, 4, 0)
    empty = torch.zeros(0, dtype=torch.long)
    out = conv(x, a, w, empty, empty, num_nodes=6)
    assert out.shape == (6, conv.irreps_out.dim) and not out.any()
    nothing = TensorProductConv("2x0e", "0e", "2x1o", [])
    x = torch.randn(3, 2)
    assert not nothing(x, torch.randn(2, 1), None, torch.tensor([0, 1]),
                       torch.tensor([1, 2])).any()


def test_bad_input_raises():
    conv = TensorProductConv(*ARGS, backend="torch")
    src, dst = _graph(5, 6)
    x, a, w = _inputs(conv, 5, 6)
    with pytest.raises(ValueError, match=r"edge_src holds node indices in \[0, 5\]"):
        conv(x, a, w, torch.tensor([0, 1, 2, 3, 4, 5]), dst)
    with pytest.raises(ValueError, match="edge_dst holds node indices"):
        conv(x, a, w, src, dst, num_nodes=2)
    for bad in (7.0, 2.7, -1, True):  # a float count was silently truncated
        with pytest.raises(ValueError, match="num_nodes must be a non-negative integer"):
            conv(x, a, w, src, dst, num_nodes=bad)
    assert conv(x, a, w, src, dst, num_nodes=np.int64(7)).shape[0] == 7
    with pytest.raises(ValueError, match="edge_src holds node indices in \\[-1"):
        conv(x, a, w, torch.tensor([-1, 0, 0, 0, 0, 0]), dst)
    with pytest.raises(ValueError, match="different numbers of edges"):
        conv(x, a, w, src, dst[:5])
    with pytest.raises(ValueError, match="edge_attr"):
        conv(x, a[:5], w, src, dst)
    with pytest.raises(ValueError, match="edge_weight"):
        conv(x, a, w[:5], src, dst)
    with pytest.raises(ValueError, match="x"):
        conv(x[:, :4], a, w, src, dst)
    with pytest.raises(TypeError, match="edge_src"):
        conv(x, a, w, src.double(), dst)
    with pytest.raises(TypeError, match="dtype"):
        conv(x, a.float(), w, src, dst)
    with pytest.raises(ValueError, match="weight"):
        conv(x, a, None, src, dst)
    with pytest.raises(ValueError, match="chunk_size"):
        TensorProductConv(*ARGS, chunk_size=0)
    with pytest.raises(ValueError, match="backend"):
        TensorProductConv(*ARGS, backend="cuda")
