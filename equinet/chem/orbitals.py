r"""From a (predicted) Fock / Kohn-Sham matrix to orbitals, densities, energies and metrics.

Given an AO matrix :math:`H` and the overlap :math:`S` (exact, from PySCF at the
same geometry: it is not predicted) the molecular orbitals solve the generalised
eigenproblem

.. math::

    H C = S C \varepsilon, \qquad C^\top S C = 1,

solved here by Löwdin orthogonalisation, :math:`X = S^{-1/2}`,
:math:`X H X = U \varepsilon U^\top`, :math:`C = X U` (:func:`generalized_eigh`,
``torch.linalg.eigh``, batched over leading axes, differentiable). Closed shell
with :math:`n_{occ} = N/2` doubly occupied orbitals (aufbau), the density matrix
is :math:`D = 2 C_{occ} C_{occ}^\top` (:func:`density_matrix`) and its total energy
is PySCF's :math:`E[D]` at the same level of theory (:func:`total_energy`).

Any orthogonal change of AO basis :math:`M` (e.g. equinet's order against PySCF's,
:class:`~equinet.chem.BasisLayout`) leaves :math:`\varepsilon` unchanged and maps
:math:`C \to M C`, :math:`D \to M D M^\top`: use :math:`H` and :math:`S` in the same
order; PySCF functions (:func:`total_energy`, :func:`scf_from_hamiltonian`) take PySCF's.

Metrics of PhiSNet (Unke et al. 2021), :func:`hamiltonian_metrics`: the mean absolute
error of :math:`H` and of the occupied orbital energies (micro-Hartree), and the
cosine similarity of the occupied orbitals,
:math:`\frac{1}{n_{occ}}\sum_k |\langle \psi^{pred}_k | S | \psi^{ref}_k \rangle|`
(the absolute value removes the arbitrary sign of each eigenvector). Orbitals are
paired by index (energy order), which is meaningful when the occupied energies are
non-degenerate: true for water (:math:`C_{2v}`, all orbitals of 1D irreps) and
generic for low-symmetry molecules. Within a degenerate level the eigenvectors are
any rotation of each other and the per-orbital cosine is not defined; compare the
subspaces instead (e.g. through the density matrices).

PySCF is imported lazily (``pip install equinet[chem]``).
"""
from typing import Dict, Tuple

import numpy as np
import torch

__all__ = [
    "generalized_eigh",
    "density_matrix",
    "make_scf",
    "total_energy",
    "hamiltonian_metrics",
    "scf_from_hamiltonian",
]


def _to_torch(a) -> Tuple[torch.Tensor, bool]:
    if torch.is_tensor(a):
        return a, True
    return torch.as_tensor(np.asarray(a, dtype=np.float64)), False


def generalized_eigh(h, s) -> Tuple:
    r"""Orbital energies and coefficients of :math:`H C = S C \varepsilon`, batched.

    Parameters
    ----------
    h, s : torch.Tensor or numpy.ndarray
        ``[..., nao, nao]`` symmetric; ``s`` positive definite. Torch tensors keep autograd
        (gradients of degenerate eigenvalues are not defined).

    Returns
    -------
    energies, coefficients
        ``[..., nao]`` ascending and ``[..., nao, nao]`` (columns are orbitals,
        :math:`C^\top S C = 1`), as numpy arrays for numpy inputs.

    Examples
    --------
    >>> s = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> e, c = generalized_eigh(np.array([[-1.0, -0.5], [-0.5, -1.0]]), s)
    >>> e.round(6), np.allclose(c.T @ s @ c, np.eye(2))
    (array([-1., -1.]), True)
    """
    h_t, is_torch = _to_torch(h)
    s_t, _ = _to_torch(s)
    s_t = s_t.to(h_t)
    values, vectors = torch.linalg.eigh(s_t)
    x = (vectors * values.rsqrt().unsqueeze(-2)) @ vectors.transpose(-1, -2)
    energies, u = torch.linalg.eigh(x @ h_t @ x)
    coefficients = x @ u
    if is_torch:
        return energies, coefficients
    return energies.numpy(), coefficients.numpy()


def density_matrix(coefficients, nocc: int):
    r"""Closed-shell density matrix :math:`D = 2 C_{occ} C_{occ}^\top` ``[..., nao, nao]``.

    >>> c = np.eye(3)
    >>> density_matrix(c, 1)
    array([[2., 0., 0.],
           [0., 0., 0.],
           [0., 0., 0.]])
    """
    occ = coefficients[..., :nocc]
    if torch.is_tensor(occ):
        return 2 * occ @ occ.transpose(-1, -2)
    return 2 * occ @ np.swapaxes(occ, -1, -2)


def make_scf(mol, level):
    """PySCF's SCF object of a :class:`~equinet.chem.LevelOfTheory` (closed shell), not run.

    The same settings as :func:`~equinet.chem.run_scf` (functional, grid level,
    ``conv_tol``, ``max_cycle``).
    """
    if level.spin != 0 or mol.spin != 0:
        raise ValueError("only closed-shell (spin = 0) molecules are supported")
    return level.make_scf(mol)


