"""Backends that execute a :class:`~equinet.tp.descriptor.TensorProductDescriptor`.

Each backend is a module of this package with a function
``tensor_product(desc, x1, x2, weight) -> out`` on flat tensors: ``x1`` of shape
``[Z, dim_in1]``, ``x2`` of ``[Z, dim_in2]``, ``weight`` of ``[weight_numel]``
(shared) or ``[Z, weight_numel]``, and ``out`` of ``[Z, dim_out]``,
differentiable to any order. A backend may also offer
``supports(desc, device) -> bool``; one without it supports everything.
"""
import importlib
import os

__all__ = ["BACKENDS", "get_backend", "resolve_backend"]

#: Backend names, in the order ``"auto"`` prefers them (the first that supports
#: the problem on its device wins).
BACKENDS = ("triton", "torch", "reference")

_AUTO_ORDER = {"cuda": ("triton", "torch", "reference"), "cpu": ("torch", "reference")}


def get_backend(name: str):
    """The backend module called ``name``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown tensor-product backend {name!r}; expected 'auto' or one of "
                         f"{list(BACKENDS)}")
    return importlib.import_module(f"{__name__}.{name}")


def _supports(name: str, desc, device) -> bool:
    try:
        module = get_backend(name)
    except ImportError:  # an optional dependency (triton) is missing
        return False
    check = getattr(module, "supports", None)
    return True if check is None else bool(check(desc, device))


def resolve_backend(name: str, desc, device) -> str:
    """The backend to run ``desc`` on ``device``.

    ``name="auto"`` takes the environment variable ``EQUINET_BACKEND`` when set,
    else the fastest backend that supports the problem on the device.
    """
    if name == "auto":
        name = os.environ.get("EQUINET_BACKEND", "auto") or "auto"
    if name != "auto":
        get_backend(name)  # validates the name
        return name
    device_type = getattr(device, "type", str(device))
    for candidate in _AUTO_ORDER.get(device_type, _AUTO_ORDER["cpu"]):
        if _supports(candidate, desc, device):
            return candidate
    return "reference"
