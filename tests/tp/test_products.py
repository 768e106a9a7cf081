"""The named tensor products against e3nn's classes of the same name (and NequIP's recipe)."""
import importlib

import pytest
import torch

from equinet.o3 import Irrep
from equinet.testing import assert_equivariant
from equinet.tp import (ChannelWiseTensorProduct, ElementwiseTensorProduct, FullTensorProduct,
                        FullyConnectedTensorProduct, TensorSquare)

e3nn_o3 = pytest.importorskip("e3nn.o3")


def _auto_param():
    try:
        importlib.import_module("equinet.tp.kernels.torch")
    except Exception:
        reason = "equinet.tp.kernels.torch is not importable"
        return pytest.param("auto", marks=pytest.mark.skip(reason=reason))
    return "auto"


BACKENDS = ["reference", _auto_param()]
IRREPS1 = "2x0e + 3x1o + 0e + 2x2e"   # not simplified: the kinds that simplify must do so
IRREPS2 = "0e + 2x1o + 2e"


def _assert_same_instructions(ours, theirs):
    assert len(ours.instructions) == len(theirs.instructions)
    for a, b in zip(ours.instructions, theirs.instructions):
        assert (a.i_in1, a.i_in2, a.i_out, a.connection_mode, a.has_weight, a.path_shape) == \
            (b.i_in1, b.i_in2, b.i_out, b.connection_mode, b.has_weight, tuple(b.path_shape))
        assert a.path_weight == pytest.approx(b.path_weight, rel=1e-14)
    assert str(ours.irreps_in1) == str(theirs.irreps_in1)
    assert str(ours.irreps_in2) == str(theirs.irreps_in2)
    assert str(ours.irreps_out) == str(theirs.irreps_out)
    assert ours.weight_numel == theirs.weight_numel


def _copy_weight(ours, theirs):
    if ours.weight is not None:
        with torch.no_grad():
            ours.weight.copy_(theirs.weight)
    return [(ours.weight, theirs.weight)] if ours.weight is not None else []


