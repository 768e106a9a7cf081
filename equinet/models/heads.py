r"""Readout heads: per-atom features to molecular properties, each respecting what it predicts.

A head reads per-atom outputs of a backbone (``irreps_in``: a few scalars ``0e``, and a
vector ``1o`` for the dipole) together with the positions, species and batch, and returns
one value per molecule. Which head a QM9 target uses (:data:`TARGET_HEADS`), and why:

* :class:`ExtensiveHead` (``U0, U, H, G, zpve, Cv, alpha``): size-extensive quantities
  grow with the molecule, so the prediction is a **sum** of atomic contributions plus
  per-species reference values (e.g. free-atom energies fitted by least squares): the model
  learns only the small, local remainder. The polarizability ``alpha`` and the heat capacity
  ``Cv`` are extensive to a good approximation too (additive increments per group).
* :class:`IntensiveHead` (``homo, lumo, gap``): orbital energies do not grow with size, so
  the prediction is a **mean** of atomic contributions.
* :class:`DipoleHead` (``mu``): the dipole moment is the norm of a vector,
  :math:`\vec\mu = \sum_i q_i (\vec r_i - \vec r_c) + \vec d_i`, with atomic charges
  :math:`q_i` (scalars, minus their mean per molecule so that every molecule is neutral:
  then :math:`\vec\mu` does not depend on the origin :math:`\vec r_c`, here the centroid)
  and atomic dipoles :math:`\vec d_i` (``1o`` outputs; absent when the backbone has no
  vectors, e.g. ``lmax = 0``). Equivariant by construction; its norm is invariant.
* :class:`SpatialExtentHead` (``r2``): the electronic spatial extent
  :math:`\langle R^2\rangle` is a second moment of the electron density, so the prediction
  is :math:`\sum_i q_i |\vec r_i - \vec r_c|^2 + \sum_i s_i` with positive "electron
  counts" :math:`q_i` (softplus, starting from the atomic number) and atomic terms
  :math:`s_i` (the atoms' own extent), :math:`\vec r_c` the centroid.

Units: positions in Angstrom; every head returns its target in the unit of the data
(:data:`equinet.data.qm9.UNITS`): Hartree, Debye, :math:`a_0^3`, :math:`a_0^2`, cal/(mol K),
always in float64 (the references add up to totals of ~-400 Ha, where float32 would lose
about a meV), whatever the dtype of the network.
The atomic scalar outputs are standardised: an atomic value is ``shift + scale * s_i``,
with ``shift``, ``scale`` and the per-species ``reference`` buffers set from training data
by :meth:`set_statistics`.
"""
import math
from typing import Optional

import torch

from ..o3 import Irreps

__all__ = ["ExtensiveHead", "IntensiveHead", "DipoleHead", "SpatialExtentHead",
           "TARGET_HEADS", "make_head"]

#: e * Angstrom in Debye (CODATA 2018: 1 D = 0.20819433622 e Angstrom).
_EANGSTROM_DEBYE = 1 / 0.20819433622
#: Angstrom^2 in bohr^2 (CODATA 2018 bohr radius 0.529177210903 Angstrom).
_ANGSTROM2_BOHR2 = 1 / 0.529177210903 ** 2


