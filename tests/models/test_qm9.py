"""QM9Network and its heads: invariance of the targets, equivariance of the dipole vector
(rotations with inversion, float64), batching, the heads' physics, clear errors."""
import pytest
import torch

from equinet.models import DipoleHead, ExtensiveHead, QM9Network, SpatialExtentHead
from equinet.models.heads import TARGET_HEADS, make_head
from equinet.o3 import rand_matrix

ALL = list(TARGET_HEADS)


def molecules(dtype=torch.float64):
    """Two small molecules: positions (Angstrom), atomic numbers, batch."""
    g = torch.Generator().manual_seed(0)
    pos = 1.2 * torch.randn(9, 3, generator=g, dtype=dtype)
    z = torch.tensor([6, 1, 1, 8, 7, 6, 1, 9, 1])
    return pos, z, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("lmax", [0, 1, 2])
def test_targets_invariant_dipole_equivariant(lmax):
    torch.manual_seed(lmax)
    net = QM9Network(ALL, lmax=lmax, mul=4, num_layers=1).double()
    pos, z, batch = molecules()
    R = rand_matrix(dtype=torch.float64)
    for sign in (1.0, -1.0):  # rotation, then rotation with inversion
        Q = sign * R
        moved = pos @ Q.T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
        out, out_moved = net(pos, z, batch), net(moved, z, batch)
        for t in ALL:
            torch.testing.assert_close(out_moved[t], out[t], atol=1e-9, rtol=1e-10)
        torch.testing.assert_close(net.dipole_vector(moved, z, batch),
                                   net.dipole_vector(pos, z, batch) @ Q.T, atol=1e-10, rtol=0)


def test_batch_equals_single_molecules():
    net = QM9Network(["U0", "mu", "gap", "r2"], lmax=1, mul=4, num_layers=2).double()
    pos, z, batch = molecules()
    together = net(pos, z, batch)
    for g in range(2):
        alone = net(pos[batch == g], z[batch == g])
        for t, v in alone.items():
            torch.testing.assert_close(together[t][g:g + 1], v, atol=1e-12, rtol=0)


def test_outputs_float64_and_statistics_stay_float64():
    net = QM9Network("U0", lmax=0, mul=4, num_layers=1)
    net.heads["U0"].set_statistics(reference=torch.full((10,), -37.123456789, dtype=torch.float64))
    net.float()
    assert net.heads["U0"].reference.dtype == torch.float64
    pos, z, batch = molecules(torch.float32)
    out = net(pos, z, batch)["U0"]
    assert out.dtype == torch.float64
    # the references add up in float64: 4 atoms * -37.123456789, to 1e-9
    x = net.atomic_outputs(pos, z, batch)
    expected = 4 * -37.123456789 + net.heads["U0"].atomic(x[:4, 0]).sum()
    assert abs(float((out[0] - expected).detach())) < 1e-9


def test_dipole_of_charges_is_origin_independent_and_neutral():
    head = DipoleHead(atomic_dipoles=False)
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    s = torch.tensor([[2.0], [1.0], [0.0]])  # not neutral: the head subtracts the mean
    z, batch = torch.tensor([8, 1, 1]), torch.zeros(3, dtype=torch.long)
    mu = head.vector(s, pos, z, batch, 1)
    torch.testing.assert_close(head.vector(s, pos + 5.0, z, batch, 1), mu)
    # charges (1, 0, -1) e: mu = 1 e*A along -y, in Debye
    torch.testing.assert_close(mu, torch.tensor([[0.0, -1 / 0.20819433622, 0.0]]))


def test_spatial_extent_is_positive_weighted_second_moment():
    head = SpatialExtentHead()
    pos = torch.tensor([[-1.0, 0, 0], [1.0, 0, 0]]) * 0.529177210903
    out = head(torch.zeros(2, 2), pos, torch.tensor([6, 6]), torch.zeros(2, dtype=torch.long), 1)
    torch.testing.assert_close(out.detach(), torch.tensor([12.0], dtype=torch.float64),
                               atol=1e-5, rtol=0)  # 6 electrons at 1 bohr, twice


def test_heads_of_targets():
    assert isinstance(make_head("U0"), ExtensiveHead)
    assert make_head("mu", vectors=False).irreps_in.dim == 1
    assert make_head("mu").irreps_in.dim == 4
    assert QM9Network("mu", lmax=0, mul=4, num_layers=1).irreps_out.dim == 1


def test_errors():
    with pytest.raises(ValueError, match="unknown QM9 target"):
        QM9Network("energy")
    with pytest.raises(ValueError, match="unknown QM9 target"):
        make_head("U00")
    net = QM9Network("U0", lmax=0, mul=4, num_layers=1)
    with pytest.raises(ValueError, match="atomic numbers"):
        net(torch.zeros(2, 3), torch.tensor([6, 17]))


def test_config_rebuilds():
    net = QM9Network(["U0", "homo"], lmax=1, mul=4, num_layers=1)
    again = QM9Network(**net.config)
    again.load_state_dict(net.state_dict())
    pos, z, batch = molecules(torch.float32)
    assert torch.equal(again(pos, z, batch)["homo"], net(pos, z, batch)["homo"])
