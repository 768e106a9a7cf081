"""Free-atom references: spherical (s-only) fits holding Z electrons, cached, in both orders."""
import numpy as np
import pytest

pytest.importorskip("pyscf")
from pyscf import gto  # noqa: E402
from pyscf.df.addons import make_auxmol  # noqa: E402

from equinet.chem import BasisLayout, aux_integrals, build_mole  # noqa: E402
from equinet.chem.atomic_reference import atomic_reference, molecule_reference  # noqa: E402

AUX = "def2-universal-jfit"


def _atom_aux(element):
    mol = gto.M(atom=[(element, (0, 0, 0))], basis="def2-SVP", spin=gto.charge(element) % 2,
                verbose=0)
    return make_auxmol(mol, AUX)


@pytest.mark.parametrize("element, z", [("H", 1), ("O", 8), ("C", 6)])
def test_free_atom_fit_is_spherical_and_holds_z_electrons(element, z):
    auxmol = _atom_aux(element)
    layout = BasisLayout(auxmol)
    raw = atomic_reference(element, "def2-SVP", AUX, "PBE", order="equinet", spherical=False)
    assert raw.shape == (layout.nao,)
    is_s = np.concatenate([np.full(mul * ir.dim, ir.l == 0) for mul, ir in layout.irreps])
    # the raw fit of the spherical density has no l > 0 part, and a real s part
    assert np.abs(raw[~is_s]).max() < 1e-8
    assert np.abs(raw[is_s]).max() > 1e-2
    clean = atomic_reference(element, "def2-SVP", AUX, "PBE", order="equinet")
    assert (clean[~is_s] == 0).all()
    np.testing.assert_allclose(clean[is_s], raw[is_s], atol=0)
    pyscf_order = atomic_reference(z, "def2-SVP", AUX, "PBE")
    np.testing.assert_allclose(layout.to_equinet(pyscf_order, kind="vector"), clean, atol=1e-15)
    assert abs(pyscf_order @ aux_integrals(auxmol) - z) < 1e-10


def test_cached_read_only_and_keyed_by_method():
    first = atomic_reference("O", "def2-SVP", AUX, "PBE")
    assert atomic_reference("O", "def2-SVP", AUX, "PBE") is first
    assert not first.flags.writeable
    hf = atomic_reference("O", "def2-SVP", AUX, "HF")
    assert np.abs(hf - first).max() > 1e-3  # a different density, not the PBE cache entry


def test_molecule_reference_is_the_superposition():
    mol = build_mole([8, 1, 1], [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]], "def2-SVP")
    auxmol = make_auxmol(mol, AUX)
    layout = BasisLayout(auxmol)
    c = molecule_reference(auxmol, "def2-SVP", AUX, "PBE", order="equinet")
    for sl, element in zip(layout.atom_slices, layout.elements):
        np.testing.assert_array_equal(c[sl], atomic_reference(element, "def2-SVP", AUX, "PBE",
                                                              order="equinet"))
    pyscf_order = molecule_reference(auxmol, "def2-SVP", AUX, "PBE")
    assert abs(pyscf_order @ aux_integrals(auxmol) - 10) < 1e-10


def test_errors():
    with pytest.raises(ValueError, match="unknown element"):
        atomic_reference("Xx")
    with pytest.raises(ValueError, match="order"):
        atomic_reference("H", order="other")
    mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    with pytest.raises(ValueError, match="auxbasis"):
        molecule_reference(make_auxmol(mol, "def2-universal-jkfit"), "sto-3g", AUX)
