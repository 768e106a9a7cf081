"""Equivariant primitive operations driven by one descriptor: tensor products and Linear."""
from .descriptor import Instruction, TensorProductDescriptor, build_descriptor

__all__ = ["Instruction", "TensorProductDescriptor", "build_descriptor"]
