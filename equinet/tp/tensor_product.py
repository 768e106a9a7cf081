r"""The general tensor product module, driven by e3nn-style instructions.

:class:`TensorProduct` computes

.. math::

    z = \sum_{p \in \text{paths}} c_p\, \big(w_p \cdot (x_{1} \otimes_{C_p} x_{2})\big)
    \Big|_{\text{block } i_\text{out}(p)}

where each instruction ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])``
is one path coupling block ``i_in1`` of the first input with block ``i_in2`` of
the second into block ``i_out`` of the output through the Wigner 3j symbol
:math:`C_p`; see :mod:`equinet.tp.descriptor` for the modes and coefficients.
Conventions, normalizations and the flat weight layout are e3nn's, so that a
module built from the same instructions and given the same weights computes the
same numbers as ``e3nn.o3.TensorProduct``.
"""
import math
import sys
from typing import Dict, Iterator, List, Optional, Sequence

import torch

from ..o3 import Irreps
from .descriptor import Instruction, TensorProductDescriptor, build_descriptor
from . import kernels
from .kernels import BACKENDS, get_backend, resolve_backend

__all__ = ["TensorProduct"]


def _check_backend_name(backend: str) -> str:
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown tensor-product backend {backend!r}; expected 'auto' or one of "
                         f"{list(BACKENDS)}")
    return backend


@torch.compiler.assume_constant_result
def _resolve_and_import(backend: str, desc: TensorProductDescriptor, device: str) -> str:
    """Resolve the backend and import its module; a constant to ``torch.compile``.

    Importing cannot be traced by dynamo, so under ``torch.compile`` this runs
    at trace time and its result (a name) is baked into the graph.
    """
    name = resolve_backend(backend, desc, torch.device(device))
    get_backend(name)
    return name


def _weight_flags(shared_weights: Optional[bool], internal_weights: Optional[bool],
                  has_weights: bool):
    """e3nn's defaults: weights shared; internal when shared and some path is weighted."""
    if shared_weights is False and internal_weights is None:
        internal_weights = False
    if shared_weights is None:
        shared_weights = True
    if internal_weights is None:
        internal_weights = shared_weights and has_weights
    if internal_weights and not shared_weights:
        raise ValueError("internal_weights=True requires shared_weights=True: weights stored in "
                         "the module are the same for every sample")
    return bool(shared_weights), bool(internal_weights)


