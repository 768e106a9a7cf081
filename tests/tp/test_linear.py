"""Linear against e3nn's o3.Linear: layouts, coefficients, values and gradients."""
import copy
import pickle

import pytest
import torch

from equinet.testing import assert_equivariant
from equinet.tp import Linear

e3nn_o3 = pytest.importorskip("e3nn.o3")

IMPLEMENTATIONS = ["auto", "reference"]  # one matrix product per irrep / one per instruction

CASES = {
    "default": ("4x0e + 3x1o + 2x2e + 0e + 2x1o", "3x0e + 2x1o + 2e + 1e", {}),
    "biases": ("4x0e + 3x1o + 0e", "3x0e + 2x1o + 2x0e + 0o", {"biases": True}),
    "bias_list": ("4x0e + 3x1o", "3x0e + 2x1o + 2x0e", {"biases": [True, False, False]}),
    "instructions": ("2x0e + 3x1o + 0e", "3x0e + 2x1o + 2x0e",
                     {"instructions": [(0, 2), (2, 0), (1, 1), (0, 0), (0, 2)]}),
    "path": ("2x0e + 3x1o + 0e", "3x0e + 2x1o", {"path_normalization": "path", "biases": True}),
    "features": ("2x0e + 3x1o", "3x0e + 2x1o", {"f_in": 4, "f_out": 3, "biases": True}),
    "empty_blocks": ("0x0e + 2x1o", "2x0e + 0x1o + 1o", {}),
}


def _pair(case, implementation="auto", **extra):
    irreps_in, irreps_out, kwargs = CASES[case]
    kwargs = {**kwargs, **extra}
    theirs = e3nn_o3.Linear(irreps_in, irreps_out, **kwargs)
    ours = Linear(irreps_in, irreps_out, backend=implementation, **kwargs)
    assert (ours.weight_numel, ours.bias_numel) == (theirs.weight_numel, theirs.bias_numel)
    assert [tuple(i) for i in ours.instructions] == [
        (i.i_in, i.i_out, tuple(i.path_shape), pytest.approx(i.path_weight, rel=1e-14))
        for i in theirs.instructions]
    with torch.no_grad():
        if ours.weight is not None:
            ours.weight.copy_(theirs.weight)
        if ours.bias is not None:
            theirs.bias.normal_()  # e3nn starts at zero, which would test nothing
            ours.bias.copy_(theirs.bias)
    return ours, theirs


