r"""The Gauss-Legendre x equispaced grid behind ``method="grid"`` of the Gaunt products.

With :math:`Y_{lm}(\theta, \phi) = \Theta_{l|m|}(\theta) S_m(\phi)` (`equinet.tp.gaunt_fourier`),
a function of degree at most :math:`L` is sampled in two matrix products,

.. math::

    g_{ks}(\theta_j) = \sum_{l=k}^{L} \Theta_{lk}(\theta_j)\, x_{l, \pm k}, \qquad
    f(\theta_j, \phi_i) = \sum_{k, s} S_{\pm k}(\phi_i)\, g_{ks}(\theta_j),

and a product :math:`p = f_1 f_2` is projected back exactly,

.. math::

    c_{l, \pm k} = \sum_j w_j \Theta_{lk}(\theta_j)\, \frac{2\pi}{n_\phi}
    \sum_i S_{\pm k}(\phi_i)\, p(\theta_j, \phi_i),

because after the exact :math:`\phi` sum the integrand is a polynomial in
:math:`\cos\theta` of degree at most :math:`L_1 + L_2 + L_{out}`, which the
Gauss-Legendre nodes :math:`\cos\theta_j` with weights :math:`w_j` integrate exactly.

Half turns are folded. :math:`n_\phi` is even, so :math:`\phi_i + \pi` is a node with
:math:`\phi_i`, and :math:`S_{\pm k}(\phi + \pi) = (-1)^k S_{\pm k}(\phi)`: on the first half
of the nodes, the even-:math:`k` part :math:`e` and the odd-:math:`k` part :math:`o` of
:math:`f` give :math:`f(\phi_i) = e + o` and :math:`f(\phi_i + \pi) = e - o`. Products stay
folded,

.. math::

    (e_1, o_1) (e_2, o_2) = (e_1 e_2 + o_1 o_2,\; e_1 o_2 + o_1 e_2),

(the even and odd parts of :math:`f_1 f_2`, up to a factor 2 taken into the projection),
and the projection onto even (odd) :math:`k` reads only the even (odd) part. The
:math:`\phi` matrix products, two thirds of the arithmetic, are halved; the four
multiplications per pair of nodes cost what two did unfolded.

The sizes are small (:math:`K \approx L`) and the batch is large, so memory traffic
costs as much as arithmetic; the layout is chosen for that:

- Samples are laid out ``[n_theta, n_phi / 2, batch]`` per part: the :math:`\phi` steps
  are one batched product over the :math:`\theta` nodes.
- The :math:`\theta` step of the synthesis runs on columns that pair two values of
  :math:`k` of the same parity (:math:`k` with :math:`L - k` or :math:`L + 1 - k`), so that
  the zero triangle :math:`l < k` is barely stored; the input moves batch-last in the
  row gather that builds those columns.
- Without autograd, the intermediates live in per-thread scratch buffers reused across
  calls (`equinet._scratch`): fresh multi-MB buffers would be page-faulted on every call.
- `SphereGridPlan.product` samples both factors in the same matrix products when
  they have the same shape, and multiplies in place when no gradient is recorded.
"""
import math
from typing import Dict, List, Tuple

import numpy as np
import torch

from .._scratch import scratch
from .gaunt_fourier import _lmax_of, _theta_values

__all__ = ["SphereGridPlan"]

Folded = Tuple[torch.Tensor, torch.Tensor]


def _bmm(a: torch.Tensor, b: torch.Tensor, out) -> torch.Tensor:
    return torch.bmm(a, b) if out is None else torch.bmm(a, b, out=out)


