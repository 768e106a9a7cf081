r"""Geometry samplers: thermal normal-mode displacements and random water clusters.

Every sampler returns a list of :class:`Geometry` ``(z, pos)`` pairs (atomic numbers
``int64 [n]``, positions ``float64 [n, 3]`` in Angstrom) that
:func:`equinet.data.generate` labels directly, and is deterministic given ``seed``.

Normal modes
------------
For a geometry :math:`R_0` at a minimum with Cartesian Hessian :math:`H` and masses
:math:`m_i`, the mass-weighted Hessian :math:`\tilde H = M^{-1/2} H M^{-1/2}` has
eigenpairs :math:`(\omega_k^2, L_k)`. The rigid translations and rotations are projected
out first (:math:`3n-6` vibrations, :math:`3n-5` for a linear molecule), so the samples
satisfy the Eckart conditions to first order: :math:`\sum_i m_i \Delta r_i = 0` and
:math:`\sum_i m_i\, r_{0,i} \times \Delta r_i = 0`. A sample is

.. math::

    \Delta r = M^{-1/2} \sum_k Q_k L_k, \qquad Q_k \sim \mathcal N(0, \sigma_k^2),\qquad
    \sigma_k^2 = \frac{k_B T}{\omega_k^2}\ \text{(classical)}\quad\text{or}\quad
    \frac{\hbar}{2\omega_k}\coth\frac{\hbar\omega_k}{2 k_B T}\ \text{(quantum, with zero-point)}.

The given geometry is taken as the minimum: optimise it first at the same level
(``optimize=True`` uses PySCF's ``geomopt``, which needs geomeTRIC or pyberny installed).
"""
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Geometry", "NormalModes", "normal_mode_samples", "water_clusters",
           "WATER_DENSITY", "water_molecule"]

BOHR = 0.52917721092           # Angstrom
AMU = 1822.888486209           # electron masses per dalton
KB_HARTREE = 3.166811563e-6     # Hartree per Kelvin
HARTREE_CM = 219474.6313632     # cm^-1 per Hartree
#: Liquid water at 298 K: molecules per cubic Angstrom.
WATER_DENSITY = 0.0334


class Geometry(NamedTuple):
    """One structure: atomic numbers ``z`` ``int64 [n]`` and positions ``pos`` ``[n, 3]`` (A)."""

    z: np.ndarray
    pos: np.ndarray


def _masses(z) -> np.ndarray:
    from pyscf.data import elements

    return np.array([elements.MASSES[int(a)] for a in z], dtype=np.float64)


