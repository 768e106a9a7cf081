"""PointConvolution against the same block assembled from e3nn modules with the same weights."""
import math

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3

from equinet.nn import PointConvolution
from equinet.testing import assert_equivariant

IRREPS_IN, IRREPS_OUT, IRREPS_SH = "4x0e + 2x0o + 3x1o + 2x2e", "3x0e + 2x1o + 2x1e + 2e", \
    "0e + 1o + 2e"


def _graph(num_nodes=6, num_edges=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    dst = (src + torch.randint(1, num_nodes, (num_edges,), generator=g)) % num_nodes  # no i -> i
    pos = torch.randn(num_nodes, 3, generator=g, dtype=torch.float64)
    return pos, src, dst


def _e3nn_block(conv, avg):
    """e3nn's Linear, TensorProduct, FullyConnectedNet, FullyConnectedTensorProduct, our weights."""
    irreps_in = e3nn_o3.Irreps(str(conv.irreps_in))
    irreps_mid = e3nn_o3.Irreps(str(conv.irreps_mid))
    irreps_out = e3nn_o3.Irreps(str(conv.irreps_out))
    lin_in = e3nn_o3.Linear(irreps_in, irreps_in)
    tp = e3nn_o3.TensorProduct(irreps_in, str(conv.irreps_sh), irreps_mid,
                               [tuple(i)[:5] for i in conv.conv.instructions],
                               shared_weights=False, internal_weights=False)
    fc = e3nn_nn.FullyConnectedNet(conv.radial.hs, torch.nn.functional.silu)
    lin_out = e3nn_o3.Linear(irreps_mid.simplify(), irreps_out)
    sc = e3nn_o3.FullyConnectedTensorProduct(irreps_in, str(conv.irreps_node_attr), irreps_out)
    with torch.no_grad():
        lin_in.weight.copy_(conv.linear_in.weight)
        lin_out.weight.copy_(conv.linear_out.weight)
        sc.weight.copy_(conv.self_connection.weight)
    fc.load_state_dict(conv.radial.state_dict())

    def block(x, src, dst, sh, emb, attr):
        messages = tp(lin_in(x)[src], sh, fc(emb))
        m = torch.zeros(x.shape[0], messages.shape[1]).index_add(0, dst, messages)
        return lin_out(m / math.sqrt(avg)) + sc(x, attr)

    return block


def test_matches_e3nn_block(float64_default):
    conv = PointConvolution(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=5, radial_hidden=(7,),
                            irreps_node_attr="3x0e", avg_num_neighbors=2.5)
    assert conv.conv.instructions[0].connection_mode == "uvu"
    block = _e3nn_block(conv, 2.5)
    pos, src, dst = _graph()
    x = torch.randn(6, conv.irreps_in.dim, requires_grad=True)
    attr = torch.randn(6, 3)
    sh = e3nn_o3.spherical_harmonics([0, 1, 2], pos[dst] - pos[src], True, "component")
    emb = torch.randn(14, 5)
    y = conv(x, src, dst, edge_sh=sh, edge_embedding=emb, node_attr=attr)
    y_ref = block(x, src, dst, sh, emb, attr)
    torch.testing.assert_close(y, y_ref, atol=1e-11, rtol=0)
    v = torch.randn_like(y)
    (g,) = torch.autograd.grad((y * v).sum(), x)
    (g_ref,) = torch.autograd.grad((y_ref * v).sum(), x)
    torch.testing.assert_close(g, g_ref, atol=1e-11, rtol=0)


def test_edge_vec_gives_bessel_embedding_and_harmonics(float64_default):
    conv = PointConvolution(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=4, cutoff=3.0,
                            self_connection=False)
    pos, src, dst = _graph()
    vec = pos[dst] - pos[src]
    r = vec.norm(dim=1, keepdim=True)
    n = torch.arange(1, 5)
    u = r / 3.0
    envelope = (1 - 28 * u ** 6 + 48 * u ** 7 - 21 * u ** 8) * (u < 1)  # NequIP's p = 6
    emb = 2 / 3.0 * torch.sin(n * math.pi * r / 3.0) / r * envelope
    sh = e3nn_o3.spherical_harmonics([0, 1, 2], vec, True, "component")
    x = torch.randn(6, conv.irreps_in.dim)
    torch.testing.assert_close(conv(x, src, dst, vec),
                               conv(x, src, dst, edge_sh=sh, edge_embedding=emb),
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("node_attr", [False, True])
def test_equivariant(node_attr):
    conv = PointConvolution(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=4, cutoff=2.5,
                            irreps_node_attr="2x0e" if node_attr else None)
    pos, src, dst = _graph()
    attr = torch.randn(6, 2, dtype=torch.float64)

    def fn(x, vec):
        return conv.double()(x, src, dst, vec, node_attr=attr if node_attr else None)

    x = torch.randn(6, conv.irreps_in.dim, dtype=torch.float64)
    assert_equivariant(fn, [IRREPS_IN, "1o"], IRREPS_OUT, [x, pos[dst] - pos[src]])


def test_double_backward_through_edge_vectors():
    conv = PointConvolution("2x0e + 1o", "2x0e + 1o", "0e + 1o", num_radial=3, cutoff=2.0,
                            radial_hidden=(4,)).double()
    pos, src, dst = _graph(4, 6)
    x = torch.randn(4, 5, dtype=torch.float64)

    def energy(p):
        return conv(x, src, dst, p[dst] - p[src])[:, :2].sum()

    assert torch.autograd.gradgradcheck(lambda p: torch.autograd.grad(
        energy(p), p, create_graph=True)[0], (pos.clone().requires_grad_(),), atol=1e-6)


def test_bad_input():
    conv = PointConvolution("2x0e", "2x0e", "0e + 1o", num_radial=3, irreps_node_attr="0e")
    x, src, dst = torch.randn(3, 2), torch.tensor([0, 1]), torch.tensor([1, 2])
    sh, emb = torch.randn(2, 4), torch.randn(2, 3)
    with pytest.raises(ValueError, match="node_attr"):
        conv(x, src, dst, edge_sh=sh, edge_embedding=emb)
    with pytest.raises(ValueError, match="cutoff"):
        conv(x, src, dst, torch.randn(2, 3), edge_sh=sh, node_attr=torch.ones(3, 1))
    with pytest.raises(ValueError, match="edge_src"):
        conv(x, src.float(), dst, edge_sh=sh, edge_embedding=emb, node_attr=torch.ones(3, 1))
    with pytest.raises(ValueError, match="edge_embedding"):
        conv(x, src, dst, edge_sh=sh, edge_embedding=torch.randn(2, 5),
             node_attr=torch.ones(3, 1))
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        PointConvolution("2x0e", "2x0e", "0e + 1o", num_radial=3, avg_num_neighbors=0)


def test_torch_compile():
    conv = PointConvolution("4x0e + 2x1o", "4x0e + 2x1o", "0e + 1o", num_radial=3, cutoff=2.0,
                            radial_hidden=(8,))
    pos, src, dst = _graph(5, 12)
    vec = (pos[dst] - pos[src]).float()
    x = torch.randn(5, 10)
    expected = conv(x, src, dst, vec)
    torch.testing.assert_close(torch.compile(conv)(x, src, dst, vec), expected)


def test_float32_matches_float64(dtype):
    conv = PointConvolution(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=4, cutoff=2.5,
                            irreps_node_attr="2x0e").double()
    pos, src, dst = _graph()
    x = torch.randn(6, conv.irreps_in.dim, dtype=torch.float64)
    attr = torch.randn(6, 2, dtype=torch.float64)
    expected = conv(x, src, dst, pos[dst] - pos[src], node_attr=attr)
    conv = conv.to(dtype)
    y = conv(x.to(dtype), src, dst, (pos[dst] - pos[src]).to(dtype), node_attr=attr.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y, expected.to(dtype), atol=1e-4, rtol=1e-4)
