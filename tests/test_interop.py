"""from_e3nn: converted modules compute what the e3nn originals compute."""
import subprocess
import sys

import pytest
import torch

from equinet import nn, tp
from equinet.interop import from_e3nn

e3nn_o3 = pytest.importorskip("e3nn.o3")
e3nn_nn = pytest.importorskip("e3nn.nn")
e3nn_math = pytest.importorskip("e3nn.math")


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
    with pytest.raises(TypeError, match="from_e3nn converts .* not e3nn's S2Activation"):
        from_e3nn(e3nn_nn.S2Activation("0e + 1o", torch.tanh, 6))


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


def _layers():
    """e3nn layers, the equinet class each becomes, and an input."""
    silu, tanh = torch.nn.functional.silu, torch.tanh
    return {
        "gate": (lambda: e3nn_nn.Gate("2x0e + 3x0o", [silu, tanh], "2x0e + 1x0o",
                                      [torch.sigmoid, tanh], "1x1o + 1x2e + 1x1e"), nn.Gate, 19),
        "gate_scalars_only": (lambda: e3nn_nn.Gate("4x0e", [torch.relu], "", [], ""), nn.Gate, 4),
        "activation": (lambda: e3nn_nn.Activation("3x0e + 2x0o + 1o", [silu, torch.abs, None]),
                       nn.Activation, 8),
        "spherical_harmonics": (lambda: e3nn_o3.SphericalHarmonics([0, 2, 1, 3], True),
                                nn.SphericalHarmonics, 3),
        "spherical_harmonics_1e": (lambda: e3nn_o3.SphericalHarmonics(
            "0e + 1e + 2e", False, normalization="norm"), nn.SphericalHarmonics, 3),
        "batch_norm": (lambda: e3nn_nn.BatchNorm("3x0e + 2x1o + 2e"), nn.BatchNorm, 14),
        "batch_norm_eval": (lambda: e3nn_nn.BatchNorm(
            "3x0e + 2x1o", reduce="max", normalization="norm").eval(), nn.BatchNorm, 9),
        "batch_norm_instance": (lambda: e3nn_nn.BatchNorm("2x0e + 1o", instance=True,
                                                          include_bias=False), nn.BatchNorm, 5),
        "fully_connected": (lambda: e3nn_nn.FullyConnectedNet(
            [3, 8, 5, 2], silu, variance_in=2, variance_out=3), nn.FullyConnectedNet, 3),
        "fully_connected_out_act": (lambda: e3nn_nn.FullyConnectedNet([3, 4], tanh, out_act=True),
                                    nn.FullyConnectedNet, 3),
        "fully_connected_linear": (lambda: e3nn_nn.FullyConnectedNet([3, 4, 2]),
                                   nn.FullyConnectedNet, 3),
        # (e3nn's NormActivation fails with bias and a str, and with normalize=False)
        "norm_activation": (lambda: e3nn_nn.NormActivation(e3nn_o3.Irreps("2x0e + 2x1o + 2e"),
                                                           torch.sigmoid, bias=True),
                            nn.NormActivation, 13),
        "norm_activation_epsilon": (lambda: e3nn_nn.NormActivation("2x1o", silu, epsilon=0.1),
                                    nn.NormActivation, 6),
        "extract": (lambda: e3nn_nn.Extract("1e + 0e + 0e", ["0e", "0e + 1e"], [(1,), (2, 0)]),
                    nn.Extract, 5),
        "extract_squeezed": (lambda: e3nn_nn.Extract("1e + 0e", ["1e"], [(0,)], squeeze_out=True),
                             nn.Extract, 4),
        "extract_ir": (lambda: e3nn_nn.ExtractIr("2x0e + 1o + 3x0e", "0e"), nn.ExtractIr, 8),
        "dropout": (lambda: e3nn_nn.Dropout("2x0e + 1o", 0.5).eval(), nn.Dropout, 5),
        "norm": (lambda: e3nn_o3.Norm("2x0e + 2x1o", squared=True), nn.Norm, 8),
        "identity": (lambda: e3nn_nn.Identity("2x0e", "2x0e"), torch.nn.Identity, 2),
        "normalize2mom": (lambda: e3nn_math.normalize2mom(tanh), nn.Normalize2Mom, 4),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_converted_layers_compute_the_same(name, float64_default):
    make, expected_class, dim = _layers()[name]
    theirs = make()
    for p in theirs.parameters():  # e3nn starts biases at zero, which would test nothing
        with torch.no_grad():
            p.normal_()
    for key in ("running_mean", "running_var"):
        if getattr(theirs, key, None) is not None:
            getattr(theirs, key).uniform_(0.5, 2.0)
    ours = from_e3nn(theirs)
    assert type(ours) is expected_class and ours.training == theirs.training
    x = torch.randn(4, dim)
    expected, got = theirs(x), ours(x)
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
    else:
        expected, got = (expected,), (got,)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    for key, value in ours.state_dict().items():  # running statistics updated alike
        torch.testing.assert_close(value, theirs.state_dict()[key], atol=1e-12, rtol=0)
    irreps_out = getattr(theirs, "irreps_out", None)
    if irreps_out is not None:
        assert str(ours.irreps_out) == str(irreps_out)


def test_activations_free_of_e3nn(float64_default):
    """An e3nn module given as an activation is converted too; other modules are copied."""
    prelu = torch.nn.PReLU()
    theirs = e3nn_nn.Activation("2x0e + 2x0e", [e3nn_math.normalize2mom(torch.tanh), prelu])
    ours = from_e3nn(theirs)
    assert not any(type(m).__module__.startswith("e3nn") for m in ours.modules())
    assert all(p is not prelu.weight for p in ours.parameters())
    x = torch.randn(3, 4)
    torch.testing.assert_close(ours(x), theirs(x))


def test_converted_modules_run_without_e3nn(tmp_path, float64_default):
    """Saved, then loaded and run in a process where e3nn cannot be imported."""
    theirs = torch.nn.Sequential(
        e3nn_o3.Linear("2x0e + 1o", "4x0e + 2x1o"),
        e3nn_nn.Gate("2x0e", [torch.tanh], "2x0e", [torch.sigmoid], "2x1o"),
        e3nn_nn.NormActivation("2x0e + 2x1o", torch.sigmoid),
        e3nn_nn.BatchNorm("2x0e + 2x1o").eval(),
        e3nn_nn.ExtractIr("2x0e + 2x1o", "1o"))
    x = torch.randn(3, 5)
    torch.save({"model": from_e3nn(theirs), "x": x, "expected": theirs(x)}, tmp_path / "m.pt")
    code = ("import sys; sys.modules['e3nn'] = None\n"  # any 'import e3nn' now fails
            "import torch\n"
            f"saved = torch.load({str(tmp_path / 'm.pt')!r}, weights_only=False)\n"
            "torch.testing.assert_close(saved['model'](saved['x']), saved['expected'],\n"
            "                           atol=1e-12, rtol=0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
