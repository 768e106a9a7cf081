r"""PySCF atomic-orbital and auxiliary bases as equinet irreps, with the exact maps between them.

A spherical Gaussian basis (orbital or density-fitting) is a list of shells; a
shell of angular momentum :math:`l` with :math:`k` contractions contributes
:math:`k` copies of the irrep :math:`l` with parity :math:`(-1)^l`, so the whole
basis is a direct sum ``Irreps`` in PySCF's AO order. Only the order *within*
each :math:`2l+1` block differs: PySCF uses its own real solid harmonics
(``px, py, pz`` for :math:`l = 1`, :math:`m = -l..l` with :math:`z` as polar axis
above), equinet uses e3nn's (:math:`y` as polar axis). For every :math:`l` there
is one orthogonal matrix :math:`M_l` with

.. math::
    Y^{\mathrm{equinet}}_l(\hat r) = M_l \, Y^{\mathrm{pyscf}}_l(\hat r),

(:func:`pyscf_to_equinet_matrix`); :math:`M_0 = M_1 = 1`. Stacking them block-diagonally
gives :math:`M` (:meth:`BasisLayout.change_of_basis`), and

* coefficient vectors, :math:`f = \sum_\mu c_\mu \phi_\mu`: :math:`c^{eq} = M c`,
  which then rotate as :math:`c(R\,x) = D(R)\, c(x)`;
* matrices covariant in both indices (Fock, overlap, core Hamiltonian, density
  matrix): :math:`A^{eq} = M A M^\top`.

Because :math:`M` is orthogonal, the same map serves "dual" vectors such as
projections :math:`(P|\rho)` or AO values :math:`\phi_\mu(r)`: :math:`M^{-\top} = M`.
Cartesian bases (``mol.cart = True``) are not irreducible and are refused.

PySCF is imported lazily (``pip install equinet[chem]``).
"""
import functools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..o3 import Irrep, Irreps
from .ase_io import element_symbol

__all__ = ["BasisLayout", "pyscf_to_equinet_matrix", "transform_matrix"]

_KINDS = ("vector", "matrix")


def _import_pyscf():
    try:
        import pyscf.gto
    except ImportError as error:  # pragma: no cover - pyscf is part of the chem extra
        raise ImportError("equinet.chem needs PySCF: pip install equinet[chem]") from error
    return pyscf.gto


@functools.lru_cache(maxsize=None)
def _change_of_basis(l: int) -> np.ndarray:
    gto = _import_pyscf()
    from ..o3 import spherical_harmonics

    # One normalised primitive shell; on the unit sphere its radial factor is one positive
    # constant, so the AO values are PySCF's real harmonics up to that scale.
    mol = gto.M(atom="He 0 0 0", basis={"He": [[l, [1.0, 1.0]]]}, unit="Bohr", verbose=0)
    n = 2 * l + 1
    # Fibonacci sphere: deterministic, well spread, many more points than unknowns
    k = np.arange(8 * n + 32) + 0.5
    z = 1.0 - 2.0 * k / len(k)
    phi = np.pi * (1.0 + 5.0 ** 0.5) * k
    rho = np.sqrt(1.0 - z * z)
    x = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    y_pyscf = mol.eval_gto("GTOval_sph", x)
    y_equinet = spherical_harmonics(l, torch.from_numpy(x), normalize=True,
                                    normalization="component").numpy()
    # Both sides span the same polynomial space, so the solve is an identity, not a fit:
    # the residual is float rounding, checked below.
    solution, *_ = np.linalg.lstsq(y_pyscf, y_equinet, rcond=None)
    m = solution.T
    residual = np.abs(y_pyscf @ m.T - y_equinet).max() / np.abs(y_equinet).max()
    u, s, vt = np.linalg.svd(m)
    # The two normalisations differ by one positive scale; remove it (and the last rounding)
    # by taking the nearest orthogonal matrix.
    spread = s.max() / s.min() - 1.0
    if residual > 1e-11 or spread > 1e-11:
        raise RuntimeError(f"PySCF's l={l} harmonics are not an orthogonal transform of "
                           f"equinet's (residual {residual:.1e}, spread {spread:.1e}); "
                           "has PySCF changed its convention?")
    q = u @ vt
    # entries that are exactly 0 or +-1 (all of them for l <= 1) come out exact
    q[np.abs(q) < 1e-14] = 0.0
    unit = np.abs(np.abs(q) - 1.0) < 1e-14
    q[unit] = np.sign(q[unit])
    q.setflags(write=False)
    return q


