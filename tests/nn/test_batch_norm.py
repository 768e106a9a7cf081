"""BatchNorm against e3nn's nn.BatchNorm: outputs, gradients and running statistics."""
import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3

from equinet.nn import BatchNorm
from equinet.testing import assert_equivariant

IRREPS = "3x0e + 2x1o + 0o + 2x2e + 4x0e"
OPTIONS = [dict(), dict(reduce="max"), dict(instance=True), dict(normalization="norm"),
           dict(affine=False), dict(include_bias=False, momentum=0.3, eps=1e-3)]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: str(o) or "default")
def test_matches_e3nn_train_and_eval(float64_default, options):
    ours = BatchNorm(IRREPS, **options)
    ref = e3nn_nn.BatchNorm(e3nn_o3.Irreps(IRREPS), **options)
    with torch.no_grad():  # non-trivial affine parameters, the same in both
        for name, p in ours.named_parameters():
            p.normal_()
            getattr(ref, name).copy_(p)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    for _ in range(3):  # training steps update the running statistics
        x = 3 * torch.randn(6, 4, ours.irreps.dim) + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        torch.testing.assert_close(ya, yb, atol=1e-12, rtol=0)
        v = torch.randn_like(ya)
        (ga,) = torch.autograd.grad((ya * v).sum(), xa)
        (gb,) = torch.autograd.grad((yb * v).sum(), xb)
        torch.testing.assert_close(ga, gb, atol=1e-12, rtol=0)
    for name, buffer in ours.named_buffers():
        torch.testing.assert_close(buffer, getattr(ref, name), atol=1e-13, rtol=0)
    ours.eval()
    ref.eval()
    x = torch.randn(5, 2, ours.irreps.dim)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


def test_running_statistics_values():
    bn = BatchNorm("0e + 1o", momentum=0.5).double()
    x = torch.tensor([[1.0, 1, 0, 0], [3.0, 0, 2, 0]], dtype=torch.float64)
    bn(x)
    # scalar mean 2, variance of centred scalars 1; vector mean square per component (1 + 4)/6
    torch.testing.assert_close(bn.running_mean, torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(bn.running_var, torch.tensor([1.0, (1 + 5 / 6) / 2],
                                                            dtype=torch.float64))


@pytest.mark.parametrize("training", [True, False])
def test_equivariant(training):
    bn = BatchNorm(IRREPS)
    bn(torch.randn(8, bn.irreps.dim))  # move the running statistics away from the start
    bn.train(training)
    assert_equivariant(bn, IRREPS, IRREPS, batch=6)


def test_bad_input():
    with pytest.raises(ValueError, match="reduce"):
        BatchNorm("0e", reduce="sum")
    with pytest.raises(ValueError, match="normalization"):
        BatchNorm("0e", normalization="integral")
    with pytest.raises(ValueError, match="batch"):
        BatchNorm("2x0e")(torch.randn(2))


def test_dtypes(dtype):
    bn = BatchNorm(IRREPS).to(dtype)
    x = torch.randn(6, 2, bn.irreps.dim, dtype=dtype)
    assert bn(x).dtype == dtype and bn.running_var.dtype == dtype
    assert bn.eval()(x).dtype == dtype
