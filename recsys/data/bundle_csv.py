"""Reader of the BundleRec CSV layout (Sun et al., 2022; ``../shared/data/bundles/clothing``).

Files (header line first; ids are integers, item ids sparse):

- ``bundle_item.csv`` (bundle ID, item ID), ``user_bundle.csv`` (user ID, bundle ID, timestamp),
  ``user_item.csv`` (user ID, item ID, timestamp);
- ``item_titles.csv`` (item ID, titles), ``item_categories.csv`` (item ID, categories);
- ``text_feat.npy`` (n, D) with ``text_feat_item_ids.npy`` (n,): the item ID of each row.

Items are the distinct item IDs of ``bundle_item.csv`` and ``user_item.csv`` in ascending
order, bundles the distinct bundle IDs in ascending order, users those of ``user_bundle.csv``
and ``user_item.csv``. Bundles are split with :func:`recsys.data.bundles.split_bundles`.

Modalities: ``text`` (the precomputed sentence embeddings) and ``category``, a multi-hot over
category path prefixes (``Clothing, Shoes & Jewelry > Women > Shoes``) shared by at least
:data:`CATEGORY_MIN_ITEMS` items and not by every item.

User-item feedback: in this data ``user_item.csv`` is exactly the union of the items of each
user's bundles, so keeping it whole would reveal every held-out ground-truth item to the
user-item graph through the bundle's owner. The pairs (owner of held-out bundle b, item of
b's ground truth) are therefore removed unless the owner also has that item in a train
bundle or a held-out input; every other user-item pair is kept.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.bundles import HELD_OUT, BundleDataset, split_bundles
from recsys.data.validate import check_features, load_npy, require_file
from recsys.errors import DataError

CATEGORY_MIN_ITEMS = 10
MODALITIES = ("text", "category")
_PATH_SEPARATOR = re.compile(r",(?! )")


def _read_csv(path: Path, columns: list[str], what: str) -> pd.DataFrame:
    require_file(path, what)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes the leading column(s) as the index when line 2 has more fields than the header
        raise DataError(f"{path} line 2 has more comma-separated fields than the header's {len(frame.columns)}; "
                        f"every line needs the header's number of fields")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; its header is {list(frame.columns)} "
                        f"(expected {columns})")
    return frame


def _int_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = np.flatnonzero((values.isna() | (values != values.round())).to_numpy())
    if bad.size:
        raise DataError(f"{path} line {bad[0] + 2}, column '{column}': '{frame[column].iloc[bad[0]]}' is not an "
                        f"integer id; fix or remove the row")
    return values.to_numpy(dtype=np.int64)


def parse_category_paths(text: str) -> list[list[str]]:
    """``[[A, B,C],[A, B,D]]`` → ``[["A, B", "C"], ["A, B", "D"]]``.

    Paths are bracketed and comma-separated; inside a path levels are separated by a comma
    *not* followed by a space (level names such as ``Clothing, Shoes & Jewelry`` contain ", ").
    """
    body = text.strip()
    if not (body.startswith("[[") and body.endswith("]]")):
        raise ValueError(f"category list {text[:60]!r} is not of the form [[level,level],[...]]")
    return [[level.strip() for level in _PATH_SEPARATOR.split(path) if level.strip()]
            for path in body[2:-2].split("],[")]


def category_multi_hot(paths_per_item: list[list[list[str]]], min_items: int = CATEGORY_MIN_ITEMS) -> np.ndarray:
    """Float32 (n_items, C) multi-hot of category path prefixes kept as the module docstring says."""
    prefixes = [{" > ".join(path[:depth]) for path in paths for depth in range(1, len(path) + 1)}
                for paths in paths_per_item]
    counts: dict[str, int] = {}
    for tokens in prefixes:
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    n_items = len(paths_per_item)
    vocab = sorted(t for t, c in counts.items() if min_items <= c < n_items)
    column = {t: j for j, t in enumerate(vocab)}
    out = np.zeros((n_items, len(vocab)), dtype=np.float32)
    for row, tokens in enumerate(prefixes):
        out[row, [column[t] for t in tokens if t in column]] = 1.0
    return out


def _item_table(path: Path, column: str, item_raw: np.ndarray, what: str) -> list[str]:
    """The ``column`` value of each item (in ``item_raw`` order); every item must have a row."""
    frame = _read_csv(path, ["item ID", column], what)
    ids = _int_column(frame, "item ID", path)
    values = dict(zip(ids.tolist(), frame[column].tolist()))
    missing = [int(i) for i in item_raw if int(i) not in values]
    if missing:
        raise DataError(f"{path} has no row for item ID {missing[0]} ({len(missing)} items missing); "
                        f"add a row for every item of bundle_item.csv and user_item.csv")
    return [values[int(i)] for i in item_raw]


def _text_features(folder: Path, item_raw: np.ndarray) -> np.ndarray:
    feat_path, ids_path = folder / "text_feat.npy", folder / "text_feat_item_ids.npy"
    feat = load_npy(feat_path, "text embeddings of the items (recsys data encode-text writes it)")
    ids = load_npy(ids_path, "the item ID of each row of text_feat.npy")
    if ids.ndim != 1 or ids.shape[0] != feat.shape[0]:
        raise DataError(f"{ids_path} has shape {ids.shape} but {feat_path} has {feat.shape[0]} rows; "
                        f"it must list one item ID per row")
    row_of = {int(item): row for row, item in enumerate(ids.tolist())}
    missing = [int(i) for i in item_raw if int(i) not in row_of]
    if missing:
        raise DataError(f"{ids_path} lacks item ID {missing[0]} ({len(missing)} items without a text "
                        f"embedding); re-run recsys data encode-text on item_titles.csv")
    return check_features(feat[[row_of[int(i)] for i in item_raw]], item_raw.size, feat_path)


def _category_features(folder: Path, item_raw: np.ndarray) -> np.ndarray:
    path = folder / "item_categories.csv"
    texts = _item_table(path, "categories", item_raw, "category paths of every item")
    parsed = []
    for item, text in zip(item_raw, texts):
        try:
            parsed.append(parse_category_paths(text))
        except ValueError as exc:
            raise DataError(f"{path}, item ID {item}: {exc}; fix the row") from None
    multi_hot = category_multi_hot(parsed)
    if multi_hot.shape[1] == 0:
        raise DataError(f"{path}: no category path is shared by {CATEGORY_MIN_ITEMS} or more items (and not by "
                        f"all), so the category modality is empty; leave 'category' out of dataset.modalities")
    return multi_hot


def _pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users * n_items + items


def _feedback_without_leaks(ui: np.ndarray, owner: np.ndarray, parts: dict[str, np.ndarray],
                            n_items: int) -> np.ndarray:
    """User-item pairs minus (owner, ground-truth item) pairs not explained by observed bundles."""
    def owned(pairs: np.ndarray) -> np.ndarray:
        has_owner = owner[pairs[0]] >= 0
        return _pair_keys(owner[pairs[0][has_owner]], pairs[1][has_owner], n_items)

    hidden = np.concatenate([owned(parts[f"{s}_gt"]) for s in HELD_OUT])
    seen = np.concatenate([owned(parts["train"])] + [owned(parts[f"{s}_input"]) for s in HELD_OUT])
    leaks = np.setdiff1d(hidden, seen)
    keys = np.unique(_pair_keys(ui[0], ui[1], n_items))
    keys = keys[~np.isin(keys, leaks)]
    return np.stack([keys // n_items, keys % n_items])


def read_bundle_csv(folder: str | Path, name: str | None = None, modalities: list[str] | None = None,
                    ratios=(0.8, 0.1, 0.1), seed: int = 2024) -> BundleDataset:
    """Read a BundleRec CSV folder and split its bundles (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"bundle dataset folder {folder} does not exist; fix dataset.path")
    chosen = list(MODALITIES) if modalities is None else list(modalities)
    unknown = [m for m in chosen if m not in MODALITIES]
    if unknown:
        raise DataError(f"dataset.modalities names {unknown}; the BundleRec layout provides {list(MODALITIES)}")
    bi_path, ub_path, ui_path = folder / "bundle_item.csv", folder / "user_bundle.csv", folder / "user_item.csv"
    bi = _read_csv(bi_path, ["bundle ID", "item ID"], "bundle-item pairs")
    ub = _read_csv(ub_path, ["user ID", "bundle ID"], "the user who made each bundle")
    ui = _read_csv(ui_path, ["user ID", "item ID"], "user-item interactions")
    bi_bundle, bi_item = _int_column(bi, "bundle ID", bi_path), _int_column(bi, "item ID", bi_path)
    ub_user, ub_bundle = _int_column(ub, "user ID", ub_path), _int_column(ub, "bundle ID", ub_path)
    ui_user, ui_item = _int_column(ui, "user ID", ui_path), _int_column(ui, "item ID", ui_path)

    item_raw = np.unique(np.concatenate([bi_item, ui_item]))
    bundle_raw = np.unique(bi_bundle)
    user_raw = np.unique(np.concatenate([ub_user, ui_user]))
    n_items, n_bundles, n_users = item_raw.size, bundle_raw.size, user_raw.size
    bundle_pairs = np.unique(np.stack([np.searchsorted(bundle_raw, bi_bundle),
                                       np.searchsorted(item_raw, bi_item)]), axis=1)
    parts = split_bundles(bundle_pairs, n_bundles, ratios, seed)

    owner = np.full(n_bundles, -1, dtype=np.int64)
    known = np.isin(ub_bundle, bundle_raw)
    owner[np.searchsorted(bundle_raw, ub_bundle[known])] = np.searchsorted(user_raw, ub_user[known])
    feedback = _feedback_without_leaks(np.stack([np.searchsorted(user_raw, ui_user),
                                                 np.searchsorted(item_raw, ui_item)]), owner, parts, n_items)

    features = {}
    if "text" in chosen:
        features["text"] = _text_features(folder, item_raw)
    if "category" in chosen:
        features["category"] = _category_features(folder, item_raw)
    titles_path = folder / "item_titles.csv"
    titles = (np.array(_item_table(titles_path, "titles", item_raw, "item titles"), dtype=object)
              if titles_path.is_file() else None)
    empty = np.zeros((2, 0), dtype=np.int64)
    return BundleDataset(
        name=name or folder.name, n_users=n_users, n_items=n_items, train=feedback, valid=empty, test=empty,
        features=features, user_ids=user_raw.astype(str), item_ids=item_raw.astype(str),
        n_bundles=n_bundles, bundle_pairs=parts, bundle_ids=bundle_raw.astype(str), item_titles=titles,
    )
