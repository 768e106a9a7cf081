"""Reference models built only from :mod:`equinet.nn`, :mod:`equinet.tp`, :mod:`equinet.o3`
and :mod:`equinet.graph` (used by the examples)."""
from .points_network import PointsNetwork

__all__ = ["PointsNetwork"]
