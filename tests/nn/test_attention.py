"""EquivariantAttention against a loop over nodes built from e3nn modules with the same weights."""
import math

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3

from equinet.nn import EquivariantAttention
from equinet.testing import assert_equivariant

IRREPS_IN, IRREPS_OUT, IRREPS_SH = "4x0e + 2x1o + 2x2e", "3x0e + 1x1o + 2x1e", "0e + 1o + 2e"


def _graph(num_nodes=5, num_edges=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    dst = (src + torch.randint(1, num_nodes, (num_edges,), generator=g)) % num_nodes
    pos = 1.5 * torch.randn(num_nodes, 3, generator=g, dtype=torch.float64)
    return pos, src, dst


def _e3nn_reference(att):
    def lin(a, b, ours):
        m = e3nn_o3.Linear(str(a), str(b))
        with torch.no_grad():
            m.weight.copy_(ours.weight)
        return m

    def tp(ours):
        return e3nn_o3.TensorProduct(str(ours.irreps_in1), str(ours.irreps_in2),
                                     str(ours.irreps_out),
                                     [tuple(i)[:5] for i in ours.instructions],
                                     shared_weights=False, internal_weights=False)

    query = lin(att.irreps_in, att.irreps_key, att.query)
    key = lin(att.key.irreps_in, att.irreps_key, att.key)
    value = lin(att.value.irreps_in, att.irreps_out, att.value)
    tp_key, tp_value = tp(att.tp_key), tp(att.tp_value)  # values: per edge, then weighted
    fc = e3nn_nn.FullyConnectedNet(att.radial.hs, torch.nn.functional.silu)
    fc.load_state_dict(att.radial.state_dict())
    heads = att.num_heads

    def head_channels(irreps):
        """[dim] head of each component: channel u of a block of mul -> u * heads // mul."""
        out = []
        for mul, ir in e3nn_o3.Irreps(str(irreps)):
            for u in range(mul):
                out += [u * heads // mul] * ir.dim
        return torch.tensor(out)

    # a uvu product keeps the channels of its first input: value heads are those of irreps_in
    key_head, mid_head = head_channels(att.irreps_key), head_channels(tp_value.irreps_out)
    d_head = e3nn_o3.Irreps(str(att.irreps_key)).dim // heads

    def forward(x, src, dst, sh, emb, cut):
        wk, wv = fc(emb).split([tp_key.weight_numel, tp_value.weight_numel], dim=1)
        k = key(tp_key(x[src], sh, wk))
        v = tp_value(x[src], sh, wv)
        q = query(x)
        out = torch.zeros(x.shape[0], v.shape[1])
        for i in range(x.shape[0]):
            edges = (dst == i).nonzero()[:, 0]
            if len(edges) == 0:
                continue
            for h in range(heads):
                s = (q[i, key_head == h] * k[edges][:, key_head == h]).sum(1) / math.sqrt(d_head)
                a = cut[edges] * torch.softmax(s, 0)
                a = a / a.sum()
                out[i, mid_head == h] = (a[:, None] * v[edges][:, mid_head == h]).sum(0)
        return value(out)

    return forward


@pytest.mark.parametrize("num_heads", [1, 2])
def test_matches_loop_over_nodes(float64_default, num_heads):
    att = EquivariantAttention(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=4,
                               radial_hidden=(6,), num_heads=num_heads)
    reference = _e3nn_reference(att)
    pos, src, dst = _graph()
    sh = e3nn_o3.spherical_harmonics([0, 1, 2], pos[dst] - pos[src], True, "component")
    emb, cut = torch.randn(13, 4), torch.rand(13) + 0.1
    x = torch.randn(5, att.irreps_in.dim)
    y = att(x, src, dst, edge_sh=sh, edge_embedding=emb, edge_cutoff=cut)
    torch.testing.assert_close(y, reference(x, src, dst, sh, emb, cut), atol=1e-12, rtol=0)


def test_equivariant_and_permutation_equivariant():
    att = EquivariantAttention(IRREPS_IN, IRREPS_OUT, IRREPS_SH, num_radial=4, num_heads=2,
                               cutoff=4.0).double()
    pos, src, dst = _graph()
    x = torch.randn(5, att.irreps_in.dim, dtype=torch.float64)
    fn = lambda x, vec: att(x, src, dst, vec)  # noqa: E731
    assert_equivariant(fn, [IRREPS_IN, "1o"], IRREPS_OUT, [x, pos[dst] - pos[src]])
    perm = torch.randperm(5)
    inverse = torch.argsort(perm)
    y = att(x, src, dst, pos[dst] - pos[src])
    y_perm = att(x[perm], inverse[src], inverse[dst], pos[dst] - pos[src])
    torch.testing.assert_close(y_perm, y[perm])


def test_smooth_at_cutoff():
    """A neighbour just inside the cutoff barely changes the output."""
    att = EquivariantAttention("3x0e + 1o", "3x0e + 1o", "0e + 1o", num_radial=4,
                               cutoff=2.0).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    vec = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.0, 2.0 - 1e-4]], dtype=torch.float64)
    with_far = att(x, torch.tensor([1, 2]), torch.tensor([0, 0]), vec)
    without = att(x, torch.tensor([1]), torch.tensor([0]), vec[:1])
    assert (with_far - without).abs().max() < 1e-8


def test_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        EquivariantAttention("3x0e", "4x0e", "0e", num_radial=2, num_heads=2)
    att = EquivariantAttention("2x0e", "2x0e", "0e + 1o", num_radial=2)
    with pytest.raises(ValueError, match="edge_embedding"):
        att(torch.randn(2, 2), torch.tensor([0]), torch.tensor([1]), torch.randn(1, 3))
    with pytest.raises(ValueError, match="edge_vec"):
        att(torch.randn(2, 2), torch.tensor([0]), torch.tensor([1]), torch.randn(2, 3))


@pytest.mark.parametrize("which", ["edge_src", "edge_dst"])
@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_edges_name_the_index(which, bad):
    # was an IndexError from a gather; now PointConvolution's message
    att = EquivariantAttention("2x0e", "2x0e", "0e + 1o", num_radial=2, cutoff=2.0)
    edges = {"edge_src": torch.tensor([0, 1]), "edge_dst": torch.tensor([1, 2])}
    edges[which] = torch.tensor([0, bad])
    with pytest.raises(ValueError, match=rf"{which} holds node indices.*\(3 nodes\)"):
        att(torch.randn(3, 2), edges["edge_src"], edges["edge_dst"], torch.randn(2, 3))