def _segment_sum(values: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    return values.new_zeros((num_graphs,) + values.shape[1:]).index_add(0, batch, values)


def _segment_mean(values, batch, num_graphs):
    count = _segment_sum(torch.ones_like(batch, dtype=values.dtype), batch, num_graphs)
    count = count.clamp(min=1).reshape((-1,) + (1,) * (values.dim() - 1))
    return _segment_sum(values, batch, num_graphs) / count


class _Head(torch.nn.Module):
    """Shared buffers: per-species ``reference`` ``[num_z]``, ``shift`` and ``scale``."""

    irreps_in = Irreps("0e")

    def __init__(self, num_z: int = 10) -> None:
        super().__init__()
        self.register_buffer("reference", torch.zeros(num_z, dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def _apply(self, fn, recurse=True):
        # .to(device) moves the statistics; .float()/.to(dtype) keep them float64
        kept = {name: buf for name, buf in self.named_buffers(recurse=False)}
        out = super()._apply(fn, recurse)
        for name, old in kept.items():
            setattr(self, name, old.to(device=getattr(self, name).device))
        return out

    @torch.no_grad()
    def set_statistics(self, reference: Optional[torch.Tensor] = None, shift: float = 0.0,
                       scale: float = 1.0) -> None:
        """Set the per-species reference (indexed by atomic number), shift and scale."""
        if reference is not None:
            self.reference.copy_(torch.as_tensor(reference, dtype=self.reference.dtype))
        self.shift.fill_(float(shift))
        self.scale.fill_(float(scale))

    def atomic(self, s: torch.Tensor) -> torch.Tensor:
        """Standardised scalar ``s`` ``[N]`` to an atomic value ``shift + scale * s`` (float64)."""
        return self.shift + self.scale * s.double()


class ExtensiveHead(_Head):
    r""":math:`y = \sum_i (\mathrm{ref}_{z_i} + \mathrm{shift} + \mathrm{scale}\, s_i)`.

    For size-extensive targets (energies, zpve, Cv, alpha): a sum over atoms.

    Examples
    --------
    >>> head = ExtensiveHead()
    >>> head.set_statistics(reference=torch.arange(10.0), shift=0.5)
    >>> s = torch.zeros(3, 1)
    >>> head(s, torch.zeros(3, 3), torch.tensor([1, 6, 1]), torch.tensor([0, 0, 1]), 2)
    tensor([8.0000, 1.5000], dtype=torch.float64)
    """

    def forward(self, x, pos, z, batch, num_graphs: int) -> torch.Tensor:
        atomic = self.atomic(x[:, 0]) + self.reference[z]
        return _segment_sum(atomic, batch, num_graphs)


class IntensiveHead(_Head):
    r""":math:`y = \frac{1}{n}\sum_i (\mathrm{shift} + \mathrm{scale}\, s_i)`: size-intensive
    targets (HOMO, LUMO, gap), the mean over atoms.

    Examples
    --------
    >>> head = IntensiveHead()
    >>> head(torch.tensor([[1.0], [3.0], [5.0]]), torch.zeros(3, 3), torch.tensor([1, 6, 1]),
    ...      torch.tensor([0, 0, 1]), 2)
    tensor([2., 5.], dtype=torch.float64)
    """

    def forward(self, x, pos, z, batch, num_graphs: int) -> torch.Tensor:
        return _segment_mean(self.atomic(x[:, 0]), batch, num_graphs)


def _centered(pos, batch, num_graphs):
    return pos - _segment_mean(pos, batch, num_graphs)[batch]


class DipoleHead(_Head):
    r"""The norm of :math:`\vec\mu = \sum_i q_i (\vec r_i - \vec r_c) + \vec d_i` (Debye).

    Charges :math:`q_i = s_i - \langle s\rangle_\text{molecule}` (neutral molecules: the
    dipole does not depend on the origin), in units of ``scale`` e (initially 1);
    atomic dipoles :math:`\vec d_i` from a ``1o`` input when ``atomic_dipoles``.
    :meth:`vector` returns :math:`\vec\mu` itself, an equivariant ``1o`` quantity.

    Examples
    --------
    >>> head = DipoleHead(atomic_dipoles=False)
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    >>> q = torch.tensor([[-1.0], [1.0]])  # e: one e*Angstrom along x
    >>> head.vector(q, pos, torch.tensor([8, 1]), torch.tensor([0, 0]), 1)
    tensor([[4.8032, 0.0000, 0.0000]])
    """

    def __init__(self, atomic_dipoles: bool = True, num_z: int = 10) -> None:
        super().__init__(num_z)
        self.atomic_dipoles = atomic_dipoles
        self.irreps_in = Irreps("0e + 1o") if atomic_dipoles else Irreps("0e")

    def vector(self, x, pos, z, batch, num_graphs: int) -> torch.Tensor:
        """:math:`\\vec\\mu` ``[num_graphs, 3]`` in Debye."""
        q = self.scale.to(x.dtype) * x[:, 0]
        q = q - _segment_mean(q, batch, num_graphs)[batch]
        atomic = q.unsqueeze(-1) * _centered(pos, batch, num_graphs).to(x.dtype)
        if self.atomic_dipoles:
            atomic = atomic + self.scale.to(x.dtype) * x[:, 1:4]
        return _EANGSTROM_DEBYE * _segment_sum(atomic, batch, num_graphs)

    def forward(self, x, pos, z, batch, num_graphs: int) -> torch.Tensor:
        mu = self.vector(x, pos, z, batch, num_graphs)
        # sqrt(|mu|^2 + eps^2): differentiable at mu = 0 (e.g. symmetric molecules)
        return (mu.pow(2).sum(-1) + 1e-8).sqrt().double()


class SpatialExtentHead(_Head):
    r""":math:`\langle R^2\rangle = \sum_i q_i |\vec r_i - \vec r_c|^2 + \sum_i
    (\mathrm{ref}_{z_i} + \mathrm{shift} + \mathrm{scale}\, t_i)` in :math:`a_0^2`.

    Two scalar inputs per atom ``(p_i, t_i)``: :math:`q_i = \mathrm{softplus}(p_i + c_{z_i})`
    is a positive electron count, :math:`c_z` learnable and starting where
    :math:`q_i = z_i` (the atom's electrons at its nucleus); :math:`t_i` the atomic term.

    Examples
    --------
    >>> head = SpatialExtentHead()
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [0.529177210903, 0.0, 0.0]])  # one bohr apart
    >>> head(torch.zeros(2, 2), pos, torch.tensor([1, 1]), torch.tensor([0, 0]), 1).detach()
    tensor([0.5000], dtype=torch.float64)
    """

    irreps_in = Irreps("2x0e")

    def __init__(self, num_z: int = 10) -> None:
        super().__init__(num_z)
        # softplus^{-1}(z) = log(expm1(z)); z = 0 (no such species) gets a small count
        start = [math.log(math.expm1(max(z, 1e-3))) for z in range(num_z)]
        self.charge_offset = torch.nn.Parameter(torch.tensor(start))

    def forward(self, x, pos, z, batch, num_graphs: int) -> torch.Tensor:
        q = torch.nn.functional.softplus(x[:, 0] + self.charge_offset.to(x.dtype)[z])
        r2 = _centered(pos, batch, num_graphs).to(x.dtype).pow(2).sum(-1) * _ANGSTROM2_BOHR2
        atomic = (q * r2).double() + self.atomic(x[:, 1]) + self.reference[z]
        return _segment_sum(atomic, batch, num_graphs)


#: The head of every QM9 target (see the module docstring for the reasons).
TARGET_HEADS = {"mu": "dipole", "alpha": "extensive", "homo": "intensive",
                "lumo": "intensive", "gap": "intensive", "r2": "spatial_extent",
                "zpve": "extensive", "U0": "extensive", "U": "extensive", "H": "extensive",
                "G": "extensive", "Cv": "extensive"}


def make_head(target: str, vectors: bool = True) -> _Head:
    """The head for a QM9 ``target`` (:data:`TARGET_HEADS`); ``vectors``: the backbone has
    ``1o`` outputs (atomic dipoles for ``mu``).

    >>> make_head("gap").__class__.__name__
    'IntensiveHead'
    """
    if target not in TARGET_HEADS:
        raise ValueError(f"unknown QM9 target {target!r}; known: {', '.join(TARGET_HEADS)}")
    kind = TARGET_HEADS[target]
    if kind == "dipole":
        return DipoleHead(atomic_dipoles=vectors)
    return {"extensive": ExtensiveHead, "intensive": IntensiveHead,
            "spatial_extent": SpatialExtentHead}[kind]()
