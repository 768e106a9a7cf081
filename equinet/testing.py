r"""Equivariance checks, public so that users can test their own models.

A function :math:`f` is equivariant when transforming its inputs by a group
element :math:`g` transforms its outputs by the same element:

.. math:: f(D_\text{in}(g)\, x) = D_\text{out}(g)\, f(x).

Here :math:`g` runs over random rotations, rotations composed with the inversion
:math:`x \mapsto -x`, and (for point inputs) translations; :math:`D` is the
block-diagonal matrix of the irreps the data is laid out by. Everything is done
in float64 so that a genuine violation is not hidden by rounding.
"""
import copy
from typing import Callable, Dict, Sequence, Tuple

import torch

from .o3.irreps import Irreps
from .o3.rotation import rand_matrix

__all__ = ["CARTESIAN_POINTS", "equivariance_error", "assert_equivariant"]

#: Marker for an argument or output that holds points in space, shape ``[..., 3]``:
#: rotated, inverted and also translated.
CARTESIAN_POINTS = "cartesian_points"


def _as_list(irreps, name: str) -> list:
    if irreps is None or isinstance(irreps, (str, Irreps)) or not isinstance(irreps, Sequence):
        irreps = [irreps]
    out = []
    for ir in irreps:
        if ir is None or ir == CARTESIAN_POINTS:
            out.append(ir)
        else:
            try:
                out.append(Irreps(ir))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
    return out


def _transform(args, irreps_list, R, shift):
    out = []
    for x, irreps in zip(args, irreps_list):
        if irreps is None:
            out.append(x)
        elif irreps == CARTESIAN_POINTS:
            if x.shape[-1] != 3:
                raise ValueError(f"a {CARTESIAN_POINTS} tensor must have last dimension 3, "
                                 f"got shape {tuple(x.shape)}")
            out.append(x @ R.transpose(-1, -2).to(x.dtype) + shift.to(x.dtype))
        else:
            if x.shape[-1] != irreps.dim:
                raise ValueError(f"a tensor laid out by {irreps} must have last dimension "
                                 f"{irreps.dim}, got shape {tuple(x.shape)}")
            D = irreps.D_from_matrix(R).to(x.dtype)
            out.append(x @ D.transpose(-1, -2))
    return out


def _float64(fn: Callable) -> Callable:
    """Evaluate modules on a float64 copy, leaving the caller's module untouched."""
    if isinstance(fn, torch.nn.Module):
        return copy.deepcopy(fn).to(torch.float64)
    return fn


def _random_inputs(irreps_in, batch: int):
    args = []
    for irreps in irreps_in:
        if irreps is None:
            raise ValueError("args_in must be given when an input does not transform (None)")
        dim = 3 if irreps == CARTESIAN_POINTS else irreps.dim
        args.append(torch.randn(batch, dim, dtype=torch.float64))
    return args


def equivariance_error(
    fn: Callable,
    irreps_in,
    irreps_out,
    args_in=None,
    *,
    ntrials: int = 1,
    do_parity: bool = True,
    do_translation: bool = True,
    batch: int = 5,
) -> Dict[Tuple[int, bool], torch.Tensor]:
    r"""Largest violation of equivariance of ``fn`` over random group elements.

    Parameters
    ----------
    fn : callable
        Maps the input tensors to a tensor or a tuple of tensors. An
        :class:`torch.nn.Module` is evaluated on a float64 copy of itself.
    irreps_in, irreps_out : irreps, ``CARTESIAN_POINTS``, None, or a list of them
        How each input / output transforms; ``None`` means it does not
        (integer indices, species), ``CARTESIAN_POINTS`` means points in space.
    args_in : list of tensors, optional
        The inputs; random float64 tensors of ``batch`` rows by default.
    ntrials : int
        Number of random rotations tried.
    do_parity, do_translation : bool
        Also try rotations composed with inversion, and random translations of
        the ``CARTESIAN_POINTS`` inputs.

    Returns
    -------
    dict
        ``{(parity_k, translated): errors}`` where ``errors`` holds, for each
        output, :math:`\max |f(D x) - D f(x)|` over the trials.

    Examples
    --------
    >>> errors = equivariance_error(lambda x: 2 * x, "1o", "1o")
    >>> max(float(e.max()) for e in errors.values()) < 1e-12
    True
    """
    irreps_in = _as_list(irreps_in, "irreps_in")
    irreps_out = _as_list(irreps_out, "irreps_out")
    fn = _float64(fn)
    if args_in is None:
        args_in = _random_inputs(irreps_in, batch)
    else:
        args_in = [a.to(torch.float64) if torch.is_floating_point(a) else a for a in args_in]
    if len(args_in) != len(irreps_in):
        raise ValueError(f"got {len(args_in)} inputs but {len(irreps_in)} entries in irreps_in")

    def call(args):
        out = fn(*args)
        out = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(out) != len(irreps_out):
            raise ValueError(f"fn returned {len(out)} outputs but irreps_out has "
                             f"{len(irreps_out)} entries")
        return out

    has_points = any(ir == CARTESIAN_POINTS for ir in irreps_in)
    parities = (0, 1) if do_parity else (0,)
    translations = (False, True) if (do_translation and has_points) else (False,)
    out_ref = call(args_in)
    errors = {}
    for k in parities:
        for translate in translations:
            worst = torch.zeros(len(irreps_out), dtype=torch.float64)
            for _ in range(ntrials):
                R = rand_matrix(dtype=torch.float64) * (-1.0) ** k
                shift = torch.randn(3, dtype=torch.float64) if translate else \
                    torch.zeros(3, dtype=torch.float64)
                out_of_rotated = call(_transform(args_in, irreps_in, R, shift))
                rotated_out = _transform(out_ref, irreps_out, R, shift)
                for i, (a, b) in enumerate(zip(out_of_rotated, rotated_out)):
                    if torch.is_floating_point(a) and a.numel() > 0:
                        worst[i] = torch.maximum(worst[i], (a.double() - b.double()).abs().max())
                    elif not torch.is_floating_point(a) and not torch.equal(a, b):
                        worst[i] = float("inf")
            errors[(k, translate)] = worst
    return errors


def assert_equivariant(
    fn: Callable,
    irreps_in,
    irreps_out,
    args_in=None,
    *,
    tolerance: float = 1e-9,
    **kwargs,
) -> Dict[Tuple[int, bool], torch.Tensor]:
    r"""Raise :class:`AssertionError` if ``fn`` is not equivariant to ``tolerance``.

    Takes the arguments of :func:`equivariance_error` and returns its errors.
    The default tolerance suits a float64 computation on inputs of order one.

    Examples
    --------
    >>> import torch
    >>> cross = lambda a, b: torch.linalg.cross(a, b)
    >>> _ = assert_equivariant(cross, ["1o", "1o"], "1e")
    >>> assert_equivariant(cross, ["1o", "1o"], "1o")
    Traceback (most recent call last):
    ...
    AssertionError: not equivariant ...
    """
    errors = equivariance_error(fn, irreps_in, irreps_out, args_in, **kwargs)
    bad = {key: err for key, err in errors.items() if bool((err > tolerance).any())}
    if bad:
        lines = [f"parity={k} translation={t}: max errors {err.tolist()}"
                 for (k, t), err in bad.items()]
        raise AssertionError(f"not equivariant (tolerance {tolerance:g}): " + "; ".join(lines))
    return errors

