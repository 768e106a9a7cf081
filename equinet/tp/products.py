r"""Named kinds of tensor products: the instruction lists most models use.

Each class is a :class:`~equinet.tp.tensor_product.TensorProduct` whose
instructions (and, where the kind fixes it, output irreps) are built from the
input irreps. The instruction lists and their order are e3nn's, so that the
weight layouts match e3nn's classes of the same name;
:class:`ChannelWiseTensorProduct` has no e3nn class and follows the
convolutions of NequIP and MACE. :class:`TensorSquare` lives in
:mod:`equinet.tp.tensor_square`.
"""
from typing import List, Optional

from ..o3 import Irrep, Irreps, MulIr
from .tensor_product import TensorProduct

__all__ = ["FullyConnectedTensorProduct", "FullTensorProduct", "ElementwiseTensorProduct",
           "ChannelWiseTensorProduct"]


def _irrep_filter(filter_ir_out, name: str = "filter_ir_out") -> Optional[List[Irrep]]:
    """The irreps allowed in the output, or None for all; multiplicities are ignored."""
    if filter_ir_out is None:
        return None
    if isinstance(filter_ir_out, (str, Irreps)):
        return [ir for _, ir in Irreps(filter_ir_out)]
    if isinstance(filter_ir_out, Irrep):
        return [filter_ir_out]
    try:
        return [ir.ir if isinstance(ir, MulIr) else Irrep(ir) for ir in filter_ir_out]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}={filter_ir_out!r} must be irreps or an iterable of irreps: "
                         f"{err}") from None


class FullyConnectedTensorProduct(TensorProduct):
    r"""All allowed paths, each fully connected: :math:`z_w = \sum_{uv} w_{uvw}\, x_u \otimes y_v`.

    One ``"uvw"`` instruction with weights for every triple of blocks
    ``(i_in1, i_in2, i_out)`` with :math:`|l_1 - l_2| \le l_\text{out} \le l_1 + l_2`
    and :math:`p_1 p_2 = p_\text{out}`, in the order of e3nn's class of the same name.

    Parameters
    ----------
    irreps_in1, irreps_in2, irreps_out : Irreps or str
    irrep_normalization, path_normalization : str, optional
    **kwargs
        Passed to :class:`TensorProduct` (variances, weight flags, backend).

    Examples
    --------
    >>> tp = FullyConnectedTensorProduct("2x0e + 1o", "0e + 1o", "3x0e + 2x1o")
    >>> tp.weight_numel, len(tp.instructions)
    (15, 4)
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, irrep_normalization: str = None,
                 path_normalization: str = None, **kwargs) -> None:
        irreps_in1, irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        irreps_out = Irreps(irreps_out)
        instructions = [
            (i1, i2, io, "uvw", True, 1.0)
            for i1, (_, ir1) in enumerate(irreps_in1)
            for i2, (_, ir2) in enumerate(irreps_in2)
            for io, (_, ir_out) in enumerate(irreps_out)
            if ir_out in ir1 * ir2
        ]
        super().__init__(irreps_in1, irreps_in2, irreps_out, instructions,
                         irrep_normalization=irrep_normalization,
                         path_normalization=path_normalization, **kwargs)


class FullTensorProduct(TensorProduct):
    r"""All products of a channel of each input: :math:`z_{uv} = x_u \otimes y_v`.

    No weights. The inputs are simplified; for each pair of blocks and each
    allowed output irrep (kept by ``filter_ir_out``) one ``"uvuv"`` instruction
    fills a block of multiplicity :math:`m_1 m_2`, channels ordered ``(u, v)``
    row-major, as e3nn's ``FullTensorProduct``.

    Parameters
    ----------
    irreps_in1, irreps_in2 : Irreps or str
    filter_ir_out : irreps or iterable of Irrep, optional
        The output irreps to keep (multiplicities ignored); all by default.
    irrep_normalization : str, optional
    regroup_output : bool
        ``True`` (default, e3nn's layout): the output blocks are sorted by
        irrep, so that equal irreps lie next to each other and
        ``irreps_out.simplify()`` describes the same data. ``False``: the blocks
        stay in the order they are generated (by input block 1, input block 2,
        then output degree).
    **kwargs
        Passed to :class:`TensorProduct`.

    Examples
    --------
    >>> tp = FullTensorProduct("2x1o", "1o + 0e")
    >>> tp.irreps_out
    2x0e+2x1o+2x1e+2x2e
    >>> FullTensorProduct("2x1o", "1o + 0e", regroup_output=False).irreps_out
    2x0e+2x1e+2x2e+2x1o
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None,
                 irrep_normalization: str = None, regroup_output: bool = True, **kwargs) -> None:
        irreps_in1, irreps_in2 = Irreps(irreps_in1).simplify(), Irreps(irreps_in2).simplify()
        keep = _irrep_filter(filter_ir_out)
        blocks, instructions = [], []
        for i1, (mul1, ir1) in enumerate(irreps_in1):
            for i2, (mul2, ir2) in enumerate(irreps_in2):
                for ir_out in ir1 * ir2:
                    if keep is not None and ir_out not in keep:
                        continue
                    instructions.append((i1, i2, len(blocks), "uvuv", False))
                    blocks.append((mul1 * mul2, ir_out))
        irreps_out = Irreps(blocks)
        if regroup_output:
            irreps_out, p, _ = irreps_out.sort()
            instructions = [(i1, i2, p[io], mode, w) for i1, i2, io, mode, w in instructions]
        super().__init__(irreps_in1, irreps_in2, irreps_out, instructions,
                         irrep_normalization=irrep_normalization, **kwargs)


