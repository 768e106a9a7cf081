r"""Bridges to e3nn: rebuild e3nn modules as equinet modules, weights included.

This is the only module of equinet that touches e3nn, and it imports e3nn only
inside its functions: e3nn is not a dependency of equinet.

The conventions of the two libraries are the same (real basis, signs, Wigner 3j
symbols, normalizations, weight layouts), so a converted module computes, with
the same inputs, the same outputs as the original to float rounding.
"""
import torch

from .o3 import Irreps
from .tp import (ElementwiseTensorProduct, FullTensorProduct, FullyConnectedTensorProduct, Linear,
                 TensorProduct, TensorSquare)

__all__ = ["from_e3nn"]


def _irreps(e3nn_irreps) -> Irreps:
    return Irreps([(mul, (ir.l, ir.p)) for mul, ir in e3nn_irreps])


def _copy_parameter(target: torch.nn.Module, name: str, source) -> None:
    if getattr(target, name, None) is not None:
        setattr(target, name, torch.nn.Parameter(source.detach().clone(),
                                                 requires_grad=source.requires_grad))


def _tensor_product(module, backend: str) -> TensorProduct:
    from e3nn import o3

    # the most specific named kind first: the instructions below are the module's own,
    # so the kind only decides the class (and TensorSquare's one-input forward)
    kinds = [(o3.TensorSquare, TensorSquare), (o3.FullTensorProduct, FullTensorProduct),
             (o3.ElementwiseTensorProduct, ElementwiseTensorProduct),
             (o3.FullyConnectedTensorProduct, FullyConnectedTensorProduct)]
    cls = next((ours for theirs, ours in kinds if isinstance(module, theirs)), TensorProduct)
    # e3nn stores each path's final coefficient c in path_weight; with both
    # normalizations "none" the coefficient becomes sqrt(path_weight) = c again
    instructions = [(ins.i_in1, ins.i_in2, ins.i_out, ins.connection_mode, ins.has_weight,
                     ins.path_weight ** 2) for ins in module.instructions]
    converted = cls.__new__(cls)
    TensorProduct.__init__(converted, _irreps(module.irreps_in1), _irreps(module.irreps_in2),
                           _irreps(module.irreps_out), instructions,
                           irrep_normalization="none", path_normalization="none",
                           internal_weights=module.internal_weights,
                           shared_weights=module.shared_weights, backend=backend)
    if cls is TensorSquare:
        converted.irreps_in = converted.irreps_in1
    _copy_parameter(converted, "weight", module.weight)
    return converted


def _linear(module, backend: str) -> Linear:
    weighted = [(ins.i_in, ins.i_out, ins.path_weight ** 2) for ins in module.instructions
                if ins.i_in >= 0]
    biased = {ins.i_out for ins in module.instructions if ins.i_in < 0}
    irreps_out = _irreps(module.irreps_out)
    f_in = f_out = None
    weight, bias = module.weight, module.bias
    if weight.dim() == 3:  # e3nn keeps f_in / f_out only in the weight's shape
        f_in, f_out = weight.shape[:2]
    elif bias.dim() == 2:
        raise ValueError("cannot convert an e3nn Linear with f_in/f_out and no weights to read "
                         "them from")
    # "none": the coefficient is sqrt(path_weight), e3nn's stored coefficient (f_in included)
    converted = Linear(_irreps(module.irreps_in), irreps_out, f_in=f_in, f_out=f_out,
                       internal_weights=module.internal_weights,
                       shared_weights=module.shared_weights, instructions=weighted,
                       biases=[i in biased for i in range(len(irreps_out))],
                       path_normalization="none", backend=backend)
    _copy_parameter(converted, "weight", weight)
    _copy_parameter(converted, "bias", bias)
    return converted


def from_e3nn(module, backend: str = "auto") -> torch.nn.Module:
    r"""The equinet equivalent of an e3nn module, with a copy of its weights.

    Supported: ``e3nn.o3.TensorProduct`` and every subclass
    (``FullyConnectedTensorProduct``, ``FullTensorProduct``,
    ``ElementwiseTensorProduct`` and ``TensorSquare`` become the equinet class
    of the same name; any other subclass becomes a general
    :class:`~equinet.tp.TensorProduct`), and ``e3nn.o3.Linear``. The module's
    instructions, with their final path coefficients, are copied as they are,
    so whatever normalizations and variances built it, the result computes
    the same function: same irreps, same flat weight layout, same
    ``internal_weights`` / ``shared_weights``; internal weights and biases are
    copied (same dtype and device).

    A subclass that overrides ``forward`` is converted by its instructions
    only; what its own ``forward`` adds is not carried over.

    Parameters
    ----------
    module : torch.nn.Module
        An e3nn module.
    backend : str
        The backend of the new module.

    Examples
    --------
    >>> from e3nn import o3
    >>> theirs = o3.FullyConnectedTensorProduct("2x1o", "1o", "3x0e")
    >>> ours = from_e3nn(theirs)
    >>> x, y = torch.randn(4, 6), torch.randn(4, 3)
    >>> bool(torch.allclose(ours(x, y), theirs(x, y), atol=1e-5))
    True
    """
    try:
        from e3nn import o3
    except ImportError as err:
        raise ImportError("from_e3nn needs e3nn installed (pip install e3nn)") from err
    if isinstance(module, o3.Linear):
        return _linear(module, backend)
    if isinstance(module, o3.TensorProduct):
        return _tensor_product(module, backend)
    raise TypeError(f"from_e3nn converts e3nn.o3.TensorProduct (and subclasses) and "
                    f"e3nn.o3.Linear, not {type(module).__name__}")
