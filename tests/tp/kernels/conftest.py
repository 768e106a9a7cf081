"""Cases and checks shared by the tests of every tensor-product backend.

A backend is tested against the ``reference`` backend on the same descriptor:
forward, the gradients of a random projection of the output with respect to
``x1``, ``x2`` and the weights, and the double backward (the gradient of a
random projection of those gradients). A backend's test module uses:

- the ``tp_case`` argument: parametrised over :data:`CASES` (every mode,
  weighted and weight-free paths, one-channel and many-channel second inputs);
- the ``tp_check`` fixture: :class:`BackendCheck`, whose ``compare`` runs the
  whole comparison for a backend name, and ``descriptors`` (a hypothesis
  strategy of random descriptors).
"""
import pytest
import torch

from equinet.tp import build_descriptor
from equinet.tp.kernels import get_backend

_UV = [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 2), (1, 1, 3), (1, 2, 4), (0, 2, 3)]


def _case(name, mode, mul1, mul2, mul_out, weighted=lambda k: True):
    """Products of ``0e + 1o`` with ``0e + 1o + 2e`` into ``0e + 1o + 1e + 2e + 2o``."""
    irreps1 = f"{mul1}x0e + {mul1}x1o"
    irreps2 = f"{mul2}x0e + {mul2}x1o + {mul2}x2e"
    irreps_out = " + ".join(f"{mul_out}x{ir}" for ir in ("0e", "1o", "1e", "2e", "2o"))
    instructions = [(a, b, c, mode, weighted(k)) for k, (a, b, c) in enumerate(_UV)]
    return pytest.param(irreps1, irreps2, irreps_out, instructions, id=name)


#: (irreps_in1, irreps_in2, irreps_out, instructions) covering every mode
CASES = [
    _case("uvw-1", "uvw", 3, 1, 2),
    _case("uvw-2", "uvw", 2, 2, 3),
    _case("uvu-1", "uvu", 3, 1, 3, weighted=lambda k: k % 3 != 1),
    _case("uvu-2", "uvu", 2, 3, 2, weighted=lambda k: k % 3 != 1),
    _case("uvv-1", "uvv", 3, 1, 1, weighted=lambda k: k != 2),
    _case("uvv-2", "uvv", 2, 3, 3, weighted=lambda k: k != 2),
    _case("uuw", "uuw", 3, 3, 2),
    _case("uuw-sum", "uuw", 3, 3, 1, weighted=lambda k: k % 2 == 0),
    _case("uuu", "uuu", 3, 3, 3, weighted=lambda k: k != 4),
    _case("uuu-1", "uuu", 1, 1, 1),
    _case("uvuv", "uvuv", 2, 2, 4, weighted=lambda k: k != 0),
    _case("uvuv-1", "uvuv", 3, 1, 3),
    _case("uvu<v", "uvu<v", 3, 3, 3, weighted=lambda k: k != 3),
    _case("u<vw", "u<vw", 3, 3, 2),
    pytest.param("2x0e + 3x1o + 2x1o", "0e + 2x1o", "2x0e + 3x1o + 2x1e + 4x2e",
                 [(0, 0, 0, "uvu", True), (2, 1, 0, "uuu", False), (1, 0, 1, "uvw", True),
                  (2, 1, 2, "uuw", True), (0, 1, 1, "uvw", True), (2, 1, 3, "uvuv", True),
                  (2, 1, 0, "uvw", True), (1, 0, 1, "uvu", True)],
                 id="mixed"),
    # second inputs of degree 0 only (one coupling nonzero per output row, e.g. Linear)
    pytest.param("3x0e + 3x1o", "0e", "2x0e + 2x1o",
                 [(0, 0, 0, "uvw", True), (1, 0, 1, "uvw", True)], id="degree0-linear"),
    pytest.param("2x0e + 2x1o", "0e + 0o", "2x0e + 2x1o + 3x1e + 2x0o",
                 [(0, 0, 0, "uvu", True), (1, 0, 1, "uvu", False), (1, 1, 2, "uvw", True),
                  (0, 1, 3, "uvu", True)], id="degree0-mixed"),
]


def _generator(seed):
    return torch.Generator().manual_seed(seed)


