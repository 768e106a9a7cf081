"""Activation (parity-aware scalar activations) against e3nn's nn.Activation."""
import pytest
import torch
from e3nn import nn as e3nn_nn

from equinet.nn import Activation, activation_parity
from equinet.testing import assert_equivariant

CASES = [
    ("4x0e + 2x0o + 1o", [torch.relu, torch.abs, None]),
    ("3x0o + 2e + 2x0e", [torch.tanh, None, torch.nn.functional.silu]),
    ("5x0e", [None]),
]


@pytest.mark.parametrize("irreps, acts", CASES)
def test_matches_e3nn(float64_default, irreps, acts):
    ours, ref = Activation(irreps, acts), e3nn_nn.Activation(irreps, acts)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(2, 3, ours.irreps_in.dim)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-13, rtol=0)


@pytest.mark.parametrize("irreps, acts", CASES)
def test_equivariant(irreps, acts):
    a = Activation(irreps, acts)
    assert_equivariant(a, irreps, a.irreps_out)


def test_parity_detection():
    assert activation_parity(torch.tanh) == -1
    assert activation_parity(torch.cos) == 1
    assert activation_parity(torch.nn.functional.silu) == 0


def test_bad_input():
    with pytest.raises(ValueError, match="neither even nor odd"):
        Activation("2x0o", [torch.sigmoid])
    with pytest.raises(ValueError, match="not a scalar"):
        Activation("1o", [torch.tanh])
    with pytest.raises(ValueError, match="activation functions"):
        Activation("0e + 1o", [torch.tanh])
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        Activation("4x0e", [torch.tanh])(torch.randn(3, 5))
