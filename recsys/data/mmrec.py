"""MMRec layout: one ``<name>.inter`` file with the split in ``x_label``.

Layout (MMRec toolbox, Zhou 2023)::

    <name>.inter        TSV, header userID, itemID, x_label (0 train, 1 valid, 2 test),
                        optional rating, timestamp; ids are 0-based dense indices
    <modality>_feat.npy optional float32 (n_items, D), e.g. image_feat.npy, text_feat.npy
    i_id_mapping.csv    optional ``asin<TAB>itemID`` raw item ids (MMRec's file name)
    u_id_mapping.csv    optional ``user_id<TAB>userID`` raw user ids

Sizes are max id + 1 unless a mapping file gives them (then every id must lie below); ids far
from dense (a range over 10× the distinct ids + 1,000) are rejected as raw or corrupt ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data.dataset import SPLITS, Dataset
from recsys.data.rearm import save_npy
from recsys.data.tsv import check_writable_ids, int_column, line_of, read_id_map, read_tsv, require_columns, write_tsv
from recsys.data.validate import check_range, clean_splits, load_features, size_from_ids
from recsys.errors import DataError

ITEM_MAP = "i_id_mapping.csv"
USER_MAP = "u_id_mapping.csv"
COLUMNS = ["userID", "itemID", "x_label"]


def inter_file(folder: Path, name: str | None, exclude_suffixes: tuple[str, ...] = ()) -> Path:
    """``<name>.inter``, or the folder's only ``.inter`` file when ``name`` is None."""
    if name is not None:
        return folder / f"{name}.inter"
    found = [p for p in sorted(folder.glob("*.inter")) if not p.name.endswith(exclude_suffixes)]
    if len(found) != 1:
        raise DataError(f"{folder} holds {len(found)} .inter files ({[p.name for p in found]}); "
                        f"set dataset.name (the file stem) to choose one")
    return found[0]


def read_mmrec(folder: str | Path, name: str | None = None, modalities: list[str] | None = None) -> Dataset:
    """Read an MMRec folder (see the module docstring) into a :class:`Dataset`."""
    folder = Path(folder)
    path = inter_file(folder, name)
    frame = read_tsv(path, "MMRec interaction file with columns userID, itemID, x_label")
    require_columns(frame, COLUMNS, path)
    users, items, labels = (int_column(frame, c, path) for c in COLUMNS)
    for column, values in (("userID", users), ("itemID", items)):
        bad = np.flatnonzero(values < 0)
        if bad.size:
            raise DataError(f"file {path} line {line_of(int(bad[0]))}, column '{column}': id {values[bad[0]]} "
                            f"is negative; ids must be 0-based dense indices")
    bad = np.flatnonzero((labels < 0) | (labels > 2))
    if bad.size:
        raise DataError(f"file {path} line {line_of(int(bad[0]))}, column 'x_label': value {labels[bad[0]]} "
                        f"is not 0 (train), 1 (valid) or 2 (test)")
    item_ids = read_id_map(folder / ITEM_MAP, "itemID") if (folder / ITEM_MAP).is_file() else None
    user_ids = read_id_map(folder / USER_MAP, "userID") if (folder / USER_MAP).is_file() else None

    def at_line(row: int) -> str:
        return f"file {path} line {line_of(row)}"

    n_users = int(user_ids.size) if user_ids is not None else size_from_ids(users, "user", at_line, USER_MAP)
    n_items = int(item_ids.size) if item_ids is not None else size_from_ids(items, "item", at_line, ITEM_MAP)
    check_range(np.stack([users, items]), n_users, n_items, at_line,
                f"{USER_MAP} lists {n_users} users" if user_ids is not None else "max id + 1",
                f"{ITEM_MAP} lists {n_items} items" if item_ids is not None else "max id + 1")
    rows = {s: np.flatnonzero(labels == k) for k, s in enumerate(SPLITS)}
    raw = {s: np.stack([users[r], items[r]]) for s, r in rows.items()}
    locate = {s: (lambda i, r=r: f"file {path} line {line_of(int(r[i]))}") for s, r in rows.items()}
    splits = clean_splits(raw, n_users, n_items, locate, f"file {path} (x_label 0)")
    features = load_features(folder, modalities, n_items)
    return Dataset(name or path.stem, n_users, n_items, splits["train"], splits["valid"], splits["test"],
                   features, user_ids, item_ids)


def write_mmrec(ds: Dataset, folder: str | Path, name: str) -> None:
    """Write ``ds`` as ``<name>.inter`` (train, valid, test rows in order), features and id maps."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_writable_ids(ds.item_ids, "item")
    check_writable_ids(ds.user_ids, "user")
    pairs = np.concatenate([ds.split(s) for s in SPLITS], axis=1)
    labels = np.concatenate([np.full(ds.split(s).shape[1], k) for k, s in enumerate(SPLITS)])
    write_tsv(folder / f"{name}.inter", {"userID": pairs[0], "itemID": pairs[1], "x_label": labels})
    for modality, feat in ds.features.items():
        save_npy(folder / f"{modality}_feat.npy", np.ascontiguousarray(feat, dtype=np.float32))
    write_tsv(folder / ITEM_MAP, {"asin": ds.item_ids, "itemID": np.arange(ds.n_items)})
    write_tsv(folder / USER_MAP, {"user_id": ds.user_ids, "userID": np.arange(ds.n_users)})
