"""BasisLayout: the oracle is PySCF's integrals at rotated (and inverted) geometries.

For every basis a real calculation uses, ``to_equinet(A(R x)) == D(R) to_equinet(A(x)) D(R)^T``
for AO matrices and ``c(R x) == D(R) c(x)`` for vectors, with D from
``layout.irreps.D_from_matrix(R)``.
"""
import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")
from pyscf import dft, gto  # noqa: E402
from pyscf.df import incore  # noqa: E402
from pyscf.df.addons import make_auxmol  # noqa: E402
from pyscf.lib.exceptions import BasisNotFoundError  # noqa: E402

from equinet import o3  # noqa: E402
from equinet.chem.basis_layout import (  # noqa: E402
    BasisLayout, pyscf_to_equinet_matrix, transform_matrix,
)

WATER = "O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692"
# fluoroformamide FC(=O)N, slightly non-planar so that no axis is special
FCON = ("F 1.15 -0.65 0.05; C 0 0 0; O 0.02 1.19 -0.03; N -1.17 -0.68 0.04; "
        "H -2.05 -0.20 0.02; H -1.15 -1.69 -0.06")
# one primitive shell of every l up to 8 on each atom: beyond any standard basis
ALL_L = {el: [[l, [1.1, 1.0]] for l in range(9)] for el in ("H", "F")}


def _mole(atom, basis):
    return gto.M(atom=atom, basis=basis, unit="Angstrom", verbose=0)


def _rotated(mol, r):
    return mol.set_geom_(mol.atom_coords() @ r.T, unit="Bohr", inplace=False)


@pytest.fixture(scope="module", params=["rotation", "rotoinversion"])
def rotation(request):
    """A generic rotation (no special axis), or the same composed with the inversion."""
    angles = torch.tensor([0.7, 1.9, -2.4], dtype=torch.float64)
    r = o3.angles_to_matrix(*angles)
    assert r.dtype == torch.float64 and abs(float(torch.det(r)) - 1) < 1e-12
    return r if request.param == "rotation" else -r


def _d(layout, r):
    return layout.irreps.D_from_matrix(r).numpy()


def _assert_matrix_covariant(layout_rows, layout_cols, a, a_rot, r, atol):
    lhs = transform_matrix(a_rot, layout_rows, layout_cols)
    rhs = _d(layout_rows, r) @ transform_matrix(a, layout_rows, layout_cols) @ _d(layout_cols, r).T
    assert np.abs(lhs - rhs).max() < atol * max(1.0, np.abs(rhs).max())
    # the test can fail: PySCF's order is not equivariant beyond l = 1
    if layout_rows.lmax >= 2:
        assert np.abs(a_rot - _d(layout_rows, r) @ a @ _d(layout_cols, r).T).max() > 1e-3


@pytest.mark.parametrize("l", range(11))
def test_change_of_basis_is_orthogonal(l):
    m = pyscf_to_equinet_matrix(l)
    assert m.shape == (2 * l + 1, 2 * l + 1) and m.dtype == np.float64
    np.testing.assert_allclose(m @ m.T, np.eye(2 * l + 1), atol=1e-13, rtol=0)
    if l <= 1:
        np.testing.assert_array_equal(m, np.eye(2 * l + 1))
    with pytest.raises(ValueError):
        m[0, 0] = 2.0  # the cached matrix is read-only


@pytest.mark.parametrize("l", range(11))
def test_change_of_basis_intertwines_pyscf_wigner_d(l):
    """M_l D_pyscf(R) M_l^T = D_equinet(R): PySCF's own real Wigner D (pyscf.symm.Dmatrix)
    is an oracle independent of the AO evaluation the map is derived from."""
    from pyscf.symm import Dmatrix

    angles = (0.3, 1.1, -0.7)
    r = Dmatrix.Dmatrix(1, *angles, reorder_p=True)  # the rotation in (x, y, z)
    d_pyscf = Dmatrix.Dmatrix(l, *angles, reorder_p=True)
    d_equinet = o3.Irrep(l, (-1) ** l).D_from_matrix(torch.from_numpy(r)).numpy()
    m = pyscf_to_equinet_matrix(l)
    np.testing.assert_allclose(m @ d_pyscf @ m.T, d_equinet, atol=1e-13, rtol=0)
    if l >= 2:
        assert np.abs(d_pyscf - d_equinet).max() > 0.1


