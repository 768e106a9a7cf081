r"""Direct sums of irreducible representations of O(3).

A direct sum of irreps (:class:`~equinet.o3.irrep.Irrep`, e.g. ``"1o"``) is written
``"16x0e + 8x1o + 4x2e"``: 16 scalars, 8 vectors and 4 even degree-2 irreps, and
data laid out by it has those blocks one after the other.

The conventions are e3nn's, so that irreps strings and the data laid out by them
move between the two libraries unchanged.
"""
import collections
import re
from typing import List

import torch

from .irrep import Irrep, _angles_and_parity, _as_pair, as_int

# Irrep was defined here before it got its own module; it stays importable from here
__all__ = ["Irrep", "MulIr", "Irreps"]


class MulIr(tuple):
    """A multiplicity and an irrep: ``MulIr(8, Irrep("1o"))`` is written ``8x1o``.

    >>> mul, ir = MulIr(8, "1o")
    >>> mul, ir, MulIr(8, "1o").dim
    (8, 1o, 24)
    """

    def __new__(cls, mul: int, ir=None):
        if ir is None:
            mul, ir = mul
        count = as_int(mul)  # numpy and torch integers too, stored as int
        if count is None or count < 0:
            raise ValueError(f"invalid multiplicity {mul!r}: must be an integer >= 0")
        return super().__new__(cls, (count, Irrep(ir)))

    @property
    def mul(self) -> int:
        return self[0]

    @property
    def ir(self) -> Irrep:
        return self[1]

    @property
    def dim(self) -> int:
        return self.mul * self.ir.dim

    def __repr__(self) -> str:
        return f"{self.mul}x{self.ir}"


def _parse_irreps_string(text: str) -> List[MulIr]:
    out = []
    for token in (t.strip() for t in text.split("+")):
        if not token:
            raise ValueError(f"invalid irreps string {text!r}: empty term between '+' signs")
        mul_text, sep, ir_text = token.rpartition("x")
        if not sep:
            mul_text, ir_text = "1", token
        if not re.fullmatch(r"\d+", mul_text.strip()):
            raise ValueError(
                f"invalid multiplicity {mul_text.strip()!r} in term {token!r} of irreps "
                f"string {text!r}: expected a non-negative integer before 'x'"
            )
        try:
            ir = Irrep(ir_text.strip())
        except ValueError:
            raise ValueError(
                f"invalid irrep {ir_text.strip()!r} in term {token!r} of irreps string "
                f"{text!r}: expected a degree and a parity letter, e.g. '0e', '1o', '2y'"
            ) from None
        out.append(MulIr(int(mul_text), ir))
    return out


