"""from_e3nn: converted modules compute what the e3nn originals compute."""
import subprocess
import sys

import pytest
import torch

from equinet import tp
from equinet.interop import from_e3nn

e3nn_o3 = pytest.importorskip("e3nn.o3")


class _CustomProduct(e3nn_o3.TensorProduct):
    """A user's subclass: not a named kind, so it becomes a general TensorProduct."""

    def __init__(self):
        super().__init__("2x0e + 2x1o", "0e + 2x1o", "2x0e + 2x1o + 1e",
                         [(0, 0, 0, "uvw", True, 2.0), (1, 1, 0, "uuw", True),
                          (1, 0, 1, "uvu", True), (1, 1, 2, "uvu<v", False)],
                         in1_var=[0.5, 2.0], out_var=[1.0, 3.0, 0.5],
                         irrep_normalization="norm", path_normalization="path")


class _MyFullyConnected(e3nn_o3.FullyConnectedTensorProduct):
    pass


def _modules():
    return {
        "tensor_product": (lambda: e3nn_o3.TensorProduct(
            "3x0e + 2x1o", "2x0e + 1o", "3x0e + 2x1o + 2x1e",
            [(0, 0, 0, "uvu", True), (1, 1, 0, "uvw", True, 0.3), (1, 0, 1, "uvv", True),
             (1, 1, 2, "uvuv", False)], in2_var=[2.0, 0.5]), tp.TensorProduct),
        "custom_subclass": (_CustomProduct, tp.TensorProduct),
        "fully_connected": (lambda: e3nn_o3.FullyConnectedTensorProduct(
            "2x0e + 3x1o", "0e + 1o", "2x0e + 2x1o + 1e", in1_var=[3.0, 0.5]),
            tp.FullyConnectedTensorProduct),
        "fully_connected_subclass": (lambda: _MyFullyConnected("2x1o", "1o", "2x0e + 1e"),
                                     tp.FullyConnectedTensorProduct),
        "full": (lambda: e3nn_o3.FullTensorProduct("2x0e + 1o + 1o", "1o + 2e", ["1o", "2e"]),
                 tp.FullTensorProduct),
        "elementwise": (lambda: e3nn_o3.ElementwiseTensorProduct("2x0e + 3x1o", "4x1o + 1e"),
                        tp.ElementwiseTensorProduct),
        "square": (lambda: e3nn_o3.TensorSquare("3x1o + 2x0e", irrep_normalization="norm"),
                   tp.TensorSquare),
        "square_weighted": (lambda: e3nn_o3.TensorSquare("3x1o + 2x0e", "2x0e + 1e + 2e"),
                            tp.TensorSquare),
        "per_sample": (lambda: e3nn_o3.TensorProduct(
            "3x0e + 2x1o", "0e + 1o", "3x0e + 2x1o + 2x0e",
            [(0, 0, 0, "uvu", True), (1, 1, 2, "uvu", True), (1, 0, 1, "uvu", True)],
            shared_weights=False), tp.TensorProduct),
        "external": (lambda: e3nn_o3.FullyConnectedTensorProduct(
            "2x1o", "1o", "3x0e", internal_weights=False), tp.FullyConnectedTensorProduct),
        "linear": (lambda: e3nn_o3.Linear("3x0e + 2x1o + 0e", "2x0e + 3x1o", biases=True),
                   tp.Linear),
        "linear_path": (lambda: e3nn_o3.Linear("3x0e + 2x1o + 2x1o", "2x0e + 3x1o",
                                               instructions=[(0, 0), (1, 1), (2, 1)],
                                               path_normalization="path"), tp.Linear),
        "linear_features": (lambda: e3nn_o3.Linear("3x0e + 2x1o", "2x0e + 3x1o", f_in=3, f_out=2,
                                                   biases=True), tp.Linear),
        "linear_per_sample": (lambda: e3nn_o3.Linear("3x0e + 2x1o", "2x0e + 3x1o",
                                                     shared_weights=False), tp.Linear),
    }


