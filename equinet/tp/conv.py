r"""Tensor-product graph convolution: gather, product and scatter-sum in one operation.

:class:`TensorProductConv` computes, for every node :math:`n`,

.. math::

    y_n = \sum_{e:\ \mathrm{dst}(e) = n} \mathrm{TP}\big(x_{\mathrm{src}(e)},\ a_e,\ w_e\big),

the message passing step of NequIP, MACE, Allegro and DiffDock, equal to
``zeros.index_add(0, edge_dst, TensorProduct(x[edge_src], edge_attr, edge_weight))``
but without storing the ``[edges, features]`` messages: on CUDA the ``triton``
backend fuses the three steps in one kernel, and the ``torch`` backend walks the
edges in chunks of bounded memory.
"""
from typing import Optional, Sequence

import torch

from ..o3.irrep import as_int
from .kernels import reference as reference_kernels
from .kernels.convolution import chunked_convolution, reference_convolution
from .tensor_product import TensorProduct, _resolve_and_import

__all__ = ["TensorProductConv", "check_index_range"]


def check_index_range(index: torch.Tensor, bound, name: str) -> None:
    """Raise unless every entry of the integer tensor ``index`` lies in ``[0, bound)``.

    In eager mode the error names the offending range. Under ``torch.compile`` and
    ``torch.export`` a value check cannot run while tracing (the values are not known), so it
    becomes a runtime assertion inside the graph (``torch._assert_async``), which compiled and
    AOTInductor-packaged code evaluate on every call.
    """
    if torch.compiler.is_compiling():
        torch._assert_async(((index >= 0) & (index < bound)).all(),
                            f"{name} holds indices outside [0, number of nodes)")
        return
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= bound:
        raise ValueError(f"{name} holds node indices in [{low}, {high}] but must lie "
                         f"in [0, {bound - 1}] ({bound} nodes)")


