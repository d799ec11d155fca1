"""On-disk cache of built graphs, keyed by dataset fingerprint, builder name and parameters.

An entry is ``<cache_dir>/<fingerprint>/<builder>-<hash>.pt`` where the hash is a SHA-256 of
the builder name and its parameters as canonical JSON, so equal parameters always map to the
same file. Entries are written atomically with :func:`recsys.io.torch_save` (temporary file
in the same folder, then ``os.replace``). An entry that cannot be read, or that holds another
builder's graph or other parameters, is rebuilt and rewritten with a warning, never fatal.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch

from recsys.io import torch_save

FORMAT = 1


def parameter_hash(builder: str, params: dict) -> str:
    """Stable short hash of a builder name and its JSON-serialisable parameters."""
    text = json.dumps({"builder": builder, "params": params, "format": FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pack(graph: torch.Tensor, builder: str, params: dict) -> dict:
    entry = {"format": FORMAT, "builder": builder, "params": json.dumps(params, sort_keys=True),
             "shape": list(graph.shape)}
    if graph.layout == torch.sparse_csr:
        entry.update(layout="csr", crow=graph.crow_indices().cpu(), col=graph.col_indices().cpu(),
                     values=graph.values().cpu())
    elif graph.layout == torch.strided:
        entry.update(layout="dense", values=graph.cpu())
    else:
        raise TypeError(f"cannot cache a graph with layout {graph.layout}; build sparse CSR or dense tensors")
    return entry


def _unpack(entry: dict, builder: str, params: dict, device: torch.device) -> torch.Tensor:
    if entry.get("format") != FORMAT or entry.get("builder") != builder \
            or entry.get("params") != json.dumps(params, sort_keys=True):
        raise ValueError("entry holds a different builder, parameters or format")
    shape = tuple(int(s) for s in entry["shape"])
    if entry["layout"] == "dense":
        values = entry["values"]
        if tuple(values.shape) != shape:
            raise ValueError(f"dense entry has shape {tuple(values.shape)}, expected {shape}")
        return values.to(device)
    graph = torch.sparse_csr_tensor(entry["crow"], entry["col"], entry["values"], shape, check_invariants=True)
    return graph.to(device)


class GraphCache:
    """Graphs of one dataset (identified by ``fingerprint``) under ``directory``."""

    def __init__(self, directory: str | os.PathLike, fingerprint: str) -> None:
        self.folder = Path(directory) / fingerprint

    def path(self, builder: str, params: dict) -> Path:
        return self.folder / f"{builder}-{parameter_hash(builder, params)}.pt"

    def load_or_build(self, builder: str, params: dict, build: Callable[[], torch.Tensor],
                      device: torch.device | str) -> torch.Tensor:
        """The cached graph on ``device``, or ``build()`` stored first when absent or unreadable."""
        path = self.path(builder, params)
        if path.exists():
            try:
                return _unpack(torch.load(path, map_location="cpu", weights_only=True), builder, params,
                               torch.device(device))
            except Exception as exc:  # any unreadable entry is rebuilt, never fatal
                warnings.warn(f"graph cache entry {path} is unusable ({type(exc).__name__}: {exc}); "
                              f"rebuilding it", RuntimeWarning, stacklevel=2)
        graph = build()
        torch_save(_pack(graph, builder, params), path)
        return graph
