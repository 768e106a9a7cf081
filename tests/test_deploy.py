"""Deployment: ``torch.compile(fullgraph=True)``, ``torch.export`` and AOTInductor packages.

The recipe tested here is the one of ``docs/deploy.rst``: the MD driver (or the caller)
computes the neighbour list, the model takes ``edge_index`` and Cartesian ``edge_shift``, and
an exported wrapper returns the energy and the forces (``-dE/dpos``, by ``autograd.grad``
inside the exported program). One AOTInductor package is built for the whole module (it
compiles C++, about a minute on two cores) and serves molecules of any size.
"""
import warnings

import pytest
import torch

from equinet.graph import radius_graph
from equinet.models import PointsNetwork
from equinet.nn import SphericalHarmonics
from equinet.o3 import spherical_harmonics

CUTOFF = 2.0


class EnergyForces(torch.nn.Module):
    """The deployed module: ``(pos, species, edge_index, edge_shift) -> (energy, forces)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pos, species, edge_index, edge_shift):
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            energy = self.model(pos, species, edge_index=edge_index,
                                edge_shift=edge_shift).sum()
            (grad,) = torch.autograd.grad(energy, pos)
        return energy.detach(), -grad


def _structure(n, seed, cell=None):
    """Positions, species and the neighbour list an MD driver would pass."""
    g = torch.Generator().manual_seed(seed)
    if cell is None:
        pos = 1.4 * torch.randn(n, 3, generator=g, dtype=torch.float64)
        src, dst = radius_graph(pos, CUTOFF)
        shift = torch.zeros(src.shape[0], 3, dtype=torch.float64)
    else:
        pos = torch.rand(n, 3, generator=g, dtype=torch.float64) @ cell
        src, dst, shifts = radius_graph(pos, CUTOFF, cell=cell)
        shift = shifts @ cell
    species = torch.randint(0, 2, (n,), generator=g)
    return pos, species, torch.stack([src, dst]), shift


STRUCTURES = {
    "molecule": (6, 0, None),
    "larger molecule": (11, 1, None),
    "crystal": (5, 2, torch.tensor([[3.0, 0.0, 0.0], [0.3, 2.8, 0.0], [0.0, 0.4, 3.2]],
                                   dtype=torch.float64)),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The eager wrapper, its exported program and the loaded AOTInductor package."""
    from torch.export._trace import _export

    # the model's default backend: traced tensor products keep every size symbolic
    torch.manual_seed(0)
    model = PointsNetwork("0e", num_species=2, lmax=1, cutoff=CUTOFF, num_layers=1, mul=2,
                          num_radial=4, radial_hidden=(8,), pool="sum").double()
    wrapper = EnergyForces(model)
    example = _structure(*STRUCTURES["molecule"])
    wrapper(*example)  # builds the cached constants from real tensors
    atoms, edges = torch.export.Dim("atoms", min=1), torch.export.Dim("edges")
    program = _export(wrapper, example, strict=False, pre_dispatch=False,
                      dynamic_shapes=({0: atoms}, {0: atoms}, {1: edges}, {0: edges}))
    path = torch._inductor.aoti_compile_and_package(
        program, package_path=str(tmp_path_factory.mktemp("aoti") / "points_network.pt2"))
    return wrapper, program, torch._inductor.aoti_load_package(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_exported_and_packaged_energy_and_forces(deployment, name):
    wrapper, program, package = deployment
    inputs = _structure(*STRUCTURES[name])
    energy, forces = wrapper(*inputs)
    assert forces.abs().max() > 1e-8
    for deployed in (program.module(), package):
        got_energy, got_forces = deployed(*inputs)
        torch.testing.assert_close(got_energy, energy, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(got_forces, forces, atol=1e-10, rtol=1e-10)


def test_export_leaves_cached_constants_real(deployment):
    """Constants first built while export traced (with fake tensors) are cached as real ones."""
    from equinet.o3._spherical_harmonics_tables import tables

    for lmax in (1, 2):
        assert type(tables(lmax, torch.float64, torch.device("cpu")).scale) is torch.Tensor
    x = torch.tensor([[0.0, 3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(spherical_harmonics(1, x, False, "norm"), x)


@pytest.mark.slow
def test_packaged_isolated_atom(deployment):
    wrapper, _, package = deployment
    pos = torch.zeros(1, 3, dtype=torch.float64)
    inputs = (pos, torch.tensor([1]), torch.zeros(2, 0, dtype=torch.long), pos[:0])
    energy, forces = package(*inputs)
    torch.testing.assert_close(energy, wrapper(*inputs)[0])
    assert forces.shape == (1, 3) and not forces.any()


def _dynamo_warnings(fn):
    """Run ``fn`` from a fresh dynamo cache; the warnings raised, as strings."""
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


def test_compiled_spherical_harmonics_without_lru_cache_warnings():
    x = torch.randn(7, 3, dtype=torch.float64)
    module = SphericalHarmonics("0e + 1o + 2e + 3o", normalize=True)
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    functional = torch.compile(lambda v: spherical_harmonics([0, 2], v, True, "norm"),
                               fullgraph=True, backend="eager")

    def run():
        torch.testing.assert_close(compiled(x), module(x))
        torch.testing.assert_close(functional(x), spherical_harmonics([0, 2], x, True, "norm"))

    caught = _dynamo_warnings(run)
    assert not [w for w in caught if "lru_cache" in w], caught


def test_compiled_points_network_fullgraph():
    """Compiled forward with dynamic sizes; forces by autograd through the compiled graph."""
    torch.manual_seed(1)
    model = PointsNetwork("0e", num_species=2, lmax=2, cutoff=CUTOFF, num_layers=1, mul=2,
                          num_radial=4, radial_hidden=(8,), pool="sum").double()
    wrapper = EnergyForces(model)
    # aot_eager: dynamo and AOTAutograd in full (fullgraph capture, dynamic shapes, the
    # backward graph) without inductor's C++ build, which the package test covers
    compiled = EnergyForces(torch.compile(model, fullgraph=True, dynamic=True,
                                          backend="aot_eager"))

    def run():
        for name in STRUCTURES:
            inputs = _structure(*STRUCTURES[name])
            energy, forces = compiled(*inputs)
            torch.testing.assert_close(energy, wrapper(*inputs)[0])
            torch.testing.assert_close(forces, wrapper(*inputs)[1])

    caught = _dynamo_warnings(run)
    assert not [w for w in caught if "lru_cache" in w], caught

    # value checks are runtime assertions inside the compiled graph
    pos, species, edge_index, edge_shift = _structure(*STRUCTURES["molecule"])
    with pytest.raises(RuntimeError, match="species must lie in"):
        compiled(pos, species + 2, edge_index, edge_shift)
    with pytest.raises(RuntimeError, match="edge_index holds indices outside"):
        compiled(pos, species, edge_index + 1, edge_shift)


def test_compiled_tensor_product_conv():
    from equinet.tp import TensorProductConv

    conv = TensorProductConv("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
                             [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True),
                              (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True)], backend="torch")
    compiled = torch.compile(conv, fullgraph=True, dynamic=True, backend="aot_eager")
    for nodes, edges in ((5, 7), (8, 13)):
        x, a = torch.randn(nodes, 8, requires_grad=True), torch.randn(edges, 4)
        w = torch.randn(edges, conv.weight_numel, requires_grad=True)
        src, dst = torch.randint(0, nodes, (edges,)), torch.randint(0, nodes, (edges,))
        got, want = compiled(x, a, w, src, dst), conv(x, a, w, src, dst)
        torch.testing.assert_close(got, want)
        for g, h in zip(torch.autograd.grad(got.sum(), [x, w]),
                        torch.autograd.grad(want.sum(), [x, w])):
            torch.testing.assert_close(g, h)


def test_compiled_model_reuses_one_graph_for_new_sizes():
    """An MD run changes the numbers of atoms and edges at every step: after the one
    recompile with symbolic sizes, later sizes must not compile again (with the torch
    backend's chunking or opt_einsum's size-dependent order they did, every time)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(2)
    model = PointsNetwork("0e", num_species=2, lmax=1, cutoff=CUTOFF, num_layers=1, mul=2,
                          num_radial=4, radial_hidden=(8,), pool="sum", backend="torch").double()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch._dynamo.reset()
    counters.clear()
    for n, seed in ((6, 0), (8, 1), (11, 2), (13, 3)):
        pos, species, edge_index, edge_shift = _structure(n, seed)
        torch.testing.assert_close(compiled(pos, species, edge_index=edge_index),
                                   model(pos, species, edge_index=edge_index))
    assert counters["stats"]["unique_graphs"] == 2