def test_change_of_basis_rejects_bad_l():
    with pytest.raises(ValueError, match="l must be"):
        pyscf_to_equinet_matrix(-1)


def test_function_is_preserved_addition_theorem():
    """The map keeps the function, sign included, not only its rotation behaviour.

    With c_eq = Y_eq(n), sum_m c_eq,m phi_eq,m(x) is (by the addition theorem) a
    positive multiple of P_l(n . x^) times the radial part; primitive shells have a
    positive radial part, so the sign of every M_l is tested.
    """
    mol = gto.M(atom="F 0 0 0", basis={"F": [[l, [0.9, 1.0]] for l in range(9)]},
                unit="Bohr", spin=1, verbose=0)
    layout = BasisLayout(mol)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 3))
    x *= 1.3 / np.linalg.norm(x, axis=1, keepdims=True)  # one radius: radial part constant
    n = np.array([0.3, -0.5, 0.81])
    n /= np.linalg.norm(n)
    phi_eq = layout.to_equinet(mol.eval_gto("GTOval_sph", x), kind="vector")
    for l, s in zip(range(9), layout.irreps.slices()):
        y_n = o3.spherical_harmonics(l, torch.from_numpy(n), normalize=True).numpy()
        f = phi_eq[:, s] @ y_n
        legendre = np.polynomial.legendre.legval(x @ n / 1.3, [0] * l + [1])
        k = f / legendre
        assert k.min() > 0, l
        np.testing.assert_allclose(f, k.mean() * legendre, atol=1e-10 * np.abs(f).max())


def test_irreps_and_slices_water_def2svp():
    mol = _mole(WATER, "def2-svp")
    layout = BasisLayout(mol)
    assert str(layout.irreps) == "3x0e+2x1o+1x2e+2x0e+1x1o+2x0e+1x1o"
    assert layout.nao == mol.nao == layout.irreps.dim and layout.natm == 3 and layout.lmax == 2
    assert layout.elements == ("O", "H", "H")
    np.testing.assert_array_equal(layout.atomic_numbers, [8, 1, 1])
    assert [str(i) for i in layout.atom_irreps] == ["3x0e+2x1o+1x2e", "2x0e+1x1o", "2x0e+1x1o"]
    assert layout.atom_shells[1] == ((0, 1), (0, 1), (1, 1))
    pyscf_slices = mol.aoslice_by_atom()[:, 2:]
    assert [(s.start, s.stop) for s in layout.atom_slices] == [tuple(p) for p in pyscf_slices]
    assert "nao=24" in repr(layout)


def test_contracted_shells_become_multiplicities():
    # cc-pVTZ in PySCF has general contractions (nctr > 1) for the heavy atoms
    mol = _mole(WATER, "cc-pvtz")
    layout = BasisLayout(mol)
    assert any(nctr > 1 for _, nctr in layout.atom_shells[0])
    assert layout.irreps.dim == mol.nao
    for irreps, shells in zip(layout.atom_irreps, layout.atom_shells):
        assert irreps.dim == sum(n * (2 * l + 1) for l, n in shells)


@pytest.mark.parametrize("atom, basis", [
    (WATER, "def2-svp"), (FCON, "def2-svp"), (FCON, "cc-pvtz"), (FCON, "def2-qzvp"),
    ("F 0 0 0; H 0.3 0.5 0.8", ALL_L),
], ids=["water-def2svp", "FCON-def2svp", "FCON-ccpvtz", "FCON-def2qzvp", "HF-l0to8"])
def test_one_electron_matrices_rotate(atom, basis, rotation):
    mol = _mole(atom, basis)
    mol_rot = _rotated(mol, rotation.numpy())
    layout = BasisLayout(mol)
    for name in ("int1e_ovlp", "int1e_kin", "int1e_nuc"):
        _assert_matrix_covariant(layout, layout, mol.intor(name), mol_rot.intor(name),
                                 rotation, 1e-9)


