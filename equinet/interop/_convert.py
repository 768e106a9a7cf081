r"""``from_e3nn``: e3nn modules, and whole models holding them, as equinet modules."""
import copy
import functools
from typing import Dict, Optional

import torch

from . import _layers, _products

__all__ = ["from_e3nn"]


@functools.lru_cache(maxsize=None)
def _converters() -> tuple:
    """(e3nn class, converter) pairs; ``isinstance`` picks, so subclasses convert too."""
    from e3nn import math, nn, o3

    return ((o3.Linear, _products.linear), (o3.TensorProduct, _products.tensor_product),
            (o3.SphericalHarmonics, _layers.spherical_harmonics), (o3.Norm, _layers.norm),
            (nn.Gate, _layers.gate), (nn.Activation, _layers.activation),
            (nn.BatchNorm, _layers.batch_norm), (nn.FullyConnectedNet, _layers.fully_connected_net),
            (nn.NormActivation, _layers.norm_activation), (nn.Extract, _layers.extract),
            (nn.Dropout, _layers.dropout), (nn.Identity, _layers.identity),
            (math.normalize2mom, _layers.normalize2mom))


def _supported() -> str:
    return ", ".join(f"{cls.__module__.split('.')[1]}.{cls.__name__}" for cls, _ in _converters())


def _from_e3nn_library(module: torch.nn.Module) -> bool:
    """Whether a building block of e3nn's is in the class's ancestry.

    e3nn's example models (``e3nn.nn.models``) are user code written with
    those blocks: they are walked into, like any user module, not converted.
    """
    return any(cls.__module__.startswith("e3nn.")
               and not cls.__module__.startswith("e3nn.nn.models") for cls in type(module).__mro__)


def convert_leaf(module: torch.nn.Module, backend: str) -> Optional[torch.nn.Module]:
    """The equinet equivalent of one e3nn module, or None for a module e3nn did not write."""
    if not _from_e3nn_library(module):
        return None
    try:
        converter = next(fn for cls, fn in _converters() if isinstance(module, cls))
    except StopIteration:
        raise TypeError(f"from_e3nn converts {_supported()} and modules built from them, not "
                        f"e3nn's {type(module).__name__}") from None
    converted = converter(module, backend)
    # the original's dtype and device (constructors use the defaults), and its mode
    tensor = next((t for t in (*module.parameters(), *module.buffers())
                   if t.is_floating_point()), None)
    if tensor is not None:
        converted.to(device=tensor.device, dtype=tensor.dtype)
    return converted.train(module.training)


def _collect(module: torch.nn.Module, path: str, backend: str,
             found: Dict[int, torch.nn.Module]) -> None:
    """Convert the e3nn modules below ``module``, keyed by the id of the original."""
    for name, child in module._modules.items():
        if child is None or id(child) in found:  # a module shared by two parents converts once
            continue
        where = f"{path}.{name}" if path else name
        try:
            converted = convert_leaf(child, backend)
        except TypeError as err:
            raise TypeError(f"{where}: {err}") from None
        if converted is not None:
            found[id(child)] = converted
        else:
            _collect(child, where, backend, found)


def from_e3nn(module: torch.nn.Module, backend: str = "auto",
              inplace: bool = False) -> torch.nn.Module:
    r"""The equinet equivalent of an e3nn module or of a model built with e3nn modules.

    Converted, with a copy of their parameters and buffers (same dtype,
    device and train/eval mode):

    - ``o3.TensorProduct`` and every subclass (``FullyConnectedTensorProduct``,
      ``FullTensorProduct``, ``ElementwiseTensorProduct`` and ``TensorSquare``
      become the equinet class of the same name; any other subclass becomes a
      general :class:`~equinet.tp.TensorProduct`), and ``o3.Linear``: the
      module's instructions, with their final path coefficients, are copied as
      they are, so whatever normalizations built it, the result computes the
      same function with the same flat weight layout. e3nn's ``output_mask``
      comes along as a (non-persistent) buffer, since e3nn models read it.
    - ``o3.SphericalHarmonics``, ``o3.Norm``, and ``nn.Gate``, ``Activation``,
      ``BatchNorm``, ``FullyConnectedNet``, ``NormActivation``, ``Extract``,
      ``ExtractIr``, ``Dropout``, ``Identity`` and ``math.normalize2mom``: the
      equinet layer of the same name (:mod:`equinet.nn`; ``Identity`` becomes
      ``torch.nn.Identity``), built from the same arguments. Activation
      functions come along; e3nn modules among them are converted too.
    - Anything else (``torch.nn.Sequential``, ``ModuleList``, ``ModuleDict``,
      a user's own model, e3nn's example models in ``e3nn.nn.models``): every
      e3nn module in it, at any depth, is replaced by its equivalent. Its own
      code and attributes stay as they are: plain e3nn functions it calls
      (``o3.spherical_harmonics``, ``soft_one_hot_linspace``) and e3nn
      ``Irreps`` it holds keep working while e3nn is installed, but no module
      left in it runs e3nn code.

    By default the original is left untouched: the model is deep-copied with
    each e3nn module swapped for its conversion during the copy, so modules
    shared between two places stay shared. With ``inplace=True`` the e3nn
    children of the model are replaced where they are (registered submodules
    only) and the model itself is returned.

    A subclass of an e3nn module that overrides ``forward`` is converted by
    what the parent class stores; what its own ``forward`` adds is not carried
    over. An e3nn module without an equivalent (``S2Activation``,
    ``SO3Activation``, ...) raises a ``TypeError`` naming where it is.

    Parameters
    ----------
    module : torch.nn.Module
        An e3nn module, or any module that holds some.
    backend : str
        The backend of the new tensor products.
    inplace : bool
        Replace the e3nn children of ``module`` itself instead of converting a copy.

    Returns
    -------
    torch.nn.Module
        The converted module.

    Examples
    --------
    >>> from e3nn import nn as e3nn_nn, o3
    >>> theirs = o3.FullyConnectedTensorProduct("2x1o", "1o", "3x0e")
    >>> ours = from_e3nn(theirs)
    >>> x, y = torch.randn(4, 6), torch.randn(4, 3)
    >>> bool(torch.allclose(ours(x, y), theirs(x, y), atol=1e-5))
    True
    >>> model = torch.nn.Sequential(o3.Linear("4x0e + 2x1o", "4x0e + 2x1o"),
    ...                             e3nn_nn.Gate("2x0e", [torch.tanh], "2x0e", [torch.sigmoid],
    ...                                          "2x1o"))
    >>> ported = from_e3nn(model)
    >>> [type(m).__module__.split(".")[0] for m in ported]
    ['equinet', 'equinet']
    >>> x = torch.randn(3, 10)
    >>> bool(torch.allclose(ported(x), model(x), atol=1e-5))
    True
    """
    try:
        import e3nn  # noqa: F401
    except ImportError as err:
        raise ImportError("from_e3nn needs e3nn installed (pip install e3nn)") from err
    converted = convert_leaf(module, backend)
    if converted is not None:
        return converted
    found: Dict[int, torch.nn.Module] = {}
    _collect(module, "", backend, found)
    if not inplace:
        # deepcopy returns what the memo holds for an object it meets: the conversions
        return copy.deepcopy(module, memo=dict(found))
    edits = [(parent, name, found[id(child)]) for parent in module.modules()
             for name, child in parent._modules.items()
             if child is not None and id(child) in found]
    for parent, name, converted in edits:
        parent._modules[name] = converted
    return module