class BackendCheck:
    """Comparisons of a backend with the reference backend."""

    @staticmethod
    def descriptor(irreps1, irreps2, irreps_out, instructions, **kwargs):
        return build_descriptor(irreps1, irreps2, irreps_out, instructions, **kwargs)[0]

    @staticmethod
    def inputs(desc, batch, shared, dtype, seed=0):
        g = _generator(seed)
        x1 = torch.randn(batch, desc.dim_in1, generator=g, dtype=dtype)
        x2 = torch.randn(batch, desc.dim_in2, generator=g, dtype=dtype)
        shape = (desc.weight_numel,) if shared else (batch, desc.weight_numel)
        w = torch.randn(shape, generator=g, dtype=dtype)
        return x1, x2, w

    @staticmethod
    def tolerance(dtype):
        return {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]

    @staticmethod
    def assert_close(ours, theirs, dtype, what):
        ours, theirs = ours.detach(), theirs.detach()
        scale = max(float(theirs.abs().max()), 1.0) if theirs.numel() else 1.0
        err = float((ours - theirs).abs().max()) if theirs.numel() else 0.0
        assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
        assert err <= BackendCheck.tolerance(dtype) * scale, \
            f"{what}: max error {err:.3g} (scale {scale:.3g})"

    @staticmethod
    def derivatives(fn, inputs, double_backward=True, seed=1):
        """Output, first gradients of ``<out, v>``, and gradients of ``<grads, r>``."""
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        out = fn(*xs)
        g = _generator(seed)
        v = torch.randn(out.shape, generator=g, dtype=out.dtype)

        def grad(y, create_graph=False):  # zeros where y does not depend on an input
            if not y.requires_grad:
                return [torch.zeros_like(x) for x in xs]
            gs = torch.autograd.grad(y, xs, create_graph=create_graph, allow_unused=True)
            return [torch.zeros_like(x) if gr is None else gr for x, gr in zip(xs, gs)]

        grads = grad((out * v).sum(), create_graph=double_backward)
        results = [out.detach()] + [gr.detach() for gr in grads]
        if double_backward:
            r = [torch.randn(x.shape, generator=g, dtype=x.dtype) for x in xs]
            results += grad(sum((gr * ri).sum() for gr, ri in zip(grads, r)))
        return results

    @staticmethod
    def compare(backend, desc, shared, dtype, batch=5, double_backward=True, **kwargs):
        """Forward, first and second derivatives of ``backend`` against ``reference``."""
        ours = get_backend(backend).tensor_product
        theirs = get_backend("reference").tensor_product
        inputs = BackendCheck.inputs(desc, batch, shared, dtype)
        a = BackendCheck.derivatives(lambda *t: ours(desc, *t, **kwargs), inputs,
                                     double_backward)
        b = BackendCheck.derivatives(lambda *t: theirs(desc, *t), inputs, double_backward)
        names = ["out", "d/dx1", "d/dx2", "d/dw", "dd/dx1", "dd/dx2", "dd/dw"]
        for name, x, y in zip(names, a, b):
            BackendCheck.assert_close(x, y, dtype, name)

    @staticmethod
    def descriptors():
        """A hypothesis strategy of random descriptors (small multiplicities, l <= 2)."""
        from hypothesis import strategies as st

        from equinet.o3 import Irrep

        irrep = st.builds(Irrep, st.integers(0, 2), st.sampled_from([1, -1]))
        irreps = st.lists(st.tuples(st.sampled_from([0, 1, 2, 2, 3]), irrep), min_size=1,
                          max_size=3)

        @st.composite
        def strategy(draw):
            in1, in2 = draw(irreps), draw(irreps)
            candidates = [(a, b, ir) for a, (_, ir1) in enumerate(in1)
                          for b, (_, ir2) in enumerate(in2) for ir in ir1 * ir2]
            chosen = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=5)) \
                if candidates else []
            out, instructions = [], []
            for a, b, ir in chosen:
                (m1, _), (m2, _) = in1[a], in2[b]
                modes = ["uvw", "uvu", "uvv", "uvuv"] + (
                    ["uuw", "uuu", "uvu<v", "u<vw"] if m1 == m2 else [])
                mode = draw(st.sampled_from(modes))
                mul_out = {"uvu": m1, "uvv": m2, "uuu": m1, "uvuv": m1 * m2,
                           "uvu<v": m1 * (m2 - 1) // 2}.get(mode)
                if mul_out is None:
                    mul_out = draw(st.integers(1, 3))
                weighted = True if mode in ("uvw", "u<vw") else draw(st.booleans())
                if mode == "uuw" and not weighted:
                    mul_out = 1
                if draw(st.booleans()) or not out or out[-1][1] != ir or out[-1][0] != mul_out:
                    out.append((mul_out, ir))
                instructions.append((a, b, len(out) - 1, mode, weighted))
            fmt = lambda irr: " + ".join(f"{m}x{ir}" for m, ir in irr)  # noqa: E731
            return build_descriptor(fmt(in1), fmt(in2), fmt(out) if out else "0x0e",
                                    instructions)[0]

        return strategy()


@pytest.fixture(scope="session")
def tp_check():
    return BackendCheck


def pytest_generate_tests(metafunc):
    if "tp_case" in metafunc.fixturenames:
        metafunc.parametrize("tp_case", [pytest.param(p.values, id=p.id) for p in CASES])
