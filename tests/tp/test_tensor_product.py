"""TensorProduct against e3nn's (the oracle): values, gradients, double backward, module life."""
import copy
import importlib
import io
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equinet.o3 import Irrep, Irreps
from equinet.testing import assert_equivariant
from equinet.tp import TensorProduct

e3nn_o3 = pytest.importorskip("e3nn.o3")


def _auto_param():
    try:
        importlib.import_module("equinet.tp.kernels.torch")
    except Exception:  # not written yet, or broken: only "reference" is meaningful
        reason = "equinet.tp.kernels.torch is not importable"
        return pytest.param("auto", marks=pytest.mark.skip(reason=reason))
    return "auto"


BACKENDS = ["reference", _auto_param()]

# (irreps_in1, irreps_in2, irreps_out, instructions): every connection mode, with and
# without weights, several paths into one block, and a block that no path reaches
CASES = {
    "uvw": ("3x0e + 2x1o", "2x0e + 1o", "2x0e + 3x1o + 1e + 2x2o",
            [(0, 0, 0, "uvw", True), (1, 1, 0, "uvw", True), (0, 1, 1, "uvw", True),
             (1, 0, 1, "uvw", True), (1, 1, 2, "uvw", True)]),
    "uvu": ("3x0e + 2x1o", "2x0e + 1o", "3x0e + 2x0e + 3x1o + 2x1o + 2x1e",
            [(0, 0, 0, "uvu", True), (1, 1, 1, "uvu", True), (0, 1, 2, "uvu", True),
             (1, 0, 3, "uvu", False), (1, 1, 4, "uvu", True)]),
    "uvv": ("2x0e + 1o", "3x1o + 2x0e", "3x1o + 2x0e + 3x0e + 2x1o",
            [(0, 0, 0, "uvv", True), (1, 0, 2, "uvv", True), (1, 1, 3, "uvv", False),
             (0, 1, 1, "uvv", True)]),
    "uuw": ("3x1o + 2x0e", "3x1o + 2x1e", "2x0e + 4x1e + 0e",
            [(0, 0, 0, "uuw", True), (0, 0, 1, "uuw", True), (1, 1, 1, "uuw", True),
             (0, 0, 2, "uuw", False)]),
    "uuu": ("3x1o + 2x2e", "3x1e + 2x1o", "3x1o + 3x0o + 2x2o + 2x3o",
            [(0, 0, 0, "uuu", True), (0, 0, 1, "uuu", False), (1, 1, 2, "uuu", True),
             (1, 1, 3, "uuu", False)]),
    "uvuv": ("2x1o + 0e", "3x1o", "6x0e + 6x1e + 6x2e + 3x1o",
             [(0, 0, 0, "uvuv", True), (0, 0, 1, "uvuv", False), (0, 0, 2, "uvuv", True),
              (1, 0, 3, "uvuv", True)]),
    "uvu<v": ("3x1o + 2x0e", "3x1o + 2x0e", "3x0e + 3x1e + 3x2e + 0e",
              [(0, 0, 0, "uvu<v", True), (0, 0, 1, "uvu<v", False), (0, 0, 2, "uvu<v", True),
               (1, 1, 3, "uvu<v", True)]),
    "u<vw": ("3x1o + 2x2e", "3x1o + 2x2e", "2x0e + 3x1e + 2e",
             [(0, 0, 0, "u<vw", True), (0, 0, 1, "u<vw", True), (1, 1, 0, "u<vw", True),
              (1, 1, 2, "u<vw", True), (0, 0, 2, "u<vw", True)]),
    "mixed": ("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o + 2x1e",
              [(0, 0, 0, "uvw", True, 0.5), (1, 1, 0, "uuw", True, 2.0), (1, 0, 1, "uvu", True),
               (0, 1, 1, "uvv", True, 3.0), (1, 1, 2, "uuu", False)]),
}


