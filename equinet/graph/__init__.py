"""Graphs of point clouds: radius neighbour lists (periodic cells too), batching, scatter sums.

Pure torch: no torch-cluster or torch-scatter needed.
"""
from .batch import GRAPH_KEYS, NODE_KEYS, Batch, collate
from .radius import radius_graph
from .scatter import scatter_max, scatter_mean, scatter_sum, segment_mean, segment_sum

__all__ = [
    "radius_graph",
    "scatter_sum", "scatter_mean", "scatter_max", "segment_sum", "segment_mean",
    "Batch", "collate", "NODE_KEYS", "GRAPH_KEYS",
]
