"""GauntManyBody: pointwise-product oracle, methods agree, equivariance, normalization, errors."""
import pytest
import torch

from equinet.testing import assert_equivariant
from equinet.tp import GauntManyBody

e3nn_o3 = pytest.importorskip("e3nn.o3")


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


def test_equals_sum_of_pointwise_products():
    # normalization="none", unit output weights and lmax_out = correlation * lmax: nothing is
    # truncated, so the output function is sum_nu prod_{k <= nu} y_k pointwise.
    irreps_out = "2x0e + 2x1o + 2x2e + 2x3o + 2x4e + 2x5o + 2x6e"
    mb = GauntManyBody("2x0e + 2x1o + 2x2e", irreps_out, 3, normalization="none")
    mb = _randomize(mb).double()
    with torch.no_grad():
        mb.weight_out.fill_(1.0)
    x = torch.randn(3, mb.irreps_in.dim, dtype=torch.float64)
    points = torch.randn(30, 3, dtype=torch.float64)
    Y = e3nn_o3.spherical_harmonics(list(range(7)), points, normalize=True,
                                    normalization="integral")
    values = mb.out.to_functions(mb(x)) @ Y.T  # [batch, channel, point]
    y = mb.inp.to_functions(x).unsqueeze(0) * mb.inp.expand_degrees(mb.weight_in).unsqueeze(1)
    factors = y @ Y[:, :9].T  # [nu, batch, channel, point]
    expected = factors[0] + factors[0] * factors[1] + factors[0] * factors[1] * factors[2]
    torch.testing.assert_close(values, expected, atol=1e-11, rtol=0)


@pytest.mark.parametrize("method", ["fft", "grid", "auto"])
def test_methods_match_dense(method, dtype):
    torch.manual_seed(1)
    mb = _randomize(GauntManyBody("3x0e + 3x1o + 3x2e", "3x0e + 3x1o + 3x3o", 4, method=method))
    dense = GauntManyBody("3x0e + 3x1o + 3x2e", "3x0e + 3x1o + 3x3o", 4, method="dense")
    dense.load_state_dict(mb.state_dict())
    x = torch.randn(2, 5, mb.irreps_in.dim)
    expected = dense.double()(x.double())
    out = mb.to(dtype)(x.to(dtype))
    assert out.shape == (2, 5, mb.irreps_out.dim) and out.dtype == dtype
    tol = dict(atol=1e-3, rtol=1e-3) if dtype == torch.float32 else dict(atol=1e-10, rtol=0)
    torch.testing.assert_close(out.double(), expected, **tol)


def test_equivariant():
    mb = _randomize(GauntManyBody("2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e + 2x3o", 3))
    assert_equivariant(mb, "2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e + 2x3o", ntrials=2)


def test_component_normalization():
    mb = GauntManyBody("256x0e + 256x1o + 256x2e", "256x0e + 256x1o + 256x2e", 3)
    z = mb(torch.randn(100, mb.irreps_in.dim))
    for s in mb.irreps_out.slices():
        assert z[:, s].pow(2).mean().item() == pytest.approx(1.0, rel=0.3)


@pytest.mark.parametrize("method", ["auto", "grid", "fft"])
def test_gradcheck(method):
    mb = _randomize(GauntManyBody("0e + 1o", "0e + 1o + 2e", 2, method=method)).double()
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mb, (x,))
    assert torch.autograd.gradgradcheck(mb, (x,))


def test_errors():
    with pytest.raises(ValueError, match="degree 1"):
        GauntManyBody("2x0e + 2x2e", "2x0e + 2x1o", 3)  # even degrees never make odd ones
    with pytest.raises(ValueError, match="correlation"):
        GauntManyBody("0e", "0e", 0)
    with pytest.raises(ValueError, match="parity"):
        GauntManyBody("0e + 1e", "0e", 2)
    with pytest.raises(ValueError, match="multiplicity"):
        GauntManyBody("2x0e", "3x0e", 2)


def test_batch_chunking_is_invisible(monkeypatch):
    import equinet.tp.gaunt as module
    mb = _randomize(GauntManyBody("3x0e + 3x1o + 3x2e", "3x0e + 3x1o", 3, method="grid")).double()
    x = torch.randn(7, 4, mb.irreps_in.dim, dtype=torch.float64)
    whole = mb(x)
    monkeypatch.setattr(module, "_SAMPLE_CHUNK_ELEMENTS", 300)
    torch.testing.assert_close(mb(x), whole, atol=1e-13, rtol=0)
