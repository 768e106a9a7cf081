"""Dropout against e3nn's (same seed, same mask), whole irreps dropped, equivariance."""
import pytest
import torch
from e3nn import nn as e3nn_nn

from equinet.nn import Dropout
from equinet.testing import assert_equivariant

IRREPS = "3x0e + 2x1o + 2e"


def test_matches_e3nn_same_seed():
    ours, ref = Dropout(IRREPS, 0.4), e3nn_nn.Dropout(IRREPS, 0.4)
    x = torch.randn(7, 2, ours.irreps.dim)
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    b = ref(x)
    assert torch.equal(a, b)


def test_drops_whole_irreps():
    d = Dropout("1o", 0.5)
    x = torch.ones(2000, 3, 3)
    y = d(x)
    kept = y[:, :, 0] != 0
    # the three components of a vector, and all middle rows, share the mask
    assert torch.equal(y, kept[:, :1, None].expand_as(y).float() * 2.0)
    assert 0.4 < kept[:, 0].float().mean().item() < 0.6
    assert torch.equal(d.eval()(x), x)


def test_edge_probabilities():
    x = torch.randn(4, 6)
    assert torch.equal(Dropout("0e + 2e", 0.0)(x), x)
    assert torch.equal(Dropout("0e + 2e", 1.0)(x), torch.zeros_like(x))


def test_equivariant():
    d = Dropout(IRREPS, 0.5)

    def fixed_mask(x):
        torch.manual_seed(1)
        return d(x)

    assert_equivariant(fixed_mask, IRREPS, IRREPS)


def test_bad_input():
    with pytest.raises(ValueError, match="p must be"):
        Dropout("0e", 1.5)
    with pytest.raises(ValueError, match="batch"):
        Dropout("2x0e", 0.1)(torch.randn(2))