def pyscf_to_equinet_matrix(l: int) -> np.ndarray:
    r"""The orthogonal matrix :math:`M_l` with :math:`Y^{eq}_l(\hat r) = M_l Y^{pyscf}_l(\hat r)`.

    Derived from the definitions of both sets of functions: PySCF's spherical AO
    of one normalised shell, evaluated on points of the unit sphere, and
    :func:`equinet.o3.spherical_harmonics` at the same points. Both are bases of
    the same :math:`2l+1` dimensional space, so the linear solve is exact up to
    float rounding (checked, residual < 1e-11); the common positive scale of
    the two normalisations is then removed by taking the nearest orthogonal
    matrix (polar decomposition). Cached per :math:`l`; read-only. The tests check
    it against PySCF's own real Wigner matrices (``pyscf.symm.Dmatrix``),
    :math:`M_l D^{pyscf}_l(R) M_l^\top = D^{eq}_l(R)`, and against PySCF
    integrals at rotated geometries.

    Parameters
    ----------
    l : int
        Angular momentum, ``l >= 0``.

    Returns
    -------
    numpy.ndarray
        ``(2l+1, 2l+1)`` float64, rows in equinet's order, columns in PySCF's.

    Examples
    --------
    >>> pyscf_to_equinet_matrix(1)  # p functions agree: (x, y, z) in both
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    >>> m = pyscf_to_equinet_matrix(2)  # columns: dxy, dyz, dz2, dxz, dx2-y2
    >>> m[1], m[2].round(4)  # equinet's m=-1 is xy; its m=0 is 3y^2 - r^2
    (array([1., 0., 0., 0., 0.]), array([ 0.    ,  0.    , -0.5   ,  0.    , -0.866]))
    """
    if isinstance(l, bool) or int(l) != l or l < 0:
        raise ValueError(f"l must be an integer >= 0, got {l!r}")
    return _change_of_basis(int(l))