def total_energy(mols, dms, level) -> np.ndarray:
    """PySCF's total energy ``mf.energy_tot(dm=D)`` (Hartree) of each density matrix.

    Parameters
    ----------
    mols : pyscf.gto.Mole or sequence of them
    dms : array_like
        ``[nao, nao]`` or one per molecule, in PySCF's AO order.
    level : LevelOfTheory

    Returns
    -------
    numpy.ndarray
        ``()`` for one molecule, else ``[len(mols)]``.
    """
    single = not isinstance(mols, (list, tuple))
    mols = [mols] if single else list(mols)
    dms = [dms] if single else list(dms)
    if len(mols) != len(dms):
        raise ValueError(f"{len(mols)} molecules and {len(dms)} density matrices")
    energies = []
    for mol, dm in zip(mols, dms):
        dm = dm.detach().cpu().numpy() if torch.is_tensor(dm) else np.asarray(dm)
        energies.append(float(make_scf(mol, level).energy_tot(dm=dm.astype(np.float64))))
    return np.asarray(energies[0] if single else energies)


def hamiltonian_metrics(h_pred, h_ref, s, nocc: int) -> Dict[str, float]:
    r"""PhiSNet's metrics of a predicted matrix (module docstring), in micro-Hartree.

    Parameters
    ----------
    h_pred, h_ref, s : torch.Tensor or numpy.ndarray
        ``[..., nao, nao]``, all in the same AO order (and Hartree).
    nocc : int
        Doubly occupied orbitals, ``mol.nelectron // 2``.

    Returns
    -------
    dict
        ``hamiltonian_mae`` (:math:`\mu E_h`, over all entries), ``orbital_energy_mae``
        (:math:`\mu E_h`, over the occupied orbitals) and ``orbital_cosine`` (mean over
        occupied orbitals and molecules, 1 is perfect).

    Examples
    --------
    >>> h = np.diag([-1.0, 0.5]); s = np.eye(2)
    >>> hamiltonian_metrics(h + 1e-6, h, s, 1)["hamiltonian_mae"]
    1.0
    """
    h_pred, _ = _to_torch(h_pred)
    h_ref, _ = _to_torch(h_ref)
    s, _ = _to_torch(s)
    h_pred, s = h_pred.detach().to(torch.float64), s.detach().to(torch.float64)
    h_ref = h_ref.detach().to(torch.float64)
    e_pred, c_pred = generalized_eigh(h_pred, s)
    e_ref, c_ref = generalized_eigh(h_ref, s)
    overlap = (c_pred[..., :nocc] * (s @ c_ref[..., :nocc])).sum(-2).abs()
    return {
        "hamiltonian_mae": float((h_pred - h_ref).abs().mean()) * 1e6,
        "orbital_energy_mae": float((e_pred[..., :nocc] - e_ref[..., :nocc]).abs().mean()) * 1e6,
        "orbital_cosine": float(overlap.mean()),
    }


def scf_from_hamiltonian(mol, level, h=None, dm0=None) -> Tuple[object, int]:
    r"""Run the SCF from the density of a (predicted) Fock matrix; return it and its cycles.

    The guess is :math:`D_0 = 2 C_{occ} C_{occ}^\top` from :math:`H C = S C \varepsilon`
    with PySCF's overlap. With neither ``h`` nor ``dm0`` PySCF's own guess is used
    (``minao`` by default, ``mf.init_guess``), the usual baseline.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Closed shell.
    level : LevelOfTheory
    h : array_like, optional
        ``[nao, nao]`` in PySCF's AO order (``BasisLayout.to_pyscf(h, kind="matrix")``).
    dm0 : array_like, optional
        A guess density matrix instead of ``h``.

    Returns
    -------
    mf, cycles : pyscf.scf.hf.SCF, int
        The SCF object after ``kernel`` (check ``mf.converged``) and the number of cycles.

    Examples
    --------
    >>> from equinet.chem import LevelOfTheory, build_mole
    >>> level = LevelOfTheory("HF", "sto-3g")
    >>> mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    >>> mf, minao = scf_from_hamiltonian(mol, level)
    >>> mf2, cycles = scf_from_hamiltonian(mol, level, h=mf.get_fock())
    >>> bool(mf2.converged), cycles < minao
    (True, True)
    """
    if h is not None and dm0 is not None:
        raise ValueError("give h or dm0, not both")
    mf = make_scf(mol, level)
    if h is not None:
        h = h.detach().cpu().numpy() if torch.is_tensor(h) else np.asarray(h)
        _, c = generalized_eigh(h.astype(np.float64), mol.intor_symmetric("int1e_ovlp"))
        dm0 = density_matrix(c, mol.nelectron // 2)
    elif dm0 is not None:
        dm0 = dm0.detach().cpu().numpy() if torch.is_tensor(dm0) else np.asarray(dm0)
    counter = {"cycles": 0}

    def callback(envs):
        counter["cycles"] = max(counter["cycles"], int(envs.get("cycle", -1)) + 1)

    mf.callback = callback
    mf.kernel(dm0=dm0)
    cycles = getattr(mf, "cycles", None)
    return mf, int(cycles if cycles is not None else counter["cycles"])