def _pair(case, **kwargs):
    """Our module and e3nn's, same instructions and options, e3nn's weights copied."""
    irreps1, irreps2, irreps_out, instructions = CASES[case] if isinstance(case, str) else case
    backend = kwargs.pop("backend", "reference")
    theirs = e3nn_o3.TensorProduct(irreps1, irreps2, irreps_out, instructions, **kwargs)
    ours = TensorProduct(irreps1, irreps2, irreps_out, instructions, backend=backend, **kwargs)
    if ours.weight is not None:
        with torch.no_grad():
            ours.weight.copy_(theirs.weight)
    return ours, theirs


def _inputs(ours, batch=(5,), per_sample=False):
    x1 = torch.randn(*batch, ours.irreps_in1.dim)
    x2 = torch.randn(*batch, ours.irreps_in2.dim)
    if per_sample:
        return [x1, x2, torch.randn(*batch, ours.weight_numel)]
    if not ours.internal_weights and ours.weight_numel:
        return [x1, x2, torch.randn(ours.weight_numel)]
    return [x1, x2]


def _assert_same_instructions(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a.i_in1, a.i_in2, a.i_out, a.connection_mode, a.has_weight, a.path_shape) == \
            (b.i_in1, b.i_in2, b.i_out, b.connection_mode, b.has_weight, tuple(b.path_shape))
        assert a.path_weight == pytest.approx(b.path_weight, rel=1e-14)


def _params(ours, theirs):
    return [(ours.weight, theirs.weight)] if ours.weight is not None else []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_modes_match_e3nn(case, backend, float64_default, compare_with_oracle):
    ours, theirs = _pair(case, backend=backend)
    _assert_same_instructions(ours.instructions, theirs.instructions)
    assert ours.weight_numel == theirs.weight_numel
    compare_with_oracle(ours, theirs, _inputs(ours), _params(ours, theirs))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("irrep_normalization", ["component", "norm", "none"])
@pytest.mark.parametrize("path_normalization", ["element", "path", "none"])
def test_normalizations_and_variances(irrep_normalization, path_normalization, backend,
                                      float64_default, compare_with_oracle):
    ours, theirs = _pair("mixed", backend=backend, irrep_normalization=irrep_normalization,
                         path_normalization=path_normalization, in1_var=[0.5, 2.0],
                         in2_var=[1.5, 0.25], out_var=[3.0, 0.5, 1.0])
    _assert_same_instructions(ours.instructions, theirs.instructions)
    compare_with_oracle(ours, theirs, _inputs(ours), _params(ours, theirs))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flags", ["internal", "shared_external", "per_sample"])
def test_weight_flags(flags, backend, float64_default, compare_with_oracle):
    kwargs = {"internal": {},
              "shared_external": {"internal_weights": False},
              "per_sample": {"shared_weights": False}}[flags]
    ours, theirs = _pair("mixed", backend=backend, **kwargs)
    assert (ours.internal_weights, ours.shared_weights) == \
        (theirs.internal_weights, theirs.shared_weights)
    assert (ours.weight is not None) == (flags == "internal")
    compare_with_oracle(ours, theirs, _inputs(ours, per_sample=flags == "per_sample"),
                        _params(ours, theirs))


