r"""Rotation invariants of qm9pack's static polarizability tensors.

``qm9_polarizability.csv`` gives a symmetric 3x3 tensor :math:`\alpha` (a0^3) per
molecule, whose trace / 3 is QM9's ``alpha`` column (to the file's rounding). It is **not**
in the frame of the molecule's xyz coordinates, and its frame could not be established
well enough to rotate it there, so :class:`equinet.data.QM9` exposes only its rotation
invariants. What was found (equinet 2026, qm9pack 1.0.3):

* For about 96 % of molecules the tensor's axes are the principal axes of the moment of
  inertia ordered by increasing moment (x: smallest, z: largest; for planar molecules z
  is out of plane, and their xz, yz entries vanish). Evidence: the traceless part,
  rotated back with those axes, matches that of an independent estimate computed in the
  xyz frame (a Thole dipole-interaction model, van Duijnen-Swart parameters; checked
  against PySCF finite-field B3LYP/6-31G(2df,p) and HF/6-31G* for ids 38, 112, 113,
  141) with median cosine 0.99 over 6,500 molecules, and that ordering is the best of the
  six in 96 %.
* The signs of the axes follow no rule found (third moments of mass or charge, the first
  atom, the rotation's diagonal each predict the sign preferred by the independent
  estimate in about half of the clear cases), and that sign changes the off-diagonal
  entries, i.e. the tensor in the xyz frame. Symmetric molecules follow Gaussian's
  "standard orientation" instead (water: C2 axis along z; most linear molecules along z),
  and nearly degenerate asymmetric tops swap axes.

The invariants below do not depend on the frame, hence are exact data.

Examples
--------
>>> import torch
>>> inv = polarizability_invariants(torch.tensor([[4.492, 0.0, 8.049, 0.0, 0.0, 6.398]]))
>>> [round(float(v), 4) for v in inv["principal"][0]], round(float(inv["iso"][0]), 4)
([4.492, 6.398, 8.049], 6.313)
>>> round(float(inv["aniso"][0]), 4)
3.0831
"""
import torch

__all__ = ["polarizability_invariants", "polarizability_matrix"]


def polarizability_matrix(components: torch.Tensor) -> torch.Tensor:
    """``[..., 6]`` components ``xx, xy, yy, xz, yz, zz`` (Gaussian's order) to ``[..., 3, 3]``."""
    xx, xy, yy, xz, yz, zz = components.unbind(-1)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], -1).unflatten(-1, (3, 3))


def polarizability_invariants(components: torch.Tensor) -> dict:
    r"""Rotation invariants of symmetric polarizability tensors.

    Parameters
    ----------
    components : torch.Tensor
        ``[..., 6]``: ``xx, xy, yy, xz, yz, zz`` in any frame (a0^3).

    Returns
    -------
    dict of torch.Tensor
        ``principal`` ``[..., 3]``: eigenvalues :math:`\alpha_1 \le \alpha_2 \le \alpha_3`;
        ``iso`` ``[...]``: :math:`\bar\alpha = \operatorname{tr}\alpha / 3`;
        ``aniso`` ``[...]``: :math:`\Delta\alpha = \sqrt{((\alpha_1-\alpha_2)^2 +
        (\alpha_2-\alpha_3)^2 + (\alpha_3-\alpha_1)^2)/2}`, all in a0^3.
    """
    matrix = polarizability_matrix(components.double())
    principal = torch.linalg.eigvalsh(matrix)
    a1, a2, a3 = principal.unbind(-1)
    aniso = (((a1 - a2) ** 2 + (a2 - a3) ** 2 + (a3 - a1) ** 2) / 2).sqrt()
    iso = matrix.diagonal(dim1=-2, dim2=-1).sum(-1) / 3
    return {"principal": principal, "iso": iso, "aniso": aniso}
