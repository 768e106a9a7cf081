"""ExponentialMovingAverage: the average, its warm-up, swapping in and out, state round trip."""
import pytest
import torch

from equinet.train import ExponentialMovingAverage


def test_average_values_and_restore():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ExponentialMovingAverage(model, decay=0.5)
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update()
    # warm-up decays min(0.5, (1+n)/(10+n)) = 2/11, 3/12, 4/13 -> then 0.5
    expected = 0.0
    for n, value in enumerate((1.0, 2.0, 3.0), start=1):
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    with ema.average_parameters():
        assert model.weight.item() == pytest.approx(expected, abs=1e-6)
    assert model.weight.item() == 3.0


def test_state_dict_round_trip():
    model = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model, decay=0.9)
    ema.update()
    other = ExponentialMovingAverage(torch.nn.Linear(2, 2), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.num_updates == 1
    for k in ema.shadow:
        assert torch.equal(other.shadow[k], ema.shadow[k])
    with pytest.raises(ValueError, match="does not match"):
        ExponentialMovingAverage(torch.nn.Linear(2, 2, bias=False)).load_state_dict(
            ema.state_dict())
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model, decay=1.0)
