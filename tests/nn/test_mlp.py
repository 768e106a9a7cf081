"""FullyConnectedNet against e3nn's with the same weights (its state dict loaded)."""
import pytest
import torch
from e3nn.nn import FullyConnectedNet as E3nnFullyConnectedNet

from equinet.nn import FullyConnectedNet

CASES = [
    dict(hs=[4, 16, 16, 3], act=torch.nn.functional.silu),
    dict(hs=[5, 7, 2], act=torch.tanh, variance_in=2.0, variance_out=0.5),
    dict(hs=[3, 8, 1], act=torch.relu, out_act=True),
    dict(hs=[6, 2], act=None, variance_out=3.0),
    dict(hs=[2, 9], act=torch.sigmoid, out_act=True, variance_in=0.3),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_e3nn(dtype, case):
    ref = E3nnFullyConnectedNet(**case).to(dtype)
    ours = FullyConnectedNet(**case).to(dtype)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 10, case["hs"][0], dtype=dtype, requires_grad=True)
    y_ours, y_ref = ours(x), ref(x)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(y_ours, y_ref, **tol)
    (g1,) = torch.autograd.grad(y_ours.pow(2).sum(), x)
    (g2,) = torch.autograd.grad(y_ref.pow(2).sum(), x)
    torch.testing.assert_close(g1, g2, **tol)
    assert repr(ours) == repr(ref)


def test_variance_preserved_at_init():
    torch.manual_seed(1)
    net = FullyConnectedNet([64, 256, 256, 64], torch.nn.functional.silu).double()
    with torch.no_grad():
        y = net(torch.randn(4000, 64, dtype=torch.float64))
    assert 0.7 < y.pow(2).mean().item() < 1.3
    scaled = FullyConnectedNet([64, 256, 64], torch.tanh, variance_in=4.0,
                               variance_out=9.0).double()
    with torch.no_grad():
        y = scaled(2 * torch.randn(4000, 64, dtype=torch.float64))
    assert 6.0 < y.pow(2).mean().item() < 12.0


def test_double_backward():
    net = FullyConnectedNet([3, 5, 2], torch.nn.functional.silu).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(net, (x,))


def test_bad_input():
    with pytest.raises(ValueError, match="hs"):
        FullyConnectedNet([4])
    with pytest.raises(ValueError, match="hs"):
        FullyConnectedNet([4, 0, 2])
    with pytest.raises(ValueError, match="variance"):
        FullyConnectedNet([4, 2], variance_in=0)
    with pytest.raises(ValueError, match="last dimension"):
        FullyConnectedNet([4, 2])(torch.randn(3, 5))
