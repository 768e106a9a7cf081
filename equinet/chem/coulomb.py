r"""Densities on an auxiliary basis in torch: the Coulomb-metric loss and the electron count.

Coulomb loss
------------
With the auxiliary two-centre Coulomb matrix :math:`J_{PQ} = (P|Q)` (exact,
``auxmol.intor("int2c2e")``, :func:`coulomb_metric`), the Coulomb self-energy of
the error density :math:`\delta\rho = \rho_{pred} - \rho_{ref}` is

.. math::

    \|\delta\rho\|_J^2 = \iint \frac{\delta\rho(r)\,\delta\rho(r')}{|r - r'|}\,dr\,dr'
    = (c_{pred} - c_{ref})^\top J\, (c_{pred} - c_{ref})
    = \int \frac{4\pi}{k^2}\, |\widehat{\delta\rho}(k)|^2 \frac{dk}{(2\pi)^3}
    \ \ge 0

(:func:`coulomb_loss`). Relation to the percent error
:math:`\epsilon = 100 \int|\delta\rho| / N` of Rackers et al.: both vanish
together and both are invariant under rotations; the Coulomb norm weighs
long-wavelength (multipole, charge-transfer) errors most and sharp core
errors least, while :math:`\epsilon` is an :math:`L^1` norm that counts every
misplaced electron equally, so they are correlated, not proportional
(neither bounds the other by a constant). The Coulomb norm is the one the
density fit minimises: since the fitted reference :math:`\rho_{fit}` is the
:math:`J`-orthogonal projection of the SCF density :math:`\rho_{SCF}` onto the
auxiliary span, for any prediction in that span (Pythagoras)

.. math:: \|\rho_{pred} - \rho_{SCF}\|_J^2 = \|\rho_{pred} - \rho_{fit}\|_J^2
          + \|\rho_{fit} - \rho_{SCF}\|_J^2,

so the loss against the fit is, up to a constant, the loss against the true
density: training on it lowers the total error, of which the fit's own
:math:`\epsilon` (1.5% for jfit) is the floor. (With ``conserve_charge`` in
the fit the identity holds up to the small charge correction.)

Electron count
--------------
:math:`N(c) = q^\top c` with :math:`q_P = \int \chi_P`
(:func:`~equinet.chem.aux_integrals`), non-zero only for :math:`l = 0`
functions. Two exact projections onto :math:`q^\top c = N`:

* :func:`conserve_charge_coulomb` (Dunlap): the smallest change in the Coulomb
  metric, :math:`c' = c + \lambda J^{-1} q`,
  :math:`\lambda = (N - q^\top c) / (q^\top J^{-1} q)`;
* :func:`conserve_charge` (cheaper, the one :class:`~equinet.models.DensityNetwork`
  uses): the smallest Euclidean change, which moves only the :math:`l = 0`
  coefficients, :math:`c' = c + q\,(N - q^\top c) / (q^\top q)`, per molecule of a
  flat batch. Both are differentiable and equivariant (:math:`q` is invariant
  and :math:`J^{-1} q` rotates as a coefficient vector), and leave a vector that
  already holds :math:`N` electrons unchanged.
"""
from typing import Optional

import torch

__all__ = ["coulomb_metric", "coulomb_loss", "conserve_charge", "conserve_charge_coulomb"]


def coulomb_metric(auxmol, order="pyscf"):
    r"""The auxiliary Coulomb matrix :math:`J_{PQ} = (P|Q)`, ``(naux, naux)`` numpy float64.

    ``order="equinet"`` returns it in equinet's order (``BasisLayout(auxmol)``'s
    irreps, :math:`M J M^\top`), the order of model outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from pyscf import gto
    >>> from pyscf.df.addons import make_auxmol
    >>> mol = gto.M(atom="H 0 0 0; H 0 0 0.74", basis="sto-3g", verbose=0)
    >>> metric = coulomb_metric(make_auxmol(mol, "def2-universal-jfit"), order="equinet")
    >>> metric.shape, bool(np.linalg.eigvalsh(metric).min() > 0)  # positive definite
    ((22, 22), True)
    """
    if order not in ("pyscf", "equinet"):
        raise ValueError(f"order must be 'pyscf' or 'equinet', got {order!r}")
    metric = auxmol.intor("int2c2e", hermi=1)
    if order == "equinet":
        from .basis_layout import BasisLayout

        metric = BasisLayout(auxmol).to_equinet(metric, kind="matrix")
    return metric


