r"""Electron densities as auxiliary-basis coefficients (Rackers et al.): an equivariant model.

For atoms with positions :math:`\vec r_i` and species :math:`s_i` the density is

.. math::

    \rho(r) = \sum_i \sum_{P \in i} c_P\, \chi_P(r - \vec r_i), \qquad
    c_i = c^{atom}_{s_i} + \alpha\, \mathrm{Head}_{s_i}(h_i),

1. :math:`h_i` are equivariant node features of a
   :class:`~equinet.models.PointsNetwork` (gated NequIP convolutions, proper
   irreps :math:`l^{(-1)^l}` up to ``lmax_hidden``);
2. one :class:`~equinet.tp.Linear` head per species maps them to that
   element's auxiliary functions, laid out as ``BasisLayout(auxmol).atom_irreps``
   (equinet's order; atoms are grouped by species, one head call per species);
3. the free-atom reference :math:`c^{atom}` (:mod:`equinet.chem.atomic_reference`,
   non-zero on s functions only) is added, so the network learns the difference;
4. :func:`~equinet.chem.conserve_charge` shifts the s coefficients of each
   molecule so that :math:`\sum_P q_P c_P = N` exactly (:math:`q_P = \int \chi_P`).

Every step is equivariant, so :math:`c(R\vec r + t) = D(R)\, c(\vec r)` with
:math:`D` block diagonal, ``BasisLayout(auxmol).irreps.D_from_matrix(R)``, for
rotations with or without inversion. The output is the molecule's coefficient
vector in equinet's order, molecules of a batch concatenated;
``BasisLayout(auxmol).to_pyscf(c, kind="vector")`` gives PySCF's order (for
:func:`~equinet.chem.eval_density`, :func:`~equinet.chem.density_guess`, ...).
Train with :func:`~equinet.chem.coulomb_loss`.
"""
from typing import Optional, Sequence

import numpy as np
import torch

from ..o3 import Irreps
from ..tp import Linear
from .points_network import PointsNetwork
from ..chem.coulomb import conserve_charge

__all__ = ["DensityNetwork"]


def _atomic_number(element) -> int:
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        return int(element)
    from pyscf.data.elements import charge

    return int(charge(str(element)))


