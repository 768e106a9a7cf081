r"""``load_e3nn_state_dict``: e3nn checkpoints into the equivalent equinet modules.

The equinet equivalents of e3nn's modules name their parameters and buffers
as e3nn does (``weight``, ``bias``, ``biases``, ``layer{i}.weight``,
``running_mean``, ...) in the same flat layouts, so a checkpoint maps key by
key. What it holds beyond that is e3nn's bookkeeping, which equinet
recomputes: ``output_mask`` buffers, Wigner 3j buffers of older e3nn versions
(``_w3j...``), and zero-size placeholders (e.g. ``Gate``'s ``mul.weight``,
the ``bias`` of a ``Linear`` without biases). Those are dropped; anything
else that does not fit is an error that names it.
"""
from typing import Mapping

import torch
from torch.nn.modules.module import _IncompatibleKeys

__all__ = ["load_e3nn_state_dict"]


def _e3nn_only(key: str, value: torch.Tensor) -> bool:
    name = key.rpartition(".")[2]
    return name == "output_mask" or name.startswith("_w3j") or value.numel() == 0


def load_e3nn_state_dict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                         strict: bool = True) -> _IncompatibleKeys:
    r"""Load the ``state_dict`` of an e3nn model into its equinet equivalent.

    The equivalent is the result of :func:`from_e3nn` on a model of the same
    architecture, or an equinet model built by hand with the same structure
    (same submodule names, each the equinet counterpart of the e3nn module).
    ``module.load_state_dict`` itself stays strict about equinet checkpoints;
    this function is the one place that knows e3nn's extra entries.

    Parameters
    ----------
    module : torch.nn.Module
        The equinet model to load into.
    state_dict : mapping of str to Tensor
        The e3nn model's ``state_dict()`` (e.g. from ``torch.load``).
    strict : bool
        Require every parameter and persistent buffer of ``module`` to be in
        ``state_dict``, and every entry of ``state_dict`` to be used or to be
        one of e3nn's own (see the module documentation). Shapes must match
        even when not strict.

    Returns
    -------
    NamedTuple
        ``missing_keys`` and ``unexpected_keys``, as ``load_state_dict``
        (e3nn's own entries, dropped, are in neither).

    Raises
    ------
    RuntimeError
        Listing every missing key, unexpected key and shape mismatch (with
        both shapes).

    Examples
    --------
    >>> from e3nn import o3
    >>> from equinet import tp
    >>> theirs = o3.FullyConnectedTensorProduct("2x1o", "1o", "3x0e")
    >>> sorted(theirs.state_dict())
    ['output_mask', 'weight']
    >>> ours = tp.FullyConnectedTensorProduct("2x1o", "1o", "3x0e")
    >>> load_e3nn_state_dict(ours, theirs.state_dict())
    <All keys matched successfully>
    >>> bool(torch.equal(ours.weight, theirs.weight))
    True
    """
    own = module.state_dict()
    mapped, unexpected, wrong_shape = {}, [], []
    for key, value in state_dict.items():
        if key in own:
            if own[key].shape != value.shape:
                wrong_shape.append(f"{key}: shape {tuple(value.shape)} in the checkpoint, "
                                   f"{tuple(own[key].shape)} in the module")
            mapped[key] = value
        elif not _e3nn_only(key, value):
            unexpected.append(key)
    # an empty entry of ours carries nothing (e.g. the weight of a weightless product)
    missing = [key for key, value in own.items() if key not in mapped and value.numel() > 0]
    problems = wrong_shape + ([f"missing from the checkpoint: {', '.join(missing)}"]
                              if strict and missing else []) + \
        ([f"not in the module: {', '.join(unexpected)}"] if strict and unexpected else [])
    if problems:
        raise RuntimeError(f"cannot load the e3nn state_dict into {type(module).__name__}:\n  "
                           + "\n  ".join(problems))
    module.load_state_dict(mapped, strict=False)
    return _IncompatibleKeys(missing, unexpected)
