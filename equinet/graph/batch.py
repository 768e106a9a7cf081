r"""Batching several point clouds (molecules, crystals) into one set of flat tensors.

Graphs are concatenated node-wise: graph ``g`` owns the rows ``ptr[g]:ptr[g+1]`` of
every per-node tensor, and ``batch[i]`` is the graph of node ``i``. Per-graph
values are stacked along a new leading dimension of size ``num_graphs``.
"""
import dataclasses
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import torch

__all__ = ["Batch", "collate", "NODE_KEYS", "GRAPH_KEYS"]

#: Keys :func:`collate` treats as per-node (concatenated) without being told.
NODE_KEYS = frozenset({"pos", "species", "forces", "node_features", "node_attrs"})
#: Keys :func:`collate` treats as per-graph (stacked) without being told.
GRAPH_KEYS = frozenset({"cell", "pbc", "energy", "stress", "virial", "dipole", "charge"})


@dataclasses.dataclass
class Batch:
    r"""A batch of graphs as flat tensors.

    Attributes
    ----------
    pos : torch.Tensor
        Positions ``[N, 3]`` of all nodes.
    species : torch.Tensor or None
        Integer species (e.g. atomic numbers or type indices) ``[N]``.
    batch : torch.Tensor
        Graph index of each node ``[N]``, sorted.
    ptr : torch.Tensor
        CSR pointers ``[num_graphs + 1]``: graph ``g`` is nodes ``ptr[g]:ptr[g+1]``.
    num_graphs : int
        Number of graphs ``B``.
    node_fields : dict of str to torch.Tensor
        Extra per-node tensors, each ``[N, ...]``.
    graph_fields : dict of str to torch.Tensor
        Extra per-graph tensors, each ``[B, ...]`` (e.g. ``cell`` ``[B, 3, 3]``), or
        lists of ``B`` tensors for the ``list_keys`` of :func:`collate`.

    Extra fields are also reachable as attributes and items: ``b.energy``, ``b["energy"]``.

    Examples
    --------
    >>> b = collate([{"pos": torch.zeros(2, 3), "energy": 1.0},
    ...              {"pos": torch.ones(1, 3), "energy": 2.0}])
    >>> b.num_graphs, b.batch.tolist(), b.ptr.tolist(), b.energy.tolist()
    (2, [0, 0, 1], [0, 2, 3], [1.0, 2.0])
    """

    pos: torch.Tensor
    species: Optional[torch.Tensor]
    batch: torch.Tensor
    ptr: torch.Tensor
    num_graphs: int
    node_fields: Dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    graph_fields: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: fall back to the extra fields.
        fields = self.__dict__
        for group in ("node_fields", "graph_fields"):
            if group in fields and name in fields[group]:
                return fields[group][name]
        raise AttributeError(f"Batch has no field {name!r}")

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def __len__(self) -> int:
        return self.num_graphs

    @property
    def num_nodes(self) -> int:
        """Total number of nodes ``N``."""
        return self.pos.shape[0]

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "Batch":
        """Copy to ``device``; floating point tensors are also cast to ``dtype`` when given.

        Integer and boolean tensors (species, batch, ptr, pbc) keep their dtype.
        """
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating point dtype, got {dtype}")

        def move(t):
            if isinstance(t, list):
                return [move(x) for x in t]
            if not isinstance(t, torch.Tensor):
                return t
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Batch(
            pos=move(self.pos), species=move(self.species), batch=move(self.batch),
            ptr=move(self.ptr), num_graphs=self.num_graphs,
            node_fields={k: move(v) for k, v in self.node_fields.items()},
            graph_fields={k: move(v) for k, v in self.graph_fields.items()},
        )


def _as_tensor(value, key: str, index: int) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"graph {index}: field {key!r} of type {type(value).__name__} "
                        "cannot be turned into a tensor") from None