def _needs_graph(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _pair_columns(L: int) -> List[List[List[Tuple[int, int]]]]:
    """Per parity of ``k``: items of one or two ``(s, k)`` (``s = 1`` for ``m = -k``) whose
    coefficients ``l = k..L`` share a column; smallest ``k`` with largest."""
    groups = []
    for parity in (0, 1):
        items = []
        for s in (0, 1):
            ks = [k for k in range(s, L + 1) if k % 2 == parity]
            while ks:
                first = ks.pop(0)
                items.append([(s, first)] + ([(s, ks.pop())] if ks else []))
        groups.append(items)
    return groups


class SphereGridPlan:
    r"""Exact product quadrature: Gauss-Legendre in :math:`\cos\theta` x equispaced :math:`\phi`.

    Built for a product of total degree ``degree`` (sum of the factors' degrees)
    projected onto degrees ``0..lmax_out``: ``ceil((degree + lmax_out + 1) / 2)``
    nodes in :math:`\theta`, ``degree + lmax_out + 1`` rounded up to even in :math:`\phi`
    (module docstring). `synthesis` and `analysis` use sample values laid out
    ``[n_theta, n_phi, *batch]``; `product` and `power` stay folded in between.

    >>> plan = SphereGridPlan(4, 2, 2, torch.float64, "cpu")
    >>> plan.n_theta, plan.n_phi
    (4, 8)
    >>> x = torch.randn(3, 9, dtype=torch.float64)
    >>> torch.allclose(plan.analysis(plan.synthesis(x)), x)  # exact at degree 2 + 2
    True
    """

    #: Where the batch dimensions start in the sample layout.
    batch_dim = 2

    def __init__(self, degree: int, lmax_out: int, factor_lmax: int, dtype: torch.dtype, device):
        del factor_lmax  # samples are exact values whatever the factors' degrees
        self.degree, self.lmax_out = degree, lmax_out
        self.dtype, self.device = dtype, torch.device(device)
        n_theta = (degree + lmax_out + 2) // 2
        n_phi = degree + lmax_out + 1
        n_phi += n_phi % 2
        self.n_theta, self.n_phi, self.half = n_theta, n_phi, n_phi // 2
        self.lmax = max(degree, lmax_out)
        nodes, weights = np.polynomial.legendre.leggauss(n_theta)
        self._values = _theta_values(self.lmax, torch.from_numpy(np.arccos(nodes)))  # [k, l, j]
        phi = torch.arange(self.half, dtype=torch.float64) * (2 * math.pi / n_phi)
        kphi = phi[:, None] * torch.arange(self.lmax + 1, dtype=torch.float64)
        norm = torch.full((self.lmax + 1,), math.sqrt(2), dtype=torch.float64)
        norm[0] = 1.0
        self._azimuth = torch.stack([kphi.cos() * norm, kphi.sin() * norm])  # [s, i, k], i < half
        lo = lmax_out + 1
        # projection, per parity of k: the (s, k) it yields, phi [j, (s, k), i],
        # theta [(s, k), l, j]
        slots = [[(s, k) for s in (0, 1) for k in range(s, lo) if k % 2 == parity]
                 for parity in (0, 1)]
        w = torch.from_numpy(weights)
        self._analysis = []
        for part in slots:
            phi_out = torch.stack([self._azimuth[s, :, k] for s, k in part]) if part else \
                torch.zeros(0, self.half, dtype=torch.float64)
            # 2: the folded parts are half the sums / differences over phi and phi + pi
            phi_out = (phi_out * (4 * math.pi / n_phi)).expand(n_theta, -1, -1)
            theta_out = torch.stack([self._values[k, :lo] * w for _, k in part]) if part else \
                torch.zeros(0, lo, n_theta, dtype=torch.float64)
            self._analysis.append((self._on(phi_out), self._on(theta_out)))
        position = {sk: n for n, sk in enumerate(slots[0] + slots[1])}
        rows = [position[(int(m < 0), abs(m))] * lo + l
                for l in range(lo) for m in range(-l, l + 1)]
        self._rows = torch.tensor(rows, device=self.device)
        self._synthesis: Dict[int, tuple] = {}

    def _on(self, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous().to(dtype=self.dtype, device=self.device)

    def _synthesis_tables(self, L: int):
        r"""Gather index, theta matrices ``[item, (half, j), column]``, phi matrices
        ``[j, i, slot]`` of the even and the odd part, and the number of even slots.

        :math:`\Theta_{lk}` vanishes for :math:`l < k`: an item's column holds degrees
        ``k..L`` of each of its ``(s, k)`` one after the other, and its theta matrix is
        block diagonal (the halves are the slots ``2 item + half``).
        """
        if L not in self._synthesis:
            groups = _pair_columns(L)
            items = groups[0] + groups[1]
            width = max(sum(L + 1 - k for _, k in item) for item in items)
            index = torch.zeros(len(items), width, dtype=torch.long)
            theta = torch.zeros(len(items), 2, self.n_theta, width, dtype=torch.float64)
            phi = torch.zeros(self.half, len(items), 2, dtype=torch.float64)
            for n, item in enumerate(items):
                start = 0
                for half, (s, k) in enumerate(item):
                    rows = slice(start, start + L + 1 - k)
                    degrees = torch.arange(k, L + 1)
                    index[n, rows] = degrees * degrees + degrees + (k if s == 0 else -k)
                    theta[n, half, :, rows] = self._values[k, k:L + 1].T
                    phi[:, n, half] = self._azimuth[s, :, k]
                    start += L + 1 - k
            even = 2 * len(groups[0])
            phi = phi.reshape(self.half, 2 * len(items)).expand(self.n_theta, -1, -1)
            self._synthesis[L] = (index.reshape(-1).to(self.device),
                                  self._on(theta.reshape(len(items), 2 * self.n_theta, width)),
                                  self._on(phi[..., :even]), self._on(phi[..., even:]), even)
        return self._synthesis[L]

    def _scratch(self, tag: str, shapes, use: bool):
        """Reused buffers for the intermediates when ``use`` (no autograd), else ``None``s."""
        return scratch("gaunt_grid_" + tag, shapes, self.dtype, self.device) if use else \
            [None] * len(shapes)

    def sample(self, x: torch.Tensor, reuse: bool = False, tag: str = "sample") -> Folded:
        """``x [..., (L+1)^2]`` -> folded values ``(e, o)``, each ``[n_theta, n_phi / 2, N]``
        with ``N`` the number of rows of ``x``.

        ``reuse``: the intermediates and the result live in this thread's scratch buffers
        named ``tag`` (`equinet._scratch`), valid until the next call with that tag; no autograd.
        """
        L = _lmax_of(x.shape[-1], "x")
        index, theta, phi_even, phi_odd, even = self._synthesis_tables(L)
        x = x.reshape(-1, (L + 1) ** 2)
        B = x.shape[0]
        items, width = theta.shape[0], theta.shape[2]
        G, Y, e, o = self._scratch(tag, [
            (items * width, B), (items, 2 * self.n_theta, B),
            (self.n_theta, self.half, B), (self.n_theta, self.half, B)], reuse)
        # batch-last: a row gather from the transposed view (faster here than a transposing copy
        # followed by a gather, as the chunk of x is read from memory once either way)
        G = x.t().index_select(0, index) if G is None else \
            torch.index_select(x.t(), 0, index, out=G)
        Y = _bmm(theta, G.view(items, width, B), Y).view(2 * items, self.n_theta, B)  # [slot, j, B]
        return (_bmm(phi_even, Y[:even].transpose(0, 1), e),
                _bmm(phi_odd, Y[even:].transpose(0, 1), o))

    def project(self, folded: Folded, lead: Tuple[int, ...], reuse: bool = False) -> torch.Tensor:
        """Folded values ``(e, o)`` of ``N`` rows -> coefficients ``[*lead, (lmax_out+1)^2]``.

        ``reuse``: the intermediates live in scratch buffers (`sample`); the result is new.
        """
        lo = self.lmax_out + 1
        N = folded[0].shape[-1]
        (phi_even, theta_even), (phi_odd, theta_odd) = self._analysis
        n_even, n_odd = theta_even.shape[0], theta_odd.shape[0]
        c_even, c_odd, c, rows = self._scratch("project", [
            (self.n_theta, n_even, N), (self.n_theta, n_odd, N), (n_even + n_odd, lo, N),
            (lo * lo, N)], reuse)
        c_even = _bmm(phi_even, folded[0], c_even)  # [j, (s, k), N]
        c_odd = _bmm(phi_odd, folded[1], c_odd)
        if c is None:
            c = torch.cat([torch.bmm(theta_even, c_even.transpose(0, 1)),
                           torch.bmm(theta_odd, c_odd.transpose(0, 1))])  # [(s, k), l, N]
        else:
            torch.bmm(theta_even, c_even.transpose(0, 1), out=c[:n_even])
            torch.bmm(theta_odd, c_odd.transpose(0, 1), out=c[n_even:])
        c = c.view((n_even + n_odd) * lo, N)
        c = c.index_select(0, self._rows) if rows is None else \
            torch.index_select(c, 0, self._rows, out=rows)
        c = c.view(lo, lo, N).permute(2, 0, 1)
        # a new tensor even where the permutation is already contiguous (N = 1): not scratch
        c = c.clone(memory_format=torch.contiguous_format) if reuse else c.contiguous()
        return c.view(tuple(lead) + (lo * lo,))

    def multiply(self, a: Folded, b: Folded, inplace: bool = False) -> Folded:
        """The folded values of a pointwise product; ``inplace`` overwrites ``a``'s even part
        and takes the odd part from scratch (no autograd)."""
        (e1, o1), (e2, o2) = a, b
        if not inplace:
            if a is b:
                return e1 * e1 + o1 * o1, 2 * e1 * o1
            return e1 * e2 + o1 * o2, e1 * o2 + o1 * e2
        (odd,) = self._scratch("odd", [e1.shape], True)
        if a is b:
            torch.mul(e1, o1, out=odd).mul_(2)
            return e1.square_().addcmul_(o1, o1), odd
        torch.mul(e1, o2, out=odd).addcmul_(o1, e2)
        return e1.mul_(e2).addcmul_(o1, o2), odd

    def synthesis(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., (L+1)^2]`` -> values ``[n_theta, n_phi, ...]`` (``L <= degree``)."""
        e, o = self.sample(x)
        return torch.cat([e + o, e - o], 1).view((self.n_theta, self.n_phi) + x.shape[:-1])

    def analysis(self, f: torch.Tensor) -> torch.Tensor:
        """Values ``[n_theta, n_phi, ...]`` -> coefficients ``[..., (lmax_out+1)^2]``."""
        lead = f.shape[2:]
        f = f.reshape(self.n_theta, self.n_phi, -1)
        top, bottom = f[:, :self.half], f[:, self.half:]
        return self.project(((top + bottom) * 0.5, (top - bottom) * 0.5), lead)

    def product(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``analysis(synthesis(x1) * synthesis(x2))``; leading dimensions of equal rank
        broadcast. Without autograd the intermediates are reused scratch, the products in place."""
        lead = x1.shape[:-1]
        reuse = not _needs_graph(x1, x2)
        if x1 is x2:
            f = self.sample(x1, reuse)
            return self.project(self.multiply(f, f, reuse), lead, reuse)
        if x1.shape == x2.shape:
            f1, f2 = self.sample(x1, reuse), self.sample(x2, reuse, "sample2")
            return self.project(self.multiply(f1, f2, reuse), lead, reuse)
        # broadcasting (e.g. one function per sample for all channels): each factor is sampled
        # at its own size, the product is taken at the broadcast size
        lead = torch.broadcast_shapes(lead, x2.shape[:-1])
        f1, f2 = self.sample(x1, reuse), self.sample(x2, reuse, "sample2")
        f1 = tuple(t.view((self.n_theta, self.half) + x1.shape[:-1]) for t in f1)
        f2 = tuple(t.view((self.n_theta, self.half) + x2.shape[:-1]) for t in f2)
        p = self.multiply(f1, f2)
        return self.project(tuple(t.reshape(self.n_theta, self.half, -1) for t in p), lead, reuse)

    def power(self, x: torch.Tensor, nu: int) -> torch.Tensor:
        """``analysis(synthesis(x) ** nu)`` by repeated multiplication (``nu >= 1``)."""
        f = self.sample(x)
        p = f
        for _ in range(nu - 1):
            p = self.multiply(p, f)
        del f  # before the projection allocates
        return self.project(p, x.shape[:-1])
