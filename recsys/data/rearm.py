"""REARM / MMRec ``.npy`` split folders.

Layout (the public REARM code release and ``../shared/data/amazon/*``)::

    train.npy valid.npy test.npy   int64 (2, N): row 0 user index, row 1 item index
    <modality>_feat.npy            optional float32 (n_items, D), row = item index
    item_ids.tsv                   optional ``asin<TAB>itemID``: raw id of each item index
    user_ids.tsv                   optional ``user<TAB>userID``: raw id of each user index

``n_users``/``n_items`` are max id + 1 over all splits, as in REARM, unless an id list is
present: then its length (and every id must lie below it). Without an id list, ids far from
dense (a range over 10× the distinct ids + 1,000) are rejected as raw or corrupt ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data.dataset import SPLITS, Dataset
from recsys.data.tsv import check_writable_ids, read_id_map, write_tsv
from recsys.data.validate import (check_pairs, check_range, clean_splits, load_features, load_npy,
                                  size_from_ids)
from recsys.io import atomic_path

ITEM_IDS = "item_ids.tsv"
USER_IDS = "user_ids.tsv"


def _locator(path: Path):
    return lambda column: f"{path} column {column}"


def _size(raw: dict[str, np.ndarray], paths: dict[str, Path], row: int, ids: np.ndarray | None) -> int:
    """The id list's length, else max id + 1 over all splits (dense ids, see ``size_from_ids``)."""
    if ids is not None:
        return int(ids.size)
    splits = list(raw)
    values = np.concatenate([raw[s][row] for s in splits])
    ends = np.cumsum([raw[s].shape[1] for s in splits])

    def locate(position: int) -> str:
        index = int(np.searchsorted(ends, position, side="right"))
        start = int(ends[index - 1]) if index else 0
        return f"{paths[splits[index]]} column {position - start}"

    kind, id_list = ("user", USER_IDS) if row == 0 else ("item", ITEM_IDS)
    return size_from_ids(values, kind, locate, id_list)


def read_rearm(folder: str | Path, modalities: list[str] | None = None, name: str | None = None) -> Dataset:
    """Read a REARM split folder (see the module docstring) into a :class:`Dataset`."""
    folder = Path(folder)
    paths = {s: folder / f"{s}.npy" for s in SPLITS}
    raw = {s: check_pairs(load_npy(p, "REARM split folders need train.npy, valid.npy and test.npy"), p)
           for s, p in paths.items()}
    item_ids = read_id_map(folder / ITEM_IDS, "itemID") if (folder / ITEM_IDS).is_file() else None
    user_ids = read_id_map(folder / USER_IDS, "userID") if (folder / USER_IDS).is_file() else None
    n_users = _size(raw, paths, 0, user_ids)
    n_items = _size(raw, paths, 1, item_ids)
    for split, pairs in raw.items():
        check_range(pairs, n_users, n_items, _locator(paths[split]),
                    f"{USER_IDS} lists {n_users} users" if user_ids is not None else "max id + 1",
                    f"{ITEM_IDS} lists {n_items} items" if item_ids is not None else "max id + 1")
    splits = clean_splits(raw, n_users, n_items, {s: _locator(p) for s, p in paths.items()},
                          str(paths["train"]))
    features = load_features(folder, modalities, n_items)
    return Dataset(name or folder.resolve().name, n_users, n_items, splits["train"], splits["valid"],
                   splits["test"], features, user_ids, item_ids)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def write_rearm(ds: Dataset, folder: str | Path) -> None:
    """Write ``ds`` as a REARM split folder, with both id lists (so empty trailing users/items survive)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        save_npy(folder / f"{split}.npy", np.ascontiguousarray(ds.split(split), dtype=np.int64))
    for modality, feat in ds.features.items():
        save_npy(folder / f"{modality}_feat.npy", np.ascontiguousarray(feat, dtype=np.float32))
    check_writable_ids(ds.item_ids, "item")
    check_writable_ids(ds.user_ids, "user")
    write_tsv(folder / ITEM_IDS, {"asin": ds.item_ids, "itemID": np.arange(ds.n_items)})
    write_tsv(folder / USER_IDS, {"user": ds.user_ids, "userID": np.arange(ds.n_users)})
