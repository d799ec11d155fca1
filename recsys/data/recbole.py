"""RecBole atomic files (Zhao et al., CIKM 2021): typed TSV headers, raw string tokens.

Files in the folder (``<name>`` = dataset name)::

    <name>.inter   header like ``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float``
    <name>.item    optional, ``item_id:token`` plus ``<modality>_feat:float_seq`` feature columns
                   (space-separated floats; row order fixes the item indices)
    <name>.user    optional, ``user_id:token`` (row order fixes the user indices)

``<name>.inter`` is split per user by :func:`recsys.data.split.split_labels` (seeded ratio
split, random or time order). If RecBole benchmark files ``<name>.train.inter``,
``<name>.valid.inter`` and ``<name>.test.inter`` exist instead, their split is kept as is.
Tokens are mapped to dense indices: first the rows of ``.user``/``.item``, then ids in
order of first appearance in the interaction files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import SPLITS, Dataset
from recsys.data.mmrec import inter_file
from recsys.data.split import split_labels
from recsys.data.tsv import check_writable_ids, float_column, line_of, read_tsv, write_tsv
from recsys.data.validate import check_features, clean_splits, warn
from recsys.errors import DataError

TYPES = ("token", "token_seq", "float", "float_seq")
USER, ITEM, TIME = "user_id", "item_id", "timestamp"
BENCHMARK = tuple(f".{s}.inter" for s in SPLITS)


def read_atomic(path: Path, required: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """A typed atomic file with columns renamed to field names; also field → type."""
    frame = read_tsv(path, f"RecBole atomic file with typed header ({', '.join(f + ':token' for f in required)})")
    types = {}
    for position, column in enumerate(frame.columns):
        field, _, kind = str(column).partition(":")
        if kind not in TYPES:
            raise DataError(f"file {path} line 1, column {position + 1} '{column}': expected 'field:type' "
                            f"with type one of {', '.join(TYPES)} (e.g. user_id:token)")
        types[field] = kind
    frame.columns = list(types)
    missing = [f for f in required if f not in types]
    if missing:
        raise DataError(f"file {path} line 1 (header): missing field(s) {missing}; found {list(types)} "
                        f"(RecBole's default names are user_id:token and item_id:token)")
    return frame, types


class _Vocab:
    """Raw token → dense index, in order of first registration."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def add_unique(self, tokens: np.ndarray, path: Path) -> None:
        for row, token in enumerate(tokens):
            if token in self.index:
                raise DataError(f"file {path} line {line_of(row)}: id '{token}' is listed twice; "
                                f"each id must appear once")
            self.index[token] = len(self.index)

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """Indices of ``tokens``; unseen tokens are registered in order of first appearance."""
        uniques, first, inverse = np.unique(tokens, return_index=True, return_inverse=True)
        for pos in np.argsort(first, kind="stable"):
            self.index.setdefault(str(uniques[pos]), len(self.index))
        codes = np.array([self.index[str(u)] for u in uniques], dtype=np.int64)
        return codes[inverse]

    def tokens(self) -> np.ndarray:
        return np.array(list(self.index), dtype=str)


def _float_seq(frame: pd.DataFrame, field: str, path: Path) -> np.ndarray:
    values = frame[field].to_numpy(dtype=str)
    lengths = np.char.count(np.char.strip(values), " ") + 1
    bad = np.flatnonzero(lengths != lengths[0]) if values.size else []
    if len(bad):
        raise DataError(f"file {path} line {line_of(int(bad[0]))}, column '{field}': {lengths[bad[0]]} values, "
                        f"but line 2 has {lengths[0]}; every row needs the same feature length")
    try:
        flat = np.array(" ".join(values).split(), dtype=np.float64)
    except ValueError:
        for row, text in enumerate(values):
            try:
                np.array(text.split(), dtype=np.float64)
            except ValueError as exc:
                raise DataError(f"file {path} line {line_of(row)}, column '{field}': {exc}; "
                                f"float_seq values are space-separated numbers") from exc
        raise
    return flat.reshape(values.size, -1) if values.size else np.zeros((0, 0))


def _read_items(path: Path, vocab: _Vocab, modalities: list[str] | None) -> dict[str, np.ndarray]:
    frame, types = read_atomic(path, [ITEM])
    vocab.add_unique(frame[ITEM].to_numpy(dtype=str), path)
    found = {f[: -len("_feat")] if f.endswith("_feat") else f: f for f, t in types.items() if t == "float_seq"}
    names = sorted(found) if modalities is None else list(modalities)
    features = {}
    for name in names:
        if name not in found:
            raise DataError(f"file {path}: modality '{name}' was requested in dataset.modalities but there "
                            f"is no '{name}_feat:float_seq' column; available: {sorted(found) or 'none'}")
        features[name] = _float_seq(frame, found[name], path)
    return features


def _dedupe(users: np.ndarray, items: np.ndarray, locate) -> np.ndarray:
    keys = users * (int(items.max(initial=0)) + 1) + items
    _, first = np.unique(keys, return_index=True)
    keep = np.sort(first)
    if keep.size < keys.size:
        row = int(np.setdiff1d(np.arange(keys.size), keep)[0])
        warn(f"{locate(row)}: {keys.size - keep.size} duplicate interaction(s) removed before splitting "
             f"(first: user index {users[row]}, item index {items[row]}); deduplicate the file to silence this")
    return keep


