r"""Spherical harmonics of vectors as a module, laid out by ``irreps_out``.

Wraps :func:`equinet.o3.spherical_harmonics`: for a vector :math:`x`,
output block :math:`l` is :math:`Y^l(x / |x|)` (``normalize=True``) or the
homogeneous polynomial :math:`|x|^l\, Y^l(x / |x|)`. For a polar vector
(``1o``) block :math:`l` has parity :math:`(-1)^l`; for an axial vector
(``1e``) every block is even.
"""
import torch

from ..o3 import Irreps, spherical_harmonics

__all__ = ["SphericalHarmonics"]


class SphericalHarmonics(torch.nn.Module):
    r"""e3nn's ``o3.SphericalHarmonics`` module: ``[..., 3] -> [..., irreps_out.dim]``.

    Parameters
    ----------
    irreps_out : Irreps, str, int or list of int
        The degrees to output, in order. Irreps must have parities
        :math:`p_\text{in}^l` for the input parity :math:`p_\text{in}`; an int
        is one degree :math:`l` (not a maximum), a list of ints lists degrees.
    normalize : bool
        Evaluate on the direction :math:`x / |x|`.
    normalization : {"integral", "component", "norm"}
        ``"integral"`` by default, as e3nn's module (unit integral of
        :math:`Y^2` over the sphere); ``"component"`` (unit mean square per
        component, NequIP's choice) must be asked for.
    irreps_in : Irreps or str, optional
        ``"1o"`` (default) or ``"1e"``; irreps_out with an even odd-degree block
        imply ``"1e"``.

    Attributes
    ----------
    irreps_out : Irreps
        One copy of each degree, with the parity of the input to the power l (simplified).

    Examples
    --------
    >>> sh = SphericalHarmonics("0e + 1o + 2e", normalize=True)
    >>> sh(torch.tensor([[0.0, 0.0, 2.0]]))[0, :4]
    tensor([0.2821, 0.0000, 0.0000, 0.4886])
    >>> sh = SphericalHarmonics("0e + 1o", normalize=True, normalization="component")
    >>> sh(torch.tensor([[0.0, 0.0, 2.0]]))
    tensor([[1.0000, 0.0000, 0.0000, 1.7321]])
    >>> SphericalHarmonics([0, 1], normalize=False, irreps_in="1e").irreps_out
    1x0e+1x1e
    """

    def __init__(self, irreps_out, normalize: bool, normalization: str = "integral",
                 irreps_in=None) -> None:
        super().__init__()
        if isinstance(irreps_out, str):
            irreps_out = Irreps(irreps_out)
        if isinstance(irreps_out, Irreps) and irreps_in is None:
            if any(ir.l % 2 == 1 and ir.p == 1 for _, ir in irreps_out):
                irreps_in = "1e"
        irreps_in = Irreps("1o" if irreps_in is None else irreps_in)
        if irreps_in not in (Irreps("1o"), Irreps("1e")):
            raise ValueError(f"irreps_in must be a vector (1o) or a pseudovector (1e), "
                             f"got {irreps_in}")
        p_in = irreps_in[0].ir.p
        if isinstance(irreps_out, Irreps):
            ls = []
            for mul, ir in irreps_out:
                if ir.p != p_in ** ir.l:
                    raise ValueError(f"irreps_out = {irreps_out} asks for l = {ir.l} with parity "
                                     f"{ir.p}, but harmonics of a {irreps_in} input have parity "
                                     f"{p_in ** ir.l}")
                ls += [ir.l] * mul
        elif isinstance(irreps_out, int) and not isinstance(irreps_out, bool):
            ls = [irreps_out]
        else:
            ls = [int(l) for l in irreps_out]
        if not ls or any(l < 0 for l in ls):
            raise ValueError(f"irreps_out must list at least one degree l >= 0, got {ls}")
        self.irreps_in = irreps_in
        self.irreps_out = Irreps([(1, (l, p_in ** l)) for l in ls]).simplify()
        self.normalize = bool(normalize)
        self.normalization = normalization
        self._ls = ls
        # validates `normalization` once, at construction
        spherical_harmonics(self._ls, torch.zeros(1, 3), self.normalize, normalization)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Harmonics of ``x`` ``[..., 3]``: ``[..., irreps_out.dim]``."""
        return spherical_harmonics(self._ls, x, self.normalize, self.normalization)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out}, "
                f"normalize={self.normalize}, normalization={self.normalization!r})")
