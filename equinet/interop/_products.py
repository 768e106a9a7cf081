r"""e3nn's tensor products and ``Linear`` rebuilt as equinet's, weights included.

Each converter takes the e3nn module's own instructions with their final path
coefficients, so whatever normalizations built the original, the result
computes the same function.
"""
import torch

from ..o3 import Irreps
from ..tp import (ElementwiseTensorProduct, FullTensorProduct, FullyConnectedTensorProduct,
                  Linear, TensorProduct, TensorSquare)


def _irreps(e3nn_irreps) -> Irreps:
    return Irreps([(mul, (ir.l, ir.p)) for mul, ir in e3nn_irreps])


def _keep_output_mask(converted: torch.nn.Module, module) -> None:
    # e3nn models read it (gate_points_2101's Convolution: ``self.sc.output_mask``); a
    # non-persistent buffer follows .to() but stays out of equinet's own state_dict
    converted.register_buffer("output_mask", module.output_mask.detach().clone(),
                              persistent=False)


def _copy_parameter(target: torch.nn.Module, name: str, source) -> None:
    if getattr(target, name, None) is not None:
        setattr(target, name, torch.nn.Parameter(source.detach().clone(),
                                                 requires_grad=source.requires_grad))


def tensor_product(module, backend: str) -> TensorProduct:
    """The equinet equivalent of an ``e3nn.o3.TensorProduct`` (any subclass)."""
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
    _keep_output_mask(converted, module)
    return converted


def linear(module, backend: str) -> Linear:
    """The equinet equivalent of an ``e3nn.o3.Linear``."""
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
    _keep_output_mask(converted, module)
    return converted
