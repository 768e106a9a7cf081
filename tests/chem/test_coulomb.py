"""Coulomb loss (against PySCF's integrals) and the two charge constraints."""
import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")

from equinet.chem import aux_integrals, build_mole, fit_density  # noqa: E402
from equinet.chem.coulomb import (coulomb_loss, coulomb_metric, conserve_charge,  # noqa: E402
                                  conserve_charge_coulomb)

AUX = "def2-universal-jfit"


@pytest.fixture(scope="module")
def water():
    from pyscf import scf

    mol = build_mole([8, 1, 1], [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]], "sto-3g")
    mf = scf.RHF(mol).run(verbose=0)
    return mol, mf, mf.make_rdm1()


def test_loss_is_the_coulomb_energy_of_the_error_and_pythagoras_holds(water):
    """||rho_pred - rho_scf||^2 = loss(pred, fit) + ||rho_fit - rho_scf||^2 (module docs)."""
    from pyscf.df import incore

    mol, mf, dm = water
    c_fit, auxmol = fit_density(mol, dm, AUX)
    metric = coulomb_metric(auxmol)
    eri3 = incore.aux_e2(mol, auxmol, "int3c2e", aosym="s1").reshape(mol.nao ** 2, -1)
    b = dm.reshape(-1) @ eri3  # (P|rho_scf)
    self_energy = float(np.einsum("ij,ji->", dm, mf.get_j(dm=dm)))  # (rho_scf|rho_scf)

    def to_scf(c):  # ||sum c_P chi_P - rho_scf||_J^2 from PySCF's integrals
        return c @ metric @ c - 2 * c @ b + self_energy

    rng = np.random.default_rng(0)
    c_pred = c_fit + 0.05 * rng.standard_normal(len(c_fit))
    loss = coulomb_loss(torch.tensor(c_pred), torch.tensor(c_fit), torch.tensor(metric))
    assert loss.item() > 0
    np.testing.assert_allclose(loss.item() + to_scf(c_fit), to_scf(c_pred), rtol=1e-9)


def test_loss_batched_padding_and_reductions():
    metric = torch.tensor([[[2.0, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]]])
    pred = torch.tensor([[1.0, 1.0], [3.0, 0.0]])  # the second molecule has one function
    losses = coulomb_loss(pred, torch.zeros(2, 2), metric, reduction="none")
    assert losses.tolist() == [6.0, 9.0]
    assert coulomb_loss(pred, torch.zeros(2, 2), metric).item() == 7.5
    assert coulomb_loss(pred, torch.zeros(2, 2), metric, reduction="sum").item() == 15.0
    with pytest.raises(ValueError):
        coulomb_loss(pred, torch.zeros(2, 3), metric)


def test_dunlap_constraint_matches_the_constrained_fit(water):
    mol, _, dm = water
    c_plain, auxmol = fit_density(mol, dm, AUX)
    c_exact, _ = fit_density(mol, dm, auxmol, conserve_charge=True)
    q = torch.tensor(aux_integrals(auxmol))
    metric = torch.tensor(coulomb_metric(auxmol))
    c = torch.tensor(c_plain, requires_grad=True)
    out = conserve_charge_coulomb(c, q, 10.0, metric)
    np.testing.assert_allclose(out.detach().numpy(), c_exact, atol=1e-9)
    assert abs(float(out.detach() @ q) - 10) < 1e-10
    out.sum().backward()
    assert torch.isfinite(c.grad).all()


def test_s_shift_is_exact_per_molecule_moves_only_s_and_is_a_projection():
    torch.manual_seed(0)
    q = torch.tensor([0.5, 1.5, 0.0, 0.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    index = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    c = torch.randn(7, dtype=torch.float64, requires_grad=True)
    electrons = torch.tensor([10.0, 1.0], dtype=torch.float64)
    out = conserve_charge(c, q, electrons, index)
    held = torch.zeros(2, dtype=torch.float64).index_add(0, index, q * out)
    np.testing.assert_allclose(held.detach().numpy(), [10.0, 1.0], atol=1e-12)
    assert torch.equal(out[q == 0], c[q == 0])
    again = conserve_charge(out, q, electrons, index)
    np.testing.assert_allclose(again.detach().numpy(), out.detach().numpy(), atol=1e-12)
    out.pow(2).sum().backward()
    assert torch.isfinite(c.grad).all()
    with pytest.raises(ValueError):
        conserve_charge(c, q[:3], electrons, index)
