r"""Irreps <-> per-channel spherical functions, and the variances that normalise Gaunt layers.

Gaunt layers read ``C x (l_a p_a + l_b p_b + ...)`` features as :math:`C` spherical
functions (one per channel) whose harmonic coefficients are the irreps of each
channel; absent degrees are zero. That reading is equivariant only when each
degree-:math:`l` block has the parity of the spherical harmonics, :math:`(-1)^l`.

Second moments (for the ``"component"`` normalization, which, as everywhere in
equinet, makes :math:`E[z^2] = 1` per component; "variance" below means that
second moment). Let :math:`f` be a spherical
function whose coefficients of the degrees :math:`l \in S` are independent
:math:`N(0, 1)`. It is an isotropic Gaussian field with covariance
:math:`K_S(x \cdot y) = \sum_{l \in S} \frac{2l+1}{4\pi} P_l(x \cdot y)`. Since
:math:`\sum_m Y_{lm}(x) Y_{lm}(y) = \frac{2l+1}{4\pi} P_l(x \cdot y)`, a product
:math:`g` with correlation :math:`E[g(x) g(y)] = M(x \cdot y)` has coefficients of degree
:math:`l` of variance

.. math:: \mathrm{Var}\, g_{lm} = 2\pi \int_{-1}^{1} P_l(t)\, M(t)\, dt

(per component). For two independent fields :math:`M = K_{S_1} K_{S_2}`; for a power
:math:`f^k`, Mehler's formula gives
:math:`M = \sigma^{2k} \sum_j j!\, a_{kj}^2\, \rho^j` with :math:`\sigma^2 = K_S(1)`,
:math:`\rho = K_S / \sigma^2` and :math:`x^k = \sum_j a_{kj} \mathrm{He}_j(x)`,
:math:`a_{kj} = \frac{k!}{j!\, s!\, 2^s}` for :math:`k - j = 2s \geq 0`. :math:`M` is a
polynomial, so Gauss-Legendre quadrature makes the integral exact.
"""
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..o3 import Irreps

__all__ = ["SphericalChannels", "product_variance", "power_variance"]

_TP_HINT = "use the Clebsch-Gordan tensor products (equinet.tp.TensorProduct) for those"