def collate(graphs: Iterable[Mapping[str, Any]], node_keys: Sequence[str] = (),
            graph_keys: Sequence[str] = (), list_keys: Sequence[str] = ()) -> Batch:
    r"""Concatenate graphs given as dicts into one :class:`Batch`.

    Each dict needs ``"pos"`` ``[n_g, 3]``; ``"species"`` ``[n_g]`` is optional (but
    present in all graphs or none). Every other key must be known to be per-node
    (concatenated along dim 0: :data:`NODE_KEYS` plus ``node_keys``) or per-graph
    (stacked along a new dim 0: :data:`GRAPH_KEYS` plus ``graph_keys``); guessing
    from shapes would silently misread e.g. a 3-vector of a 3-atom molecule.

    Parameters
    ----------
    graphs : iterable of dict
        The graphs, all with the same keys.
    node_keys, graph_keys : sequence of str
        Extra per-node and per-graph keys.
    list_keys : sequence of str
        Per-graph keys whose shapes differ between graphs (e.g. AO matrices of
        molecules of different sizes): kept as a list of tensors, one per graph.

    Returns
    -------
    Batch

    Examples
    --------
    >>> b = collate([{"pos": torch.zeros(2, 3), "species": torch.tensor([1, 8]),
    ...               "charges": torch.tensor([0.5, -0.5])},
    ...              {"pos": torch.ones(1, 3), "species": torch.tensor([1]),
    ...               "charges": torch.tensor([0.0])}], node_keys=["charges"])
    >>> b.species.tolist(), b.charges.tolist()
    ([1, 8, 1], [0.5, -0.5, 0.0])
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("collate needs at least one graph")
    node_set, graph_set = NODE_KEYS | set(node_keys), GRAPH_KEYS | set(graph_keys)
    both = set(node_keys) & graph_set | set(graph_keys) & node_set
    if both:
        raise ValueError(f"keys {sorted(both)} are declared both per-node and per-graph")
    both = set(list_keys) & (set(node_keys) | set(graph_keys))
    if both:
        raise ValueError(f"keys {sorted(both)} are declared both in list_keys and in "
                         "node_keys or graph_keys")
    list_set = set(list_keys)
    node_set, graph_set = node_set - list_set, graph_set - list_set
    for i, g in enumerate(graphs):
        if not isinstance(g, Mapping):
            raise TypeError(f"graph {i} must be a dict (Mapping), got {type(g).__name__}")
    keys = set(graphs[0])
    for i, g in enumerate(graphs):
        if set(g) != keys:
            raise ValueError(f"graph {i} has keys {sorted(g)}, graph 0 has {sorted(keys)}")
    if "pos" not in keys:
        raise ValueError("every graph needs a 'pos' entry")
    unknown = keys - node_set - graph_set - list_set
    if unknown:
        raise ValueError(f"keys {sorted(unknown)} are neither per-node nor per-graph: pass "
                         "them in node_keys=..., graph_keys=... or list_keys=...")

    sizes = []
    for i, g in enumerate(graphs):
        pos = _as_tensor(g["pos"], "pos", i)
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"graph {i}: pos must have shape [n, 3], got {tuple(pos.shape)}")
        sizes.append(pos.shape[0])

    node: Dict[str, torch.Tensor] = {}
    graph: Dict[str, Any] = {}
    for key in sorted(keys):
        values = [_as_tensor(g[key], key, i) for i, g in enumerate(graphs)]
        if key in list_set:
            graph[key] = values
        elif key in node_set:
            for i, (v, n) in enumerate(zip(values, sizes)):
                if v.dim() == 0 or v.shape[0] != n:
                    raise ValueError(f"graph {i}: per-node field {key!r} must have {n} rows "
                                     f"(one per node), got shape {tuple(v.shape)}")
            node[key] = torch.cat(values, dim=0)
        else:
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"per-graph field {key!r} has different shapes across "
                                 f"graphs: {sorted(shapes)}")
            graph[key] = torch.stack(values, dim=0)

    device = node["pos"].device
    counts = torch.tensor(sizes, dtype=torch.long, device=device)
    ptr = torch.zeros(len(sizes) + 1, dtype=torch.long, device=device)
    ptr[1:] = torch.cumsum(counts, 0)
    batch = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)
    species = node.pop("species", None)
    if species is not None and (species.is_floating_point() or species.is_complex()):
        raise TypeError(f"species must be integers, got {species.dtype}")
    return Batch(pos=node.pop("pos"), species=species, batch=batch, ptr=ptr,
                 num_graphs=len(sizes), node_fields=node, graph_fields=graph)
