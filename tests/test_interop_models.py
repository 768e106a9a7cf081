"""from_e3nn on whole models, and e3nn checkpoints loaded by load_e3nn_state_dict."""
import functools

import pytest
import torch

from equinet import nn, tp
from equinet.interop import from_e3nn, load_e3nn_state_dict

e3nn_o3 = pytest.importorskip("e3nn.o3")
e3nn_nn = pytest.importorskip("e3nn.nn")
gate_points_2101 = pytest.importorskip("e3nn.nn.models.gate_points_2101")
gate_points_2102 = pytest.importorskip("e3nn.nn.models.gate_points_2102")

ARGS = dict(irreps_in="2x0e", irreps_hidden="4x0e + 2x0o + 2x1o + 2x1e + 1x2e",
            irreps_out="1x0e + 1x1o", irreps_node_attr="2x0e", irreps_edge_attr="0e + 1o + 2e",
            layers=1, max_radius=2.0, number_of_basis=4, radial_layers=1, radial_neurons=8,
            num_neighbors=3.0, num_nodes=5.0)
MODELS = {"gate_points_2101": gate_points_2101.Network,
          "gate_points_2102": gate_points_2102.Network}


@functools.lru_cache(maxsize=None)
def _network(name, seed=0):
    """An e3nn network in float64, built once (e3nn's code generation is slow); do not modify."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        return MODELS[name](**ARGS)
    finally:
        torch.set_default_dtype(previous)


def _e3nn_blocks(model):
    """Modules of e3nn's library left in ``model`` (its example model classes excepted)."""
    return [name for name, m in model.named_modules()
            if type(m).__module__.startswith("e3nn.")
            and not type(m).__module__.startswith("e3nn.nn.models")]


def _data():
    pos = torch.randn(10, 3) * 1.2
    return {"pos": pos, "x": torch.randn(10, 2), "z": torch.randn(10, 2),
            "batch": torch.tensor([0] * 5 + [1] * 5)}


def _outputs_and_forces(model, data):
    pos = data["pos"].clone().requires_grad_(True)
    out = model(dict(data, pos=pos))
    forces, = torch.autograd.grad(out.sum(), pos)
    return out.detach(), forces