@pytest.mark.parametrize("backend", BACKENDS)
def test_leading_dimensions_broadcast(backend, float64_default):
    ours, theirs = _pair("uvu", backend=backend, shared_weights=False)
    x1 = torch.randn(4, 1, ours.irreps_in1.dim)
    x2 = torch.randn(1, 3, ours.irreps_in2.dim)
    w = torch.randn(3, ours.weight_numel)
    out = ours(x1, x2, w)
    assert out.shape == (4, 3, ours.irreps_out.dim)
    torch.testing.assert_close(out, theirs(x1, x2, w), atol=1e-12, rtol=0)
    # no leading dimension at all
    ours, theirs = _pair("uvw", backend=backend)
    x1, x2 = torch.randn(ours.irreps_in1.dim), torch.randn(ours.irreps_in2.dim)
    assert ours(x1, x2).shape == (ours.irreps_out.dim,)
    torch.testing.assert_close(ours(x1, x2), theirs(x1, x2), atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_without_paths_are_zero(backend):
    tp = TensorProduct("2x1o", "1o", "3x1e + 2x0e + 2x1e", [(0, 0, 2, "uvu", True)],
                       backend=backend)
    out = tp(torch.randn(6, 6), torch.randn(6, 3))
    assert out[:, :11].abs().max() == 0
    assert out[:, 11:].abs().min() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("irreps", [
    ("", "1o", "1o", []),                                    # empty first input
    ("2x1o", "0x0e + 1o", "0x1o + 2x0e", [(0, 1, 1, "uvu", True), (0, 0, 0, "uvv", True)]),
    ("0x1o", "1o", "0x0e + 1o", [(0, 0, 0, "uvu", True)]),   # paths of multiplicity zero
    ("3x0e", "0e", "", []),                                  # empty output
])
def test_zero_sizes(irreps, backend, float64_default):
    ours, theirs = _pair(irreps, backend=backend)
    for batch in [(0,), (3,)]:
        x1 = torch.randn(*batch, ours.irreps_in1.dim, requires_grad=True)
        x2 = torch.randn(*batch, ours.irreps_in2.dim)
        out = ours(x1, x2)
        assert out.shape == batch + (ours.irreps_out.dim,)
        torch.testing.assert_close(out, theirs(x1, x2), atol=1e-12, rtol=0)
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), x1, allow_unused=True)
            assert grad is None or grad.shape == x1.shape


def test_weight_views_match_e3nn(float64_default):
    ours, theirs = _pair("mixed", shared_weights=False)
    w = torch.randn(4, ours.weight_numel)
    views_a = list(ours.weight_views(w, yield_instruction=True))
    views_b = list(theirs.weight_views(w, yield_instruction=True))
    assert [i for i, _, _ in views_a] == [i for i, _, _ in views_b]
    for (_, ins, a), (_, _, b) in zip(views_a, views_b):
        assert a.shape == (4,) + ins.path_shape
        assert torch.equal(a, b)
    ours, theirs = _pair("uvw")
    for a, b in zip(ours.weight_views(), theirs.weight_views()):
        assert torch.equal(a, b)
    assert torch.equal(ours.weight_view_for_instruction(2), list(ours.weight_views())[2])


def test_equivariance():
    tp, _ = _pair("mixed")
    assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2], tp.irreps_out)


def test_descriptor_and_defaults():
    tp = TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    assert tp.descriptor.weight_numel == tp.weight_numel == 2
    assert tp.backend == "auto" and tp.backend_for("cpu") in ("torch", "reference")
    assert tp.internal_weights and tp.shared_weights
    # e3nn's initialisation: a standard normal
    big = TensorProduct("64x0e", "64x0e", "64x0e", [(0, 0, 0, "uvw", True)])
    assert abs(big.weight.std().item() - 1) < 0.01 and abs(big.weight.mean().item()) < 0.01
    no_weights = TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", False)])
    assert no_weights.weight is None and not no_weights.internal_weights


# -- module life: compile, export, pickle, state_dict, dtypes ---------------------------

