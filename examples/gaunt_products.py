"""Gaunt products: multiplying spherical functions in O(L^3), and the layers built on them.

Run: ``python examples/gaunt_products.py [--quick]``

1. A spherical function of degree at most L is given by its harmonic coefficients.
   `gaunt_product` returns the coefficients of the pointwise product of two such
   functions. The check here is the definition itself: evaluate both functions and their
   product on random directions.
2. The same product as a Clebsch-Gordan `FullTensorProduct` would compute it, path by
   path: only the paths with l1 + l2 + l3 even exist, weighted by the Gaunt
   coefficients. Both are timed.
3. `GauntTensorProduct` is the learnable layer, channel-wise with per-degree weights.
   It is equivariant under rotations and inversion. It refuses outputs that need an
   odd path (the cross product 1o x 1o -> 1e) and points to the CG products.
4. `GauntManyBody` forms MACE-style body orders, f^2 and f^3 of each channel's
   function, without returning to harmonics in between.
"""
import argparse
import time

import torch

from equinet import o3
from equinet.testing import assert_equivariant
from equinet.tp import FullTensorProduct, GauntManyBody, GauntTensorProduct, gaunt_product


def sh_irreps(L: int, mul: int = 1) -> str:
    """``mul x (0e + 1o + 2e + ...)``: the irreps of a spherical function of degree L."""
    return " + ".join(f"{mul}x{l}{'eo'[l % 2]}" for l in range(L + 1))


def pointwise_check(L: int, points: int = 500) -> float:
    """Largest error of the Gaunt product against f1(x) f2(x) on random directions."""
    x1 = torch.randn((L + 1) ** 2, dtype=torch.float64)
    x2 = torch.randn((L + 1) ** 2, dtype=torch.float64)
    product = gaunt_product(x1, x2, lmax_out=2 * L)  # degree 2L: nothing truncated
    directions = torch.randn(points, 3, dtype=torch.float64)
    Y = o3.spherical_harmonics(list(range(2 * L + 1)), directions, normalize=True,
                               normalization="integral")
    f1, f2 = Y[:, :x1.numel()] @ x1, Y[:, :x2.numel()] @ x2
    return float((Y @ product - f1 * f2).abs().max())


def gaunt_against_cg(L: int, rows: int) -> dict:
    """The Gaunt product against the CG full product over the same paths, and their times."""
    irreps = sh_irreps(L)
    keep = [f"{l}{'eo'[l % 2]}" for l in range(L + 1)]
    cg = FullTensorProduct(irreps, irreps, filter_ir_out=keep)
    x1, x2 = torch.randn(rows, cg.irreps_in1.dim), torch.randn(rows, cg.irreps_in2.dim)

    def best_ms(fn, repeats=5):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1e3 * min(times)

    with torch.no_grad():
        t_gaunt = best_ms(lambda: gaunt_product(x1, x2, lmax_out=L))
        t_cg = best_ms(lambda: cg(x1, x2))
    return {"gaunt_ms": t_gaunt, "cg_ms": t_cg, "cg_outputs": cg.irreps_out.dim,
            "gaunt_outputs": (L + 1) ** 2}


def layer_checks(mul: int, L: int) -> dict:
    """Equivariance of GauntTensorProduct and GauntManyBody (float64, with inversion)."""
    irreps = sh_irreps(L, mul)
    tp = GauntTensorProduct(irreps, irreps, irreps).double()
    errors = assert_equivariant(tp, [irreps, irreps], irreps)
    tp_error = max(float(e.detach().max()) for e in errors.values())
    many_body = GauntManyBody(irreps, irreps, correlation=3).double()
    errors = assert_equivariant(many_body, irreps, irreps)
    mb_error = max(float(e.detach().max()) for e in errors.values())
    try:
        GauntTensorProduct("1o", "1o", "1e")
        refusal = None
    except ValueError as error:
        refusal = str(error)
    return {"tp_error": tp_error, "many_body_error": mb_error, "odd_path_refusal": refusal}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for the tests)")
    args = parser.parse_args(argv)
    L_check, L_time, rows = (3, 4, 200) if args.quick else (6, 8, 2000)

    error = pointwise_check(L_check)
    print(f"1. product of two functions of degree {L_check}, against f1(x) f2(x) at 500 "
          f"directions: max error {error:.1e}")

    timing = gaunt_against_cg(L_time, rows)
    print(f"2. L = {L_time}, {rows} rows: Gaunt product {timing['gaunt_ms']:.1f} ms "
          f"({timing['gaunt_outputs']} outputs), CG full product {timing['cg_ms']:.1f} ms "
          f"({timing['cg_outputs']} outputs, every path separately): "
          f"{timing['cg_ms'] / timing['gaunt_ms']:.0f}x")

    checks = layer_checks(mul=4, L=2 if args.quick else 3)
    print(f"3. GauntTensorProduct equivariance error {checks['tp_error']:.1e}; "
          f"GauntManyBody (correlation 3) {checks['many_body_error']:.1e}")
    print(f"   1o x 1o -> 1e: ValueError: {checks['odd_path_refusal']}")
    return {"pointwise_error": error, **timing, **checks}


if __name__ == "__main__":
    main()