KINDS = {
    "fully_connected": (FullyConnectedTensorProduct, "FullyConnectedTensorProduct",
                        (IRREPS1, IRREPS2, "3x0e + 2x1o + 2x1e + 2e"), {}),
    "fully_connected_path": (FullyConnectedTensorProduct, "FullyConnectedTensorProduct",
                             (IRREPS1, IRREPS2, "3x0e + 2x1o + 2x2e"),
                             {"irrep_normalization": "norm", "path_normalization": "path"}),
    "full": (FullTensorProduct, "FullTensorProduct", (IRREPS1, IRREPS2), {}),
    "full_filtered": (FullTensorProduct, "FullTensorProduct",
                      (IRREPS1, IRREPS2, ["0e", "1o", "2e"]), {"irrep_normalization": "norm"}),
    "elementwise": (ElementwiseTensorProduct, "ElementwiseTensorProduct",
                    ("2x0e + 3x1o + 2e", "4x1o + 2x2e"), {}),
    "elementwise_filtered": (ElementwiseTensorProduct, "ElementwiseTensorProduct",
                             ("2x0e + 3x1o + 2e", "4x1o + 2x2e", ["1o", "2e", "0e"]),
                             {"irrep_normalization": "none"}),
    "square": (TensorSquare, "TensorSquare", (IRREPS1,), {}),
    "square_filtered_norm": (TensorSquare, "TensorSquare", (IRREPS1, None, ["0e", "2e", "1e"]),
                             {"irrep_normalization": "norm"}),
    "square_weighted": (TensorSquare, "TensorSquare", (IRREPS1, "2x0e + 2x1e + 2e + 1o"), {}),
    "square_weighted_norm": (TensorSquare, "TensorSquare", ("3x1o + 2x0e", "2x0e + 2e"),
                             {"irrep_normalization": "norm", "path_normalization": "path"}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_named_kinds_match_e3nn(kind, backend, float64_default, compare_with_oracle):
    cls, e3nn_name, args, kwargs = KINDS[kind]
    theirs = getattr(e3nn_o3, e3nn_name)(*args, **kwargs)
    ours = cls(*args, backend=backend, **kwargs)
    _assert_same_instructions(ours, theirs)
    params = _copy_weight(ours, theirs)
    if cls is TensorSquare:
        inputs = [torch.randn(4, ours.irreps_in.dim)]
    else:
        inputs = [torch.randn(4, ours.irreps_in1.dim), torch.randn(4, ours.irreps_in2.dim)]
    compare_with_oracle(ours, theirs, inputs, params)


def _nequip_convolution(irreps1, irreps2, irreps_target):
    """NequIP's recipe for its convolution product, written with e3nn's own Irreps."""
    target = {ir for _, ir in e3nn_o3.Irreps(irreps_target)}
    blocks, instructions = [], []
    for i, (mul, ir1) in enumerate(e3nn_o3.Irreps(irreps1)):
        for j, (_, ir2) in enumerate(e3nn_o3.Irreps(irreps2)):
            for ir_out in ir1 * ir2:
                if ir_out in target:
                    instructions.append((i, j, len(blocks), "uvu", True))
                    blocks.append((mul, ir_out))
    irreps_out, p, _ = e3nn_o3.Irreps(blocks).sort()
    instructions = [(i, j, p[k], mode, w) for i, j, k, mode, w in instructions]
    return e3nn_o3.TensorProduct(irreps1, irreps2, irreps_out, instructions,
                                 shared_weights=False, internal_weights=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_wise_is_nequip_convolution(backend, float64_default, compare_with_oracle):
    irreps1, irreps2, target = "4x0e + 3x1o + 2x2e", "0e + 1o + 2e", "0e + 1o + 2e + 1e"
    theirs = _nequip_convolution(irreps1, irreps2, target)
    ours = ChannelWiseTensorProduct(irreps1, irreps2, target, backend=backend)
    _assert_same_instructions(ours, theirs)
    assert not ours.shared_weights and not ours.internal_weights and ours.weight is None
    inputs = [torch.randn(6, ours.irreps_in1.dim), torch.randn(6, ours.irreps_in2.dim),
              torch.randn(6, ours.weight_numel)]
    compare_with_oracle(ours, theirs, inputs)
    # without a filter every output irrep is kept
    everything = ChannelWiseTensorProduct(irreps1, irreps2)
    _assert_same_instructions(everything, _nequip_convolution(
        irreps1, irreps2, "0e + 0o + 1o + 1e + 2e + 2o + 3o + 3e + 4e"))


def test_full_tensor_product_without_regrouping(float64_default):
    ours = FullTensorProduct("2x1o + 0e", "1o", regroup_output=False)
    assert str(ours.irreps_out) == "2x0e+2x1e+2x2e+1x1o"
    assert [(i.i_in1, i.i_in2, i.i_out) for i in ours.instructions] == \
        [(0, 0, 0), (0, 0, 1), (0, 0, 2), (1, 0, 3)]
    theirs = e3nn_o3.FullTensorProduct("2x1o + 0e", "1o")  # sorted: 2x0e + 1o + 2x1e + 2x2e
    x1, x2 = torch.randn(3, 7), torch.randn(3, 3)
    a, b = ours(x1, x2), theirs(x1, x2)
    torch.testing.assert_close(a[:, :2], b[:, :2], atol=1e-12, rtol=0)      # 2x0e
    torch.testing.assert_close(a[:, 2:8], b[:, 5:11], atol=1e-12, rtol=0)   # 2x1e
    torch.testing.assert_close(a[:, 8:18], b[:, 11:21], atol=1e-12, rtol=0)  # 2x2e
    torch.testing.assert_close(a[:, 18:21], b[:, 2:5], atol=1e-12, rtol=0)  # 1o


def test_filter_forms_agree():
    forms = [["0e", "2e"], "0e + 2e", [Irrep("0e"), Irrep("2e")], "3x0e + 2e", [(0, 1), (2, 1)]]
    outs = [str(FullTensorProduct("1o", "1o", f).irreps_out) for f in forms]
    assert outs == ["1x0e+1x2e"] * len(forms)
    with pytest.raises(ValueError, match="filter_ir_out"):
        FullTensorProduct("1o", "1o", ["1x"])


@pytest.mark.parametrize("kind", ["fully_connected", "full_filtered", "elementwise", "square",
                                  "square_weighted"])
def test_named_kinds_are_equivariant(kind):
    cls, _, args, kwargs = KINDS[kind]
    module = cls(*args, **kwargs)
    if cls is TensorSquare:
        assert_equivariant(module, module.irreps_in, module.irreps_out)
    else:
        assert_equivariant(module, [module.irreps_in1, module.irreps_in2], module.irreps_out)


def test_channel_wise_is_equivariant():
    tp = ChannelWiseTensorProduct("4x0e + 2x1o + 2e", "0e + 1o + 2e", "0e + 1o + 2e")
    x1 = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(5, tp.irreps_in2.dim, dtype=torch.float64)
    w = torch.randn(5, tp.weight_numel, dtype=torch.float64)
    assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2, None], tp.irreps_out, [x1, x2, w])


def test_bad_named_kinds():
    with pytest.raises(ValueError, match="as many channels"):
        ElementwiseTensorProduct("2x1o", "3x1o")
    with pytest.raises(ValueError, match="not both"):
        TensorSquare("2x1o", "0e", filter_ir_out=["0e"])
    with pytest.raises(ValueError, match=r"x has shape \(3, 5\), expected last dimension 6"):
        TensorSquare("2x1o")(torch.randn(3, 5))
    with pytest.raises(ValueError, match="irrep_normalization"):
        TensorSquare("2x1o", irrep_normalization="unit")
