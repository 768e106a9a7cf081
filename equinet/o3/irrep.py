r"""Irreducible representations of O(3).

An irrep of :math:`O(3) = SO(3) \times \{E, I\}` is labelled by its degree
:math:`l \geq 0` (dimension :math:`2l+1`) and its parity :math:`p = \pm 1`, the
sign it takes under inversion. Strings write it ``"2e"`` (even, ``p=+1``) or
``"1o"`` (odd, ``p=-1``); ``"3y"`` means the parity of the spherical harmonics,
:math:`p = (-1)^l`. Direct sums of irreps are :class:`~equinet.o3.irreps.Irreps`.

The conventions are e3nn's, so that irreps strings and the data laid out by them
move between the two libraries unchanged.
"""
import itertools
import operator
import re
from typing import TYPE_CHECKING, Iterator, Union

import torch

if TYPE_CHECKING:
    from .irreps import Irreps

__all__ = ["Irrep"]

# a space may separate the degree from the parity letter, as e3nn allows ("1 e")
_IRREP_RE = re.compile(r"^(\d+)\s*([eoy])$")


def as_int(value):
    """``value`` as a Python int when it is an integer of any kind, else ``None``.

    Python, numpy and 0-d torch integers count (configs read with numpy or
    computed with torch hold such integers); booleans, floats (even 2.0) and
    tensors of more than zero dimensions do not, as their meaning as a count
    or an index would be a guess.

    >>> import numpy as np
    >>> as_int(np.int64(3)), as_int(torch.tensor(2)), as_int(2.0), as_int(True)
    (3, 2, None, None)
    """
    if isinstance(value, bool) or (isinstance(value, torch.Tensor)
                                   and (value.dim() != 0 or value.dtype == torch.bool)):
        return None
    try:
        return operator.index(value)  # numpy booleans and floats raise here
    except TypeError:
        return None


def _as_pair(value):
    """The two items of a 2-tuple or 2-list (e3nn's Irrep, a tuple, forbids ``len``), else None."""
    if isinstance(value, tuple):
        items = tuple(tuple.__iter__(value))
    elif isinstance(value, list):
        items = tuple(value)
    else:
        return None
    return items if len(items) == 2 else None


