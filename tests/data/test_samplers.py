"""Geometry samplers: normal-mode statistics, Eckart conditions, water clusters."""
import numpy as np
import pytest

from equinet.data.samplers import (AMU, BOHR, KB_HARTREE, NormalModes, WATER_DENSITY,
                                   _random_rotation, water_clusters)

pytest.importorskip("pyscf")
from equinet.chem.labels import LevelOfTheory  # noqa: E402

WATER_Z = [8, 1, 1]
WATER_POS = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


@pytest.fixture(scope="module")
def water_modes():
    return NormalModes.from_pyscf(WATER_Z, WATER_POS, LevelOfTheory("HF", "sto-3g"))


def _mode_coordinates(nm, geoms):
    """Q_k = L_k . sqrt(m) dx in atomic units (sqrt(m_e) Bohr)."""
    sq = np.repeat(np.sqrt(nm.masses * AMU), 3)
    dx = np.stack([(g.pos - nm.pos).ravel() for g in geoms]) / BOHR
    return (dx * sq) @ nm.modes


def test_water_has_three_vibrations(water_modes):
    assert water_modes.modes.shape == (9, 3)
    np.testing.assert_allclose(water_modes.modes.T @ water_modes.modes, np.eye(3), atol=1e-12)
    assert np.all(water_modes.frequencies > 1000)


@pytest.mark.parametrize("quantum", [False, True])
def test_mode_mean_square_matches_boltzmann(water_modes, quantum):
    count, temperature = 20000, 300.0
    q = _mode_coordinates(water_modes, water_modes.sample(count, temperature, seed=1,
                                                          quantum=quantum))
    expected = KB_HARTREE * temperature / water_modes.omega2
    if quantum:  # hbar omega >> kT for these modes: close to the zero-point 1/(2 omega)
        expected = 0.5 / np.sqrt(water_modes.omega2) / np.tanh(
            np.sqrt(water_modes.omega2) / (2 * KB_HARTREE * temperature))
    # relative standard error of a mean square of N Gaussians: sqrt(2/N) = 1%
    np.testing.assert_allclose((q ** 2).mean(0), expected, rtol=0.05)
    np.testing.assert_allclose(q.mean(0) / np.sqrt(expected), 0, atol=0.05)
    corr = np.corrcoef(q.T)
    np.testing.assert_allclose(corr, np.eye(3), atol=0.05)


def test_rigid_motions_not_excited(water_modes):
    m = water_modes.masses
    for g in water_modes.sample(50, 1000.0, seed=2):
        dx = g.pos - water_modes.pos
        np.testing.assert_allclose((m[:, None] * dx).sum(0), 0, atol=1e-12)
        com = (m[:, None] * water_modes.pos).sum(0) / m.sum()
        np.testing.assert_allclose(
            (m[:, None] * np.cross(water_modes.pos - com, dx)).sum(0), 0, atol=1e-12)


def test_sampling_is_deterministic(water_modes):
    a, b = water_modes.sample(3, 300, seed=5), water_modes.sample(3, 300, seed=5)
    c = water_modes.sample(3, 300, seed=6)
    assert all(np.array_equal(x.pos, y.pos) for x, y in zip(a, b))
    assert not np.array_equal(a[0].pos, c[0].pos)
    zero = water_modes.sample(2, 0.0, seed=0)
    assert np.array_equal(zero[0].pos, water_modes.pos)


def test_linear_molecule_and_saddle():
    k = 0.4
    h = np.zeros((6, 6))
    h[2, 2] = h[5, 5] = k
    h[2, 5] = h[5, 2] = -k
    nm = NormalModes([1, 1], [[0, 0, 0], [0, 0, 0.74]], h)
    assert nm.modes.shape == (6, 1)  # 3n - 5
    np.testing.assert_allclose(nm.omega2, [k / (0.5 * nm.masses[0] * AMU)])
    with pytest.raises(ValueError, match="not a minimum"):
        NormalModes([1, 1], [[0, 0, 0], [0, 0, 0.74]], -h)


def test_random_rotations_uniform():
    rng = np.random.default_rng(0)
    rs = np.stack([_random_rotation(rng) for _ in range(4000)])
    np.testing.assert_allclose(np.linalg.det(rs), 1, atol=1e-12)
    np.testing.assert_allclose(rs @ rs.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rs.shape),
                               atol=1e-12)
    # Haar measure: E[R] = 0 and E[R_ij^2] = 1/3
    np.testing.assert_allclose(rs.mean(0), 0, atol=0.05)
    np.testing.assert_allclose((rs ** 2).mean(0), 1 / 3, atol=0.03)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_water_clusters_distances_and_density(n):
    clusters = water_clusters(n, count=20, seed=3)
    side = (n / WATER_DENSITY) ** (1 / 3)
    for g in clusters:
        assert g.z.tolist() == [8, 1, 1] * n and g.pos.shape == (3 * n, 3)
        mols = g.pos.reshape(n, 3, 3)
        oxygens = mols[:, 0]
        assert np.all(oxygens >= 0) and np.all(oxygens <= side)   # n / volume = density
        oh = np.linalg.norm(mols[:, 1:] - mols[:, :1], axis=-1)
        np.testing.assert_allclose(oh, 0.9572, atol=1e-12)
        v1, v2 = mols[:, 1] - mols[:, 0], mols[:, 2] - mols[:, 0]
        cos = (v1 * v2).sum(-1) / (0.9572 ** 2)
        np.testing.assert_allclose(np.degrees(np.arccos(cos)), 104.52, atol=1e-8)
        for i in range(n):
            for j in range(i):
                assert np.linalg.norm(oxygens[i] - oxygens[j]) >= 2.5
                assert np.linalg.norm(mols[i][:, None] - mols[j][None], axis=-1).min() >= 1.5
    again = water_clusters(n, count=20, seed=3)
    assert all(np.array_equal(a.pos, b.pos) for a, b in zip(clusters, again))


def test_water_clusters_impossible_is_a_clear_error():
    with pytest.raises(RuntimeError, match="could not place"):
        water_clusters(8, count=1, seed=0, min_oo=6.0, max_tries=200)
