"""Quick start: irreps, spherical harmonics, and an equivariance check.

Run: ``python examples/quickstart.py``
"""
import torch

from equinet import o3
from equinet.testing import assert_equivariant

irreps = o3.Irreps("16x0e + 8x1o + 4x2e")
print(f"irreps {irreps}: dim={irreps.dim}, lmax={irreps.lmax}, sorted={irreps.sort().irreps}")

x = torch.randn(1000, 3, dtype=torch.float64)
sh = o3.spherical_harmonics([0, 1, 2, 3], x, normalize=True, normalization="component")
print(f"spherical harmonics of 1000 vectors up to l=3: shape {tuple(sh.shape)}")

R = o3.rand_matrix(dtype=torch.float64)
D = o3.Irreps.spherical_harmonics(3).D_from_matrix(R)
rotated = o3.spherical_harmonics([0, 1, 2, 3], x @ R.T, True, normalization="component")
print(f"|Y(Rx) - D(R) Y(x)| = {(rotated - sh @ D.T).abs().max():.2e}")

errors = assert_equivariant(lambda v: o3.spherical_harmonics(3, v, True), "1o", "3o")
print(f"equivariance error with inversion: {max(float(e.max()) for e in errors.values()):.2e}")
