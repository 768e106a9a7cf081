r"""Checkpoints that resume exactly and load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types only (tensors, dicts, lists, tuples, numbers,
strings, ``None``): model, optimizer and scheduler ``state_dict()``\ s, the EMA, the
epoch, and the random states of torch, numpy and Python (:func:`rng_state`). Such a file
loads with ``weights_only=True``, which never runs code from the file (a pickle of
arbitrary objects would). It is written with :func:`equinet._cache.atomic_write`: a crash
while saving leaves the previous checkpoint intact.

Examples
--------
>>> import os, random, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
>>> save_checkpoint(path, {"epoch": 3, "rng": rng_state()})
>>> a = random.random()
>>> state = load_checkpoint(path)
>>> set_rng_state(state["rng"]); state["epoch"], random.random() == a
(3, True)
"""
import os
import random
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from .._cache import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


def rng_state() -> Dict[str, Any]:
    """The random states of torch (CPU, and CUDA when available), numpy and ``random``.

    Returned as plain types (tensors, lists, numbers) for :func:`save_checkpoint`.
    """
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": {"version": version, "keys": list(keys), "gauss": gauss},
             "numpy": {"name": name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["keys"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Union[str, os.PathLike], state: Dict[str, Any]) -> None:
    """Write ``state`` (plain types only) to ``path`` atomically.

    Raises
    ------
    TypeError
        If ``state`` holds anything ``torch.load(weights_only=True)`` would refuse; checked
        before writing, so that a bad checkpoint never replaces a good one.
    """
    _check_plain(state, "state")
    with atomic_write(path) as f:
        torch.save(state, f)


def load_checkpoint(path: Union[str, os.PathLike], map_location="cpu", *,
                    format: Optional[str] = None, config: Optional[Dict[str, Any]] = None,
                    writer: Optional[str] = None) -> Dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (runs no code from the file).

    Parameters
    ----------
    path : str or os.PathLike
    map_location : optional
        As for :func:`torch.load`.
    format : str, optional
        The checkpoint must be a dict whose ``"format"`` entry is this (e.g. the name and
        version of the script that wrote it): a file of another program is refused clearly.
    config : dict, optional
        The checkpoint's ``"config"`` entry must equal this (the model being resumed):
        the error names every setting that differs.
    writer : str, optional
        What writes such checkpoints (e.g. ``"examples/qm9.py"``), named in the format error.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file; another format; another model.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if format is not None and (not isinstance(state, dict) or state.get("format") != format):
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{path} is not a checkpoint of {writer or format} (format {found!r})")
    if config is not None and state.get("config") != config:
        theirs = state.get("config") or {}
        diff = {k: (theirs.get(k), config.get(k)) for k in {**theirs, **config}
                if theirs.get(k) != config.get(k)}
        raise ValueError(f"{path} holds another model: (checkpoint, this run) differ in {diff}")
    return state


def restore_training(state: Dict[str, Any], model: torch.nn.Module, optimizer=None,
                     scheduler=None, ema=None) -> Dict[str, Any]:
    """Put a run back where the checkpoint ``state`` left it, for an exact resume.

    Loads ``state["model"]``, and ``"optimizer"``, ``"scheduler"``, ``"ema"`` into the
    objects given, then the random-number generators (``state["rng"]``, from
    :func:`rng_state`) last, so that nothing above draws from them. Returns ``state``.
    """
    model.load_state_dict(state["model"])
    for key, target in (("optimizer", optimizer), ("scheduler", scheduler), ("ema", ema)):
        if target is not None:
            target.load_state_dict(state[key])
    set_rng_state(state["rng"])
    return state


_PLAIN = (int, float, bool, str, type(None), torch.Tensor, torch.dtype, torch.device)


def _check_plain(value, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN) or isinstance(value, torch.nn.Parameter):
        raise TypeError(f"{where} is a {type(value).__name__}: a checkpoint holds only "
                        "tensors, dicts, lists, numbers and strings (torch.load(weights_only="
                        "True) loads nothing else)")