def _stem(folder: Path, name: str | None) -> str:
    if name is not None:
        return name
    benchmark = sorted(folder.glob("*.train.inter"))
    if benchmark and not [p for p in folder.glob("*.inter") if not p.name.endswith(BENCHMARK)]:
        if len(benchmark) != 1:
            raise DataError(f"{folder} holds {len(benchmark)} benchmark sets {[p.name for p in benchmark]}; "
                            f"set dataset.name to choose one")
        return benchmark[0].name[: -len(".train.inter")]
    return inter_file(folder, None, BENCHMARK).stem


def read_recbole(folder: str | Path, name: str | None = None, modalities: list[str] | None = None,
                 split_ratios=(0.8, 0.1, 0.1), split_order: str = "random", split_seed: int = 2024) -> Dataset:
    """Read RecBole atomic files (see the module docstring) into a :class:`Dataset`."""
    folder = Path(folder)
    stem = _stem(folder, name)
    users_vocab, items_vocab = _Vocab(), _Vocab()
    if (folder / f"{stem}.user").is_file():
        user_path = folder / f"{stem}.user"
        users_vocab.add_unique(read_atomic(user_path, [USER])[0][USER].to_numpy(dtype=str), user_path)
    item_path = folder / f"{stem}.item"
    features = _read_items(item_path, items_vocab, modalities) if item_path.is_file() else {}
    if not item_path.is_file() and modalities:
        raise DataError(f"missing file {item_path}: dataset.modalities = {modalities} needs feature columns "
                        f"in {stem}.item")
    n_listed_items = len(items_vocab.index)
    benchmark = [folder / f"{stem}{suffix}" for suffix in BENCHMARK]
    if benchmark[0].is_file():
        parts = [read_atomic(p, [USER, ITEM])[0] for p in benchmark]
        paths = benchmark
    else:
        path = folder / f"{stem}.inter"
        frame, _ = read_atomic(path, [USER, ITEM])
        parts, paths = [frame], [path]
    sizes = [len(p) for p in parts]
    users = users_vocab.encode(np.concatenate([p[USER].to_numpy(dtype=str) for p in parts]))
    items = items_vocab.encode(np.concatenate([p[ITEM].to_numpy(dtype=str) for p in parts]))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if len(parts) == 3:
        rows = {s: np.arange(offsets[k], offsets[k + 1]) for k, s in enumerate(SPLITS)}
        locate = {s: (lambda i, k=k: f"file {paths[k]} line {line_of(int(i))}") for k, s in enumerate(SPLITS)}
    else:
        where = lambda i: f"file {paths[0]} line {line_of(int(i))}"  # noqa: E731
        keep = _dedupe(users, items, where)
        timed = split_order == "time" and TIME in parts[0].columns
        stamps = float_column(parts[0], TIME, paths[0])[keep] if timed else None
        labels = split_labels(users[keep], split_ratios, split_order, split_seed, stamps)
        rows = {s: keep[labels == k] for k, s in enumerate(SPLITS)}
        locate = {s: (lambda i, r=rows[s]: where(r[i])) for s in SPLITS}
    n_users, n_items = len(users_vocab.index), len(items_vocab.index)
    if features and n_items > n_listed_items:
        row = int(np.flatnonzero(items >= n_listed_items)[0])
        k = int(np.searchsorted(offsets, row, side="right") - 1)
        raise DataError(f"file {paths[k]} line {line_of(row - int(offsets[k]))}: item "
                        f"'{items_vocab.tokens()[items[row]]}' has no row in {item_path}; features need "
                        f"every item (add the row or remove the interaction)")
    features = {m: check_features(f, n_items, item_path) for m, f in features.items()}
    raw = {s: np.stack([users[r], items[r]]) for s, r in rows.items()}
    splits = clean_splits(raw, n_users, n_items, locate, f"file {paths[0]}")
    return Dataset(name or stem, n_users, n_items, splits["train"], splits["valid"], splits["test"], features,
                   users_vocab.tokens(), items_vocab.tokens())


def _format_rows(feat: np.ndarray) -> list[str]:
    """Each row as space-separated values with 9 significant digits (exact for float32)."""
    template = " ".join(["%.9g"] * feat.shape[1])
    return [template % tuple(row) for row in feat.tolist()]


def write_recbole(ds: Dataset, folder: str | Path, name: str) -> None:
    """Write ``ds`` as RecBole benchmark files ``<name>.{train,valid,test}.inter`` plus ``.user``
    and ``.item`` (with one ``<modality>_feat:float_seq`` column per modality)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_writable_ids(ds.user_ids, "user")
    check_writable_ids(ds.item_ids, "item")
    user_ids, item_ids = ds.user_ids.astype(str), ds.item_ids.astype(str)
    for split in SPLITS:
        users, items = ds.split(split)
        write_tsv(folder / f"{name}.{split}.inter", {f"{USER}:token": user_ids[users], f"{ITEM}:token": item_ids[items]})
    write_tsv(folder / f"{name}.user", {f"{USER}:token": user_ids})
    columns = {f"{ITEM}:token": item_ids}
    for modality, feat in sorted(ds.features.items()):
        columns[f"{modality}_feat:float_seq"] = _format_rows(np.asarray(feat, dtype=np.float32))
    write_tsv(folder / f"{name}.item", columns)
