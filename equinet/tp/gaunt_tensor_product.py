r"""The Gaunt Tensor Product layer: a learnable, channel-wise product of spherical functions."""
import math

import torch

from ..o3 import Irreps
from .gaunt import _check_method, gaunt_product
from .gaunt_layout import _TP_HINT, SphericalChannels, product_variance, reachable_degrees

__all__ = ["GauntTensorProduct"]

_NORMALIZATIONS = ("component", "none")


class GauntTensorProduct(torch.nn.Module):
    r"""Channel-wise Gaunt Tensor Product (Luo, Chen & Krishnapriyan, ICLR 2024).

    Each channel :math:`c` of each input is read as a spherical function whose
    harmonic coefficients are that channel's irreps, reweighted per degree; the two
    functions are multiplied pointwise and the product, projected back on the
    harmonics, is reweighted per degree:

    .. math::

        z_{c, l_3} = \alpha_{l_3}\, w^{out}_{c l_3} \sum_{l_1 l_2}
        G^{l_1 l_2 l_3} \big(w^{(1)}_{c l_1} x_{1, c, l_1}\big)
        \big(w^{(2)}_{c l_2} x_{2, c, l_2}\big)

    with the Gaunt coefficients :math:`G` (`equinet.o3.gaunt`), computed in
    :math:`O(L^3)` by `equinet.tp.gaunt_product`. Channel matching is the paper's: the
    product is channel-wise (``"uuu"``), channel :math:`c` of one input meets only
    channel :math:`c` of the other; an input with a single channel (e.g. the spherical
    harmonics of an edge) is broadcast to all channels. Mixing channels is left to
    the linear layers around it, as in the paper.

    Restriction: only the paths with :math:`l_1 + l_2 + l_3` even exist (a product of
    spherical functions is symmetric and parity-preserving), so every irrep must have
    the parity of the spherical harmonics, :math:`(-1)^l`. Pseudo-tensors and outputs
    such as the cross product :math:`1o \times 1o \to 1e` raise a ``ValueError``; use the
    Clebsch-Gordan products (`equinet.tp.TensorProduct`) for them.

    Normalization ``"component"`` sets :math:`\alpha_{l_3}` so that, for inputs with
    independent unit-variance components and weights at their initial values,
    every output component has second moment 1 (as e3nn's component normalization);
    computed exactly (see `equinet.tp.gaunt_layout`). ``"none"`` sets
    :math:`\alpha = 1`. Weights are initialised to 1 on the inputs and
    :math:`N(0, 1)` on the output.

    Parameters
    ----------
    irreps_in1, irreps_in2 : Irreps or str
        ``C1 x (...)`` and ``C2 x (...)`` with ``C1 == C2`` or one of them 1; each
        degree at most once, parity :math:`(-1)^l`.
    irreps_out : Irreps or str
        ``max(C1, C2) x (...)``, parity :math:`(-1)^l`; every degree must be reachable
        by an even path.
    normalization : {"component", "none"}
    method : {"auto", "fft", "grid", "dense"}
        Passed to `equinet.tp.gaunt_product`.

    Attributes
    ----------
    weight1, weight2, weight_out : torch.nn.Parameter
        Per-channel, per-degree weights, shapes ``[C1, n1]``, ``[C2, n2]``,
        ``[C, n_out]`` with degrees in the order of the irreps.

    Examples
    --------
    >>> tp = GauntTensorProduct("8x0e + 8x1o + 8x2e", "0e + 1o + 2e", "8x0e + 8x1o + 8x2e")
    >>> tp(torch.randn(10, 72), torch.randn(10, 9)).shape
    torch.Size([10, 72])
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, normalization: str = "component",
                 method: str = "auto") -> None:
        super().__init__()
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, "
                             f"got {normalization!r}")
        self.method = _check_method(method)
        self.normalization = normalization
        self.in1 = SphericalChannels(irreps_in1, "irreps_in1")
        self.in2 = SphericalChannels(irreps_in2, "irreps_in2")
        C1, C2 = self.in1.channels, self.in2.channels
        if C1 != C2 and 1 not in (C1, C2):
            raise ValueError(f"irreps_in1 has {C1} channels and irreps_in2 has {C2}: a "
                             "channel-wise Gaunt product needs equal multiplicities, or one "
                             "input with multiplicity 1")
        out_irreps = Irreps(irreps_out).remove_zero_multiplicities()
        reach = reachable_degrees(self.in1.ls, self.in2.ls)
        for _, ir in out_irreps:
            if ir.p != (-1) ** ir.l or reach.get(ir.l) is False:
                raise ValueError(
                    f"irreps_out asks for {ir}, which only paths with l1 + l2 + l3 odd (or parity "
                    f"other than (-1)^l) produce, such as the cross product 1o x 1o -> 1e; a Gaunt "
                    f"product of spherical functions has no such paths, {_TP_HINT}")
            if ir.l not in reach:
                raise ValueError(f"irreps_out asks for {ir}, but no l1 in {self.in1.ls} and l2 in "
                                 f"{self.in2.ls} satisfy the triangle rule "
                                 f"|l1 - l2| <= {ir.l} <= l1 + l2")
        self.out = SphericalChannels(out_irreps, "irreps_out")
        self.channels = max(C1, C2)
        if self.out.channels != self.channels:
            raise ValueError(f"irreps_out has multiplicity {self.out.channels}, expected "
                             f"{self.channels} (the channels of the inputs)")
        self.irreps_in1, self.irreps_in2 = self.in1.irreps, self.in2.irreps
        self.irreps_out = self.out.irreps
        self.weight1 = torch.nn.Parameter(torch.ones(C1, len(self.in1.ls)))
        self.weight2 = torch.nn.Parameter(torch.ones(C2, len(self.in2.ls)))
        self.weight_out = torch.nn.Parameter(torch.randn(self.channels, len(self.out.ls)))
        if normalization == "component":
            second_moment = product_variance(self.in1.ls, self.in2.ls, self.out.lmax)
            alpha = [1 / math.sqrt(second_moment[l]) for l in self.out.ls]
        else:
            alpha = [1.0] * len(self.out.ls)
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.get_default_dtype()))

    def extra_repr(self) -> str:
        return (f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
                f"normalization={self.normalization}, method={self.method}")

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``x1 [..., irreps_in1.dim]``, ``x2 [..., irreps_in2.dim]`` -> ``[..., irreps_out.dim]``.

        The leading dimensions broadcast.
        """
        a = self.in1.to_functions(x1) * self.in1.expand_degrees(self.weight1)
        b = self.in2.to_functions(x2) * self.in2.expand_degrees(self.weight2)
        z = gaunt_product(a, b, self.out.lmax, method=self.method)
        z = z * self.out.expand_degrees(self.weight_out * self.alpha)
        return self.out.from_functions(z)