@pytest.mark.parametrize("auxbasis", [
    "def2-universal-jfit", "def2-universal-jkfit", "cc-pv5z-jkfit",
])
def test_mixed_orbital_aux_overlap_rotates(auxbasis, rotation):
    mol = _mole(FCON, "cc-pvtz")
    aux = make_auxmol(mol, auxbasis)
    mol_rot = _rotated(mol, rotation.numpy())
    aux_rot = make_auxmol(mol_rot, auxbasis)
    a = gto.intor_cross("int1e_ovlp", mol, aux)
    a_rot = gto.intor_cross("int1e_ovlp", mol_rot, aux_rot)
    _assert_matrix_covariant(BasisLayout(mol), BasisLayout(aux), a, a_rot, rotation, 1e-9)
    if auxbasis == "cc-pv5z-jkfit":
        assert BasisLayout(aux).lmax == 6


def _pbe(mol, grids=None):
    mf = dft.RKS(mol, xc="pbe")
    mf.conv_tol = 1e-11
    mf.conv_tol_grad = 1e-7
    if grids is not None:
        # the same grid points, rotated with the molecule: the XC integration is then
        # exactly covariant (PySCF's default Lebedev grids are fixed in space)
        mf.grids.coords, mf.grids.weights = grids
    mf.kernel()
    assert mf.converged
    return mf


@pytest.fixture(scope="module")
def water_scf(rotation):
    mol = _mole(WATER, "def2-svp")
    mf = _pbe(mol)
    mol_rot = _rotated(mol, rotation.numpy())
    mf_rot = _pbe(mol_rot, (mf.grids.coords @ rotation.numpy().T, mf.grids.weights))
    return mol, mf, mol_rot, mf_rot


def test_scf_matrices_rotate(water_scf, rotation):
    mol, mf, mol_rot, mf_rot = water_scf
    layout = BasisLayout(mol)
    dm, dm_rot = mf.make_rdm1(), mf_rot.make_rdm1()
    _assert_matrix_covariant(layout, layout, dm, dm_rot, rotation, 1e-9)
    _assert_matrix_covariant(layout, layout, mf.get_fock(dm=dm), mf_rot.get_fock(dm=dm_rot),
                             rotation, 1e-9)


def test_density_fitting_coefficients_rotate(water_scf, rotation):
    def fit(mol, dm):
        aux = make_auxmol(mol, "def2-universal-jfit")
        projection = np.einsum("ijp,ij->p", incore.aux_e2(mol, aux, "int3c2e"), dm)
        return aux, projection, np.linalg.solve(aux.intor("int2c2e"), projection)

    mol, mf, mol_rot, mf_rot = water_scf
    aux, proj, c = fit(mol, mf.make_rdm1())
    _, proj_rot, c_rot = fit(mol_rot, mf_rot.make_rdm1())
    layout = BasisLayout(aux)
    assert layout.lmax >= 2
    d = _d(layout, rotation)
    # coefficients and the dual (P|rho) take the same map, since M is orthogonal
    for v, v_rot in ((c, c_rot), (proj, proj_rot)):
        expected = d @ layout.to_equinet(v, kind="vector")
        np.testing.assert_allclose(layout.to_equinet(v_rot, kind="vector"), expected,
                                   atol=1e-9 * np.abs(expected).max(), rtol=0)
        assert np.abs(v_rot - d @ v).max() > 1e-3


@pytest.fixture(scope="module")
def fcon_layout():
    return BasisLayout(_mole(FCON, "cc-pvtz"))


def test_vector_and_matrix_agree_with_dense_map(fcon_layout):
    layout = fcon_layout
    m = layout.change_of_basis()
    np.testing.assert_allclose(m @ m.T, np.eye(layout.nao), atol=1e-13)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 3, layout.nao))
    a = rng.normal(size=(4, layout.nao, layout.nao))
    np.testing.assert_allclose(layout.to_equinet(v, kind="vector"), v @ m.T, atol=1e-13)
    np.testing.assert_allclose(layout.to_equinet(a, kind="matrix"), m @ a @ m.T, atol=1e-12)
    np.testing.assert_allclose(layout.to_pyscf(layout.to_equinet(a, "matrix"), "matrix"), a,
                               atol=1e-12)
    np.testing.assert_allclose(layout.to_pyscf(v, kind="vector"), v @ m, atol=1e-13)
    c = rng.normal(size=(layout.nao, 5))  # e.g. MO coefficients, AO axis first
    np.testing.assert_allclose(transform_matrix(c, layout, None), m @ c, atol=1e-13)
    np.testing.assert_allclose(transform_matrix(m @ c, layout, None, to="pyscf"), c, atol=1e-13)


