r"""A network for the 12 QM9 targets: equivariant convolutions, then target-aware heads.

:class:`QM9Network` is the QM9 example's model. Its backbone is a
:class:`~equinet.models.PointsNetwork` (NequIP-style gated convolutions) that outputs a
few per-atom scalars (and a ``1o`` vector when ``lmax >= 1``); one head per target
(:mod:`equinet.models.heads`) turns them into a molecular property:

* ``lmax = 0`` is the L0Net idea of Miller et al. (arXiv:2008.08461): only interatomic
  distances, every feature a scalar;
* ``lmax = 1`` is L1Net: features and edge harmonics up to vectors;
* ``lmax >= 2`` goes beyond the paper (NequIP's usual setting).

Hidden features keep the proper parity only (``0e, 1o, 2e, ...``: ``parity=False`` of the
backbone), which suffices for invariant targets and the dipole vector.

Positions are in Angstrom, species are atomic numbers (H, C, N, O, F), and each target is
predicted in the unit of the data files (:data:`equinet.data.qm9.UNITS`).
"""
from typing import Dict, Optional, Sequence

import torch

from ..o3 import Irreps
from .heads import TARGET_HEADS, make_head
from .points_network import PointsNetwork

__all__ = ["QM9Network", "QM9_ELEMENTS"]

#: Atomic numbers of QM9's elements, in the order of the backbone's one-hot species.
QM9_ELEMENTS = (1, 6, 7, 8, 9)


class QM9Network(torch.nn.Module):
    r"""Equivariant network predicting QM9 targets from positions and atomic numbers.

    Parameters
    ----------
    targets : str or sequence of str
        QM9 property names (``"U0"``, ``"mu"``, ...; :data:`~equinet.models.heads.TARGET_HEADS`).
        Several targets share the backbone.
    lmax : int
        Largest degree of the hidden features and edge harmonics (0: L0Net, 1: L1Net).
    mul : int
        Channels per hidden irrep.
    num_layers : int
        Gated convolutions.
    cutoff : float
        Graph radius in Angstrom.
    num_radial : int
        Size of the radial Bessel basis.
    radial_hidden : sequence of int
        Hidden widths of the radial networks.
    avg_num_neighbors : float
        Normalisation of the neighbour sums (QM9 at 5 Angstrom: about 15).
    backend : str
        Tensor-product backend.

    Attributes
    ----------
    config : dict
        The constructor's arguments (plain types), to rebuild the model from a checkpoint:
        ``QM9Network(**net.config)``.

    Examples
    --------
    >>> net = QM9Network(["U0", "mu"], lmax=1, mul=4, num_layers=1)
    >>> pos, z = torch.randn(4, 3), torch.tensor([6, 1, 1, 8])
    >>> out = net(pos, z)
    >>> sorted(out), out["U0"].shape
    (['U0', 'mu'], torch.Size([1]))
    """

    def __init__(self, targets, lmax: int = 1, mul: int = 32, num_layers: int = 3,
                 cutoff: float = 5.0, num_radial: int = 8, radial_hidden: Sequence[int] = (64,),
                 avg_num_neighbors: float = 15.0, backend: str = "auto") -> None:
        super().__init__()
        targets = [targets] if isinstance(targets, str) else list(targets)
        if not targets:
            raise ValueError("give at least one target")
        unknown = [t for t in targets if t not in TARGET_HEADS]
        if unknown:
            raise ValueError(f"unknown QM9 target(s) {unknown}; known: "
                             f"{', '.join(TARGET_HEADS)}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"targets repeat: {targets}")
        self.config = dict(targets=targets, lmax=lmax, mul=mul, num_layers=num_layers,
                           cutoff=float(cutoff), num_radial=num_radial,
                           radial_hidden=list(radial_hidden),
                           avg_num_neighbors=float(avg_num_neighbors), backend=backend)
        self.targets = targets
        self.heads = torch.nn.ModuleDict({t: make_head(t, vectors=lmax >= 1) for t in targets})
        irreps_out = Irreps([])
        self._slices = {}
        for t, head in self.heads.items():
            self._slices[t] = (irreps_out.dim, irreps_out.dim + head.irreps_in.dim)
            irreps_out = irreps_out + head.irreps_in
        self.irreps_out = irreps_out
        self.backbone = PointsNetwork(irreps_out, num_species=len(QM9_ELEMENTS), lmax=lmax,
                                      cutoff=cutoff, num_layers=num_layers, mul=mul,
                                      num_radial=num_radial, radial_hidden=radial_hidden,
                                      avg_num_neighbors=avg_num_neighbors, pool=None,
                                      parity=False, backend=backend)
        species = torch.full((max(QM9_ELEMENTS) + 1,), -1, dtype=torch.long)
        species[list(QM9_ELEMENTS)] = torch.arange(len(QM9_ELEMENTS))
        self.register_buffer("species_of_z", species, persistent=False)

    def atomic_outputs(self, pos: torch.Tensor, z: torch.Tensor,
                       batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The backbone's per-atom outputs ``[N, irreps_out.dim]``."""
        if not isinstance(z, torch.Tensor) or z.is_floating_point():
            raise ValueError("z must be an integer tensor of atomic numbers")
        bad = (z < 0) | (z >= len(self.species_of_z))
        species = self.species_of_z[z.clamp(0, len(self.species_of_z) - 1)]
        if bool((bad | (species < 0)).any()):
            raise ValueError(f"atomic numbers must be among {QM9_ELEMENTS} (H, C, N, O, F), "
                             f"got {sorted(set(z.tolist()) - set(QM9_ELEMENTS))}")
        return self.backbone(pos, species, batch)

    def forward(self, pos: torch.Tensor, z: torch.Tensor, batch: Optional[torch.Tensor] = None,
                num_graphs: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """Predict every target.

        Parameters
        ----------
        pos : torch.Tensor
            ``[N, 3]`` positions (Angstrom).
        z : torch.Tensor
            ``[N]`` atomic numbers.
        batch : torch.Tensor, optional
            ``[N]`` sorted molecule index of each atom (one molecule by default).
        num_graphs : int, optional
            Number of molecules (default ``batch[-1] + 1``).

        Returns
        -------
        dict of str to torch.Tensor
            ``[num_graphs]`` per target, in the unit of the data.
        """
        x = self.atomic_outputs(pos, z, batch)
        if batch is None:
            batch = z.new_zeros(z.shape[0])
            num_graphs = 1
        elif num_graphs is None:
            num_graphs = int(batch[-1]) + 1 if batch.numel() else 0
        batch = batch.long()
        return {t: head(x[:, slice(*self._slices[t])], pos, z, batch, num_graphs)
                for t, head in self.heads.items()}

    def dipole_vector(self, pos, z, batch=None, num_graphs=None) -> torch.Tensor:
        """The predicted dipole vector ``[num_graphs, 3]`` (Debye) of a model with ``mu``."""
        if "mu" not in self.heads:
            raise ValueError("this model does not predict mu")
        x = self.atomic_outputs(pos, z, batch)
        if batch is None:
            batch, num_graphs = z.new_zeros(z.shape[0]), 1
        elif num_graphs is None:
            num_graphs = int(batch[-1]) + 1
        return self.heads["mu"].vector(x[:, slice(*self._slices["mu"])], pos, z, batch.long(),
                                       num_graphs)