def _x(ours, *batch):
    features = (ours.f_in,) if ours.f_in is not None else ()
    return torch.randn(*batch, *features, ours.irreps_in.dim)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_e3nn(case, implementation, float64_default, compare_with_oracle):
    ours, theirs = _pair(case, implementation)
    params = [(a, b) for a, b in ((ours.weight, theirs.weight), (ours.bias, theirs.bias))
              if a is not None]
    compare_with_oracle(ours, theirs, [_x(ours, 5)], params)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_per_sample_weights(implementation, float64_default, compare_with_oracle):
    ours, theirs = _pair("instructions", implementation, shared_weights=False)
    assert not ours.internal_weights and ours.weight is None
    x, w = _x(ours, 5), torch.randn(5, ours.weight_numel)
    compare_with_oracle(ours, theirs, [x, w])
    # leading dimensions broadcast between x and the weights
    x, w = _x(ours, 2, 1), torch.randn(1, 3, ours.weight_numel)
    expected = theirs(x.expand(2, 3, -1).reshape(6, -1), w.expand(2, 3, -1).reshape(6, -1))
    torch.testing.assert_close(ours(x, w), expected.reshape(2, 3, -1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_per_sample_biases(implementation, float64_default):
    # e3nn cannot build per-sample biases: compare sample by sample with shared external ones
    _, theirs = _pair("biases", implementation, internal_weights=False)
    irreps_in, irreps_out, kwargs = CASES["biases"]
    ours = Linear(irreps_in, irreps_out, shared_weights=False, backend=implementation, **kwargs)
    x, w, b = _x(ours, 4), torch.randn(4, ours.weight_numel), torch.randn(4, ours.bias_numel)
    expected = torch.stack([theirs(x[k], w[k], b[k]) for k in range(4)])
    torch.testing.assert_close(ours(x, w, b), expected, atol=1e-12, rtol=0)


def test_external_shared_weights(float64_default):
    ours, theirs = _pair("biases", internal_weights=False)
    x, w, b = _x(ours, 3), torch.randn(ours.weight_numel), torch.randn(ours.bias_numel)
    torch.testing.assert_close(ours(x, w, b), theirs(x, w, b), atol=1e-12, rtol=0)


def test_zero_sizes(float64_default):
    ours, theirs = _pair("empty_blocks")
    for x in (_x(ours, 0), _x(ours, 3)):
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-12, rtol=0)
    empty = Linear("", "2x0e", biases=True)
    assert empty(torch.randn(3, 0)).shape == (3, 2)
    assert Linear("2x0e", "")(torch.randn(3, 2)).shape == (3, 0)


def test_weight_views_match_e3nn(float64_default):
    ours, theirs = _pair("instructions")
    for a, b in zip(ours.weight_views(), theirs.weight_views()):
        assert torch.equal(a, b)
    w = torch.randn(4, ours.weight_numel)
    shapes = [tuple(v.shape) for v in ours.weight_views(w)]
    assert shapes == [(4,) + ins.path_shape for ins in ours.instructions if ins.i_in >= 0]


@pytest.mark.parametrize("case", ["default", "biases", "features"])
def test_equivariance(case):
    ours, _ = _pair(case)
    if ours.f_in is None:
        assert_equivariant(ours, ours.irreps_in, ours.irreps_out)
    else:
        x = _x(ours, 5).double()
        assert_equivariant(lambda y: ours.double()(y.reshape(5, -1, ours.irreps_in.dim))
                           .reshape(5 * ours.f_out, -1), ours.irreps_in, ours.irreps_out,
                           [x.reshape(5 * ours.f_in, -1)])


def test_defaults():
    lin = Linear("4x0e + 2x1o", "3x0e + 1o", biases=True)
    assert lin.internal_weights and lin.shared_weights
    assert lin.weight.shape == (14,) and lin.bias.shape == (3,)
    assert torch.equal(lin.bias, torch.zeros(3))
    assert lin.instructions[-1].i_in == -1  # biases listed last, as e3nn


def test_compile_export_pickle_dtypes():
    lin = Linear("4x0e + 2x1o + 2x0e", "3x0e + 2x1o", biases=True)
    with torch.no_grad():
        lin.bias.normal_()
    x = torch.randn(5, 12)
    expected = lin(x)
    torch.testing.assert_close(torch.compile(lin, fullgraph=True)(x), expected)
    torch.testing.assert_close(torch.export.export(lin, (x,)).module()(x), expected)
    torch.testing.assert_close(pickle.loads(pickle.dumps(lin))(x), expected, atol=0, rtol=0)
    lin64 = copy.deepcopy(lin).to(torch.float64)
    torch.testing.assert_close(lin64(x.double()).float(), expected, atol=1e-5, rtol=1e-5)
    fresh = Linear("4x0e + 2x1o + 2x0e", "3x0e + 2x1o", biases=True).double()
    fresh.load_state_dict(lin.state_dict())
    torch.testing.assert_close(fresh(x.double()), lin64(x.double()), atol=0, rtol=0)


def test_bad_input():
    lin = Linear("2x0e + 1o", "3x0e + 1o")
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 5\]"):
        lin(torch.randn(3, 4))
    with pytest.raises(ValueError, match="has internal weights"):
        lin(torch.randn(3, 5), torch.randn(lin.weight_numel))
    with pytest.raises(TypeError, match="dtype"):
        lin(torch.randn(3, 5, dtype=torch.float64))
    external = Linear("2x0e + 1o", "3x0e + 1o", internal_weights=False)
    with pytest.raises(ValueError, match="no internal weights"):
        external(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"weight has shape \(6,\), expected \[7\]"):
        external(torch.randn(3, 5), torch.randn(6))
    with pytest.raises(ValueError, match="give both f_in and f_out"):
        Linear("2x0e", "3x0e", f_in=2)
    with pytest.raises(ValueError, match="requires shared_weights=True"):
        Linear("2x0e", "3x0e", internal_weights=True, shared_weights=False)
