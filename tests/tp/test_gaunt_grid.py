"""The folded Gauss-Legendre grid of ``gaunt_product(method="grid")``."""
import math

import pytest
import torch

from equinet.tp.gaunt_grid import SphereGridPlan


@pytest.mark.parametrize("shape", [(), (0,), (2, 3)])
def test_batch_shapes_and_products(shape):
    # leading shapes survive the round trip; product and power are the pointwise ones
    L = 3
    plan = SphereGridPlan(3 * L, 2 * L, L, torch.float64, "cpu")
    x, y = (torch.randn(shape + ((L + 1) ** 2,), dtype=torch.float64) for _ in range(2))
    f, g = plan.synthesis(x), plan.synthesis(y)
    assert f.shape == (plan.n_theta, plan.n_phi) + shape
    torch.testing.assert_close(plan.product(x, y), plan.analysis(f * g), atol=1e-12, rtol=0)
    torch.testing.assert_close(plan.product(x, x), plan.analysis(f * f), atol=1e-12, rtol=0)
    torch.testing.assert_close(plan.power(x, 3), plan.analysis(f * f * f), atol=1e-12, rtol=0)
    with torch.no_grad():  # the in-place variants on scratch buffers
        torch.testing.assert_close(plan.product(x, y), plan.analysis(f * g), atol=1e-12, rtol=0)
        torch.testing.assert_close(plan.product(x, x), plan.analysis(f * f), atol=1e-12, rtol=0)


def test_folded_halves_are_the_values_a_half_turn_apart():
    # e + o at phi_i and e - o at phi_i + pi, against the unfolded values
    L = 4
    plan = SphereGridPlan(2 * L, L, L, torch.float64, "cpu")
    x = torch.randn(5, (L + 1) ** 2, dtype=torch.float64)
    e, o = plan.sample(x)
    f = plan.synthesis(x)
    h = plan.n_phi // 2
    assert plan.n_phi % 2 == 0 and e.shape == (plan.n_theta, h, 5)
    # the values themselves, from the definition Y_lm = Theta_l|m| S_m, at phi and phi + pi
    phi = torch.arange(plan.n_phi, dtype=torch.float64) * 2 * math.pi / plan.n_phi
    assert torch.allclose(phi[h:], phi[:h] + math.pi)
    torch.testing.assert_close(f[:, :h], e + o, atol=1e-12, rtol=0)
    torch.testing.assert_close(f[:, h:], e - o, atol=1e-12, rtol=0)


@pytest.mark.parametrize("degree,lmax_out", [(0, 0), (1, 0), (2, 3), (5, 2), (7, 7)])
def test_every_size_is_exact(degree, lmax_out):
    # odd and even degrees (pairing of the theta columns), L = 0 (no odd part)
    L1 = degree // 2
    L2 = degree - L1
    plan = SphereGridPlan(degree, lmax_out, max(L1, L2), torch.float64, "cpu")
    x1 = torch.randn(3, (L1 + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn(3, (L2 + 1) ** 2, dtype=torch.float64)
    from equinet.tp import gaunt_product

    torch.testing.assert_close(plan.product(x1, x2)[..., :(lmax_out + 1) ** 2],
                               gaunt_product(x1, x2, lmax_out, method="dense"), atol=1e-12, rtol=0)


def test_results_are_not_scratch():
    # without autograd the intermediates are reused buffers: a result must survive the next call
    L = 3
    plan = SphereGridPlan(2 * L, L, L, torch.float32, "cpu")
    for rows in [(7,), (1,), ()]:
        x, y, z = (torch.randn(rows + ((L + 1) ** 2,)) for _ in range(3))
        with torch.no_grad():
            first = plan.product(x, y)
            kept = first.clone()
            plan.product(y, z)
            plan.product(z, z)
        assert torch.equal(first, kept)


def test_gradients_with_and_without_recording_agree():
    L = 2
    plan = SphereGridPlan(2 * L, L, L, torch.float64, "cpu")
    x = torch.randn(4, (L + 1) ** 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, (L + 1) ** 2, dtype=torch.float64)
    out = plan.product(x, y)
    with torch.no_grad():
        torch.testing.assert_close(plan.product(x, y), out.detach(), atol=1e-13, rtol=0)
    assert torch.autograd.gradcheck(lambda a: plan.product(a, y), (x,))
    assert torch.autograd.gradgradcheck(lambda a: plan.product(a, a), (x,))


def test_inference_mode_then_no_grad():
    # the reused buffers must stay writable whatever mode first created them
    from equinet.tp import gaunt_product

    x = torch.randn(6, 16, dtype=torch.float64)
    from equinet._scratch import clear_scratch

    clear_scratch()  # so that the first call below makes the buffers
    with torch.inference_mode():
        first = gaunt_product(x, x, 3, method="grid")
    with torch.no_grad():
        again = gaunt_product(x, x, 3, method="grid")
    torch.testing.assert_close(again, first.clone(), atol=1e-12, rtol=0)
    torch.testing.assert_close(again, gaunt_product(x, x, 3, method="dense"), atol=1e-12, rtol=0)
