r"""Many-body (higher body order) features from repeated Gaunt products, MACE-style."""
import math

import torch

from .gaunt import (_check_method, _chunked, _rows_per_chunk, auto_method, gaunt_product,
                    get_plan)
from .gaunt_layout import SphericalChannels, power_variance

__all__ = ["GauntManyBody"]


class GauntManyBody(torch.nn.Module):
    r"""Products of up to ``correlation`` reweighted copies of each channel's spherical function.

    With :math:`x_c` read as a spherical function per channel and
    :math:`y^{(k)}_c = \sum_l w^{(k)}_{cl} x_{c,l}` (per-degree reweighting), the layer
    forms the running products :math:`P_\nu = y^{(1)} y^{(2)} \cdots y^{(\nu)}` for
    :math:`\nu = 1..` ``correlation`` and returns

    .. math:: z_{c, l} = \sum_{\nu} \alpha_{\nu l}\, w^{out}_{\nu c l}\, [P_\nu]_{c, l},

    the analogue of MACE's symmetric contractions of body order :math:`\nu + 1`, in
    the paper's many-body form (Luo, Chen & Krishnapriyan, ICLR 2024). All products
    happen in the sampled Fourier / grid domain sized for degree
    ``correlation * lmax``: each factor is transformed once, multiplied in, and each
    :math:`P_\nu` is projected back once, never returning to harmonics in between.
    Channels never mix (``"uuu"``); put linear layers around it.

    Restrictions as in `GauntTensorProduct`: parity :math:`(-1)^l` everywhere, each
    degree once, one multiplicity throughout.

    ``"component"`` normalization: :math:`\alpha_{\nu l}` makes each :math:`P_\nu` term
    have unit second moment per component for unit-variance inputs and the initial
    weights (:math:`w^{(k)} = 1`, so :math:`P_\nu = x^\nu`), computed exactly
    (`equinet.tp.gaunt_layout.power_variance`); terms that cannot reach a degree get 0.
    Then the output has second moment ``correlation`` per component at init
    (:math:`w^{out} \sim N(0, 1)`), divided by ``correlation`` under ``alpha``.

    Parameters
    ----------
    irreps_in : Irreps or str
        ``C x (degrees)``.
    irreps_out : Irreps or str
        ``C x (degrees)``; each degree must be reachable by some :math:`P_\nu`.
    correlation : int
        Highest number of factors :math:`\nu`, ``>= 1``.
    normalization : {"component", "none"}
    method : {"auto", "fft", "grid", "dense"}
        ``"dense"`` uses nested `gaunt_product` calls (the reference).

    Examples
    --------
    >>> mb = GauntManyBody("4x0e + 4x1o + 4x2e", "4x0e + 4x1o", correlation=3)
    >>> mb(torch.randn(5, 36)).shape
    torch.Size([5, 16])
    """

    def __init__(self, irreps_in, irreps_out, correlation: int, normalization: str = "component",
                 method: str = "auto") -> None:
        super().__init__()
        if isinstance(correlation, bool) or not isinstance(correlation, int) or correlation < 1:
            raise ValueError(f"correlation must be an int >= 1, got {correlation!r}")
        if normalization not in ("component", "none"):
            raise ValueError(f"normalization must be 'component' or 'none', got {normalization!r}")
        self.method = _check_method(method)
        self.correlation, self.normalization = correlation, normalization
        self.inp = SphericalChannels(irreps_in, "irreps_in")
        self.out = SphericalChannels(irreps_out, "irreps_out")
        if self.inp.channels != self.out.channels:
            raise ValueError(f"irreps_in has multiplicity {self.inp.channels} and irreps_out "
                             f"{self.out.channels}; GauntManyBody keeps the channels")
        self.irreps_in, self.irreps_out = self.inp.irreps, self.out.irreps
        moments = [power_variance(self.inp.ls, nu, self.out.lmax)
                   for nu in range(1, correlation + 1)]
        for l in self.out.ls:
            if all(m[l] < 1e-12 for m in moments):
                raise ValueError(
                    f"irreps_out asks for degree {l}, which no product of up to {correlation} "
                    f"factors of degrees {self.inp.ls} contains (odd degrees need an odd input "
                    "degree)")
        C = self.inp.channels
        self.weight_in = torch.nn.Parameter(torch.ones(correlation, C, len(self.inp.ls)))
        self.weight_out = torch.nn.Parameter(torch.randn(correlation, C, len(self.out.ls)))
        if normalization == "component":
            alpha = [[1 / math.sqrt(m[l]) if m[l] > 1e-12 else 0.0 for l in self.out.ls]
                     for m in moments]
            alpha = torch.tensor(alpha) / math.sqrt(correlation)
        else:
            alpha = torch.ones(correlation, len(self.out.ls))
        self.register_buffer("alpha", alpha.to(torch.get_default_dtype()))

    def extra_repr(self) -> str:
        return (f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, "
                f"normalization={self.normalization}, method={self.method}")

    def _running_products(self, y: torch.Tensor) -> torch.Tensor:
        """Factors ``y [nu, ..., C, D]`` -> coefficients of P_1..P_nu, ``[nu, ..., C, D_out]``."""
        L, nu, lout = self.inp.lmax, self.correlation, self.out.lmax
        lmax = min(lout, nu * L)
        method = self.method
        if method == "auto":
            method = auto_method(L, (nu - 1) * L, lmax, y.device)
        if method == "dense":
            P, terms = y[0], [y[0]]
            for k in range(1, nu):
                P = gaunt_product(P, y[k], k * L + L, method="dense")
                terms.append(P)
            terms = [t[..., : (lmax + 1) ** 2] for t in terms]
            terms = [torch.nn.functional.pad(t, (0, (lmax + 1) ** 2 - t.shape[-1])) for t in terms]
            return torch.stack(terms)
        plan = get_plan(method, nu * L, lmax, L, y.dtype, y.device)

        def running_products(y):
            # the factor index leads the batch dimensions
            if hasattr(plan, "sample"):  # the grid: products stay folded (gaunt_grid)
                e, o = plan.sample(y)
                rows = e.shape[-1] // nu
                factors = [(e.narrow(-1, n * rows, rows), o.narrow(-1, n * rows, rows))
                           for n in range(nu)]
                P, terms = factors[0], [factors[0]]
                for factor in factors[1:]:
                    P = plan.multiply(P, factor)
                    terms.append(P)
                folded = tuple(torch.cat(parts, -1) for parts in zip(*terms))
                return plan.project(folded, y.shape[:-1])
            factors = plan.synthesis(y).unbind(plan.batch_dim)
            P, terms = factors[0], [factors[0]]
            for factor in factors[1:]:
                P = P * factor
                terms.append(P)
            return plan.analysis(torch.stack(terms, plan.batch_dim))

        # chunk over the batch, keeping the nu factors of a row together (the factor axis moved
        # next to last is labelled 1 so that it is never split)
        lead = tuple(y.shape[1:-1]) + (1,)
        per_row = lambda t: running_products(t.movedim(-2, 0)).movedim(0, -2)  # noqa: E731
        rows = max(1, _rows_per_chunk(method, plan) // nu)
        out = _chunked(per_row, (y.movedim(0, -2),), lead, rows)
        return out.movedim(-2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., irreps_in.dim]`` -> ``[..., irreps_out.dim]``."""
        xs = self.inp.to_functions(x)  # [..., C, D]
        w = self.inp.expand_degrees(self.weight_in)  # [nu, C, D]
        y = xs.unsqueeze(0) * w.reshape((self.correlation,) + (1,) * (xs.dim() - 2) + w.shape[1:])
        P = self._running_products(y)  # [nu, ..., C, D_out]
        scale = self.out.expand_degrees(self.weight_out * self.alpha.unsqueeze(1))  # [nu, C, D_out]
        D = P.shape[-1]  # (min(lmax_out, correlation * lmax_in) + 1)^2 <= scale.shape[-1]
        scale = scale[..., :D]
        z = (P * scale.reshape((self.correlation,) + (1,) * (P.dim() - 3) + scale.shape[1:])).sum(0)
        z = torch.nn.functional.pad(z, (0, max(0, self.out.sh_dim - D)))
        return self.out.from_functions(z)