def _assert_same_function(ours, theirs, data):
    out, forces = _outputs_and_forces(ours, data)
    out_ref, forces_ref = _outputs_and_forces(theirs, data)
    assert out_ref.abs().max() > 1e-3 and forces_ref.abs().max() > 1e-3  # a real test
    torch.testing.assert_close(out, out_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(forces, forces_ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_e3nn_network_converts_with_outputs_and_forces(name, float64_default):
    theirs = _network(name)
    before = {k: v.clone() for k, v in theirs.state_dict().items()}
    ours = from_e3nn(theirs)
    assert _e3nn_blocks(ours) == [] and _e3nn_blocks(theirs) != []
    assert isinstance(ours.layers[0].second, nn.Gate)
    assert isinstance(ours.layers[0].first.tp, tp.TensorProduct)
    # the original is untouched and shares no tensor with the copy
    assert all(torch.equal(v, before[k]) for k, v in theirs.state_dict().items())
    theirs_ptrs = {p.data_ptr() for p in theirs.parameters()}
    assert not any(p.data_ptr() in theirs_ptrs for p in ours.parameters() if p.numel())
    _assert_same_function(ours, theirs, _data())
    # gradients reach the converted parameters, not the original's
    ours(_data()).pow(2).sum().backward()
    assert all(p.grad is not None for p in ours.parameters() if p.numel())
    assert all(p.grad is None for p in theirs.parameters())


def test_inplace(float64_default):
    theirs = gate_points_2101.Network(**ARGS)  # its own: it is modified
    reference = from_e3nn(theirs)
    same = from_e3nn(theirs, inplace=True)
    assert same is theirs and _e3nn_blocks(theirs) == []
    _assert_same_function(theirs, reference, _data())


def test_containers_and_shared_modules(float64_default):
    linear = e3nn_o3.Linear("4x0e + 2x1o", "4x0e + 2x1o")
    gate = e3nn_nn.Gate("2x0e", [torch.tanh], "2x0e", [torch.sigmoid], "2x1o")
    model = torch.nn.ModuleDict({
        "seq": torch.nn.Sequential(linear, gate),
        "list": torch.nn.ModuleList([linear, torch.nn.Identity()]),  # the same Linear again
    })
    ours = from_e3nn(model)
    assert _e3nn_blocks(ours) == [] and type(ours) is torch.nn.ModuleDict
    assert ours["seq"][0] is ours["list"][0]  # still one module, as in the original
    assert isinstance(ours["seq"][1], nn.Gate) and isinstance(ours["list"][1], torch.nn.Identity)
    x = torch.randn(3, 10)
    torch.testing.assert_close(ours["seq"](x), model["seq"](x), atol=1e-12, rtol=0)


def test_unconvertible_e3nn_module_is_named():
    model = torch.nn.Sequential(torch.nn.Identity(),
                                torch.nn.Sequential(e3nn_nn.S2Activation("0e + 1o", torch.tanh, 6)))
    with pytest.raises(TypeError, match=r"^1\.0: from_e3nn converts .*S2Activation"):
        from_e3nn(model)


def test_module_without_e3nn_is_copied():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    ours = from_e3nn(model)
    assert ours is not model and torch.equal(ours[0].weight, model[0].weight)


# -- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_e3nn_checkpoint_into_converted_model(name, float64_default):
    trained = _network(name)
    fresh = from_e3nn(_network(name, seed=1))  # other random weights
    state = trained.state_dict()
    assert any(k.endswith("output_mask") for k in state)
    with pytest.raises(RuntimeError, match="Unexpected key.*output_mask"):
        fresh.load_state_dict(state)  # why the loader exists
    result = load_e3nn_state_dict(fresh, state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    _assert_same_function(fresh, trained, _data())


def test_e3nn_checkpoint_into_hand_built_modules(float64_default):
    args = ("2x0e + 2x1o", "0e + 1o", "3x0e + 2x1o + 1e")
    theirs = torch.nn.Sequential(e3nn_o3.FullyConnectedTensorProduct(*args),
                                 e3nn_o3.Linear("3x0e + 2x1o + 1e", "2x0e + 1o", biases=True))
    with torch.no_grad():
        theirs[1].bias.normal_()
    ours = torch.nn.Sequential(tp.FullyConnectedTensorProduct(*args),
                               tp.Linear("3x0e + 2x1o + 1e", "2x0e + 1o", biases=True))
    load_e3nn_state_dict(ours, theirs.state_dict())
    x, y = torch.randn(4, 8), torch.randn(4, 4)
    torch.testing.assert_close(ours[1](ours[0](x, y)), theirs[1](theirs[0](x, y)),
                               atol=1e-12, rtol=0)


def test_checkpoint_errors_name_the_key():
    theirs = e3nn_nn.FullyConnectedNet([3, 4, 2], torch.tanh)
    state = theirs.state_dict()
    with pytest.raises(RuntimeError, match=r"layer1\.weight: shape \(4, 2\) in the checkpoint, "
                                           r"\(4, 5\) in the module"):
        load_e3nn_state_dict(nn.FullyConnectedNet([3, 4, 5], torch.tanh), state)
    incomplete = {k: v for k, v in state.items() if k != "layer0.weight"}
    with pytest.raises(RuntimeError, match=r"missing from the checkpoint: layer0\.weight"):
        load_e3nn_state_dict(nn.FullyConnectedNet([3, 4, 2], torch.tanh), incomplete)
    extra = dict(state, **{"layer2.weight": torch.zeros(2, 2)})
    with pytest.raises(RuntimeError, match=r"not in the module: layer2\.weight"):
        load_e3nn_state_dict(nn.FullyConnectedNet([3, 4, 2], torch.tanh), extra)
    # not strict: the rest loads, and what did not fit is reported
    ours = nn.FullyConnectedNet([3, 4, 2], torch.tanh)
    result = load_e3nn_state_dict(ours, extra, strict=False)
    assert result.unexpected_keys == ["layer2.weight"] and result.missing_keys == []
    assert torch.equal(ours.layer0.weight, state["layer0.weight"])
