"""gaunt_product / gaunt_power: every method against the dense Gaunt sum and pointwise products."""
import math

import pytest
import torch

from equinet.o3 import gaunt
from equinet.tp import gaunt_power, gaunt_product
from equinet.tp.gaunt import auto_method

e3nn_o3 = pytest.importorskip("e3nn.o3")

FAST = ["fft", "grid", "auto"]
TOL = {torch.float32: dict(atol=2e-4, rtol=1e-4), torch.float64: dict(atol=1e-11, rtol=0)}


def _sh(lmax, points):
    return e3nn_o3.spherical_harmonics(list(range(lmax + 1)), points, normalize=True,
                                       normalization="integral")


def _explicit_gaunt_sum(x1, x2, lmax_out):
    """The defining formula, path by path with equinet.o3.gaunt (itself tested against sympy)."""
    L1, L2 = math.isqrt(x1.shape[-1]) - 1, math.isqrt(x2.shape[-1]) - 1
    lead = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    out = x1.new_zeros(lead + ((lmax_out + 1) ** 2,))
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(lmax_out + 1):
                G = gaunt(l1, l2, l3, dtype=x1.dtype)
                a, b = x1[..., l1 * l1:(l1 + 1) ** 2], x2[..., l2 * l2:(l2 + 1) ** 2]
                out[..., l3 * l3:(l3 + 1) ** 2] += torch.einsum("...i,...j,ijk->...k", a, b, G)
    return out


@pytest.mark.parametrize("L1, L2, lmax_out", [(0, 0, 0), (1, 1, 2), (2, 3, 4), (3, 2, 1), (4, 4, 4),
                                              (1, 5, 8), (5, 0, 3), (6, 6, 6)])