def _rigid_basis(pos: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations, ``[3n, r]`` with r in {3, 5, 6}."""
    sq = np.sqrt(masses)
    rel = pos - (masses[:, None] * pos).sum(0) / masses.sum()
    vectors = []
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        vectors.append((sq[:, None] * e).ravel())
        vectors.append((sq[:, None] * np.cross(e, rel)).ravel())
    u, s, _ = np.linalg.svd(np.stack(vectors, 1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


class NormalModes:
    r"""Harmonic normal modes of a molecule at a minimum, for thermal sampling.

    Parameters
    ----------
    z : array_like of int
        Atomic numbers ``[n]``.
    pos : array_like
        Minimum geometry ``[n, 3]`` in Angstrom.
    hessian : array_like
        Cartesian Hessian in Hartree/Bohr², ``[3n, 3n]`` or PySCF's ``[n, n, 3, 3]``.
    masses : array_like, optional
        Atomic masses in dalton (default: isotope-averaged, from PySCF's table).

    Attributes
    ----------
    omega2 : numpy.ndarray
        :math:`\omega_k^2` of the vibrations in atomic units (Hartree / (Bohr² m_e)).
    modes : numpy.ndarray
        Orthonormal mass-weighted vibrations :math:`L` ``[3n, n_vib]``.
    frequencies : numpy.ndarray
        Harmonic wavenumbers in cm⁻¹.

    Examples
    --------
    A diatomic spring: one vibration, :math:`\omega^2 = k/\mu`.

    >>> k = 0.5  # Hartree / Bohr^2 along the bond
    >>> h = np.zeros((6, 6)); h[2, 2] = h[5, 5] = k; h[2, 5] = h[5, 2] = -k
    >>> nm = NormalModes([1, 1], [[0, 0, 0], [0, 0, 0.74]], h)
    >>> nm.modes.shape, bool(np.isclose(nm.omega2[0], k / (0.5 * 1.008 * AMU)))
    ((6, 1), True)
    >>> geoms = nm.sample(3, temperature=300.0, seed=0)
    >>> len(geoms), geoms[0].pos.shape
    (3, (2, 3))
    """

    def __init__(self, z, pos, hessian, masses=None):
        self.z = np.asarray(z, dtype=np.int64)
        self.pos = np.asarray(pos, dtype=np.float64)
        n = len(self.z)
        h = np.asarray(hessian, dtype=np.float64)
        if h.shape == (n, n, 3, 3):
            h = h.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
        if h.shape != (3 * n, 3 * n):
            raise ValueError(f"hessian must be [3n, 3n] or [n, n, 3, 3] with n={n}, "
                             f"got {h.shape}")
        self.masses = _masses(self.z) if masses is None else np.asarray(masses, np.float64)
        inv_sq = np.repeat(1.0 / np.sqrt(self.masses * AMU), 3)   # atomic units
        hmw = inv_sq[:, None] * (0.5 * (h + h.T)) * inv_sq[None, :]
        rigid = _rigid_basis(self.pos, self.masses)
        # An orthonormal basis of the vibrations: the complement of the rigid motions.
        u, s, _ = np.linalg.svd(np.eye(3 * n) - rigid @ rigid.T)
        complement = u[:, : 3 * n - rigid.shape[1]]
        omega2, vectors = np.linalg.eigh(complement.T @ hmw @ complement)
        if omega2.size and omega2[0] < -1e-8:
            count = int((omega2 < -1e-8).sum())
            raise ValueError(f"the geometry is not a minimum: {count} imaginary mode(s) "
                             f"(lowest {-np.sqrt(-omega2[0]) * HARTREE_CM:.1f}i cm^-1); "
                             "optimise it first (optimize=True or your own optimiser)")
        self.omega2 = np.clip(omega2, 1e-12, None)
        self.modes = complement @ vectors
        self.frequencies = np.sqrt(self.omega2) * HARTREE_CM

    @classmethod
    def from_pyscf(cls, z, pos, level, optimize: bool = False) -> "NormalModes":
        """Hessian of ``level`` (an :class:`equinet.chem.labels.LevelOfTheory`) by PySCF.

        With ``optimize=True`` the geometry is first relaxed by ``pyscf.geomopt``
        (needs geomeTRIC or pyberny, which equinet does not install).
        """
        from ..chem.labels import run_scf

        mf = run_scf(level.build_mole(z, pos), level)
        if optimize:
            try:
                from pyscf.geomopt import geometric_solver as solver
                import geometric  # noqa: F401
            except ImportError:
                try:
                    from pyscf.geomopt import berny_solver as solver
                    import berny  # noqa: F401
                except ImportError:
                    raise ImportError("optimize=True needs geomeTRIC or pyberny "
                                      "(pip install geometric); or pass an optimised "
                                      "geometry") from None
            mol = solver.optimize(mf)
            pos = mol.atom_coords(unit="Angstrom")
            mf = run_scf(mol, level)
        hessian = mf.Hessian()
        hessian.verbose = 0
        return cls(z, pos, hessian.kernel())

    def variances(self, temperature: float, quantum: bool = False) -> np.ndarray:
        r""":math:`\sigma_k^2 = \langle Q_k^2 \rangle` in atomic units (m_e Bohr²)."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 K, got {temperature}")
        kt = KB_HARTREE * temperature
        if not quantum:
            return kt / self.omega2
        omega = np.sqrt(self.omega2)
        if kt == 0:
            return 0.5 / omega
        return 0.5 / omega / np.tanh(omega / (2 * kt))

    def sample(self, count: int, temperature: float, seed: Optional[int] = 0,
               quantum: bool = False) -> List[Geometry]:
        """``count`` thermally displaced geometries, deterministic given ``seed``."""
        rng = np.random.default_rng(seed)
        sigma = np.sqrt(self.variances(temperature, quantum))
        q = rng.standard_normal((count, len(sigma))) * sigma          # [count, n_vib]
        inv_sq = np.repeat(1.0 / np.sqrt(self.masses * AMU), 3)
        dx = (q @ self.modes.T) * inv_sq * BOHR                        # [count, 3n] Angstrom
        return [Geometry(self.z.copy(), self.pos + d.reshape(-1, 3)) for d in dx]


def normal_mode_samples(z, pos, level, temperature: float, count: int, seed: Optional[int] = 0,
                        quantum: bool = False, optimize: bool = False) -> List[Geometry]:
    """Thermal normal-mode samples of one molecule (Hessian of ``level`` by PySCF).

    See :class:`NormalModes`; the Hessian is computed once for all ``count`` samples.
    """
    modes = NormalModes.from_pyscf(z, pos, level, optimize=optimize)
    return modes.sample(count, temperature, seed=seed, quantum=quantum)


def water_molecule(oh: float = 0.9572, angle: float = 104.52) -> Geometry:
    """A rigid water molecule (O, H, H) with its oxygen at the origin, in the xy plane.

    >>> g = water_molecule()
    >>> g.z.tolist(), round(float(np.linalg.norm(g.pos[1])), 4)
    ([8, 1, 1], 0.9572)
    """
    half = np.deg2rad(angle) / 2
    pos = np.array([[0.0, 0.0, 0.0],
                    [oh * np.sin(half), oh * np.cos(half), 0.0],
                    [-oh * np.sin(half), oh * np.cos(half), 0.0]])
    return Geometry(np.array([8, 1, 1], dtype=np.int64), pos)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform on SO(3): a normalised Gaussian quaternion."""
    w, x, y, z = rng.standard_normal(4)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def water_clusters(n: int, count: int, seed: Optional[int] = 0,
                   density: float = WATER_DENSITY, min_oo: float = 2.5,
                   min_atom: float = 1.5, max_tries: int = 10000,
                   monomer: Optional[Geometry] = None) -> List[Geometry]:
    r"""Random clusters of ``n`` rigid waters at liquid density.

    Oxygens are placed uniformly in a cube of volume :math:`n/\rho` (side
    :math:`(n/\rho)^{1/3}`), each molecule rotated uniformly on SO(3); a placement is
    rejected if an O–O distance is below ``min_oo`` or any two atoms of different
    molecules are closer than ``min_atom`` (Angstrom).

    Parameters
    ----------
    n : int
        Molecules per cluster.
    count : int
        Number of clusters.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.
    density : float
        Molecules per Å³ (default liquid water, 0.0334).
    min_oo, min_atom : float
        Minimum O–O and intermolecular atom–atom distances.
    max_tries : int
        Placements tried per cluster before giving up.
    monomer : Geometry, optional
        The rigid water, oxygen first (default :func:`water_molecule`).

    Returns
    -------
    list of Geometry
        Atoms ordered O, H, H per molecule.

    Raises
    ------
    RuntimeError
        If a cluster cannot be completed within ``max_tries`` placements (the
        distances are too large for the density).

    Examples
    --------
    >>> clusters = water_clusters(3, count=2, seed=0)
    >>> clusters[0].z.tolist(), clusters[0].pos.shape
    ([8, 1, 1, 8, 1, 1, 8, 1, 1], (9, 3))
    """
    if n < 1 or count < 0:
        raise ValueError(f"need n >= 1 and count >= 0, got n={n}, count={count}")
    monomer = water_molecule() if monomer is None else monomer
    side = (n / density) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    out = []
    for c in range(count):
        placed: List[np.ndarray] = []
        tries = 0
        while len(placed) < n:
            tries += 1
            if tries > max_tries:
                raise RuntimeError(
                    f"water_clusters: could not place {n} molecules in a cube of side "
                    f"{side:.2f} A (density {density}) with O-O >= {min_oo} A and atoms >= "
                    f"{min_atom} A apart after {max_tries} tries (cluster {c}); lower the "
                    "distances or the density, or raise max_tries")
            mol = monomer.pos @ _random_rotation(rng).T + rng.uniform(0.0, side, 3)
            if placed:
                others = np.concatenate(placed)
                oo = np.linalg.norm(others[::len(monomer.z)] - mol[0], axis=1).min()
                aa = np.linalg.norm(others[:, None] - mol[None], axis=-1).min()
                if oo < min_oo or aa < min_atom:
                    continue
            placed.append(mol)
        out.append(Geometry(np.tile(monomer.z, n), np.concatenate(placed)))
    return out