def _small(backend="reference"):
    return TensorProduct("2x0e + 1o", "0e + 1o", "2x0e + 1o + 1e",
                         [(0, 0, 0, "uvw", True), (1, 1, 0, "uvw", True), (0, 1, 1, "uvw", True),
                          (1, 0, 1, "uvu", True), (1, 1, 2, "uuw", True)], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_fullgraph(backend):
    tp = _small(backend)
    x1, x2 = torch.randn(6, 5), torch.randn(6, 4)
    expected = tp(x1, x2)
    tp._backend_names.clear()  # the first call happens inside the compiled graph
    compiled = torch.compile(tp, fullgraph=True)
    torch.testing.assert_close(compiled(x1, x2), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_export(backend):
    tp = _small(backend)
    x1, x2 = torch.randn(6, 5), torch.randn(6, 4)
    program = torch.export.export(tp, (x1, x2))
    x1, x2 = torch.randn(6, 5), torch.randn(6, 4)
    torch.testing.assert_close(program.module()(x1, x2), tp(x1, x2))


def test_pickle_and_deepcopy():
    tp = _small()
    x1, x2 = torch.randn(6, 5), torch.randn(6, 4)
    expected = tp(x1, x2)
    for clone in (pickle.loads(pickle.dumps(tp)), copy.deepcopy(tp)):
        torch.testing.assert_close(clone(x1, x2), expected, atol=0, rtol=0)
    buffer = io.BytesIO()
    torch.save(tp, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded(x1, x2), expected, atol=0, rtol=0)


def test_state_dict_across_dtypes():
    tp32 = _small()
    tp64 = _small().to(torch.float64)
    tp64.load_state_dict(tp32.state_dict())
    assert tp64.weight.dtype == torch.float64
    x1, x2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    out64 = tp64(x1, x2)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(tp32(x1.float(), x2.float()), out64.float(), atol=1e-5, rtol=1e-5)
    back = _small()
    back.load_state_dict(tp64.state_dict())
    assert back.weight.dtype == torch.float32
    assert set(tp32.state_dict()) == {"weight"}  # CG constants live in the backends


def test_to_float64_computes_in_float64(float64_default):
    ours, theirs = _pair("mixed")
    ours32 = copy.deepcopy(ours).float()
    x1, x2 = torch.randn(3, 8), torch.randn(3, 8)
    back = ours32.to(torch.float64)
    # the weights went through float32; CG constants must not
    with torch.no_grad():
        theirs.weight.copy_(back.weight)
    torch.testing.assert_close(back(x1, x2), theirs(x1, x2), atol=1e-12, rtol=0)


# -- bad input ---------------------------------------------------------------------------

def test_wrong_input_dimension_names_the_input():
    tp = _small()
    with pytest.raises(ValueError, match=r"x1 \(the first input\).*expected last dimension 5"):
        tp(torch.randn(3, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"x2 \(the second input\).*expected last dimension 4"):
        tp(torch.randn(3, 5), torch.randn(3, 5))
    with pytest.raises(ValueError, match="do not broadcast"):
        tp(torch.randn(3, 5), torch.randn(2, 4))


def test_bad_weights():
    external = TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)], internal_weights=False)
    x1, x2 = torch.randn(3, 6), torch.randn(3, 3)
    with pytest.raises(ValueError, match=r"no internal weights.*\[2\]"):
        external(x1, x2)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\), expected \[2\]"):
        external(x1, x2, torch.randn(3))
    with pytest.raises(ValueError, match="shared_weights=True"):
        external(x1, x2, torch.randn(3, 2))
    per_sample = TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)],
                               shared_weights=False)
    # per-sample weights of the wrong shape: the message names the inputs' batch
    with pytest.raises(ValueError, match=r"expected \[3, 2\].*inputs' batch \(3,\)"):
        per_sample(x1, x2, torch.randn(2))
    with pytest.raises(ValueError, match=r"expected \[3, 2\].*\(4,\) do not broadcast"):
        per_sample(x1, x2, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"expected \[3, 2\]"):
        per_sample(x1, x2, torch.randn(3, 5))
    internal = TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="has internal weights"):
        internal(x1, x2, torch.randn(2))
    with pytest.raises(TypeError, match="dtypes differ"):
        internal(x1.double(), x2.double())
    with pytest.raises(ValueError, match="internal_weights=True requires shared_weights=True"):
        TensorProduct("2x1o", "1o", "2x0e", [(0, 0, 0, "uvu", True)], internal_weights=True,
                      shared_weights=False)


@pytest.mark.parametrize("instruction, message", [
    ((0, 1, 0, "uvu", True), r"i_in2=1 is out of range"),
    ((2, 0, 0, "uvu", True), r"i_in1=2 is out of range"),
    ((0, 0, 3, "uvu", True), r"i_out=3 is out of range"),
    ((0, 0, 1, "uvu", True), r"parity is not conserved"),
    ((0, 0, 2, "uvu", True), r"l must lie in \[0, 2\]"),
    ((0, 0, 0, "uvx", True), r"unknown connection mode"),
    ((0, 0, 0, "uvw", False), r"needs weights"),
])
def test_bad_instructions(instruction, message):
    with pytest.raises(ValueError, match=message):
        TensorProduct("2x1o", "1o", "2x1e + 2x1o + 2x3e", [instruction])


