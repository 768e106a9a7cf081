"""Energy + forces training step of PointsNetwork against the same network written with e3nn.

Problem: a 200-atom cloud, random positions in a cube at 0.1 atoms/A^3 (side 12.6 A),
4 species, cutoff 5 A (about 30 neighbours per atom), float32, CPU,
``torch.set_num_threads(2)``. Network: ``PointsNetwork("0e", lmax=2, num_layers=3,
mul=16, num_radial=8, radial_hidden=(64, 64), pool="sum")``: NequIP-style blocks with
hidden irreps ``16x(0e + 0o + 1o + 1e + 2e + 2o)`` (those each layer can reach).

The e3nn network is the same architecture built from e3nn 0.6's ``o3.Linear``,
``o3.TensorProduct`` (``uvu``, per-edge weights) followed by ``index_add``,
``o3.FullyConnectedTensorProduct`` (self-connection), ``nn.FullyConnectedNet`` (radial
network) and ``nn.Gate``, given equinet's weights; both see the same graph (equinet's
``radius_graph``), harmonics and radial embedding inputs, and the script first checks that
they compute the same energy and forces.

One training step: energy ``E = net(pos)``, forces ``F = -dE/dpos`` (``create_graph=True``),
loss ``(E - E_ref)^2 + mean |F - F_ref|^2``, backward (a double backward through the
network), Adam step. Reported: the median over repeats after warm-up, and the ratio.
Prints only; never asserts.

Usage: ``python benchmarks/points_network.py [--atoms 200] [--mul 16] [--lmax 2]
[--layers 3] [--repeats 10] [--threads 2] [--no-e3nn]``
"""
import argparse
import math
import statistics
import time

import torch

from equinet.graph import radius_graph
from equinet.models import PointsNetwork