class ElementwiseTensorProduct(TensorProduct):
    r"""Channel-by-channel product of two inputs: :math:`z_u = x_u \otimes y_u`.

    No weights. Both inputs are simplified and their blocks split so that
    channel :math:`u` of one meets channel :math:`u` of the other; each pair of
    blocks gives one ``"uuu"`` instruction per allowed output irrep (kept by
    ``filter_ir_out``), in e3nn's order.

    Parameters
    ----------
    irreps_in1, irreps_in2 : Irreps or str
        Must have the same number of channels (``num_irreps``).
    filter_ir_out : irreps or iterable of Irrep, optional
    irrep_normalization : str, optional
    **kwargs
        Passed to :class:`TensorProduct`.

    Examples
    --------
    Dot products of 5 pairs of vectors:

    >>> tp = ElementwiseTensorProduct("5x1o", "5x1o", ["0e"])
    >>> tp.irreps_out
    5x0e
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None,
                 irrep_normalization: str = None, **kwargs) -> None:
        irreps_in1, irreps_in2 = Irreps(irreps_in1).simplify(), Irreps(irreps_in2).simplify()
        keep = _irrep_filter(filter_ir_out)
        if irreps_in1.num_irreps != irreps_in2.num_irreps:
            raise ValueError(f"ElementwiseTensorProduct needs inputs with as many channels: "
                             f"{irreps_in1} has {irreps_in1.num_irreps}, {irreps_in2} has "
                             f"{irreps_in2.num_irreps}")
        blocks1, blocks2 = list(irreps_in1), list(irreps_in2)
        i = 0
        while i < len(blocks1):  # split the longer block so both start and stop together
            (mul1, ir1), (mul2, ir2) = blocks1[i], blocks2[i]
            if mul1 < mul2:
                blocks2[i:i + 1] = [(mul1, ir2), (mul2 - mul1, ir2)]
            elif mul2 < mul1:
                blocks1[i:i + 1] = [(mul2, ir1), (mul1 - mul2, ir1)]
            i += 1
        blocks_out, instructions = [], []
        for i, ((mul, ir1), (_, ir2)) in enumerate(zip(blocks1, blocks2)):
            for ir_out in ir1 * ir2:
                if keep is not None and ir_out not in keep:
                    continue
                instructions.append((i, i, len(blocks_out), "uuu", False))
                blocks_out.append((mul, ir_out))
        super().__init__(blocks1, blocks2, blocks_out, instructions,
                         irrep_normalization=irrep_normalization, **kwargs)


class ChannelWiseTensorProduct(TensorProduct):
    r"""Each channel of the first input times the second, weighted per path and channel.

    .. math::

        z^{(p)}_{u k} = c_p \sum_{v i j} w^{(p)}_{u v}\, C^{(p)}_{i j k}\, x_{1, u i}\, x_{2, v j}

    the ``"uvu"`` product of the interatomic convolutions of NequIP and MACE:
    ``x1`` are node features, ``x2`` spherical harmonics of the edge vectors and
    the weights come per edge from a radial network (``shared_weights=False``
    by default).

    The output irreps are built as in NequIP and MACE: for every block
    ``(mul, ir1)`` of ``irreps_in1`` (in order), every block ``ir2`` of
    ``irreps_in2`` (in order) and every ``ir_out`` in :math:`ir_1 \otimes
    ir_2` kept by the filter, one block ``mul x ir_out`` and one instruction
    ``(i_in1, i_in2, i_out, "uvu", True)``. The blocks are then sorted by irrep
    (stably) and the instructions' ``i_out`` renumbered accordingly; the
    instructions keep their generation order, which fixes the weight layout
    (NequIP's order; MACE additionally sorts the instructions by ``i_out``).
    Equal irreps end up adjacent, so ``irreps_out.simplify()`` describes the
    same data (for example as input of a following :class:`~equinet.tp.Linear`).

    Parameters
    ----------
    irreps_in1, irreps_in2 : Irreps or str
    filter_ir_out : irreps or iterable of Irrep, optional
        The allowed output irreps (for example the irreps wanted after the
        convolution; multiplicities are ignored). All by default.
    shared_weights : bool
        ``False`` by default: weights are given per sample to :meth:`forward`.
    **kwargs
        Passed to :class:`TensorProduct`.

    Examples
    --------
    >>> tp = ChannelWiseTensorProduct("8x0e + 8x1o", "0e + 1o", "0e + 1o")
    >>> tp.irreps_out, tp.weight_numel
    (8x0e+8x0e+8x1o+8x1o, 32)
    >>> import torch
    >>> tp(torch.randn(5, 32), torch.randn(5, 4), torch.randn(5, 32)).shape
    torch.Size([5, 64])
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None,
                 shared_weights: bool = False, **kwargs) -> None:
        irreps_in1, irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        keep = _irrep_filter(filter_ir_out)
        blocks, instructions = [], []
        for i1, (mul, ir1) in enumerate(irreps_in1):
            for i2, (_, ir2) in enumerate(irreps_in2):
                for ir_out in ir1 * ir2:
                    if keep is not None and ir_out not in keep:
                        continue
                    instructions.append((i1, i2, len(blocks), "uvu", True))
                    blocks.append((mul, ir_out))
        irreps_out, p, _ = Irreps(blocks).sort()
        instructions = [(i1, i2, p[io], mode, w) for i1, i2, io, mode, w in instructions]
        super().__init__(irreps_in1, irreps_in2, irreps_out, instructions,
                         shared_weights=shared_weights, **kwargs)
