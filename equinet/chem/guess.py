r"""An SCF initial guess from a density given by auxiliary coefficients, and SCF cycle counts.

A density :math:`\rho(r) = \sum_P c_P \chi_P(r)` on an auxiliary basis (a fit,
or a model's prediction) defines a Kohn-Sham Fock matrix without any orbitals,

.. math::

    F_{\mu\nu} = h_{\mu\nu} + J_{\mu\nu}[\rho] + V^{xc}_{\mu\nu}[\rho], \qquad
    J_{\mu\nu} = \sum_P (\mu\nu|P)\, c_P, \qquad
    V^{xc}_{\mu\nu} = \int \frac{\partial e_{xc}}{\partial \rho}\, \phi_\mu \phi_\nu
      + 2 \frac{\partial e_{xc}}{\partial \sigma} \nabla\rho \cdot \nabla(\phi_\mu \phi_\nu),

with :math:`h` the core Hamiltonian, the Coulomb potential from the
three-centre integrals (exact for the given :math:`\rho`) and the
exchange-correlation potential from :math:`\rho` (and :math:`\nabla\rho` for a GGA)
evaluated on the DFT grid from the auxiliary functions (:func:`density_fock`).
One generalised eigenproblem :math:`F C = S C \varepsilon` and aufbau occupation
(closed shell, the :math:`N/2` lowest orbitals doubly) give the guess density
matrix :math:`D_0 = 2 C_{occ} C_{occ}^\top` (:func:`density_guess`).
A pure functional (PBE) is assumed: exact exchange needs orbitals and is left
out (a hybrid's exchange part enters only through its semi-local fraction).

:func:`scf_cycles_from_guess` runs PySCF's SCF of a
:class:`~equinet.chem.LevelOfTheory` (its defaults, the same ``conv_tol``) from a
given ``dm0`` or one of PySCF's guesses and returns the number of cycles.

PySCF is imported lazily (``pip install equinet[chem]``).
"""
import numpy as np

__all__ = ["density_fock", "density_guess", "scf_cycles_from_guess"]

_RHO_CUTOFF = 1e-10  # points with less density (or a negative fitted one) get no xc potential


