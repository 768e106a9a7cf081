r"""e3nn's layers (``e3nn.nn``, ``o3.SphericalHarmonics``, ``o3.Norm``) rebuilt as equinet's.

A layer is rebuilt through its equinet constructor from what the e3nn module
stores (irreps, flags, the user's activation functions), then its parameters
and buffers are copied. Activations that e3nn wrapped in ``normalize2mom`` are
unwrapped and handed to the equinet layer, which normalises them again with
the same samples (:mod:`equinet.nn.activation_norm`), so the constants agree to
the last bit.
"""
import copy
from typing import Callable, Optional

import torch

from .. import nn
from ._products import _irreps


def callable_of(f) -> Optional[Callable]:
    """A user's function, made free of e3nn: e3nn modules converted, other modules copied."""
    from ._convert import convert_leaf  # the registry dispatches back here

    if isinstance(f, torch.nn.Module):
        converted = convert_leaf(f, "auto")
        # a copy, so that the converted model and the original share no state
        return converted if converted is not None else copy.deepcopy(f)
    return f


def _raw(act) -> Optional[Callable]:
    """The function inside e3nn's ``normalize2mom`` (or None), free of e3nn."""
    return None if act is None else callable_of(act.f)


def _copy_state(converted: torch.nn.Module, module: torch.nn.Module) -> torch.nn.Module:
    # same names on both sides for these layers; the e3nn-only entries are left out
    own = converted.state_dict()
    theirs = {k: v for k, v in module.state_dict().items() if k in own}
    converted.load_state_dict(theirs, strict=False)
    for name, p in converted.named_parameters():
        source = dict(module.named_parameters()).get(name)
        if source is not None:
            p.requires_grad_(source.requires_grad)
    return converted


def normalize2mom(module, backend: str):
    """``e3nn.math.normalize2mom`` as :class:`equinet.nn.Normalize2Mom`."""
    return nn.Normalize2Mom(callable_of(module.f))


def activation(module, backend: str):
    return nn.Activation(_irreps(module.irreps_in), [_raw(a) for a in module.acts])


def gate(module, backend: str):
    # the Activations and the product hold the irreps as the user gave them (unsimplified),
    # which fixes the output blocking
    scalars, gates = module.act_scalars, module.act_gates
    return nn.Gate(_irreps(scalars.irreps_in), [_raw(a) for a in scalars.acts],
                   _irreps(gates.irreps_in), [_raw(a) for a in gates.acts],
                   _irreps(module.mul.irreps_in1))


def spherical_harmonics(module, backend: str):
    return nn.SphericalHarmonics(list(module._ls_list), module.normalize, module.normalization,
                                 irreps_in=_irreps(module.irreps_in))


def batch_norm(module, backend: str):
    converted = nn.BatchNorm(_irreps(module.irreps), eps=module.eps, momentum=module.momentum,
                             affine=module.affine, reduce=module.reduce,
                             instance=module.instance, normalization=module.normalization,
                             include_bias=module.include_bias)
    return _copy_state(converted, module)


def fully_connected_net(module, backend: str):
    layers = [getattr(module, f"layer{i}") for i in range(len(module.hs) - 1)]
    # e3nn keeps the arguments only in the layers: variances at both ends, and the
    # (normalised) activation in every hidden layer and in the last one if out_act
    acts = [layer.act for layer in layers if layer.act is not None]
    converted = nn.FullyConnectedNet(list(module.hs), _raw(acts[0]) if acts else None,
                                     variance_in=layers[0].var_in,
                                     variance_out=layers[-1].var_out,
                                     out_act=layers[-1].act is not None)
    return _copy_state(converted, module)


def norm_activation(module, backend: str):
    converted = nn.NormActivation(_irreps(module.irreps_in),
                                  callable_of(module.scalar_nonlinearity),
                                  normalize=module.normalize,
                                  epsilon=module.epsilon if module.normalize else None,
                                  bias=module.bias)
    return _copy_state(converted, module)


def norm(module, backend: str):
    return nn.Norm(_irreps(module.irreps_in), squared=module.squared)


def extract(module, backend: str):
    from e3nn.nn import ExtractIr

    irreps_in = _irreps(module.irreps_in)
    outs = [_irreps(irreps) for irreps in module.irreps_outs]
    if isinstance(module, ExtractIr) and len(outs[0]) > 0:
        return nn.ExtractIr(irreps_in, outs[0][0].ir)
    # e3nn keeps squeeze_out only in its generated code: ask the module
    with torch.no_grad():
        probe = module(torch.zeros(irreps_in.dim))
    return nn.Extract(irreps_in, outs, [tuple(ins) for ins in module.instructions],
                      squeeze_out=isinstance(probe, torch.Tensor))


def dropout(module, backend: str):
    return nn.Dropout(_irreps(module.irreps), module.p)


def identity(module, backend: str):
    converted = torch.nn.Identity()
    converted.irreps_in = _irreps(module.irreps_in)
    converted.irreps_out = _irreps(module.irreps_out)
    return converted