class BasisLayout:
    r"""The irreps of a PySCF basis, per atom, and the maps between PySCF's and equinet's order.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        A built molecule with a spherical basis: an orbital basis, or an auxiliary
        one such as ``pyscf.df.addons.make_auxmol(mol, "def2-universal-jfit")``.

    Attributes
    ----------
    irreps : Irreps
        All basis functions in AO order, parity :math:`(-1)^l`: the per-atom
        irreps concatenated (consecutive shells of one atom with the same
        :math:`l` share one entry). ``irreps.dim == nao``.
    nao : int
        Number of basis functions.
    atom_irreps : tuple of Irreps
        The irreps of each atom's functions.
    atom_slices : tuple of slice
        Each atom's functions: ``a[..., layout.atom_slices[i]]``.
    atom_shells : tuple of tuple of (int, int)
        Each atom's shells in AO order as ``(l, number of contractions)``.
    elements : tuple of str
        Each atom's element symbol (ghost prefixes and labels stripped).
    atomic_numbers : numpy.ndarray
        ``int64 [natm]``, of ``elements`` (so a ghost atom has its element's number).

    Notes
    -----
    Conversions say whether an array is a vector or a matrix, because a square
    ``[nao, nao]`` array could be either:

    * ``kind="vector"``: the last axis is AO-indexed, ``[..., nao]``;
      :math:`c^{eq} = M c`. Valid for coefficients and for dual vectors alike
      (:math:`M` is orthogonal), e.g. density-fitting coefficients and
      :math:`(P|\rho)`, and for the columns of ``C.T`` (MO coefficients, whose AO
      axis is the first: pass ``C.T``, or use :func:`transform_matrix`).
    * ``kind="matrix"``: the last two axes, ``[..., nao, nao]``;
      :math:`A^{eq} = M A M^\top`.

    Inputs may be numpy arrays or torch tensors (returned as the same type, dtype
    and device; torch keeps autograd) with any leading batch dimensions.
    :meth:`to_pyscf` is the exact inverse of :meth:`to_equinet`.

    Examples
    --------
    >>> from pyscf import gto
    >>> mol = gto.M(atom="O 0 0 0; H 0 .76 .59; H 0 -.76 .59", basis="def2-svp")
    >>> layout = BasisLayout(mol)
    >>> layout.irreps, layout.nao
    (3x0e+2x1o+1x2e+2x0e+1x1o+2x0e+1x1o, 24)
    >>> layout.elements, layout.atom_irreps[1], layout.atom_slices[1]
    (('O', 'H', 'H'), 2x0e+1x1o, slice(14, 19, None))
    >>> s = mol.intor("int1e_ovlp")
    >>> s_eq = layout.to_equinet(s, kind="matrix")
    >>> bool(np.allclose(layout.to_pyscf(s_eq, kind="matrix"), s))
    True
    """

    def __init__(self, mol):
        _import_pyscf()
        if getattr(mol, "cart", False):
            raise ValueError("BasisLayout needs spherical basis functions but this Mole has "
                             "cart=True (Cartesian functions are not irreducible); build it with "
                             "cart=False (PySCF's default), e.g. mol.cart = False; mol.build()")
        if mol.natm == 0 or mol.nbas == 0:
            raise ValueError("the Mole has no atoms or no basis functions; was mol.build() called?")
        shells: List[List[Tuple[int, int]]] = [[] for _ in range(mol.natm)]
        for shell in range(mol.nbas):
            atom = int(mol.bas_atom(shell))
            if shell > 0 and atom < int(mol.bas_atom(shell - 1)):
                raise ValueError("the Mole's shells are not grouped by atom")
            shells[atom].append((int(mol.bas_angular(shell)), int(mol.bas_nctr(shell))))
        self.elements = tuple(element_symbol(mol, i) for i in range(mol.natm))
        self.atomic_numbers = np.array([_atomic_number(s) for s in self.elements], dtype=np.int64)
        for i, atom_shells in enumerate(shells):
            if not atom_shells:
                raise ValueError(f"atom {i} ({self.elements[i]}) has no basis functions; is its "
                                 "element missing from the basis given to PySCF?")
        self.atom_shells = tuple(tuple(s) for s in shells)
        self.atom_irreps = tuple(_shells_to_irreps(s) for s in self.atom_shells)
        self.irreps = Irreps([mul_ir for irreps in self.atom_irreps for mul_ir in irreps])
        self.nao = self.irreps.dim
        if self.nao != mol.nao_nr():  # pragma: no cover - PySCF invariant
            raise ValueError(f"irreps dimension {self.nao} differs from mol.nao {mol.nao_nr()}")
        starts = np.cumsum([0] + [irreps.dim for irreps in self.atom_irreps])
        self.atom_slices = tuple(slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:]))
        self._groups, self._inverse = _plan(self.irreps)
        self._cache = {}

    @property
    def natm(self) -> int:
        """Number of atoms."""
        return len(self.elements)

    @property
    def lmax(self) -> int:
        """Largest angular momentum of the basis."""
        return self.irreps.lmax

    def __repr__(self) -> str:
        return f"BasisLayout(natm={self.natm}, nao={self.nao}, irreps={self.irreps})"

    def change_of_basis(self) -> np.ndarray:
        r"""The dense block-diagonal orthogonal :math:`M` ``[nao, nao]``: :math:`c^{eq} = M c`."""
        # row i of the converted identity is M e_i, the i-th column of M
        return self.to_equinet(np.eye(self.nao), kind="vector").T

    def to_equinet(self, a, kind: str):
        """PySCF's AO order to equinet's: ``kind`` is ``"vector"`` or ``"matrix"`` (see class)."""
        return self._convert(a, kind, forward=True)

    def to_pyscf(self, a, kind: str):
        """Equinet's order back to PySCF's AO order: the inverse of :meth:`to_equinet`."""
        return self._convert(a, kind, forward=False)

    def _convert(self, a, kind, forward):
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'vector' or 'matrix', got {kind!r}")
        if kind == "vector":
            return _transform_axis(a, self, forward, axis=-1)
        return transform_matrix(a, rows=self, cols=self, to="equinet" if forward else "pyscf")

    def _transform_last(self, a, forward):
        if a.shape[-1] != self.nao:
            raise ValueError(f"expected the AO axis to have size nao={self.nao}, "
                             f"got shape {tuple(a.shape)}")
        groups, inverse = self._constants(a)
        parts = []
        for index, n, width, m in groups:
            block = a[..., index]
            if m is not None:
                # rows of block are c^T, so c' = M c is c^T M^T
                block = block.reshape(tuple(block.shape[:-1]) + (n, width)) @ (m.T if forward
                                                                                else m)
                block = block.reshape(tuple(block.shape[:-2]) + (n * width,))
            parts.append(block)
        if torch.is_tensor(a):
            return torch.cat(parts, -1)[..., inverse]
        return np.concatenate(parts, -1)[..., inverse]

    def _constants(self, a):
        """Index arrays and M_l in the array type, dtype and device of ``a``, made once each."""
        key = (type(a), a.dtype, getattr(a, "device", None))
        cached = self._cache.get(key)
        if cached is None:
            if torch.is_tensor(a):
                groups = [(torch.as_tensor(index, device=a.device), n, width,
                           None if m is None else torch.as_tensor(m, dtype=a.dtype,
                                                                  device=a.device))
                          for index, n, width, m in self._groups]
                cached = groups, torch.as_tensor(self._inverse, device=a.device)
            else:
                groups = [(index, n, width, None if m is None else m.astype(a.dtype))
                          for index, n, width, m in self._groups]
                cached = groups, self._inverse
            self._cache[key] = cached
        return cached

    def __getstate__(self):
        # the per-device constants are rebuilt on use: a pickled layout holds no GPU tensors
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state