def _inputs(theirs, ours):
    if isinstance(ours, tp.Linear):
        features = (ours.f_in,) if ours.f_in is not None else ()
        inputs = [torch.randn(4, *features, ours.irreps_in.dim)]
    elif isinstance(ours, tp.TensorSquare):
        inputs = [torch.randn(4, ours.irreps_in.dim)]
    else:
        inputs = [torch.randn(4, ours.irreps_in1.dim), torch.randn(4, ours.irreps_in2.dim)]
    if ours.weight_numel and not ours.internal_weights:
        shape = (ours.weight_numel,) if ours.shared_weights else (4, ours.weight_numel)
        inputs.append(torch.randn(*shape))
    return inputs


@pytest.mark.parametrize("name", list(_modules()))
def test_converted_modules_compute_the_same(name, float64_default, compare_with_oracle):
    make, expected_class = _modules()[name]
    theirs = make()
    if getattr(theirs, "bias", None) is not None and theirs.bias.numel():
        with torch.no_grad():
            theirs.bias.normal_()  # e3nn starts at zero, which would test nothing
    ours = from_e3nn(theirs)
    assert type(ours) is expected_class
    assert (ours.internal_weights, ours.shared_weights) == \
        (theirs.internal_weights, theirs.shared_weights)
    assert ours.weight_numel == theirs.weight_numel
    params = []
    for name_ in ("weight", "bias"):
        mine, original = getattr(ours, name_, None), getattr(theirs, name_, None)
        if mine is not None:
            assert torch.equal(mine, original) and mine is not original
            params.append((mine, original))
    compare_with_oracle(ours, theirs, _inputs(theirs, ours), params)


def test_instructions_are_copied(float64_default):
    theirs = _CustomProduct()
    ours = from_e3nn(theirs)
    assert len(ours.instructions) == len(theirs.instructions)
    for a, b in zip(ours.instructions, theirs.instructions):
        assert (a.i_in1, a.i_in2, a.i_out, a.connection_mode, a.has_weight, a.path_shape) == \
            (b.i_in1, b.i_in2, b.i_out, b.connection_mode, b.has_weight, tuple(b.path_shape))
        assert a.path_weight == pytest.approx(b.path_weight, rel=1e-14)


def test_dtype_and_backend_follow():
    theirs = e3nn_o3.FullyConnectedTensorProduct("2x1o", "1o", "3x0e").double()
    ours = from_e3nn(theirs, backend="reference")
    assert ours.weight.dtype == torch.float64 and ours.backend == "reference"
    lin = from_e3nn(e3nn_o3.Linear("2x1o", "3x1o"))
    assert lin.weight.dtype == torch.float32


def test_unsupported_modules():
    with pytest.raises(TypeError, match="from_e3nn converts"):
        from_e3nn(torch.nn.Linear(3, 3))
    with pytest.raises(TypeError, match="from_e3nn converts"):
        from_e3nn(e3nn_o3.SphericalHarmonics(2, True))


def test_importing_equinet_does_not_import_e3nn():
    code = ("import sys, equinet, equinet.interop, equinet.tp; "
            "assert 'e3nn' not in sys.modules, 'e3nn imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_instruction_indices_of_any_integer_type(kind, float64_default):
    """e3nn accepts numpy / torch integers as instruction indices (e.g. from np.argsort)."""
    np = pytest.importorskip("numpy")
    as_int = np.int64 if kind == "numpy" else torch.tensor
    instructions = [(as_int(0), as_int(0), as_int(0), "uvw", True),
                    (as_int(1), as_int(0), as_int(1), "uvu", True)]
    args = ("2x0e + 1o", "0e", "0e + 1o", instructions)
    theirs, ours = e3nn_o3.TensorProduct(*args), tp.TensorProduct(*args)
    indices = [(ins.i_in1, ins.i_in2, ins.i_out) for ins in ours.instructions]
    assert indices == [(0, 0, 0), (1, 0, 1)]
    assert all(type(i) is int for ins in ours.instructions for i in ins[:3])
    x, y = torch.randn(3, 5), torch.randn(3, 1)
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
    torch.testing.assert_close(ours(x, y), theirs(x, y), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="i_in1=1.0 is out of range"):
        tp.TensorProduct("2x0e + 1o", "0e", "0e", [(1.0, 0, 0, "uvw", True)])