class DensityNetwork(torch.nn.Module):
    r"""Predicts auxiliary-basis density coefficients per molecule (module docstring).

    Parameters
    ----------
    elements : sequence of str or int
        The element of each species index: ``species == k`` means ``elements[k]``.
    atom_irreps : sequence of Irreps or str
        Each element's auxiliary functions, e.g. ``BasisLayout(auxmol).atom_irreps[i]``
        of an atom of that element; all irreps must be :math:`l^{(-1)^l}`.
    references : sequence of array_like, optional
        Each element's free-atom coefficients in equinet's order (zeros by default).
    integrals : sequence of array_like, optional
        Each element's :math:`\int \chi_P` in equinet's order; needed for ``conserve``.
    lmax_hidden : int
        Largest degree of the hidden features and edge harmonics; at least the
        auxiliary basis' largest :math:`l`.
    mul, num_layers, cutoff, num_radial, radial_hidden, avg_num_neighbors, backend
        As :class:`~equinet.models.PointsNetwork` (``cutoff`` in the unit of ``pos``).
    output_scale : float
        :math:`\alpha`, so that the learned correction starts small.
    conserve : bool
        Apply the charge constraint (needs ``integrals``).

    Examples
    --------
    >>> net = DensityNetwork(["H", "O"], ["2x0e + 1x1o", "3x0e + 1x1o + 1x2e"],
    ...                      integrals=[[1.0, 1.0, 0, 0, 0], [1.0] * 3 + [0.0] * 8],
    ...                      lmax_hidden=2, mul=4, num_layers=1)
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.76, 0.59], [0.0, -0.76, 0.59]])
    >>> c = net(pos, torch.tensor([1, 0, 0]))  # O, H, H: 11 + 5 + 5 coefficients
    >>> c.shape, round(float(c.detach() @ net.coefficient_integrals(torch.tensor([1, 0, 0]))), 5)
    (torch.Size([21]), 10.0)

    From a PySCF basis (atomic references from free-atom SCFs, cached):
    ``DensityNetwork.from_basis(["H", "O"], "def2-SVP", "def2-universal-jfit", "PBE")``.
    """

    def __init__(self, elements: Sequence, atom_irreps: Sequence, references=None,
                 integrals=None, lmax_hidden: int = 4, mul: int = 16, num_layers: int = 3,
                 cutoff: float = 4.0, num_radial: int = 8, radial_hidden: Sequence[int] = (64,),
                 avg_num_neighbors: float = 4.0, output_scale: float = 0.1,
                 conserve: bool = True, backend: str = "auto") -> None:
        super().__init__()
        if len(elements) == 0 or len(atom_irreps) != len(elements):
            raise ValueError(f"give one atom_irreps per element: {len(elements)} elements, "
                             f"{len(atom_irreps)} irreps")
        self.elements = tuple(elements)
        self.atom_irreps = tuple(Irreps(irreps) for irreps in atom_irreps)
        for element, irreps in zip(self.elements, self.atom_irreps):
            bad = [str(ir) for _, ir in irreps if ir.p != (-1) ** ir.l]
            if bad or irreps.lmax > lmax_hidden:
                raise ValueError(f"{element}: atom irreps {irreps} need only l^((-1)^l) irreps "
                                 f"with l <= lmax_hidden = {lmax_hidden}")
        if conserve and integrals is None:
            raise ValueError("conserve=True needs the integrals of the auxiliary functions")
        self.conserve = bool(conserve)
        self.output_scale = float(output_scale)
        num = len(self.elements)
        dims = [irreps.dim for irreps in self.atom_irreps]
        width = max(dims)

        def table(values, name):
            out = np.zeros((num, width))
            if values is None:
                return out
            if len(values) != num:
                raise ValueError(f"give one {name} vector per element, got {len(values)}")
            for k, (value, dim) in enumerate(zip(values, dims)):
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (dim,):
                    raise ValueError(f"{name}[{k}] ({self.elements[k]}) must have shape "
                                     f"({dim},), got {tuple(value.shape)}")
                out[k, :dim] = value
            return out

        # float64 masters: a float32 network made float64 later gets them unrounded (_apply)
        self._float64 = {"references": table(references, "references"),
                         "integrals": table(integrals, "integrals")}
        for name, value in self._float64.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.get_default_dtype()))
        self.register_buffer("dims", torch.tensor(dims, dtype=torch.long))
        self.register_buffer("atomic_numbers", torch.tensor(
            [_atomic_number(e) for e in self.elements], dtype=torch.long))
        self.backbone = PointsNetwork(
            Irreps([(mul, (l, (-1) ** l)) for l in range(lmax_hidden + 1)]), num_species=num,
            lmax=lmax_hidden, cutoff=cutoff, num_layers=num_layers, mul=mul,
            num_radial=num_radial, radial_hidden=radial_hidden,
            avg_num_neighbors=avg_num_neighbors, pool=None, parity=False, backend=backend)
        self.heads = torch.nn.ModuleList(
            Linear(self.backbone.irreps_out, irreps, biases=True, backend=backend)
            for irreps in self.atom_irreps)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for name, value in self._float64.items():
            buffer = getattr(self, name)
            setattr(self, name, torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device))
        return self

    @classmethod
    def from_basis(cls, elements: Sequence, basis: str = "def2-SVP",
                   auxbasis: str = "def2-universal-jfit", xc: str = "PBE", **kwargs):
        """A network whose layouts, references and integrals come from PySCF's bases.

        ``elements`` as the constructor; the references are
        :func:`~equinet.chem.atomic_reference` at ``(basis, auxbasis, xc)``. Other
        keyword arguments go to the constructor.
        """
        from pyscf import gto
        from pyscf.data.elements import ELEMENTS
        from pyscf.df.addons import make_auxmol

        from ..chem.atomic_reference import atomic_reference
        from ..chem.basis_layout import BasisLayout
        from ..chem.density import aux_integrals

        irreps, references, integrals = [], [], []
        for element in elements:
            symbol = ELEMENTS[_atomic_number(element)]
            mol = gto.M(atom=[(symbol, (0.0, 0.0, 0.0))], basis=basis,
                        spin=_atomic_number(element) % 2, verbose=0)
            auxmol = make_auxmol(mol, auxbasis)
            layout = BasisLayout(auxmol)
            irreps.append(layout.irreps)
            references.append(atomic_reference(symbol, basis, auxbasis, xc, order="equinet"))
            integrals.append(layout.to_equinet(aux_integrals(auxmol), kind="vector"))
        return cls(elements, irreps, references, integrals, **kwargs)

    def _mask(self, species):
        dims = self.dims.index_select(0, species)
        return torch.arange(self.references.shape[1], device=species.device) < dims[:, None]

    def coefficient_integrals(self, species: torch.Tensor) -> torch.Tensor:
        r""":math:`\int \chi_P` of every output coefficient, ``[n_coefficients]``."""
        species = species.long()
        return self.integrals.index_select(0, species)[self._mask(species)]

    def coefficient_index(self, species: torch.Tensor,
                          batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The molecule (``batch`` value) of every output coefficient, ``[n_coefficients]``."""
        species = species.long()
        if batch is None:
            batch = torch.zeros_like(species)
        return batch.long().repeat_interleave(self.dims.index_select(0, species))

    def split(self, c: torch.Tensor, species: torch.Tensor,
              batch: Optional[torch.Tensor] = None) -> list:
        """The output of a batch cut into one coefficient vector per molecule."""
        index = self.coefficient_index(species, batch)
        counts = torch.bincount(index) if index.numel() else index.new_zeros(0)
        return list(torch.split(c, counts.tolist()))

    def forward(self, pos: torch.Tensor, species: torch.Tensor,
                batch: Optional[torch.Tensor] = None,
                charge: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Coefficients of all molecules, concatenated in atom order (equinet's order).

        Parameters
        ----------
        pos : torch.Tensor
            ``[N, 3]`` positions (the unit of ``cutoff``).
        species : torch.Tensor
            ``[N]`` indices into ``elements``.
        batch : torch.Tensor, optional
            ``[N]`` sorted molecule of each atom; one molecule by default.
        charge : torch.Tensor, optional
            ``[num_molecules]`` total charges (neutral by default): each molecule holds
            :math:`\sum Z - \mathrm{charge}` electrons.

        Returns
        -------
        torch.Tensor
            ``[n_coefficients]``; :meth:`split` cuts it per molecule.
        """
        species = species.long()
        features = self.backbone(pos, species, batch)
        padded = self.references.to(features.dtype).index_select(0, species)
        for k, head in enumerate(self.heads):
            atoms = torch.nonzero(species == k).squeeze(-1)
            if atoms.numel() == 0:
                continue
            dim = self.atom_irreps[k].dim
            learned = self.output_scale * head(features.index_select(0, atoms))
            columns = torch.arange(dim, device=species.device)
            padded = padded.index_put((atoms[:, None], columns[None, :]),
                                      padded[atoms, :dim] + learned)
        c = padded[self._mask(species)]
        if not self.conserve:
            return c
        if batch is None:
            batch = torch.zeros_like(species)
        batch = batch.long()
        num_molecules = int(batch.max()) + 1 if batch.numel() else 0
        electrons = pos.new_zeros(num_molecules).index_add(
            0, batch, self.atomic_numbers.index_select(0, species).to(pos.dtype))
        if charge is not None:
            electrons = electrons - torch.as_tensor(charge, dtype=pos.dtype, device=pos.device)
        return conserve_charge(c, self.coefficient_integrals(species).to(c.dtype), electrons,
                               self.coefficient_index(species, batch), num_molecules)
