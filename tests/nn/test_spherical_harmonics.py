"""SphericalHarmonics module against e3nn's o3.SphericalHarmonics."""
import pytest
import torch
from e3nn import o3 as e3nn_o3

from equinet.nn import SphericalHarmonics
from equinet.testing import assert_equivariant

CASES = ["0e + 1o + 2e", "0e + 1e + 2e + 3e", 3, [0, 2, 1], "2x1o + 0e"]


@pytest.mark.parametrize("irreps_out", CASES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_matches_e3nn(float64_default, irreps_out, normalize, normalization):
    ours = SphericalHarmonics(irreps_out, normalize, normalization)
    ref = e3nn_o3.SphericalHarmonics(irreps_out, normalize, normalization)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    assert str(ours.irreps_in) == str(ref.irreps_in)
    x = torch.randn(3, 2, 3)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("irreps_out", ["0e + 1o + 2e + 3o", "1e + 2e"])
def test_equivariant(irreps_out):
    sh = SphericalHarmonics(irreps_out, normalize=True)
    assert_equivariant(sh, sh.irreps_in, sh.irreps_out)


def test_bad_input():
    with pytest.raises(ValueError, match="parity"):
        SphericalHarmonics("0e + 1o + 1e", True)
    with pytest.raises(ValueError, match="irreps_in"):
        SphericalHarmonics("0e", True, irreps_in="2e")
    with pytest.raises(ValueError, match="normalization"):
        SphericalHarmonics("1o", True, normalization="unit")
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        SphericalHarmonics("1o", True)(torch.randn(4, 2))


def test_default_normalization_is_e3nns(float64_default):
    ours = SphericalHarmonics("0e + 1o + 2e", True)
    ref = e3nn_o3.SphericalHarmonics("0e + 1o + 2e", True)
    assert ours.normalization == ref.normalization == "integral"
    x = torch.randn(5, 3)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)
