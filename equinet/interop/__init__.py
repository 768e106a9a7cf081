r"""Bridges to e3nn: e3nn modules, models and checkpoints as equinet's.

- :func:`from_e3nn` rebuilds an e3nn module, or every e3nn module inside a
  model, as its equinet equivalent, weights included.
- :func:`load_e3nn_state_dict` loads an e3nn ``state_dict`` into the
  equivalent equinet model.

This is the only package of equinet that touches e3nn, and it imports e3nn
only inside its functions: e3nn is not a dependency of equinet.

The conventions of the two libraries are the same (real basis, signs, Wigner 3j
symbols, normalizations, weight layouts), so a converted module computes, with
the same inputs, the same outputs as the original to float rounding.
"""
from ._convert import from_e3nn
from ._state_dict import load_e3nn_state_dict

__all__ = ["from_e3nn", "load_e3nn_state_dict"]
