"""Irrep against e3nn's: labels, products, parsing errors and representation matrices."""
import e3nn.o3
import pytest
import torch

from equinet.o3 import Irrep, Irreps


def test_irrep_basics_match_e3nn():
    for l in range(5):
        for p in (1, -1):
            a, b = Irrep(l, p), e3nn.o3.Irrep(l, p)
            assert repr(a) == repr(b) and a.dim == b.dim and a.is_scalar() == b.is_scalar()
            other = Irrep(2, -1)
            assert [repr(x) for x in a * other] == [repr(x) for x in b * e3nn.o3.Irrep(2, -1)]
    assert [repr(x) for x in Irrep.iterator(3)] == [repr(x) for x in e3nn.o3.Irrep.iterator(3)]
    assert Irrep("3y") == Irrep(3, -1) and Irrep("2y") == Irrep(2, 1)
    assert repr(3 * Irrep("1e")) == "3x1e"
    assert Irrep("1o") + Irrep("0e") == Irreps("1o + 0e")


@pytest.mark.parametrize("bad", [(-1, 1), (1, 0), (1.0, 1), "1", "e", (True, 1)])
def test_malformed_irrep(bad):
    with pytest.raises(ValueError):
        Irrep(*bad) if isinstance(bad, tuple) else Irrep(bad)


def test_D_from_matrix_vector_is_the_matrix():
    R = e3nn.o3.rand_matrix(3, dtype=torch.float64)
    torch.testing.assert_close(Irrep("1o").D_from_matrix(R), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("1o").D_from_matrix(-R), -R, atol=1e-12, rtol=0)
    torch.testing.assert_close(Irrep("1e").D_from_matrix(-R), R, atol=1e-12, rtol=0)


def test_irrep_stays_importable_from_irreps():
    """Irrep was defined in equinet.o3.irreps before it got its own module."""
    from equinet.o3 import irrep, irreps

    assert irreps.Irrep is irrep.Irrep and "Irrep" in irreps.__all__
