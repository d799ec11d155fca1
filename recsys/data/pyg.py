"""Export a :class:`~recsys.data.dataset.Dataset` to PyTorch Geometric (optional extra ``pyg``).

``to_hetero_data(dataset)`` returns a ``torch_geometric.data.HeteroData`` with

- node type ``user``: ``num_nodes`` = n_users, ``raw_id`` = the raw user ids (NumPy strings);
- node type ``item``: ``num_nodes`` = n_items, ``raw_id``, and one float32 tensor per feature
  modality under the modality's name (``data["item"].text``, ``data["item"].image``, ...);
- edge type ``("user", "interacts", "item")``: ``edge_index`` = the train interactions (2 × N
  int64, row 0 user indices, row 1 item indices): the graph a model may propagate over;
  ``valid_edge_index`` and ``test_edge_index`` = the held-out interactions, in the same form.

Indices are the dataset's own (dense, 0-based), so results map back through ``raw_id``. Add the
reverse edges with ``torch_geometric.transforms.ToUndirected()`` when a model needs them. A
bundle dataset exports its user-item interactions only. torch_geometric is imported here, on
use, never by ``import recsys`` (it costs more import time than torch itself).
"""
from __future__ import annotations

import numpy as np
import torch

EDGE_TYPE = ("user", "interacts", "item")


def _import_hetero_data():
    try:
        from torch_geometric.data import HeteroData
    except ImportError as exc:
        raise ImportError("exporting to PyTorch Geometric needs the optional 'pyg' extra: "
                          "pip install 'recsys[pyg]' (or pip install torch-geometric)") from exc
    return HeteroData


def to_hetero_data(dataset):
    """``dataset`` as a ``torch_geometric.data.HeteroData`` (see the module docstring)."""
    HeteroData = _import_hetero_data()
    data = HeteroData()
    data["user"].num_nodes = int(dataset.n_users)
    data["user"].raw_id = np.asarray(dataset.user_ids)
    data["item"].num_nodes = int(dataset.n_items)
    data["item"].raw_id = np.asarray(dataset.item_ids)
    for modality, features in sorted(dataset.features.items()):
        data["item"][modality] = torch.as_tensor(np.asarray(features, dtype=np.float32))
    edges = data[EDGE_TYPE]
    edges.edge_index = torch.as_tensor(np.asarray(dataset.train, dtype=np.int64))
    edges.valid_edge_index = torch.as_tensor(np.asarray(dataset.valid, dtype=np.int64))
    edges.test_edge_index = torch.as_tensor(np.asarray(dataset.test, dtype=np.int64))
    return data