def test_torch_in_torch_out(fcon_layout):
    layout = fcon_layout
    m = torch.from_numpy(layout.change_of_basis())
    a = torch.randn(2, layout.nao, layout.nao, dtype=torch.float64, requires_grad=True)
    out = layout.to_equinet(a, kind="matrix")
    assert torch.is_tensor(out) and out.dtype == torch.float64 and out.shape == a.shape
    torch.testing.assert_close(out, m @ a @ m.T, atol=1e-12, rtol=0)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * g).sum(), a)
    torch.testing.assert_close(grad, m.T @ g @ m, atol=1e-12, rtol=0)
    v32 = torch.randn(layout.nao, dtype=torch.float32)
    out32 = layout.to_equinet(v32, kind="vector")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, (m.float() @ v32), atol=1e-5, rtol=0)
    back = layout.to_pyscf(out32, kind="vector")
    torch.testing.assert_close(back, v32, atol=1e-5, rtol=0)
    v_np = np.zeros(layout.nao, dtype=np.float32)
    assert layout.to_equinet(v_np, kind="vector").dtype == np.float32
    z = np.random.default_rng(1).normal(size=(layout.nao, 2)) @ np.array([1.0, 1.0j])
    np.testing.assert_allclose(layout.to_equinet(z, kind="vector"), m.numpy() @ z, atol=1e-13)
    clone = pickle.loads(pickle.dumps(layout))  # e.g. into DataLoader workers
    torch.testing.assert_close(clone.to_equinet(a, kind="matrix"), out, atol=0, rtol=0)


def test_bad_arguments(fcon_layout):
    layout = fcon_layout
    with pytest.raises(ValueError, match="kind must be"):
        layout.to_equinet(np.zeros(layout.nao), kind="square")
    with pytest.raises(TypeError):
        layout.to_equinet(np.zeros((layout.nao, layout.nao)))  # kind is required
    with pytest.raises(ValueError, match="nao="):
        layout.to_equinet(np.zeros(layout.nao + 1), kind="vector")
    with pytest.raises(ValueError, match="nao="):
        layout.to_equinet(np.zeros((layout.nao, 3)), kind="matrix")
    with pytest.raises(ValueError, match="to must be"):
        transform_matrix(np.zeros((layout.nao, layout.nao)), layout, layout, to="e3nn")


def test_cartesian_basis_is_refused():
    mol = gto.M(atom=WATER, basis="def2-svp", cart=True, verbose=0)
    with pytest.raises(ValueError, match="cart=True"):
        BasisLayout(mol)


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_unknown_basis_or_element_is_named():
    with pytest.raises(BasisNotFoundError, match="no-such-basis"):
        _mole(WATER, "no-such-basis")
    with pytest.raises(BasisNotFoundError, match="U in def2-svp"):
        _mole("U 0 0 0", "def2-svp")
    # an element left out of a basis dict gets no functions: say which atom
    mol = gto.M(atom=WATER, basis={"O": "sto-3g"}, verbose=0)
    with pytest.raises(ValueError, match=r"atom 1 \(H\) has no basis functions"):
        BasisLayout(mol)
    with pytest.raises(ValueError, match="mol.build"):
        BasisLayout(gto.Mole())


def test_ghost_atoms_keep_their_element_and_functions():
    mol = gto.M(atom="O 0 0 0; ghost-H 0 0.76 0.59; H 0 -0.76 0.59", basis="def2-svp", spin=1,
                verbose=0)
    layout = BasisLayout(mol)
    assert layout.elements == ("O", "H", "H") and layout.nao == mol.nao == 24
    np.testing.assert_array_equal(layout.atomic_numbers, [8, 1, 1])
