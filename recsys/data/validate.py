"""Checks shared by every reader: files, arrays, id ranges, features, split hygiene.

Every problem is a :class:`~recsys.data.dataset.DataError` whose message names the file, the
row or column, and the fix. Problems a reader can repair without guessing (duplicate
interactions, held-out rows of users without train interactions) are repaired with a
:class:`DataWarning`, as MMRec does.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from recsys.data.dataset import SPLITS
from recsys.errors import DataError

log = logging.getLogger("recsys.data")

Locate = Callable[[int], str]
"""Maps the position of an interaction in its split to a place in the source file."""


class DataWarning(UserWarning):
    """Input data that was repaired while reading (duplicates, users without train rows)."""


def warn(message: str) -> None:
    log.warning(message)
    warnings.warn(message, DataWarning, stacklevel=3)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing file {path}: {what}")
    return path


def load_npy(path: Path, what: str) -> np.ndarray:
    """``np.load`` without pickles; a missing or corrupt file becomes a DataError."""
    require_file(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"file {path} is truncated or not a .npy array ({exc}); "
                        f"re-create it with numpy.save") from exc


def check_pairs(array: np.ndarray, path: Path) -> np.ndarray:
    """A split array: integer dtype, shape (2, N), no negative ids → int64 copy."""
    if array.ndim != 2 or array.shape[0] != 2:
        raise DataError(f"{path} has shape {array.shape}; expected (2, N) with row 0 user ids and "
                        f"row 1 item ids (transpose an (N, 2) array with arr.T)")
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{path} has dtype {array.dtype}; expected int64 ids "
                        f"(convert with arr.astype(np.int64) if the values are whole numbers)")
    pairs = array.astype(np.int64)
    for row, kind in enumerate(("user", "item")):
        bad = np.flatnonzero(pairs[row] < 0)
        if bad.size:
            raise DataError(f"{path} row {row} ({kind} ids), column {bad[0]}: {kind} id "
                            f"{pairs[row, bad[0]]} is negative; ids must be 0-based dense indices")
    return pairs


def check_range(pairs: np.ndarray, n_users: int, n_items: int, locate: Locate,
                users_from: str, items_from: str) -> None:
    """Every id below the number of users/items (which ``users_from``/``items_from`` explain)."""
    for row, kind, limit, source in ((0, "user", n_users, users_from), (1, "item", n_items, items_from)):
        bad = np.flatnonzero((pairs[row] < 0) | (pairs[row] >= limit))
        if bad.size:
            raise DataError(f"{locate(int(bad[0]))}: {kind} id {pairs[row, bad[0]]} is out of range "
                            f"[0, {limit}) ({source}); fix the id or the id list")


SPARSE_IDS_FACTOR = 10     # id range allowed per distinct id when sizes come from max id + 1
SPARSE_IDS_SLACK = 1000


def size_from_ids(ids: np.ndarray, kind: str, locate: Locate, id_list: str) -> int:
    """max id + 1, the number of ``kind``s when 0-based dense ids index them.

    Without an id list every index below the largest id gets a row (embeddings, raw-id table),
    so a raw id or a corrupt value (10¹² would mean terabytes) must not be taken as a size:
    when the range exceeds ``SPARSE_IDS_FACTOR`` × the number of distinct ids +
    ``SPARSE_IDS_SLACK``, this raises a DataError naming the place of the largest id.
    """
    if ids.size == 0:
        return 0
    top = int(ids.max())
    distinct = int(np.unique(ids).size)
    if top + 1 > SPARSE_IDS_FACTOR * distinct + SPARSE_IDS_SLACK:
        raise DataError(f"{locate(int(ids.argmax()))}: {kind} id {top} is far beyond the {distinct} distinct "
                        f"{kind} ids, so they are not 0-based dense indices; renumber the {kind}s 0..{distinct - 1}, "
                        f"or give the id list {id_list} (or use the recbole format, which maps raw ids)")
    return top + 1


def check_features(feat: np.ndarray, n_items: int, path: Path) -> np.ndarray:
    """One modality: 2-D float array, one finite row per item → float32."""
    if feat.ndim != 2:
        raise DataError(f"{path} has shape {feat.shape}; expected (n_items, dim) = ({n_items}, dim)")
    if not np.issubdtype(feat.dtype, np.floating) and not np.issubdtype(feat.dtype, np.integer):
        raise DataError(f"{path} has dtype {feat.dtype}; expected float32 features")
    if feat.shape[0] != n_items:
        raise DataError(f"{path} has {feat.shape[0]} rows but the dataset has {n_items} items; "
                        f"row i must hold the features of item index i")
    feat = np.ascontiguousarray(feat, dtype=np.float32)
    finite = np.isfinite(feat)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataError(f"{path} row {row}, column {col}: value {feat[row, col]} is not finite "
                        f"(NaN or inf); replace it (e.g. with 0 or the column mean)")
    return feat


def feature_files(folder: Path) -> dict[str, Path]:
    """``<modality>_feat.npy`` files of a folder, by modality name."""
    return {p.name[: -len("_feat.npy")]: p for p in sorted(folder.glob("*_feat.npy"))}


def load_features(folder: Path, modalities: list[str] | None, n_items: int) -> dict[str, np.ndarray]:
    """Read ``<modality>_feat.npy`` for the requested modalities (``None``: all found)."""
    found = feature_files(folder)
    names = sorted(found) if modalities is None else list(modalities)
    out = {}
    for name in names:
        path = folder / f"{name}_feat.npy"
        if name not in found:
            raise DataError(f"missing file {path}: modality '{name}' was requested in dataset.modalities; "
                            f"available: {sorted(found) or 'none'} (remove it from dataset.modalities "
                            f"or add the file)")
        out[name] = check_features(load_npy(path, "feature file"), n_items, path)
    return out


def _first_occurrences(pairs: np.ndarray, n_items: int) -> np.ndarray:
    keys = pairs[0] * n_items + pairs[1]
    _, first = np.unique(keys, return_index=True)
    return np.sort(first)


def clean_splits(splits: dict[str, np.ndarray], n_users: int, n_items: int,
                 locate: dict[str, Locate], train_source: str) -> dict[str, np.ndarray]:
    """Remove duplicates, held-out copies of train pairs and rows of users without train data.

    Each repair keeps the first occurrence and the original order, and warns with the place
    of the first affected row.
    """
    out = {}
    for name in SPLITS:
        pairs = splits[name]
        keep = _first_occurrences(pairs, n_items)
        if keep.size < pairs.shape[1]:
            dropped = np.setdiff1d(np.arange(pairs.shape[1]), keep)
            first = int(dropped[0])
            warn(f"{locate[name](first)}: {dropped.size} duplicate {name} interaction(s) removed "
                 f"(first: user {pairs[0, first]}, item {pairs[1, first]}); deduplicate the file "
                 f"to silence this warning")
            pairs = pairs[:, keep]
            positions = keep
        else:
            positions = np.arange(pairs.shape[1])
        out[name] = (pairs, positions)
    train = out["train"][0]
    if train.shape[1] == 0:
        raise DataError(f"{train_source}: the train split is empty; a dataset needs train interactions")
    train_keys = np.sort(train[0] * n_items + train[1])
    has_train = np.bincount(train[0], minlength=n_users) > 0
    result = {"train": train}
    for name in ("valid", "test"):
        pairs, positions = out[name]
        keys = pairs[0] * n_items + pairs[1]
        idx = np.searchsorted(train_keys, keys).clip(max=train_keys.size - 1)
        in_train = train_keys[idx] == keys
        if in_train.any():
            first = int(np.flatnonzero(in_train)[0])
            warn(f"{locate[name](int(positions[first]))}: {int(in_train.sum())} {name} interaction(s) "
                 f"also in train removed (first: user {pairs[0, first]}, item {pairs[1, first]}); "
                 f"a held-out item must not be a train item")
        cold = ~has_train[pairs[0]]
        if cold.any():
            first = int(np.flatnonzero(cold)[0])
            n_cold_users = np.unique(pairs[0, cold]).size
            warn(f"{locate[name](int(positions[first]))}: {int(cold.sum())} {name} interaction(s) of "
                 f"{n_cold_users} user(s) without train interactions removed (first: user {pairs[0, first]}); "
                 f"such users cannot be ranked (give them train interactions to keep them)")
        result[name] = pairs[:, ~(in_train | cold)]
    return result
