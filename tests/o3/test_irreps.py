"""Irreps against e3nn's, plus parsing errors and properties."""
import e3nn.o3
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equinet.o3 import Irrep, Irreps, MulIr


irrep_strategy = st.builds(lambda l, p: f"{l}{p}", st.integers(0, 6), st.sampled_from("eo"))
term_strategy = st.builds(lambda m, ir: f"{m}x{ir}", st.integers(0, 5), irrep_strategy)
irreps_strategy = st.lists(term_strategy, max_size=6).map(" + ".join)


@given(irreps_strategy)
@settings(max_examples=60, deadline=None)
def test_algebra_matches_e3nn(text):
    ours, theirs = Irreps(text), e3nn.o3.Irreps(text)
    assert repr(ours) == repr(theirs)
    assert ours.dim == theirs.dim and ours.num_irreps == theirs.num_irreps
    assert ours.ls == theirs.ls
    assert ours.slices() == theirs.slices()
    assert repr(ours.simplify()) == repr(theirs.simplify())
    assert repr(ours.regroup()) == repr(theirs.regroup())
    assert repr(ours.remove_zero_multiplicities()) == repr(theirs.remove_zero_multiplicities())
    s, t = ours.sort(), theirs.sort()
    assert (repr(s.irreps), s.p, s.inv) == (repr(t.irreps), t.p, t.inv)
    for ir in ["0e", "1o", "2e"]:
        assert ours.count(ir) == theirs.count(ir)
        assert (ir in ours) == (e3nn.o3.Irrep(ir) in theirs)
    assert repr(ours * 2) == repr(theirs * 2)
    assert repr(ours + "3x1e") == repr(theirs + "3x1e")
    assert repr(ours.filter(lmax=1)) == repr(theirs.filter(lmax=1))
    # e3nn 0.6 mis-reads a string `keep` (it turns each "mul x ir" term into an irrep);
    # compare with the list form, which it reads right, and check ours reads both alike
    assert repr(ours.filter(keep=["0e", "1o"])) == repr(theirs.filter(keep=["0e", "1o"]))
    assert ours.filter(keep="0e + 1o") == ours.filter(keep=["0e", "1o"])
    assert repr(ours.filter(drop=["1o"])) == repr(theirs.filter(drop=["1o"]))
    if ours.ls:
        assert ours.lmax == theirs.lmax


def test_hash_and_order():
    assert len({Irrep("1o"), Irrep(1, -1), Irrep("1e")}) == 2
    assert sorted([Irrep("1e"), Irrep("0e"), Irrep("0o")]) == [
        Irrep("0o"), Irrep("0e"), Irrep("1e")]
    assert Irreps("0e+1o") == Irreps([(1, (0, 1)), (1, "1o")])
    assert len({Irreps("0e+1o"), Irreps("1x0e + 1x1o")}) == 1


def test_constructors():
    assert Irreps([Irrep("1o"), "2x0e", (3, (1, 1)), MulIr(2, "2e")]) == Irreps("1o+2x0e+3x1e+2x2e")
    assert Irreps(Irrep("2e")) == Irreps("2e")
    assert Irreps("") == Irreps() == Irreps([])
    assert Irreps(" 16x0e+8x1o ")[1] == MulIr(8, "1o")
    assert Irreps("16x0e + 8x1o + 4x2e")[1:] == Irreps("8x1o + 4x2e")
    assert Irreps.spherical_harmonics(3) == Irreps("0e + 1o + 2e + 3o")


@pytest.mark.parametrize("text, token", [
    ("3x1q", "1q"),
    ("x0e", "''"),
    ("-1x0e", "-1"),
    ("16x0e + + 1o", "empty"),
    ("2x", "''"),
    ("1.5x0e", "1.5"),
    ("0e + 1", "'1'"),
])
def test_malformed_strings_name_the_bad_token(text, token):
    with pytest.raises(ValueError, match=token.replace("'", "'").replace(".", r"\.")):
        Irreps(text)


def test_lmax_of_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        Irreps("").lmax


def test_filter_errors_and_callable():
    x = Irreps("2x0e + 1o + 3x2e")
    assert x.filter(keep=lambda mul_ir: mul_ir.mul > 1) == Irreps("2x0e + 3x2e")
    assert x.filter(drop=Irrep("1o")) == Irreps("2x0e + 3x2e")
    with pytest.raises(ValueError, match="only one"):
        x.filter(keep="0e", drop="1o")


def test_randn_shapes_and_norm():
    x = Irreps("2x0e + 3x1o")
    assert x.randn(4, -1).shape == (4, 11)
    assert x.randn(-1, 2).shape == (11, 2)
    v = x.randn(10, -1, normalization="norm", dtype=torch.float64)
    norms = torch.cat([v[:, 0:2].abs(), v[:, 2:].reshape(10, 3, 3).norm(dim=-1)], dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    with pytest.raises(ValueError, match="-1"):
        x.randn(3, 4)


def test_D_from_matrix_matches_e3nn(float64_default):
    irreps = "2x0e + 1o + 0o + 2e + 3o"
    R = e3nn.o3.rand_matrix(4, dtype=torch.float64)
    for sign in (1, -1):
        ours = Irreps(irreps).D_from_matrix(sign * R)
        theirs = e3nn.o3.Irreps(irreps).D_from_matrix(sign * R)
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_D_other_parametrisations_agree():
    from equinet.o3 import rotation

    q = rotation.rand_quaternion(3, dtype=torch.float64)
    R = rotation.quaternion_to_matrix(q)
    x = Irreps("1o + 2e")
    torch.testing.assert_close(x.D_from_quaternion(q), x.D_from_matrix(R), atol=1e-10, rtol=0)
    axis, angle = rotation.quaternion_to_axis_angle(q)
    torch.testing.assert_close(x.D_from_axis_angle(axis, angle), x.D_from_matrix(R),
                               atol=1e-10, rtol=0)


def test_D_from_matrix_rejects_bad_shape():
    with pytest.raises(ValueError, match="3, 3"):
        Irreps("1o").D_from_matrix(torch.eye(4))