def test_dense_is_the_gaunt_sum(L1, L2, lmax_out):
    x1 = torch.randn(4, (L1 + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(4, (L2 + 1) ** 2, dtype=torch.float64)
    torch.testing.assert_close(gaunt_product(x1, x2, lmax_out, method="dense"),
                               _explicit_gaunt_sum(x1, x2, lmax_out), atol=1e-13, rtol=0)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("L1, L2, lmax_out, shape1, shape2", [
    (0, 0, 0, (3,), (3,)),
    (1, 2, 3, (2, 3), (3,)),  # broadcast
    (3, 3, 2, (4, 1), (1, 5)),
    (2, 4, 9, (3,), (1,)),  # lmax_out > L1 + L2: zero padding
    (5, 3, 5, (2, 2, 2), (2, 1, 2)),
    (7, 7, 7, (3,), (3,)),
    (4, 1, 0, (), (6,)),
])
def test_methods_match_dense(method, L1, L2, lmax_out, shape1, shape2, dtype):
    x1 = torch.randn(shape1 + ((L1 + 1) ** 2,), dtype=dtype)
    x2 = torch.randn(shape2 + ((L2 + 1) ** 2,), dtype=dtype)
    out = gaunt_product(x1, x2, lmax_out, method=method)
    expected = gaunt_product(x1.double(), x2.double(), lmax_out, method="dense")
    assert out.shape == torch.broadcast_shapes(shape1, shape2) + ((lmax_out + 1) ** 2,)
    assert out.dtype == dtype
    torch.testing.assert_close(out, expected.to(dtype), **TOL[dtype])


@pytest.mark.parametrize("method", ["fft", "grid", "dense"])
def test_untruncated_product_equals_pointwise_product(method):
    L1, L2 = 4, 3
    x1 = torch.randn(2, (L1 + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(2, (L2 + 1) ** 2, dtype=torch.float64)
    z = gaunt_product(x1, x2, L1 + L2, method=method)
    points = torch.randn(50, 3, dtype=torch.float64)
    Y = _sh(L1 + L2, points)
    f1, f2 = x1 @ Y[:, : (L1 + 1) ** 2].T, x2 @ Y[:, : (L2 + 1) ** 2].T
    torch.testing.assert_close(z @ Y.T, f1 * f2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", ["fft", "grid", "dense"])
def test_power_equals_pointwise_power(method):
    L, nu = 3, 3
    x = torch.randn(2, (L + 1) ** 2, dtype=torch.float64)
    z = gaunt_power(x, nu, nu * L, method=method)
    points = torch.randn(40, 3, dtype=torch.float64)
    Y = _sh(nu * L, points)
    torch.testing.assert_close(z @ Y.T, (x @ Y[:, : (L + 1) ** 2].T) ** nu, atol=1e-11, rtol=0)


@pytest.mark.parametrize("method", FAST)
def test_power_matches_dense(method, dtype):
    x = torch.randn(5, 3, 9, dtype=dtype)
    expected = gaunt_power(x.double(), 4, 5, method="dense")
    torch.testing.assert_close(gaunt_power(x, 4, 5, method=method), expected.to(dtype),
                               **TOL[dtype])
    torch.testing.assert_close(gaunt_power(x, 1, 3, method=method),
                               torch.nn.functional.pad(x, (0, 7)))


@pytest.mark.parametrize("method", ["fft", "grid", "dense"])
def test_gradcheck_and_gradgradcheck(method):
    x1 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(1, 9, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b: gaunt_product(a, b, 2, method=method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x1, x2))
    assert torch.autograd.gradgradcheck(fn, (x1, x2))
    fn = lambda a: gaunt_power(a, 3, 2, method=method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x1,))
    assert torch.autograd.gradgradcheck(fn, (x1,))


def test_auto_method_names_a_method():
    for sizes in [(0, 0, 0), (1, 1, 1), (2, 2, 2), (8, 8, 8), (16, 1, 3)]:
        assert auto_method(*sizes) in ("fft", "grid", "dense")


def test_errors():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"\(L\+1\)\^2"):
        gaunt_product(torch.randn(3, 5), x, 1)
    with pytest.raises(ValueError, match="method"):
        gaunt_product(x, x, 1, method="cg")
    with pytest.raises(TypeError, match="dtype"):
        gaunt_product(x, x.double(), 1)
    with pytest.raises(TypeError, match="floating"):
        gaunt_product(x.long(), x.long(), 1)
    with pytest.raises(ValueError, match="broadcast"):
        gaunt_product(x, torch.randn(2, 4), 1)
    with pytest.raises(ValueError, match="lmax_out"):
        gaunt_product(x, x, -1)
    with pytest.raises(TypeError, match="lmax_out"):
        gaunt_product(x, x, 1.0)
    with pytest.raises(ValueError, match="nu"):
        gaunt_power(x, 0, 1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        gaunt_product([1.0], x, 1)


@pytest.mark.parametrize("method", ["fft", "grid"])
def test_batch_chunking_is_invisible(method, monkeypatch):
    # Large batches are processed in cache-sized slices; force tiny slices on small inputs.
    import equinet.tp.gaunt as module
    monkeypatch.setattr(module, "_SAMPLE_CHUNK_ELEMENTS", 300)
    monkeypatch.setattr(module, "_GRID_CHUNK_ELEMENTS", 300)
    for shape1, shape2 in [((7,), (7,)), ((5, 3), (5, 1)), ((1, 6), (4, 6)), ((2, 3, 4), (3, 1))]:
        x1 = torch.randn(shape1 + (9,), dtype=torch.float64)
        x2 = torch.randn(shape2 + (16,), dtype=torch.float64)
        torch.testing.assert_close(gaunt_product(x1, x2, 4, method=method),
                                   gaunt_product(x1, x2, 4, method="dense"), atol=1e-12, rtol=0)
    x = torch.randn(6, 5, 9, dtype=torch.float64)
    torch.testing.assert_close(gaunt_power(x, 3, 4, method=method),
                               gaunt_power(x, 3, 4, method="dense"), atol=1e-11, rtol=0)
    # factors of one shape (sampled together by the grid), and a square
    y = torch.randn(6, 5, 9, dtype=torch.float64)
    for a, b in [(x, y), (x, x)]:
        torch.testing.assert_close(gaunt_product(a, b, 4, method=method),
                                   gaunt_product(a, b, 4, method="dense"), atol=1e-12, rtol=0)
    # recording gradients: slices are concatenated, not written in place
    a = x.clone().requires_grad_()
    grads = [torch.autograd.grad(gaunt_product(a, y, 4, method=m).square().sum(), a)[0]
             for m in (method, "dense")]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-11, rtol=0)


@pytest.mark.parametrize("method", ["fft", "grid", "dense"])
def test_empty_batch(method):
    assert gaunt_product(torch.randn(0, 9), torch.randn(0, 16), 3, method=method).shape == (0, 16)
    assert gaunt_power(torch.randn(2, 0, 4), 2, 2, method=method).shape == (2, 0, 9)
