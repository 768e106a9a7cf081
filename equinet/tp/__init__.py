"""Equivariant primitive operations driven by one descriptor: tensor products and Linear."""
from .descriptor import Instruction, TensorProductDescriptor, build_descriptor
from .linear import Linear, LinearInstruction
from .products import (ChannelWiseTensorProduct, ElementwiseTensorProduct, FullTensorProduct,
                       FullyConnectedTensorProduct)
from .tensor_product import TensorProduct
from .tensor_square import TensorSquare

__all__ = ["Instruction", "TensorProductDescriptor", "build_descriptor",
           "TensorProduct", "FullyConnectedTensorProduct", "FullTensorProduct",
           "ElementwiseTensorProduct", "ChannelWiseTensorProduct", "TensorSquare",
           "Linear", "LinearInstruction"]
from .gaunt import gaunt_power, gaunt_product  # noqa: E402
from .gaunt_many_body import GauntManyBody  # noqa: E402
from .gaunt_tensor_product import GauntTensorProduct  # noqa: E402

__all__ += ["gaunt_product", "gaunt_power", "GauntTensorProduct", "GauntManyBody"]
from .conv import TensorProductConv  # noqa: E402

__all__ += ["TensorProductConv"]