def test_bad_options():
    with pytest.raises(ValueError, match="unknown tensor-product backend"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 0, "uuu", False)], backend="cuda")
    with pytest.raises(ValueError, match="irrep_normalization"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 0, "uuu", False)], irrep_normalization="unit")
    with pytest.raises(ValueError, match="output multiplicity must be 1"):
        TensorProduct("2x1o", "2x1o", "2x0e", [(0, 0, 0, "uuw", False)])
    with pytest.raises(ValueError, match="in1_var has 2 entries"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 0, "uuu", False)], in1_var=[1.0, 2.0])


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("argument", ["path_weight", "in1_var", "in2_var", "out_var"])
def test_bad_path_weights_and_variances_name_the_argument(argument, bad):
    # negative ones failed with "math domain error" (out_var, path_weight) or were accepted
    # (in1_var); NaN and inf were accepted and spread into the coefficients
    instruction, variances = (0, 0, 0, "uuu", False), {}
    if argument == "path_weight":
        instruction = instruction + (bad,)
    else:
        variances[argument] = [bad]
    with pytest.raises(ValueError, match=rf"{argument}.*finite and >= 0"):
        TensorProduct("1o", "1o", "0e", [instruction], **variances)


# -- random instructions ----------------------------------------------------------------

_IRREPS = [Irrep(degree, p) for degree in range(3) for p in (1, -1)]


@st.composite
def _problems(draw):
    def block():
        return (draw(st.integers(0, 3)), draw(st.sampled_from(_IRREPS)))

    irreps1 = [block() for _ in range(draw(st.integers(1, 3)))]
    irreps2 = [block() for _ in range(draw(st.integers(1, 3)))]
    out, instructions = [], []
    for _ in range(draw(st.integers(1, 6))):
        i1, i2 = draw(st.integers(0, len(irreps1) - 1)), draw(st.integers(0, len(irreps2) - 1))
        (mul1, ir1), (mul2, ir2) = irreps1[i1], irreps2[i2]
        ir_out = draw(st.sampled_from(list(ir1 * ir2)))
        weighted = draw(st.booleans())
        modes = {"uvw": None, "uvu": mul1, "uvv": mul2, "uvuv": mul1 * mul2}
        if mul1 == mul2:
            modes.update({"uuw": None if weighted else 1, "uuu": mul1,
                          "uvu<v": mul1 * (mul1 - 1) // 2, "u<vw": None})
        if not weighted:
            modes.pop("uvw"), modes.pop("u<vw", None)
        mode = draw(st.sampled_from(sorted(modes)))
        mul_out = modes[mode] if modes[mode] is not None else draw(st.integers(0, 3))
        reuse = [k for k, b in enumerate(out) if b == (mul_out, ir_out)]
        if reuse and draw(st.booleans()):
            i_out = reuse[0]
        else:
            i_out = len(out)
            out.append((mul_out, ir_out))
        path_weight = draw(st.sampled_from([1.0, 0.5, 3.0]))
        instructions.append((i1, i2, i_out, mode, weighted, path_weight))
    return (Irreps(irreps1), Irreps(irreps2), Irreps(out), instructions,
            draw(st.sampled_from(["component", "norm", "none"])),
            draw(st.sampled_from(["element", "path", "none"])))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(problem=_problems())
def test_random_instructions_match_e3nn(backend, problem):
    irreps1, irreps2, irreps_out, instructions, irrep_norm, path_norm = problem
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours, theirs = _pair((str(irreps1), str(irreps2), str(irreps_out), instructions),
                             irrep_normalization=irrep_norm, path_normalization=path_norm,
                             backend=backend)
        x1, x2 = torch.randn(4, irreps1.dim), torch.randn(4, irreps2.dim)
        torch.testing.assert_close(ours(x1, x2), theirs(x1, x2), atol=1e-10, rtol=0)
    finally:
        torch.set_default_dtype(previous)