def transform_matrix(a, rows: Optional[BasisLayout], cols: Optional[BasisLayout],
                     to: str = "equinet"):
    r"""Convert a matrix whose rows and columns are in (possibly different) basis layouts.

    :math:`A^{eq} = M_{rows} A M_{cols}^\top` for ``to="equinet"``, and the inverse
    :math:`M_{rows}^\top A M_{cols}` for ``to="pyscf"``, on the last two axes of
    ``a`` (``[..., rows.nao, cols.nao]``). ``None`` leaves that axis as it is,
    e.g. MO coefficients ``C [nao, nmo]``: ``transform_matrix(C, layout, None)``.
    A mixed overlap :math:`\langle \phi_\mu | \chi_P \rangle` between an orbital and
    an auxiliary basis then rotates as :math:`D_{orb}(R) A D_{aux}(R)^\top`.

    Examples
    --------
    >>> from pyscf import gto
    >>> from pyscf.df.addons import make_auxmol
    >>> mol = gto.M(atom="O 0 0 0; H 0 .76 .59; H 0 -.76 .59", basis="def2-svp")
    >>> auxmol = make_auxmol(mol, "def2-universal-jfit")
    >>> s = gto.intor_cross("int1e_ovlp", mol, auxmol)
    >>> s_eq = transform_matrix(s, BasisLayout(mol), BasisLayout(auxmol))
    >>> s_eq.shape
    (24, 71)
    """
    if to not in ("equinet", "pyscf"):
        raise ValueError(f"to must be 'equinet' or 'pyscf', got {to!r}")
    forward = to == "equinet"
    if len(a.shape) < 2:
        raise ValueError(f"expected a matrix [..., n, m], got shape {tuple(a.shape)}")
    if cols is not None:
        a = _transform_axis(a, cols, forward, axis=-1)
    if rows is not None:
        a = _transform_axis(a, rows, forward, axis=-2)
    return a


def _transform_axis(a, layout, forward, axis):
    a = _as_array(a)
    if axis == -1:
        return layout._transform_last(a, forward)
    swapped = a.transpose(-1, -2) if torch.is_tensor(a) else np.swapaxes(a, -1, -2)
    out = layout._transform_last(swapped, forward)
    return out.transpose(-1, -2) if torch.is_tensor(out) else np.swapaxes(out, -1, -2)


def _as_array(a):
    if torch.is_tensor(a):
        if not (a.is_floating_point() or a.is_complex()):
            a = a.to(torch.get_default_dtype())
        return a
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        a = a.astype(np.float64)
    return a


def _shells_to_irreps(shells: Sequence[Tuple[int, int]]) -> Irreps:
    merged: List[List[int]] = []
    for l, nctr in shells:
        if merged and merged[-1][1] == l:
            merged[-1][0] += nctr
        else:
            merged.append([nctr, l])
    return Irreps([(mul, Irrep(l, (-1) ** l)) for mul, l in merged])


def _plan(irreps: Irreps):
    """Group the AO positions by l, so that each l is one batched matmul and one gather."""
    positions = {}
    offset = 0
    for mul, ir in irreps:
        positions.setdefault(ir.l, []).append(np.arange(offset, offset + mul * ir.dim))
        offset += mul * ir.dim
    groups, order = [], []
    for l in sorted(positions):
        index = np.concatenate(positions[l])
        m = None if l <= 1 else np.array(pyscf_to_equinet_matrix(l))  # writable: torch may share it
        groups.append((index, len(index) // (2 * l + 1), 2 * l + 1, m))
        order.append(index)
    inverse = np.empty(offset, dtype=np.int64)
    inverse[np.concatenate(order)] = np.arange(offset)
    return groups, inverse


def _atomic_number(symbol: str) -> int:
    from pyscf.data.elements import charge

    return int(charge(symbol))
