"""Layers composed from o3 and tp: radial bases and cutoffs, MLPs, gates, norms, convolutions."""
from .activation_norm import Normalize2Mom, normalize2mom, second_moment
from .mlp import FullyConnectedLayer, FullyConnectedNet
from .radial import BesselBasis, PolynomialCutoff, soft_one_hot_linspace, soft_unit_step
from .activation import Activation, activation_parity
from .attention import EquivariantAttention
from .batch_norm import BatchNorm
from .dropout import Dropout
from .extract import Extract, ExtractIr
from .gate import Gate
from .layer_norm import LayerNorm
from .norm import Norm, safe_sqrt
from .norm_activation import NormActivation
from .point_convolution import PointConvolution
from .s2_activation import S2Activation
from .softmax import scatter_softmax
from .spherical_harmonics import SphericalHarmonics

__all__ = [
    "soft_one_hot_linspace", "soft_unit_step", "BesselBasis", "PolynomialCutoff",
    "Normalize2Mom", "normalize2mom", "second_moment",
    "FullyConnectedLayer", "FullyConnectedNet",
]
__all__ += [
    "Activation", "activation_parity", "Gate", "NormActivation", "S2Activation",
    "BatchNorm", "LayerNorm", "Dropout",
    "SphericalHarmonics", "Extract", "ExtractIr", "Norm", "safe_sqrt",
    "PointConvolution", "EquivariantAttention", "scatter_softmax",
]
