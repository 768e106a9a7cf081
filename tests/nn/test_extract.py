"""Extract / ExtractIr against e3nn's."""
import pytest
import torch
from e3nn import nn as e3nn_nn

from equinet.nn import Extract, ExtractIr
from equinet.testing import assert_equivariant


def test_matches_e3nn():
    irreps_in = "2x0e + 1o + 3x2e + 0o"
    outs, ins = ["3x2e + 2x0e", "1o", "0o + 1o"], [(2, 0), (1,), (3, 1)]
    ours, ref = Extract(irreps_in, outs, ins), e3nn_nn.Extract(irreps_in, outs, ins)
    x = torch.randn(4, 2, ours.irreps_in.dim)
    for a, b in zip(ours(x), ref(x)):
        assert torch.equal(a, b)
    ours_ir, ref_ir = ExtractIr(irreps_in, "0e"), e3nn_nn.ExtractIr(irreps_in, "0e")
    assert torch.equal(ours_ir(x), ref_ir(x))


def test_equivariant():
    e = Extract("2x0e + 1o + 3x2e + 0o", ["3x2e + 0o", "1o"], [(2, 3), (1,)])
    assert_equivariant(e, e.irreps_in, list(e.irreps_outs))


def test_squeeze_and_gradient():
    e = Extract("0e + 1o", ["1o"], [(1,)], squeeze_out=True)
    x = torch.randn(3, 4, requires_grad=True)
    e(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 1, 1, 1]] * 3))


def test_bad_input():
    with pytest.raises(ValueError, match="input block 0 is 1x0e"):
        Extract("0e + 1o", ["1o"], [(0,)])
    with pytest.raises(ValueError, match="not a block index"):
        Extract("0e + 1o", ["1o"], [(5,)])
    with pytest.raises(ValueError, match="instructions"):
        Extract("0e + 1o", ["1o", "0e"], [(1,)])
    with pytest.raises(TypeError, match="list of irreps"):
        Extract("0e + 1o", "1o", [(1,)])