def _connected_zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that depends on every tensor (a sum over none of its entries: never NaN)."""
    zero = tensors[0].new_zeros(())
    for t in tensors:
        if t.is_floating_point():
            zero = zero + t.reshape(-1)[:0].sum()
    return zero


class TensorProductConv(TensorProduct):
    r"""A :class:`~equinet.tp.TensorProduct` applied along the edges of a graph and summed.

    .. math::

        y_n = \sum_{e:\ \mathrm{dst}(e) = n} \mathrm{TP}\big(x_{\mathrm{src}(e)},\ a_e,\ w_e\big)

    Parameters
    ----------
    irreps_in1, irreps_in2, irreps_out, instructions : see TensorProduct
        As for :class:`~equinet.tp.TensorProduct`: ``irreps_in1`` lays out the node
        features, ``irreps_in2`` the edge attributes (e.g. spherical harmonics); so do
        ``in1_var``, ``in2_var``, ``out_var``, ``irrep_normalization``,
        ``path_normalization`` and ``internal_weights``.
    shared_weights : bool
        Default ``False``: one set of weights per edge (e.g. from a radial MLP).
    backend : str
        ``"auto"``, ``"reference"`` (gather, product, ``index_add``: the definition),
        ``"torch"`` (chunks of edges) or ``"triton"`` (one fused kernel; on devices or
        descriptors it does not support, the ``torch`` convolution runs instead).
    chunk_size : int, optional
        Edges per chunk of the ``torch`` convolution; by default sized so that one
        chunk's rows (inputs, weights, output) take at most 64 MB.
    deterministic : bool
        For ``triton``: sum each node's edges in a fixed order (sorted by
        destination, no atomic additions), so that results reproduce bitwise.

    Notes
    -----
    Under ``torch.compile`` and ``torch.export`` every backend traces as the definition
    (gather, the reference einsums, ``index_add``), which the compiler fuses: one graph with
    symbolic numbers of nodes and edges, that AOTInductor can package. A graph without
    edges gives zeros that stay connected to ``x``, ``edge_attr`` and the weights (zero
    gradients), so that forces of isolated atoms are zeros rather than autograd errors.

    Examples
    --------
    >>> conv = TensorProductConv("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
    ...                          [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
    ...                           (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True)])
    >>> x, edge_attr = torch.randn(3, 8), torch.randn(4, 4)
    >>> edge_weight = torch.randn(4, conv.weight_numel)
    >>> src, dst = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 0, 0, 1])
    >>> conv(x, edge_attr, edge_weight, src, dst).shape
    torch.Size([3, 8])
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
        shared_weights: Optional[bool] = False,
        backend: str = "auto",
        chunk_size: Optional[int] = None,
        deterministic: bool = False,
    ) -> None:
        super().__init__(irreps_in1, irreps_in2, irreps_out, instructions, in1_var=in1_var,
                         in2_var=in2_var, out_var=out_var,
                         irrep_normalization=irrep_normalization,
                         path_normalization=path_normalization,
                         internal_weights=internal_weights, shared_weights=shared_weights,
                         backend=backend)
        if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
            raise ValueError(f"chunk_size must be a positive number of edges, got {chunk_size!r}")
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.deterministic = bool(deterministic)

    def _check_edges(self, x, edge_attr, edge_weight, edge_src, edge_dst, num_nodes):
        desc = self.descriptor
        if x.dim() != 2 or x.shape[1] != desc.dim_in1:
            raise ValueError(f"x (node features) has shape {tuple(x.shape)}, expected "
                             f"[num_nodes, {desc.dim_in1}] for irreps_in1 = {self.irreps_in1}")
        for name, index in (("edge_src", edge_src), ("edge_dst", edge_dst)):
            if not isinstance(index, torch.Tensor) or index.dim() != 1 or \
                    index.dtype not in (torch.int32, torch.int64):
                raise TypeError(f"{name} must be a 1-d int64 (or int32) tensor, got "
                                f"{getattr(index, 'dtype', type(index))} of shape "
                                f"{tuple(getattr(index, 'shape', ()))}")
        edges = edge_src.shape[0]
        if edge_dst.shape[0] != edges:
            raise ValueError(f"edge_src and edge_dst have different numbers of edges "
                             f"({edges} and {edge_dst.shape[0]})")
        if edge_attr.dim() != 2 or edge_attr.shape != (edges, desc.dim_in2):
            raise ValueError(f"edge_attr has shape {tuple(edge_attr.shape)}, expected "
                             f"[{edges}, {desc.dim_in2}]: one row per edge, laid out by "
                             f"irreps_in2 = {self.irreps_in2}")
        if self.weight_numel and not self.shared_weights and \
                edge_weight.shape != (edges, self.weight_numel):
            raise ValueError(f"edge_weight has shape {tuple(edge_weight.shape)}, expected "
                             f"[{edges}, {self.weight_numel}] (one set of weights per edge)")
        if x.dtype != edge_attr.dtype or (edge_weight.numel() and edge_weight.dtype != x.dtype):
            raise TypeError(f"dtypes differ: x {x.dtype}, edge_attr {edge_attr.dtype}, "
                            f"edge_weight {edge_weight.dtype}")
        tensors = [x, edge_attr, edge_src, edge_dst]
        if edge_weight.numel():
            tensors.append(edge_weight)
        if len({t.device for t in tensors}) != 1:
            raise ValueError("x, edge_attr, edge_weight, edge_src and edge_dst must be on one "
                             "device")
        for name, index, bound in (("edge_src", edge_src, x.shape[0]),
                                   ("edge_dst", edge_dst, num_nodes)):
            check_index_range(index, bound, name)

    def forward(self, x: torch.Tensor, edge_attr: torch.Tensor,
                edge_weight: Optional[torch.Tensor], edge_src: torch.Tensor,
                edge_dst: torch.Tensor, num_nodes: Optional[int] = None) -> torch.Tensor:
        r"""Sum the products over the incoming edges of every node.

        Parameters
        ----------
        x : torch.Tensor
            Node features ``[N, irreps_in1.dim]``.
        edge_attr : torch.Tensor
            Edge attributes ``[E, irreps_in2.dim]``.
        edge_weight : torch.Tensor or None
            ``[E, weight_numel]`` (per-edge weights), ``[weight_numel]`` when the
            weights are shared, None for internal weights.
        edge_src, edge_dst : torch.Tensor
            Integer ``[E]``: the message of edge ``e`` goes from ``edge_src[e]`` to
            ``edge_dst[e]``.
        num_nodes : int, optional
            Number of output rows (default ``N``).

        Returns
        -------
        torch.Tensor
            ``[num_nodes, irreps_out.dim]``; rows of nodes without incoming edges are 0.
        """
        if num_nodes is None:
            num_nodes = x.shape[0]
        # a symbolic size stays symbolic (operator.index would pin it to the example's)
        if not (isinstance(num_nodes, torch.SymInt) or torch.compiler.is_compiling()):
            count = as_int(num_nodes)  # 2.7 is not a count of nodes: no silent truncation
            if count is None or count < 0:
                raise ValueError(f"num_nodes must be a non-negative integer, got {num_nodes!r}")
            num_nodes = count
        weight = self._get_weight(edge_weight, x)
        self._check_edges(x, edge_attr, weight, edge_src, edge_dst, num_nodes)
        desc = self.descriptor
        if not desc.paths:
            # nothing couples the inputs to the output; the zeros still hang on the graph (with
            # zero gradients), so that autograd.grad of a sum over them does not fail
            return x.new_zeros(num_nodes, desc.dim_out) + _connected_zero(x, edge_attr, weight)
        if torch.compiler.is_compiling():
            # The definition, gather, product (the reference einsums), index_add, in one
            # graph that the compiler fuses (inductor writes its own kernels, on GPUs too):
            # no chunk loop over a symbolic number of edges (nor a bound on it from the chunk
            # size test), no autograd.Function of the torch backend, whose backward dynamo
            # cannot trace with dynamic shapes, and no Python-launched triton kernels, which
            # torch.export and AOTInductor cannot package.
            messages = reference_kernels.tensor_product(desc, x.index_select(0, edge_src),
                                                        edge_attr, weight)
            return x.new_zeros(num_nodes, desc.dim_out).index_add(0, edge_dst, messages)
        name = _resolve_and_import(self.backend, desc, str(x.device))
        if name == "reference" or edge_src.shape[0] == 0:
            # without edges the definition (gather, product, index_add) costs nothing and keeps
            # the zero output connected to x, edge_attr and the weights: forces and weight
            # gradients of isolated atoms are zeros, not "tensor not used in the graph" errors
            return reference_convolution(desc, x, edge_attr, weight, edge_src, edge_dst,
                                         num_nodes)
        if name == "triton":
            from .kernels import triton as triton_kernels
            return triton_kernels.convolution(desc, x, edge_attr, weight, edge_src, edge_dst,
                                              num_nodes, deterministic=self.deterministic,
                                              chunk=self.chunk_size)
        return chunked_convolution(desc, x, edge_attr, weight, edge_src, edge_dst, num_nodes,
                                   chunk=self.chunk_size)