def _coulomb(mol, auxmol, c, max_memory_mb=256):
    """J_{mu nu} = sum_P (mu nu|P) c_P, in chunks of auxiliary shells of bounded memory."""
    from pyscf import lib
    from pyscf.df import incore

    npair = mol.nao * (mol.nao + 1) // 2
    offsets = auxmol.ao_loc
    per_shell = npair * 8 * max(1, int(np.max(np.diff(offsets))))
    step = max(1, int(max_memory_mb * 1e6 // per_shell))
    packed = np.zeros(npair)
    for s0 in range(0, auxmol.nbas, step):
        s1 = min(s0 + step, auxmol.nbas)
        eri3 = incore.aux_e2(mol, auxmol, "int3c2e", aosym="s2ij",
                             shls_slice=(0, mol.nbas, 0, mol.nbas, s0, s1))
        packed += eri3.reshape(npair, -1) @ c[offsets[s0]:offsets[s1]]
    return lib.unpack_tril(packed)


def _xc_potential(mol, auxmol, c, xc, grids):
    """V_xc from the fitted density on ``grids``; returns ``(vxc, exc_integral, n_grid)``."""
    from pyscf.dft import numint

    ni = numint.NumInt()
    xctype = ni._xc_type(xc)
    if xctype not in ("HF", "LDA", "GGA"):
        raise NotImplementedError(f"density_fock supports LDA and GGA functionals, got {xc!r} "
                                  f"({xctype})")
    nao = mol.nao
    vxc = np.zeros((nao, nao))
    if xctype == "HF":
        return vxc, 0.0, 0.0
    deriv = 0 if xctype == "LDA" else 1
    exc_total = electrons = 0.0
    block = 4000
    for start in range(0, len(grids.weights), block):
        coords = grids.coords[start:start + block]
        weights = grids.weights[start:start + block]
        aux = numint.eval_ao(auxmol, coords, deriv=deriv)  # ([4,] ngrid, naux)
        rho = aux @ c  # ([4,] ngrid): rho and its gradient
        ao = numint.eval_ao(mol, coords, deriv=deriv)
        rho = rho.reshape(-1, len(weights))
        keep = rho[0] > _RHO_CUTOFF
        rho = np.where(keep, rho, 0.0)
        exc, v = ni.eval_xc_eff(xc, rho if deriv else rho[0], deriv=1, xctype=xctype)[:2]
        v = np.where(keep, np.asarray(v).reshape(-1, len(weights)), 0.0)
        exc_total += float(np.where(keep, exc * rho[0], 0.0) @ weights)
        electrons += float(rho[0] @ weights)
        wv = v * weights  # (1 or 4, ngrid)
        if deriv == 0:
            vxc += ao.T @ (ao * wv[0][:, None])
        else:
            # as numint.nr_rks: half of the rho term here, the transpose adds the other half
            wv[0] *= 0.5
            aow = np.einsum("xpi,xp->pi", ao[:4], wv)
            part = ao[0].T @ aow
            vxc += part + part.T
    return vxc, exc_total, electrons


def density_fock(mol, c, auxmol, xc="PBE", grids_level=3, return_parts=False):
    r"""The Fock matrix :math:`F = h + J[\rho] + V_{xc}[\rho]` of a fitted density (module docs).

    Parameters
    ----------
    mol : pyscf.gto.Mole
        The orbital basis of ``F``.
    c : numpy.ndarray
        ``(naux,)`` coefficients of :math:`\rho` on ``auxmol``, in PySCF's order
        (``BasisLayout(auxmol).to_pyscf(c, kind="vector")`` converts from equinet's).
    auxmol : pyscf.gto.Mole
        The auxiliary basis, e.g. from :func:`~equinet.chem.fit_density`.
    xc : str
        A pure (LDA or GGA) functional in PySCF's notation, or ``"HF"`` (then
        :math:`F = h + J`, no exchange).
    grids_level : int
        PySCF's grid level for :math:`V_{xc}` (same default as
        :class:`~equinet.chem.LevelOfTheory`).
    return_parts : bool
        Also return a dict with ``h``, ``j``, ``vxc`` and the grid integral of the density.

    Returns
    -------
    numpy.ndarray
        ``(nao, nao)`` symmetric, PySCF's AO order (``(F, parts)`` with ``return_parts``).

    Examples
    --------
    >>> from pyscf import scf
    >>> from equinet.chem import build_mole, fit_density
    >>> mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    >>> dm = scf.RHF(mol).run(verbose=0).make_rdm1()
    >>> c, auxmol = fit_density(mol, dm, "def2-universal-jfit")
    >>> f = density_fock(mol, c, auxmol, xc="HF")
    >>> bool(np.allclose(f, scf.RHF(mol).get_fock(dm=dm) + scf.RHF(mol).get_k(dm=dm) / 2,
    ...                  atol=1e-3))
    True
    """
    from pyscf.dft import gen_grid

    c = np.asarray(c, dtype=np.float64)
    if c.shape != (auxmol.nao,):
        raise ValueError(f"c must be ({auxmol.nao},) for this auxmol, got {c.shape}")
    h = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
    j = _coulomb(mol, auxmol, c)
    grids = gen_grid.Grids(mol)
    grids.level = grids_level
    grids.verbose = 0
    grids.build(with_non0tab=False)
    vxc, exc, electrons = _xc_potential(mol, auxmol, c, xc, grids)
    fock = h + j + vxc
    if return_parts:
        return fock, {"h": h, "j": j, "vxc": vxc, "exc": exc, "electrons": electrons}
    return fock


def density_guess(mol, c, auxmol, xc="PBE", grids_level=3):
    r"""A closed-shell density matrix from one diagonalisation of :func:`density_fock`.

    Solves :math:`F C = S C \varepsilon` (``scipy.linalg.eigh``) and occupies the
    :math:`N/2` lowest orbitals with two electrons each:
    :math:`D_0 = 2 C_{occ} C_{occ}^\top`, so :math:`\mathrm{tr}(D_0 S) = N` exactly.

    Parameters
    ----------
    mol, c, auxmol, xc, grids_level
        As :func:`density_fock`; ``mol.spin`` must be 0.

    Returns
    -------
    numpy.ndarray
        ``(nao, nao)``, PySCF's AO order: pass it as ``dm0`` to ``mf.kernel``.

    Examples
    --------
    >>> from pyscf import scf
    >>> from equinet.chem import build_mole, fit_density
    >>> mol = build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]], "sto-3g")
    >>> dm = scf.RHF(mol).run(verbose=0).make_rdm1()
    >>> c, auxmol = fit_density(mol, dm, "def2-universal-jfit")
    >>> dm0 = density_guess(mol, c, auxmol, xc="HF")
    >>> round(float(np.trace(dm0 @ mol.intor("int1e_ovlp"))), 10)
    2.0
    """
    import scipy.linalg

    if mol.spin != 0 or mol.nelectron % 2:
        raise ValueError(f"density_guess is closed shell; this mol has spin {mol.spin} and "
                         f"{mol.nelectron} electrons")
    fock = density_fock(mol, c, auxmol, xc, grids_level)
    s = mol.intor_symmetric("int1e_ovlp")
    _, orbitals = scipy.linalg.eigh(fock, s)
    occupied = orbitals[:, :mol.nelectron // 2]
    return 2.0 * occupied @ occupied.T


def scf_cycles_from_guess(mol, level, dm0="minao"):
    """SCF cycles of ``level`` on ``mol`` from an initial guess; ``None`` if not converged.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Built molecule (``level``'s basis).
    level : LevelOfTheory
        Method and SCF settings (``conv_tol``, ``max_cycle``, grid level), as
        :func:`~equinet.chem.run_scf` uses them; everything else is PySCF's default
        (DIIS included).
    dm0 : numpy.ndarray or str
        A density matrix ``(nao, nao)`` in PySCF's order (e.g. :func:`density_guess`),
        or one of PySCF's guesses: ``"minao"``, ``"atom"``, ``"huckel"``, ``"1e"``, ...

    Returns
    -------
    int or None
        ``mf.cycles`` of the converged run, ``None`` if it did not converge.

    Examples
    --------
    >>> from equinet.chem import LevelOfTheory, build_mole
    >>> level = LevelOfTheory("HF", "sto-3g")
    >>> mol = level.build_mole([1, 1], [[0, 0, 0], [0, 0, 0.74]])
    >>> scf_cycles_from_guess(mol, level, "minao") > 0
    True
    """
    restricted = level.spin == 0
    mf = level.make_scf(mol)
    if isinstance(dm0, str):
        mf.init_guess = dm0
        mf.kernel()
    else:
        dm0 = np.asarray(dm0, dtype=np.float64)
        if not restricted and dm0.ndim == 2:
            dm0 = np.stack([dm0 / 2, dm0 / 2])
        mf.kernel(dm0=dm0)
    return int(mf.cycles) if mf.converged else None
