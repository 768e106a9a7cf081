"""Datasets: QM9 (qm9pack's CSV files or the raw xyz format), PySCF label generation,
geometry samplers, and Dataset classes that collate into :class:`equinet.graph.Batch`."""
from .qm9 import ATOMREF, HARTREE_EV, PROPERTIES, QM9, UNITS
from .qm9_polar import polarizability_invariants
from .generate import FolderMismatch, GenerationReport, generate
from .samplers import Geometry, NormalModes, normal_mode_samples, water_clusters
from .shards import ShardDataset

__all__ = [
    "QM9", "PROPERTIES", "UNITS", "HARTREE_EV", "ATOMREF", "polarizability_invariants",
    "generate", "GenerationReport", "FolderMismatch", "ShardDataset",
    "Geometry", "NormalModes", "normal_mode_samples", "water_clusters",
]
