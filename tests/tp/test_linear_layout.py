"""Linear's instructions (coefficients, biases, weight offsets) against e3nn's o3.Linear."""
import pytest
import torch

from equinet.o3 import Irreps
from equinet.tp.linear_layout import linear_instructions, weighted_instructions

e3nn_o3 = pytest.importorskip("e3nn.o3")

LAYOUTS = {
    "default": ("4x0e + 3x1o + 2x2e + 0e + 2x1o", "3x0e + 2x1o + 2e + 1e", {}),
    "instructions": ("2x0e + 3x1o + 0e", "3x0e + 2x1o + 2x0e",
                     {"instructions": [(0, 2), (2, 0), (1, 1), (0, 0), (0, 2)]}),
    "path": ("2x0e + 3x1o + 0e", "3x0e + 2x1o", {"path_normalization": "path", "biases": True}),
    "features": ("2x0e + 3x1o", "3x0e + 2x1o", {"f_in": 4, "f_out": 3, "biases": True}),
    "bias_list": ("4x0e + 3x1o", "3x0e + 2x1o + 2x0e", {"biases": [True, False, False]}),
    "empty_blocks": ("0x0e + 2x1o", "2x0e + 0x1o + 1o", {}),
}


def _ours(irreps_in, irreps_out, instructions=None, biases=False, path_normalization="element",
          f_in=None, f_out=None):
    return linear_instructions(Irreps(irreps_in), Irreps(irreps_out), instructions, biases,
                               path_normalization, f_in)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_instructions_and_offsets_match_e3nn(layout):
    irreps_in, irreps_out, kwargs = LAYOUTS[layout]
    theirs = e3nn_o3.Linear(irreps_in, irreps_out, **kwargs)
    ours = _ours(irreps_in, irreps_out, **kwargs)
    assert [tuple(i) for i in ours] == [
        (i.i_in, i.i_out, tuple(i.path_shape), pytest.approx(i.path_weight, rel=1e-14))
        for i in theirs.instructions]
    # the flat weights: e3nn's view of each instruction is ours at our offset (zip stops at
    # our last weighted instruction: e3nn 0.6 also walks its biases here, and fails on them)
    weight = torch.arange(float(theirs.weight_numel))
    if kwargs.get("f_in") is not None:
        weight = weight.expand(kwargs["f_in"], kwargs["f_out"], -1)
    weighted = list(weighted_instructions(ours))
    assert [ins for ins, _ in weighted] == [ins for ins in ours if ins.i_in >= 0]
    for (ins, offset), view in zip(weighted, theirs.weight_views(weight)):
        size = ins.path_shape[0] * ins.path_shape[1]
        expected = weight[..., offset:offset + size].reshape(weight.shape[:-1] + ins.path_shape)
        assert torch.equal(view, expected)


def test_bad_instructions_raise():
    with pytest.raises(ValueError, match="out of range"):
        _ours("2x0e", "3x0e", instructions=[(0, 1)])
    with pytest.raises(ValueError, match="not the same irrep"):
        _ours("2x0e + 1o", "3x0e + 1e", instructions=[(1, 1)])
    with pytest.raises(ValueError, match="only 0e blocks can have a bias"):
        _ours("2x0e", "3x0e + 1o", biases=[False, True])
    with pytest.raises(ValueError, match="biases has 1 entries"):
        _ours("2x0e", "3x0e + 1o", biases=[True])


def test_numpy_and_torch_integer_indices_match_e3nn():
    """e3nn accepts numpy/torch integers as instruction indices (e.g. from argsort)."""
    import numpy as np
    irreps_in, irreps_out = "2x0e + 3x1o + 0e", "3x0e + 2x1o + 2x0e"
    plain = [(0, 2), (2, 0), (1, 1)]
    mixed = [(np.int64(0), torch.tensor(2)), (np.int32(2), 0), (1, np.int64(1))]
    theirs = e3nn_o3.Linear(irreps_in, irreps_out, instructions=mixed)
    assert _ours(irreps_in, irreps_out, instructions=mixed) == _ours(
        irreps_in, irreps_out, instructions=plain)
    assert [(i.i_in, i.i_out) for i in theirs.instructions] == plain
    with pytest.raises(ValueError, match="out of range"):
        _ours(irreps_in, irreps_out, instructions=[(1.0, 1)])