class Irreps(tuple):
    r"""A direct sum of irreps, an immutable sequence of :class:`MulIr`.

    Data laid out by ``Irreps("2x0e + 1o")`` has ``dim = 5`` components: the two
    scalars, then the three components of the vector, each irrep's components
    ordered :math:`m = -l, \ldots, l`.

    Parameters
    ----------
    irreps : str, Irrep, Irreps or list
        ``"16x0e + 8x1o"`` (spaces allowed around ``x`` and before the parity
        letter, as e3nn allows), an :class:`Irrep`, or a list of ``(mul, ir)``
        pairs, irreps, or strings. Pairs may be lists, as a JSON config holds
        them (``[[16, [0, 1]], [8, [1, -1]]]``), and integers may be numpy or
        torch integers; e3nn's Irreps and Irrep objects convert as well.

    Examples
    --------
    >>> x = Irreps("16x0e + 8x1o + 4x2e")
    >>> x.dim, x.num_irreps, x.lmax
    (60, 28, 2)
    >>> x.slices()
    [slice(0, 16, None), slice(16, 40, None), slice(40, 60, None)]
    >>> Irreps("1o + 0e + 1o").sort().irreps.simplify()
    1x0e+2x1o
    >>> Irreps([[2, [0, 1]], [1, [1, -1]]]) == Irreps("2x0e + 1o") == Irreps(" 2x0e + 1x 1o")
    True
    """

    def __new__(cls, irreps=None):
        if irreps is None:
            return super().__new__(cls, ())
        if isinstance(irreps, Irreps):
            return irreps
        if isinstance(irreps, Irrep):
            items = [MulIr(1, irreps)]
        elif isinstance(irreps, str):
            items = _parse_irreps_string(irreps) if irreps.strip() else []
        elif isinstance(irreps, (list, tuple)):
            items = [cls._interpret_item(item) for item in irreps]
        else:
            raise ValueError(f"cannot interpret {irreps!r} as irreps")
        return super().__new__(cls, items)

    @staticmethod
    def _interpret_item(item) -> MulIr:
        if isinstance(item, MulIr):
            return item
        if isinstance(item, Irrep):
            return MulIr(1, item)
        if isinstance(item, str):
            parsed = _parse_irreps_string(item)
            if len(parsed) != 1:
                raise ValueError(f"{item!r} is not a single 'mul x irrep' term")
            return parsed[0]
        pair = _as_pair(item)  # a tuple, a list (JSON), or e3nn's (mul, ir) / Irrep
        if pair is not None:
            first, second = pair
            if isinstance(second, (str, tuple, list)):  # (mul, ir): MulIr checks mul
                return MulIr(first, Irrep(second))
            if as_int(first) is not None and as_int(second) is not None:  # an (l, p) pair
                return MulIr(1, Irrep(first, second))
        raise ValueError(f"cannot interpret {item!r} as a 'mul x irrep' term")

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> "Irreps":
        r"""The irreps of the spherical harmonics of degrees ``0..lmax``, parity :math:`p^l`.

        >>> Irreps.spherical_harmonics(3)
        1x0e+1x1o+1x2e+1x3o
        >>> Irreps.spherical_harmonics(2, p=1)
        1x0e+1x1e+1x2e
        """
        return Irreps([(1, (l, p**l)) for l in range(lmax + 1)])

    # -- sizes ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The total dimension, :math:`\\sum \\mathrm{mul}(2l+1)`."""
        return sum(mul_ir.dim for mul_ir in self)

    @property
    def num_irreps(self) -> int:
        """The number of irreps, :math:`\\sum \\mathrm{mul}`."""
        return sum(mul for mul, _ in self)

    @property
    def ls(self) -> List[int]:
        """The degree of every irrep, each repeated by its multiplicity."""
        return [ir.l for mul, ir in self for _ in range(mul)]

    @property
    def lmax(self) -> int:
        """The largest degree among the terms of nonzero multiplicity."""
        ls = [ir.l for mul, ir in self if mul > 0]
        if not ls:
            raise ValueError(f"lmax of empty irreps {self!r} is undefined")
        return max(ls)

    def slices(self) -> List[slice]:
        """The slice of the data that each term occupies."""
        out, start = [], 0
        for mul_ir in self:
            out.append(slice(start, start + mul_ir.dim))
            start += mul_ir.dim
        return out

    def count(self, ir) -> int:
        """The total multiplicity of ``ir``.

        >>> Irreps("2x0e + 1o + 3x0e").count("0e")
        5
        """
        ir = Irrep(ir)
        return sum(mul for mul, other in self if other == ir)

    def __contains__(self, ir) -> bool:
        ir = Irrep(ir)
        return any(other == ir for _, other in self)

    def index(self, _value):
        raise NotImplementedError("use Irreps.slices() to locate data")

    # -- algebra -------------------------------------------------------------------------
    def __getitem__(self, i):
        out = super().__getitem__(i)
        return Irreps(list(out)) if isinstance(i, slice) else out

    def __add__(self, other) -> "Irreps":
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other) -> "Irreps":
        return Irreps(other) + self

    def __mul__(self, times: int) -> "Irreps":
        """``Irreps * n`` repeats the whole sum ``n`` times (as e3nn)."""
        if isinstance(times, bool) or not isinstance(times, int):
            raise TypeError(f"can only multiply Irreps by an int, got {times!r}")
        return Irreps(tuple(self) * times)

    __rmul__ = __mul__

    def simplify(self) -> "Irreps":
        """Merge neighbouring equal irreps and drop zero multiplicities (no reordering).

        >>> Irreps("1e + 1e + 0e + 0x2e + 1e").simplify()
        2x1e+1x0e+1x1e
        """
        out = []
        for mul, ir in self:
            if out and out[-1][1] == ir:
                out[-1] = (out[-1][0] + mul, ir)
            elif mul > 0:
                out.append((mul, ir))
        return Irreps(out)

    def remove_zero_multiplicities(self) -> "Irreps":
        """Drop the terms of multiplicity zero."""
        return Irreps([mul_ir for mul_ir in self if mul_ir.mul > 0])

    def sort(self):
        """Sort the terms by irrep (``0o < 0e < 1o < 1e ...``), stably.

        Returns
        -------
        irreps : Irreps
            the sorted irreps
        p : tuple of int
            ``p[i]`` is where term ``i`` went
        inv : tuple of int
            ``inv[j]`` is where sorted term ``j`` came from

        >>> Irreps("1e + 0e + 1o").sort()
        sort(irreps=1x0e+1x1o+1x1e, p=(2, 0, 1), inv=(1, 2, 0))
        """
        inv = tuple(sorted(range(len(self)), key=lambda i: (self[i].ir, i)))
        p = [0] * len(inv)
        for j, i in enumerate(inv):
            p[i] = j
        return _SortResult(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> "Irreps":
        """Sort then simplify: the canonical form of the representation.

        >>> Irreps("1o + 0e + 1o").regroup()
        1x0e+2x1o
        """
        return self.sort().irreps.simplify()

    def filter(self, keep=None, *, drop=None, lmax: int = None) -> "Irreps":
        """Keep only some terms (or drop some), by irrep, by predicate, or by degree.

        >>> Irreps("1e + 2e + 0e").filter(keep=["0e", "1e"])
        1x1e+1x0e
        >>> Irreps("1e + 2e + 0e").filter(drop="2e")
        1x1e+1x0e
        >>> Irreps("1e + 2e + 0e").filter(lmax=1)
        1x1e+1x0e
        """
        given = sum(arg is not None for arg in (keep, drop, lmax))
        if given == 0:
            return self
        if given > 1:
            raise ValueError("give only one of keep, drop and lmax")
        if lmax is not None:
            return Irreps([mul_ir for mul_ir in self if mul_ir.ir.l <= lmax])
        selector, keep_selected = (keep, True) if keep is not None else (drop, False)
        if callable(selector) and not isinstance(selector, (Irrep, MulIr, Irreps)):
            chosen = selector
        else:
            irs = _irrep_set(selector)
            chosen = lambda mul_ir: mul_ir.ir in irs  # noqa: E731
        return Irreps([mul_ir for mul_ir in self if bool(chosen(mul_ir)) == keep_selected])

    def randn(self, *size: int, normalization: str = "component", requires_grad: bool = False,
              dtype=None, device=None) -> torch.Tensor:
        """A random tensor with ``size`` containing one ``-1``, replaced by ``dim``.

        ``normalization="component"`` draws standard normal components;
        ``"norm"`` draws each irrep uniformly on its unit sphere.
        """
        if size.count(-1) != 1:
            raise ValueError(f"size must contain exactly one -1 (the irreps dimension), got {size}")
        di = size.index(-1)
        lsize, rsize = size[:di], size[di + 1:]
        if normalization == "component":
            return torch.randn(*lsize, self.dim, *rsize, requires_grad=requires_grad,
                               dtype=dtype, device=device)
        if normalization != "norm":
            raise ValueError(f"unknown normalization {normalization!r}: 'component' or 'norm'")
        parts = []
        for mul, ir in self:
            r = torch.randn(*lsize, mul, ir.dim, *rsize, dtype=dtype, device=device)
            r = r / r.norm(dim=di + 1, keepdim=True)
            parts.append(r.reshape(*lsize, mul * ir.dim, *rsize))
        x = torch.cat(parts, dim=di) if parts else torch.zeros(*lsize, 0, *rsize, dtype=dtype,
                                                               device=device)
        return x.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "+".join(repr(mul_ir) for mul_ir in self)

    # -- matrices of the representation -------------------------------------------------
    def D_from_angles(self, alpha, beta, gamma, k=None) -> torch.Tensor:
        r"""Block-diagonal matrix of the representation, shape ``(..., dim, dim)``."""
        blocks = []
        for mul, ir in self:
            blocks.extend([ir.D_from_angles(alpha, beta, gamma, k)] * mul)
        return _block_diagonal(blocks, alpha)

    def D_from_matrix(self, R) -> torch.Tensor:
        r"""Block-diagonal representation of the orthogonal matrices ``R`` ``(..., 3, 3)``.

        >>> R = torch.tensor([[0., -1., 0.], [1., 0., 0.], [0., 0., 1.]])
        >>> Irreps("0e + 1o").D_from_matrix(R).shape
        torch.Size([4, 4])
        """
        alpha, beta, gamma, k = _angles_and_parity(R)
        return self.D_from_angles(alpha, beta, gamma, k)

    def D_from_quaternion(self, q, k=None) -> torch.Tensor:
        """Block-diagonal representation of the rotations given as unit quaternions."""
        from .rotation import quaternion_to_angles

        return self.D_from_angles(*quaternion_to_angles(q), k)

    def D_from_axis_angle(self, axis, angle) -> torch.Tensor:
        """Block-diagonal representation of the rotations given as axis and angle."""
        from .rotation import axis_angle_to_angles

        return self.D_from_angles(*axis_angle_to_angles(axis, angle))


_SortResult = collections.namedtuple("sort", ["irreps", "p", "inv"])


def _irrep_set(selector) -> set:
    if isinstance(selector, MulIr):
        return {selector.ir}
    if isinstance(selector, Irrep):
        return {selector}
    if isinstance(selector, str):
        return {ir for _, ir in Irreps(selector)}
    if isinstance(selector, Irreps):
        return {ir for _, ir in selector}
    return {Irrep(ir) for ir in selector}


def _block_diagonal(blocks, like: torch.Tensor) -> torch.Tensor:
    if not blocks:
        like = torch.as_tensor(like)
        return like.new_zeros(like.shape + (0, 0))
    shape = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
    dim = sum(b.shape[-1] for b in blocks)
    out = blocks[0].new_zeros(shape + (dim, dim))
    i = 0
    for b in blocks:
        n = b.shape[-1]
        out[..., i:i + n, i:i + n] = b
        i += n
    return out