class TensorProduct(torch.nn.Module):
    r"""Tensor product of two inputs laid out by irreps, with e3nn's instructions.

    .. math::

        z_{w k} = \sum_{p} c_p \sum_{u v i j} w^{(p)}_{u v w}\, C^{(p)}_{i j k}\,
        x_{1, u i}\, x_{2, v j}

    with the channel indices :math:`u, v, w` tied or summed according to each
    path's connection mode (``"uvw"``, ``"uvu"``, ``"uvv"``, ``"uuw"``,
    ``"uuu"``, ``"uvuv"``, ``"uvu<v"``, ``"u<vw"``), and :math:`c_p` fixed by
    ``irrep_normalization``, ``path_normalization``, the variances and the
    optional ``path_weight`` of the instruction. Output blocks that no path
    reaches are zero.

    Differences from e3nn 0.6: passing ``weight`` to a module that has internal
    weights raises (e3nn silently uses the passed weights), bad shapes raise
    :class:`ValueError` instead of failing assertions, and the weights may not
    be given as a list of tensors.

    Parameters
    ----------
    irreps_in1, irreps_in2, irreps_out : Irreps or str
        Layouts of the two inputs and of the output.
    instructions : list of tuple
        ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])``.
    in1_var, in2_var, out_var : list of float, optional
        Variance of each block of the inputs, and the wanted variance of each
        output block (all ones by default).
    irrep_normalization : {"component", "norm", "none"}
    path_normalization : {"element", "path", "none"}
    internal_weights : bool, optional
        Whether the module owns its weights as the parameter ``weight``
        (default: when the weights are shared and some path has weights).
    shared_weights : bool, optional
        Whether one set of weights serves all samples (default ``True``).
        When ``False``, :meth:`forward` takes weights of shape ``[..., weight_numel]``.
    backend : str
        ``"auto"`` (default), ``"reference"``, ``"torch"`` or ``"triton"``: which
        kernel runs the paths. ``"auto"`` is resolved on the first call on each
        device (see :func:`equinet.tp.kernels.resolve_backend`) and remembered.

    Attributes
    ----------
    instructions : list of Instruction
        The instructions as e3nn stores them: ``path_weight`` holds the final
        path coefficient :math:`c_p`, ``path_shape`` the shape of the path's weights.
    descriptor : TensorProductDescriptor
        What the backends execute.
    weight_numel : int
        Number of weights, laid out in instruction order, each path's weights
        flattened in its ``path_shape`` (e3nn's layout).
    weight : torch.nn.Parameter or None
        The internal weights, initialised from a standard normal (as e3nn).

    Examples
    --------
    A learnable cross product of 4 vectors with a vector, one weight per channel:

    >>> tp = TensorProduct("4x1o", "1o", "4x1e", [(0, 0, 0, "uvu", True)])
    >>> tp.weight_numel
    4
    >>> tp(torch.randn(10, 12), torch.randn(10, 3)).shape
    torch.Size([10, 12])
    """

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        instructions: Sequence[Sequence],
        in1_var=None,
        in2_var=None,
        out_var=None,
        irrep_normalization: str = "component",
        path_normalization: str = "element",
        internal_weights: Optional[bool] = None,
        shared_weights: Optional[bool] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if irrep_normalization is None:
            irrep_normalization = "component"
        if path_normalization is None:
            path_normalization = "element"
        self.irreps_in1 = Irreps(irreps_in1)
        self.irreps_in2 = Irreps(irreps_in2)
        self.irreps_out = Irreps(irreps_out)
        descriptor, normalized = build_descriptor(
            self.irreps_in1, self.irreps_in2, self.irreps_out, list(instructions),
            in1_var, in2_var, out_var, irrep_normalization, path_normalization)
        self.descriptor: TensorProductDescriptor = descriptor
        self.instructions: List[Instruction] = list(normalized)
        self.weight_numel: int = descriptor.weight_numel
        self.shared_weights, self.internal_weights = _weight_flags(
            shared_weights, internal_weights, any(ins.has_weight for ins in normalized))
        self.backend: str = _check_backend_name(backend)
        # device -> backend name; filled on first use, not pickled
        self._backend_names: Dict[str, str] = {}
        if self.internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel))
        else:
            self.register_parameter("weight", None)

    # -- backend -------------------------------------------------------------------------
    def backend_for(self, device) -> str:
        """The name of the backend that runs this product on ``device``."""
        return resolve_backend(self.backend, self.descriptor, torch.device(device))

    def _kernel(self, device: torch.device):
        if torch.compiler.is_compiling():
            # compiled graphs and exported programs must keep the batch size symbolic (an MD
            # step changes the numbers of atoms and edges): the readable einsums do, and the
            # compiler fuses them; the torch backend's chunks and cached plans take concrete
            # sizes, so every new size would compile anew
            return kernels.reference.tensor_product
        key = str(device)
        name = self._backend_names.get(key)
        if name is None:
            name = _resolve_and_import(self.backend, self.descriptor, key)
            self._backend_names[key] = name
        return sys.modules[f"{kernels.__name__}.{name}"].tensor_product

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_backend_names"] = {}
        return state

    # -- weights -------------------------------------------------------------------------
    def _get_weight(self, weight: Optional[torch.Tensor], like: torch.Tensor,
                    batch: Optional[tuple] = None) -> torch.Tensor:
        # batch: the inputs' broadcast leading shape when known, to name it in the messages
        if weight is None:
            if self.weight_numel == 0:
                return like.new_zeros(0)
            if not self.internal_weights:
                raise ValueError(f"this {type(self).__name__} has no internal weights: pass "
                                 f"weight of shape {self._weight_shape_text(batch)}")
            return self.weight
        if self.internal_weights:
            raise ValueError(f"this {type(self).__name__} has internal weights (internal_weights="
                             "True); build it with internal_weights=False to pass weights")
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"weight must be a tensor, got {type(weight).__name__}")
        if self.shared_weights:
            if weight.dim() != 1 or weight.shape[0] != self.weight_numel:
                raise ValueError(f"weight has shape {tuple(weight.shape)}, expected "
                                 f"{self._weight_shape_text()} (shared_weights=True)")
        elif weight.dim() < 2 or weight.shape[-1] != self.weight_numel:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected "
                             f"{self._weight_shape_text(batch)} (shared_weights=False: one set "
                             f"of {self.weight_numel} weights per sample"
                             + ("" if batch is None else f" of the inputs' batch {batch}") + ")")
        return weight

    def _weight_shape_text(self, batch: Optional[tuple] = None) -> str:
        if self.shared_weights:
            return f"[{self.weight_numel}]"
        if batch is None:
            return f"[..., {self.weight_numel}]"
        return "[" + ", ".join(str(n) for n in tuple(batch) + (self.weight_numel,)) + "]"

    def weight_views(self, weight: Optional[torch.Tensor] = None,
                     yield_instruction: bool = False) -> Iterator:
        """Views of the weights of each weighted instruction, shaped ``[...] + path_shape``.

        Yields ``(index, instruction, view)`` when ``yield_instruction`` is true.
        ``weight`` defaults to the internal weights.

        >>> tp = TensorProduct("2x0e", "0e", "3x0e", [(0, 0, 0, "uvw", True)])
        >>> [tuple(w.shape) for w in tp.weight_views()]
        [(2, 1, 3)]
        """
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise ValueError(f"this {type(self).__name__} has no internal weights: pass "
                                 f"weight of shape {self._weight_shape_text()}")
            weight = self.weight if self.weight is not None else torch.zeros(0)
        if weight.shape[-1:] != (self.weight_numel,):
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected last dimension "
                             f"{self.weight_numel}")
        batch, offset = weight.shape[:-1], 0
        for index, ins in enumerate(self.instructions):
            if ins.has_weight:
                size = math.prod(ins.path_shape)
                view = weight.narrow(-1, offset, size).view(batch + ins.path_shape)
                offset += size
                yield (index, ins, view) if yield_instruction else view

    def weight_view_for_instruction(self, instruction: int,
                                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The view of the weights of instruction number ``instruction``."""
        if not self.instructions[instruction].has_weight:
            raise ValueError(f"instruction {instruction} has no weights")
        for index, _, view in self.weight_views(weight, yield_instruction=True):
            if index == instruction:
                return view
        raise AssertionError("unreachable")

    # -- evaluation ----------------------------------------------------------------------
    def forward(self, x1: torch.Tensor, x2: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Evaluate the product.

        Parameters
        ----------
        x1 : torch.Tensor
            ``[..., irreps_in1.dim]``
        x2 : torch.Tensor
            ``[..., irreps_in2.dim]``
        weight : torch.Tensor, optional
            Required when the module has no internal weights: ``[weight_numel]``
            when the weights are shared, ``[..., weight_numel]`` otherwise.

        Returns
        -------
        torch.Tensor
            ``[..., irreps_out.dim]``, the leading dimensions of the inputs (and
            of per-sample weights) broadcast together.
        """
        desc = self.descriptor
        if x1.shape[-1:] != (desc.dim_in1,):
            raise ValueError(f"x1 (the first input) has shape {tuple(x1.shape)}, expected last "
                             f"dimension {desc.dim_in1} for irreps_in1 = {self.irreps_in1}")
        if x2.shape[-1:] != (desc.dim_in2,):
            raise ValueError(f"x2 (the second input) has shape {tuple(x2.shape)}, expected last "
                             f"dimension {desc.dim_in2} for irreps_in2 = {self.irreps_in2}")
        try:
            inputs_batch = tuple(torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1]))
        except RuntimeError:
            raise ValueError(f"the leading dimensions of x1 {tuple(x1.shape[:-1])} and x2 "
                             f"{tuple(x2.shape[:-1])} do not broadcast") from None
        weight = self._get_weight(weight, x1, inputs_batch)
        if x2.dtype != x1.dtype or (weight.numel() > 0 and weight.dtype != x1.dtype):
            raise TypeError(f"dtypes differ: x1 {x1.dtype}, x2 {x2.dtype}, weight {weight.dtype}; "
                            "convert the inputs (or the module, with .to(dtype)) to one dtype")
        shapes = [x1.shape[:-1], x2.shape[:-1]]
        if not self.shared_weights and weight.dim() > 1:
            shapes.append(weight.shape[:-1])
        try:
            batch = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected "
                             f"{self._weight_shape_text(inputs_batch)}: its leading dimensions "
                             f"{tuple(shapes[2])} do not broadcast with the inputs' batch "
                             f"{inputs_batch} (x1 {tuple(shapes[0])}, x2 {tuple(shapes[1])})"
                             ) from None
        z = math.prod(batch)  # explicit: reshape(-1, 0) is ambiguous for empty irreps
        x1 = x1.expand(batch + (desc.dim_in1,)).reshape(z, desc.dim_in1)
        x2 = x2.expand(batch + (desc.dim_in2,)).reshape(z, desc.dim_in2)
        if not self.shared_weights and weight.dim() > 1:
            weight = weight.expand(batch + (self.weight_numel,)).reshape(z, self.weight_numel)
        if not desc.paths:
            return x1.new_zeros(batch + (desc.dim_out,))
        out = self._kernel(x1.device)(desc, x1, x2, weight)
        return out.reshape(batch + (desc.dim_out,))

    def __repr__(self) -> str:
        npath = sum(math.prod(ins.path_shape) for ins in self.instructions)
        return (f"{type(self).__name__}({self.irreps_in1.simplify()} x "
                f"{self.irreps_in2.simplify()} -> {self.irreps_out.simplify()} | {npath} paths | "
                f"{self.weight_numel} weights)")