class Irrep(tuple):
    r"""An irreducible representation of O(3), the pair :math:`(l, p)`.

    Parameters
    ----------
    l : int, str, Irrep or tuple
        The degree, or a string such as ``"1o"`` (or ``"1 o"``), or an
        ``(l, p)`` pair (a tuple, a list as JSON gives it, or an e3nn Irrep).
        Numpy and 0-d torch integers are accepted wherever an int is and
        stored as Python ints.
    p : int, optional
        The parity, ``1`` (even) or ``-1`` (odd), when ``l`` is an int.

    Examples
    --------
    >>> Irrep("1o"), Irrep(2, 1), Irrep("3y"), Irrep([1, -1])
    (1o, 2e, 3o, 1o)
    >>> Irrep("1o").dim
    3
    >>> list(Irrep("1o") * Irrep("1o"))
    [0e, 1e, 2e]
    """

    def __new__(cls, l: Union[int, "Irrep", str, tuple], p: int = None):
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, str):
                m = _IRREP_RE.match(l.strip())
                if m is None:
                    raise ValueError(
                        f"invalid irrep {l!r}: expected a degree followed by a parity "
                        "letter, e.g. '0e', '1o' or '2y'"
                    )
                l, letter = int(m.group(1)), m.group(2)
                p = {"e": 1, "o": -1, "y": (-1) ** l}[letter]
            elif _as_pair(l) is not None:
                l, p = _as_pair(l)
            else:
                raise ValueError(f"cannot interpret {l!r} as an irrep")
        degree = as_int(l)
        if degree is None or degree < 0:
            raise ValueError(f"invalid irrep degree l={l!r}: must be an integer >= 0")
        # a float parity of exactly +-1 is unambiguous (e3nn accepts it too); a boolean is not
        if isinstance(p, bool) or as_int(p) not in (1, -1) and not (
                isinstance(p, float) and p in (1.0, -1.0)):
            raise ValueError(f"invalid irrep parity p={p!r}: must be 1 (even) or -1 (odd)")
        return super().__new__(cls, (degree, int(p)))

    @property
    def l(self) -> int:  # noqa: E743
        """The degree :math:`l`."""
        return self[0]

    @property
    def p(self) -> int:
        """The parity, ``1`` or ``-1``."""
        return self[1]

    @property
    def dim(self) -> int:
        """The dimension :math:`2l + 1`."""
        return 2 * self.l + 1

    def __repr__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    def is_scalar(self) -> bool:
        """Whether this is the trivial representation ``0e``."""
        return self.l == 0 and self.p == 1

    @classmethod
    def iterator(cls, lmax: int = None) -> Iterator["Irrep"]:
        r"""All irreps in the order ``0e, 0o, 1o, 1e, 2e, 2o, ...``, up to ``lmax``.

        >>> list(Irrep.iterator(1))
        [0e, 0o, 1o, 1e]
        """
        for l in itertools.count():
            yield Irrep(l, (-1) ** l)
            yield Irrep(l, -((-1) ** l))
            if l == lmax:
                return

    def __mul__(self, other) -> Iterator["Irrep"]:
        r"""The irreps in the tensor product :math:`l_1 \otimes l_2`: degrees
        :math:`|l_1-l_2| \ldots l_1+l_2` with parity :math:`p_1 p_2`."""
        other = Irrep(other)
        p = self.p * other.p
        for l in range(abs(self.l - other.l), self.l + other.l + 1):
            yield Irrep(l, p)

    def __rmul__(self, mul: int) -> "Irreps":
        """``3 * Irrep("1e")`` is the direct sum ``3x1e``."""
        from .irreps import Irreps

        if isinstance(mul, bool) or not isinstance(mul, int):
            raise TypeError(f"can only multiply an Irrep by an int multiplicity, got {mul!r}")
        return Irreps([(mul, self)])

    def __add__(self, other) -> "Irreps":
        from .irreps import Irreps

        return Irreps(self) + Irreps(other)

    def count(self, _value):
        raise NotImplementedError("Irrep is a label, not a container")

    def index(self, _value):
        raise NotImplementedError("Irrep is a label, not a container")

    # -- matrices of the representation -------------------------------------------------
    def D_from_angles(self, alpha, beta, gamma, k=None) -> torch.Tensor:
        r"""The matrix :math:`p^k D^l(\alpha, \beta, \gamma)`, shape ``(..., 2l+1, 2l+1)``.

        ``alpha`` (about Y, applied third), ``beta`` (about X, second) and ``gamma``
        (about Y, first) broadcast together; ``k`` counts how often inversion is applied.
        """
        from .wigner import wigner_D

        if k is None:
            k = torch.zeros_like(alpha)
        alpha, beta, gamma, k = torch.broadcast_tensors(alpha, beta, gamma, k)
        return wigner_D(self.l, alpha, beta, gamma) * (self.p ** k)[..., None, None]

    def D_from_matrix(self, R) -> torch.Tensor:
        r"""The representation of the orthogonal matrix ``R`` (rotation or improper rotation).

        >>> Irrep("1o").D_from_matrix(-torch.eye(3)).long()
        tensor([[-1,  0,  0],
                [ 0, -1,  0],
                [ 0,  0, -1]])
        """
        alpha, beta, gamma, k = _angles_and_parity(R)
        return self.D_from_angles(alpha, beta, gamma, k)

    def D_from_quaternion(self, q, k=None) -> torch.Tensor:
        """The representation of the rotation given by unit quaternions ``q`` ``(..., 4)``."""
        from .rotation import quaternion_to_angles

        return self.D_from_angles(*quaternion_to_angles(q), k)

    def D_from_axis_angle(self, axis, angle) -> torch.Tensor:
        """The representation of the rotation by ``angle`` about ``axis`` ``(..., 3)``."""
        from .rotation import axis_angle_to_angles

        return self.D_from_angles(*axis_angle_to_angles(axis, angle))


def _angles_and_parity(R):
    """Split an orthogonal matrix into Euler angles of its proper part and its parity count."""
    from .rotation import matrix_to_angles

    if R.shape[-2:] != (3, 3):
        raise ValueError(f"expected matrices of shape (..., 3, 3), got {tuple(R.shape)}")
    d = torch.det(R).sign()
    k = (1 - d) / 2
    return (*matrix_to_angles(d[..., None, None] * R), k)
