"""Layers composed from o3 and tp: radial bases and cutoffs, MLPs, gates, norms, convolutions."""
from .activation_norm import Normalize2Mom, normalize2mom, second_moment
from .mlp import FullyConnectedLayer, FullyConnectedNet
from .radial import BesselBasis, PolynomialCutoff, soft_one_hot_linspace, soft_unit_step

__all__ = [
    "soft_one_hot_linspace", "soft_unit_step", "BesselBasis", "PolynomialCutoff",
    "Normalize2Mom", "normalize2mom", "second_moment",
    "FullyConnectedLayer", "FullyConnectedNet",
]