def random_cloud(atoms: int, density: float, num_species: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    side = (atoms / density) ** (1 / 3)
    pos = side * torch.rand(atoms, 3, generator=g)
    return pos, torch.randint(0, num_species, (atoms,), generator=g)


class E3nnNetwork(torch.nn.Module):
    """``net``'s architecture built from e3nn modules, with ``net``'s weights."""

    def __init__(self, net: PointsNetwork):
        super().__init__()
        from e3nn import nn as e3nn_nn
        from e3nn import o3 as e3nn_o3

        def linear(ours):
            m = e3nn_o3.Linear(str(ours.irreps_in), str(ours.irreps_out))
            with torch.no_grad():
                m.weight.copy_(ours.weight)
            return m

        def convolution(ours):
            block = torch.nn.Module()
            block.linear_in = linear(ours.linear_in)
            block.tp = e3nn_o3.TensorProduct(
                str(ours.irreps_in), str(ours.irreps_sh), str(ours.irreps_mid),
                [tuple(i)[:5] for i in ours.conv.instructions],
                shared_weights=False, internal_weights=False)
            block.radial = e3nn_nn.FullyConnectedNet(ours.radial.hs, torch.nn.functional.silu)
            block.radial.load_state_dict(ours.radial.state_dict())
            block.linear_out = linear(ours.linear_out)
            block.sc = e3nn_o3.FullyConnectedTensorProduct(
                str(ours.irreps_in), str(ours.irreps_node_attr), str(ours.irreps_out))
            with torch.no_grad():
                block.sc.weight.copy_(ours.self_connection.weight)
            block.scale = 1 / math.sqrt(ours.avg_num_neighbors)
            return block

        def gate(ours):
            def acts(irreps, even, odd):
                return [even if ir.p == 1 else odd for _, ir in irreps]
            silu, tanh = torch.nn.functional.silu, torch.tanh
            return e3nn_nn.Gate(str(ours.irreps_scalars), acts(ours.irreps_scalars, silu, tanh),
                                str(ours.irreps_gates),
                                acts(ours.irreps_gates, torch.sigmoid, tanh),
                                str(ours.irreps_gated))

        self.net = net
        self.embedding = linear(net.embedding)
        self.convolutions = torch.nn.ModuleList([convolution(c) for c in net.convolutions])
        self.gates = torch.nn.ModuleList([gate(g) for g in net.gates])
        self.output = convolution(net.output)

    @staticmethod
    def _conv(block, x, src, dst, sh, emb, attr):
        messages = block.tp(block.linear_in(x)[src], sh, block.radial(emb))
        m = messages.new_zeros(x.shape[0], messages.shape[1]).index_add(0, dst, messages)
        return block.linear_out(m * block.scale) + block.sc(x, attr)

    def forward(self, pos, species):
        net = self.net
        src, dst = radius_graph(pos, net.cutoff)
        vec = pos[dst] - pos[src]
        from e3nn import o3 as e3nn_o3
        sh = e3nn_o3.spherical_harmonics(str(net.irreps_sh), vec, True, "component")
        r = vec.norm(dim=1)
        emb = net.basis(r) * net.envelope(r).unsqueeze(-1)
        attr = torch.nn.functional.one_hot(species, net.num_species).to(pos.dtype)
        x = self.embedding(attr)
        for block, gate in zip(self.convolutions, self.gates):
            x = gate(self._conv(block, x, src, dst, sh, emb, attr))
        return self._conv(self.output, x, src, dst, sh, emb, attr).sum(0, keepdim=True)


def training_step(model, optimizer, pos, species, energy_ref, forces_ref):
    pos = pos.detach().requires_grad_(True)
    energy = model(pos, species).sum()
    (grad,) = torch.autograd.grad(energy, pos, create_graph=True)
    loss = (energy - energy_ref).pow(2) + (-grad - forces_ref).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def energy_forces(model, pos, species):
    pos = pos.detach().requires_grad_(True)
    energy = model(pos, species).sum()
    (grad,) = torch.autograd.grad(energy, pos)
    return energy.detach(), -grad


def time_steps(models: dict, pos, species, repeats: int) -> dict:
    """Median seconds per training step of each model, alternating models step by step.

    Alternating spreads the load of a shared machine evenly over the models.
    """
    energy_ref, forces_ref = torch.tensor(0.0), torch.zeros_like(pos)
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    times = {name: [] for name in models}
    for it in range(repeats + 2):  # two warm-up steps each: plans, caches, allocator
        for name, model in models.items():
            t0 = time.perf_counter()
            training_step(model, optimizers[name], pos, species, energy_ref, forces_ref)
            if it >= 2:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atoms", type=int, default=200)
    parser.add_argument("--density", type=float, default=0.1, help="atoms per A^3")
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--mul", type=int, default=16)
    parser.add_argument("--lmax", type=int, default=2)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-e3nn", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    pos, species = random_cloud(args.atoms, args.density, 4)
    src, _ = radius_graph(pos, args.cutoff)
    avg = src.shape[0] / args.atoms
    net = PointsNetwork("0e", num_species=4, lmax=args.lmax, cutoff=args.cutoff,
                        num_layers=args.layers, mul=args.mul, num_radial=8,
                        radial_hidden=(64, 64), avg_num_neighbors=avg, pool="sum")
    print(f"{args.atoms} atoms, {src.shape[0]} edges ({avg:.1f} neighbours per atom), "
          f"hidden irreps {net.irreps_hidden}, lmax {args.lmax}, {args.layers} layers, "
          f"float32, {args.threads} threads")
    models = {"equinet": net}
    if not args.no_e3nn:
        reference = E3nnNetwork(net)
        e_ours, f_ours = energy_forces(net, pos, species)
        e_ref, f_ref = energy_forces(reference, pos, species)
        print(f"same network: |dE| = {abs(float(e_ours - e_ref)):.1e} (E = {float(e_ref):.3f}), "
              f"max |dF| = {float((f_ours - f_ref).abs().max()):.1e} "
              f"(max |F| = {float(f_ref.abs().max()):.3f})")
        models = {"e3nn": reference, "equinet": net}
    results = time_steps(models, pos, species, args.repeats)
    for name, seconds in results.items():
        print(f"{name:8s} training step (energy + forces, double backward): "
              f"{1e3 * seconds:8.1f} ms (median of {args.repeats})")
    if "e3nn" in results:
        print(f"speed-up over e3nn: {results['e3nn'] / results['equinet']:.2f}x")
    return results


if __name__ == "__main__":
    main()