def coulomb_loss(c_pred: torch.Tensor, c_ref: torch.Tensor, metric: torch.Tensor,
                 reduction: str = "mean") -> torch.Tensor:
    r"""The Coulomb-metric error :math:`(c_{pred} - c_{ref})^\top J (c_{pred} - c_{ref})`.

    Parameters
    ----------
    c_pred, c_ref : torch.Tensor
        ``[..., naux]`` coefficients (any leading batch axes; molecules of different sizes
        padded with zeros in both, so padding contributes nothing).
    metric : torch.Tensor
        ``[..., naux, naux]`` :math:`J` in the same order (:func:`coulomb_metric`),
        broadcast against the batch axes.
    reduction : {"mean", "sum", "none"}
        Over the batch axes.

    Returns
    -------
    torch.Tensor
        Hartree (the Coulomb energy of the error density); a scalar, or ``[...]`` for
        ``"none"``.

    Examples
    --------
    >>> metric = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    >>> coulomb_loss(torch.tensor([1.0, 1.0]), torch.zeros(2), metric)
    tensor(6.)
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if c_pred.shape != c_ref.shape:
        raise ValueError(f"c_pred {tuple(c_pred.shape)} and c_ref {tuple(c_ref.shape)} differ")
    n = c_pred.shape[-1]
    if metric.shape[-2:] != (n, n):
        raise ValueError(f"metric must be [..., {n}, {n}], got {tuple(metric.shape)}")
    delta = c_pred - c_ref
    loss = (delta.unsqueeze(-2) @ metric @ delta.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def conserve_charge(c: torch.Tensor, q: torch.Tensor, n_electrons: torch.Tensor,
                    index: Optional[torch.Tensor] = None,
                    num_molecules: Optional[int] = None) -> torch.Tensor:
    r"""Shift the :math:`l = 0` coefficients so that each molecule holds ``n_electrons``.

    :math:`c'_P = c_P + q_P\,(N_m - \sum_{Q \in m} q_Q c_Q) / \sum_{Q \in m} q_Q^2`
    for every coefficient :math:`P` of molecule :math:`m`: the Euclidean projection
    onto the constraint (module docstring). Only functions with :math:`q_P \neq 0`
    (s functions) move, so it is equivariant.

    Parameters
    ----------
    c : torch.Tensor
        ``[n]`` the coefficients of all molecules of a batch, concatenated.
    q : torch.Tensor
        ``[n]`` their integrals :math:`\int \chi_P` (same order).
    n_electrons : torch.Tensor or float
        ``[num_molecules]`` electrons per molecule (or one number for one molecule).
    index : torch.Tensor, optional
        ``[n]`` molecule of each coefficient (sorted or not); one molecule by default.
    num_molecules : int, optional
        Default ``index.max() + 1``.

    Examples
    --------
    >>> c, q = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.0, 1.0, 0.0])
    >>> conserve_charge(c, q, 4.0)  # the p-like third entry (q = 0) stays
    tensor([1.5000, 2.5000, 0.5000])
    """
    if c.shape != q.shape or c.dim() != 1:
        raise ValueError(f"c and q must be [n] of one shape, got {tuple(c.shape)} and "
                         f"{tuple(q.shape)}")
    q = q.to(c.dtype)
    n_electrons = torch.as_tensor(n_electrons, dtype=c.dtype, device=c.device)
    if index is None:
        missing = n_electrons.reshape(()) - q @ c
        return c + q * missing / (q @ q)
    if num_molecules is None:
        num_molecules = int(index.max()) + 1 if index.numel() else 0
    index = index.long()
    held = c.new_zeros(num_molecules).index_add(0, index, q * c)
    norm = c.new_zeros(num_molecules).index_add(0, index, q * q)
    shift = (n_electrons.expand(num_molecules) - held) / norm
    return c + q * shift.index_select(0, index)


def conserve_charge_coulomb(c: torch.Tensor, q: torch.Tensor, n_electrons,
                            metric: torch.Tensor) -> torch.Tensor:
    r"""Dunlap's constraint: :math:`c' = c + \lambda J^{-1} q`, the smallest change in :math:`J`.

    Parameters
    ----------
    c, q : torch.Tensor
        ``[..., naux]`` coefficients and their integrals (for a padded batch, pad
        both with zeros).
    n_electrons : torch.Tensor or float
        ``[...]`` electrons per molecule.
    metric : torch.Tensor
        ``[..., naux, naux]`` :math:`J` (positive definite: pad its diagonal with ones).

    Examples
    --------
    >>> metric = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> q = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> c = conserve_charge_coulomb(torch.zeros(2, dtype=torch.float64), q, 1.0, metric)
    >>> float(q @ c), c.tolist()  # both entries move: the metric couples them
    (1.0, [1.0, -0.5])
    """
    q = q.to(c.dtype)
    n_electrons = torch.as_tensor(n_electrons, dtype=c.dtype, device=c.device)
    factor = torch.linalg.cholesky(metric.to(c.dtype))
    j_inv_q = torch.cholesky_solve(q.unsqueeze(-1), factor).squeeze(-1)
    lam = (n_electrons - (q * c).sum(-1)) / (q * j_inv_q).sum(-1)
    return c + lam.unsqueeze(-1) * j_inv_q

