"""S2Activation against e3nn's nn.S2Activation; equivariance (exact for polynomial activations)."""
import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3

from equinet.nn import S2Activation
from equinet.testing import assert_equivariant

CASES = [
    ("0e + 1o + 2e", torch.tanh, 20, None),
    ("0e + 1e + 2e", torch.relu, 12, 3),
    ("0o + 1e + 2o", torch.tanh, 10, 1),
    ("0o + 1o + 2o", torch.abs, (12, 13), None),
]


@pytest.mark.parametrize("irreps, act, res, lmax_out", CASES)
def test_matches_e3nn(float64_default, irreps, act, res, lmax_out):
    ours = S2Activation(irreps, act, res, lmax_out=lmax_out)
    ref = e3nn_nn.S2Activation(e3nn_o3.Irreps(irreps), act, res, lmax_out=lmax_out)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(3, 2, ours.irreps_in.dim)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


def square(x):
    return x * x


def cube(x):
    return x * x * x


@pytest.mark.parametrize("irreps, act", [("0e + 1o + 2e", square), ("0o + 1e + 2o", cube),
                                         ("0e + 1e + 2e", cube)])
def test_exactly_equivariant_for_polynomials(float64_default, irreps, act):
    # phi of degree k maps degree-2 signals to degree 2k; projecting to lmax_out = 2 needs the
    # quadrature exact to degree 2k + 2 (res >= 2k + 3); even res_alpha keeps the inversion
    # x -> -x on the grid. Built under float64 defaults so the grid tables are float64-exact.
    a = S2Activation(irreps, act, res=(12, 12))
    assert_equivariant(a, a.irreps_in, a.irreps_out)


def test_approximately_equivariant_tanh():
    a = S2Activation("0e + 1o + 2e", torch.tanh, res=(40, 41))
    assert_equivariant(a, a.irreps_in, a.irreps_out, tolerance=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="one copy"):
        S2Activation("2x0e + 1o", torch.tanh, 10)
    with pytest.raises(ValueError, match="one copy"):
        S2Activation("0e + 2e", torch.tanh, 10)
    with pytest.raises(ValueError, match="parities"):
        S2Activation("0e + 1o + 2o", torch.tanh, 10)
    with pytest.raises(ValueError, match="even or odd"):
        S2Activation("0o + 1e", torch.sigmoid, 10)


def test_dtypes_and_batch_dims(dtype):
    a = S2Activation("0e + 1o + 2e", torch.tanh, res=10).to(dtype)
    x = torch.randn(2, 3, 9, dtype=dtype)
    y = a(x)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y[1], a(x[1]))