class SphericalChannels:
    """Reads ``C x (degrees)`` irreps as ``C`` spherical functions of degree ``<= lmax``.

    Parameters
    ----------
    irreps : Irreps or str
        Every block must have parity :math:`(-1)^l`, each degree may appear once, and all
        blocks share one multiplicity (the number of channels).
    name : str
        Used in error messages.

    Examples
    --------
    >>> s = SphericalChannels("2x0e + 2x2e", "irreps_in")
    >>> s.channels, s.ls, s.lmax
    (2, (0, 2), 2)
    >>> x = torch.arange(12.0)
    >>> s.to_functions(x)
    tensor([[ 0.,  0.,  0.,  0.,  2.,  3.,  4.,  5.,  6.],
            [ 1.,  0.,  0.,  0.,  7.,  8.,  9., 10., 11.]])
    """

    def __init__(self, irreps, name: str):
        irreps = Irreps(irreps).remove_zero_multiplicities()
        if len(irreps) == 0:
            raise ValueError(f"{name} is empty")
        for mul, ir in irreps:
            if ir.p != (-1) ** ir.l:
                raise ValueError(
                    f"{name} contains {ir}, whose parity is not (-1)^l: Gaunt products act on "
                    f"spherical functions, whose degree-l coefficients have parity (-1)^l "
                    f"(0e, 1o, 2e, 3o, ...); pseudo-tensors and odd l1+l2+l3 paths (e.g. the cross "
                    f"product 1o x 1o -> 1e) are out of reach, {_TP_HINT}")
        ls = [ir.l for _, ir in irreps]
        if len(set(ls)) != len(ls):
            raise ValueError(f"{name}={irreps} repeats a degree; a Gaunt layer takes each degree "
                             "once (merge the blocks into one of larger multiplicity)")
        muls = {mul for mul, _ in irreps}
        if len(muls) != 1:
            raise ValueError(f"{name}={irreps} has blocks of different multiplicities; a Gaunt "
                             "layer reads a common multiplicity C as C channels of spherical "
                             "functions")
        self.irreps, self.name = irreps, name
        self.channels = muls.pop()
        self.ls = tuple(ls)
        self.sorted_ls = tuple(sorted(ls))
        self.lmax = max(ls)
        self.sh_dim = (self.lmax + 1) ** 2
        C, D = self.channels, self.sh_dim
        gather = torch.zeros(C, D, dtype=torch.long)  # absent degrees read entry 0, masked to 0
        present = torch.zeros(D, dtype=torch.bool)
        scatter = []
        offset = 0
        for _, ir in irreps:
            l = ir.l
            lm = torch.arange(l * l, (l + 1) ** 2)
            block = offset + torch.arange(C * (2 * l + 1)).reshape(C, 2 * l + 1)
            gather[:, lm] = block
            present[lm] = True
            scatter.append((torch.arange(C)[:, None] * D + lm).reshape(-1))
            offset += C * (2 * l + 1)
        self.gather_index = gather.reshape(-1)
        self.present = present
        self.scatter_index = torch.cat(scatter)
        # degree of each SH component, and the position of each present degree in `ls`
        self.degree_of_component = torch.tensor(
            [l for l in range(self.lmax + 1) for _ in range(2 * l + 1)])
        self.position = {l: i for i, l in enumerate(self.ls)}

    def expand_degrees(self, w: torch.Tensor) -> torch.Tensor:
        """Per-degree weights ``[..., C, len(ls)]`` -> ``[..., C, (lmax+1)^2]`` (0 if absent)."""
        pos = torch.tensor([self.position.get(l, 0) for l in self.degree_of_component.tolist()],
                           device=w.device)
        return w.index_select(-1, pos) * self.present.to(device=w.device, dtype=w.dtype)

    def to_functions(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., irreps.dim]`` -> ``[..., C, (lmax+1)^2]`` coefficients (zeros where absent)."""
        if x.shape[-1] != self.irreps.dim:
            raise ValueError(f"expected the last dimension of the input laid out by {self.name}="
                             f"{self.irreps} to be {self.irreps.dim}, got shape {tuple(x.shape)}")
        out = x.index_select(-1, self.gather_index.to(x.device))
        out = out.reshape(x.shape[:-1] + (self.channels, self.sh_dim))
        return out * self.present.to(device=x.device, dtype=x.dtype)

    def from_functions(self, z: torch.Tensor) -> torch.Tensor:
        """``[..., C, (L+1)^2]`` (``L >= lmax``) -> ``[..., irreps.dim]``."""
        z = z[..., : self.sh_dim]
        z = z.reshape(z.shape[:-2] + (z.shape[-2] * z.shape[-1],))
        return z.index_select(-1, self.scatter_index.to(z.device))


def _legendre_integrals(lmax: int, degree: int) -> Tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes t and weights times 2 pi P_l(t), exact up to degree ``degree``."""
    t, w = np.polynomial.legendre.leggauss(degree // 2 + 1)
    P = np.stack([np.polynomial.legendre.legval(t, np.eye(lmax + 1)[l]) for l in range(lmax + 1)])
    return t, 2 * math.pi * w * P  # [l, node]


def _covariance(ls: Sequence[int], t: np.ndarray) -> np.ndarray:
    legendre = np.polynomial.legendre.legval
    return sum((2 * l + 1) / (4 * math.pi) * legendre(t, np.eye(l + 1)[l]) for l in ls)


def product_variance(ls1: Sequence[int], ls2: Sequence[int], lmax_out: int) -> List[float]:
    """Per-component variance of each output degree of the Gaunt product of two unit fields.

    See the module docstring; equals :math:`\\sum_{l_1 l_2} \\|G^{l_1 l_2 l_3}\\|^2 / (2 l_3 + 1)`.

    >>> [round(v, 6) for v in product_variance([0], [1], 1)]  # (1/sqrt(4 pi))^2 at l = 1
    [0.0, 0.079577]
    """
    t, wP = _legendre_integrals(lmax_out, max(ls1) + max(ls2) + lmax_out)
    M = _covariance(ls1, t) * _covariance(ls2, t)
    return [float(v) for v in np.clip(wP @ M, 0, None)]


def power_variance(ls: Sequence[int], k: int, lmax_out: int) -> List[float]:
    """Per-component variance of each output degree of :math:`f^k` for a unit field ``f``.

    f = c / sqrt(4 pi), so the coefficient of f^2 is c^2 / sqrt(4 pi), of moment 3 / (4 pi):

    >>> [round(v, 6) for v in power_variance([0], 2, 0)]
    [0.238732]
    """
    t, wP = _legendre_integrals(lmax_out, k * max(ls) + lmax_out)
    K = _covariance(ls, t)
    sigma2 = sum((2 * l + 1) / (4 * math.pi) for l in ls)
    rho = K / sigma2
    M = np.zeros_like(t)
    for j in range(k % 2, k + 1, 2):
        s = (k - j) // 2
        a = math.factorial(k) / (math.factorial(j) * math.factorial(s) * 2 ** s)
        M += math.factorial(j) * a * a * rho ** j
    return [float(v) for v in np.clip(wP @ (sigma2 ** k * M), 0, None)]


def reachable_degrees(ls1: Sequence[int], ls2: Sequence[int]) -> Dict[int, bool]:
    """For each degree coupled by the triangle rule: whether an even-sum (Gaunt) path reaches it."""
    out: Dict[int, bool] = {}
    for l1 in ls1:
        for l2 in ls2:
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                out[l3] = out.get(l3, False) or (l1 + l2 + l3) % 2 == 0
    return out
