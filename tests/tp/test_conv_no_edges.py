"""Graphs without edges: outputs stay on the autograd graph, with zero gradients.

A fresh zero tensor has no ``grad_fn``, so ``autograd.grad`` of an energy of isolated atoms
(a single atom, atoms beyond the cutoff, an empty batch) used to fail with "One of the
differentiated Tensors appears to not have been used in the graph".
"""
import pytest
import torch

from equinet.nn import PointConvolution
from equinet.tp import TensorProductConv

ARGS = ("3x0e + 2x1o", "0e + 1o + 2e", "3x0e + 2x1o + 2x1e + 1x2o",
        [(0, 0, 0, "uvu", True), (1, 1, 0, "uvw", True), (1, 0, 1, "uvu", True),
         (0, 1, 1, "uvw", True), (1, 1, 2, "uvu", False), (1, 2, 3, "uvw", True)])
EMPTY = torch.zeros(0, dtype=torch.long)


def _assert_zero_grads(out, wrt):
    grads = torch.autograd.grad(out.sum(), wrt)  # raises if any input is disconnected
    for g, t in zip(grads, wrt):
        assert g.shape == t.shape and not g.any()


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("weights", ["per-edge", "shared", "internal"])
@pytest.mark.parametrize("nodes", [0, 1, 4])
def test_tensor_product_conv_without_edges(backend, weights, nodes):
    conv = TensorProductConv(*ARGS, backend=backend, shared_weights=weights != "per-edge",
                             internal_weights=weights == "internal").double()
    x = torch.randn(nodes, conv.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    a = torch.randn(0, conv.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    if weights == "internal":
        w, wrt = None, [x, a, conv.weight]
    else:
        shape = (conv.weight_numel,) if weights == "shared" else (0, conv.weight_numel)
        w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        wrt = [x, a, w]
    out = conv(x, a, w, EMPTY, EMPTY)
    assert out.shape == (nodes, conv.irreps_out.dim) and not out.any()
    _assert_zero_grads(out, wrt)


def test_tensor_product_conv_without_paths_stays_connected():
    nothing = TensorProductConv("2x0e", "0e", "2x1o", [])
    x = torch.randn(3, 2, requires_grad=True)
    a = torch.randn(2, 1, requires_grad=True)
    out = nothing(x, a, None, torch.tensor([0, 1]), torch.tensor([1, 2]))
    assert not out.any()
    _assert_zero_grads(out, [x, a])


@pytest.mark.parametrize("nodes", [0, 1, 3])
def test_point_convolution_without_edges(nodes):
    conv = PointConvolution("4x0e + 2x1o", "4x0e + 2x1o", "0e + 1o + 2e", num_radial=4,
                            radial_hidden=(8,), cutoff=2.0).double()
    x = torch.randn(nodes, conv.irreps_in.dim, dtype=torch.float64, requires_grad=True)
    edge_vec = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    out = conv(x, EMPTY, EMPTY, edge_vec)
    assert out.shape == (nodes, conv.irreps_out.dim)
    radial = [p for p in conv.radial.parameters()] + [p for p in conv.conv.parameters()]
    grads = torch.autograd.grad(out.sum(), [x, edge_vec] + radial, allow_unused=False)
    assert grads[1].shape == (0, 3)
    assert all(not g.any() for g in grads[2:])  # messages are empty: weights get 0
