"""Irreps <-> spherical channels, and the exact second moments that normalise the Gaunt layers."""
import pytest
import torch

from equinet.o3 import gaunt
from equinet.tp import gaunt_power
from equinet.tp.gaunt_layout import (SphericalChannels, power_variance, product_variance,
                                     reachable_degrees)


@pytest.mark.parametrize("ls1, ls2, lmax_out", [([0], [0], 0), ([0, 1, 2], [1, 3], 5),
                                                ([2], [2], 4), ([1, 4], [0, 2, 3], 6)])
def test_product_variance_is_the_gaunt_norm_sum(ls1, ls2, lmax_out):
    def norm2(l1, l2, l3):
        return gaunt(l1, l2, l3, dtype=torch.float64).pow(2).sum().item()

    expected = [sum(norm2(l1, l2, l3) for l1 in ls1 for l2 in ls2) / (2 * l3 + 1)
                for l3 in range(lmax_out + 1)]
    assert product_variance(ls1, ls2, lmax_out) == pytest.approx(expected, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("ls, k", [([0, 1, 2], 2), ([1], 3), ([0, 2], 3)])
def test_power_variance_matches_monte_carlo(ls, k):
    L, lmax_out, n = max(ls), 4, 40000
    x = torch.zeros(n, (L + 1) ** 2, dtype=torch.float64)
    for l in ls:
        x[:, l * l:(l + 1) ** 2] = torch.randn(n, 2 * l + 1, dtype=torch.float64)
    z = gaunt_power(x, k, lmax_out, method="grid")
    measured = [z[:, l * l:(l + 1) ** 2].pow(2).mean().item() for l in range(lmax_out + 1)]
    exact = power_variance(ls, k, lmax_out)
    for m, e in zip(measured, exact):
        assert m == pytest.approx(e, rel=0.08, abs=1e-12)


def test_spherical_channels_round_trip():
    s = SphericalChannels("3x2e + 3x0e", "irreps")
    assert (s.channels, s.ls, s.lmax) == (3, (2, 0), 2)
    x = torch.randn(4, s.irreps.dim)
    f = s.to_functions(x)
    assert f.shape == (4, 3, 9)
    assert f[..., 1:4].abs().max() == 0  # degree 1 absent
    torch.testing.assert_close(f[:, 1, 4:], x[:, 5:10])  # channel 1 of the (first) 2e block
    torch.testing.assert_close(s.from_functions(f), x)
    w = torch.tensor([[1.0, 2.0]] * 3)  # degrees in the irreps' order: 2 -> 1.0, 0 -> 2.0
    assert s.expand_degrees(w)[0].tolist() == [2.0, 0, 0, 0, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("irreps, match", [("1e", "parity"), ("0e + 2o", "parity"),
                                           ("2x0e + 2x0e", "repeats"),
                                           ("2x0e + 3x1o", "multiplicities"), ("", "empty")])
def test_spherical_channels_errors(irreps, match):
    with pytest.raises(ValueError, match=match):
        SphericalChannels(irreps, "irreps_in")


def test_reachable_degrees():
    assert reachable_degrees([1], [1]) == {0: True, 1: False, 2: True}
