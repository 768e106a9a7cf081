"""Normalize2Mom against e3nn's constants and Gauss-Hermite quadrature."""
import math

import numpy as np
import pytest
import torch
from e3nn.math import normalize2mom as e3nn_normalize2mom

from equinet.nn import Normalize2Mom, normalize2mom, second_moment

ACTS = [torch.nn.functional.silu, torch.tanh, torch.relu, torch.sigmoid, torch.abs,
        torch.nn.functional.gelu, torch.nn.SiLU()]


def quadrature_second_moment(f):
    z, w = np.polynomial.hermite_e.hermegauss(150)  # weight exp(-z^2 / 2)
    values = f(torch.tensor(z)).double().numpy()
    return float((w * values ** 2).sum() / math.sqrt(2 * math.pi))


@pytest.mark.parametrize("f", ACTS)
def test_constant_matches_e3nn(f):
    ours, ref = Normalize2Mom(f), e3nn_normalize2mom(f)
    assert ours.cst == ref.cst
    assert ours.is_identity == ref._is_id
    x = torch.randn(100, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), atol=0, rtol=0)


@pytest.mark.parametrize("f", ACTS)
def test_normalised_second_moment_is_one(f):
    assert abs(quadrature_second_moment(Normalize2Mom(f)) - 1) < 5e-3
    assert abs(second_moment(f) - quadrature_second_moment(f)) < 5e-3 * second_moment(f)


def test_identity_is_skipped():
    # the sample moment of z is 0.9978, not 1: rescale so that it is 1 to rounding
    c = second_moment(lambda z: z) ** -0.5
    act = normalize2mom(lambda z: c * z)
    assert act.is_identity and abs(act.cst - 1) < 1e-4
    assert not normalize2mom(lambda z: 1.01 * c * z).is_identity
    x = torch.randn(5)
    assert torch.equal(act(x), c * x)


def test_bad_input():
    with pytest.raises(TypeError):
        Normalize2Mom(3.0)
    with pytest.raises(ValueError, match="second moment"):
        Normalize2Mom(torch.zeros_like)
