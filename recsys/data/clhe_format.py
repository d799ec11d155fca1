"""Reader and writer of the dataset layout of CLHE's released data (Ma et al., WSDM 2024).

Folder layout (indices are 0-based and dense)::

    count.json            {"#U": users, "#B": bundles, "#I": items}
    ui_full.txt           one line per user:   "user, item, item, ..."
    bi_train.txt          one line per bundle: "bundle, item, item, ..."
    bi_valid_input.txt    bi_valid_gt.txt      (the two halves of each valid bundle)
    bi_test_input.txt     bi_test_gt.txt
    <modality>_feat.npy   optional float32 (#I, D) item features, row = item index
    content_feature.pt    optional CLHE feature tensors (#I, D): modalities "content" and
    description_feature.pt  "description"
    item_cf_feature.pt    optional pre-trained CF item embedding (#I, d) (or item_cf_feature.npy)
    user_ids.txt bundle_ids.txt item_ids.txt item_titles.txt
                          optional, one raw id (title) per line in index order (written here)

The split is the one stored in the files. A held-out bundle must have input items when it has
ground-truth items; its input and ground truth must be disjoint.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from recsys.data.bundles import BUNDLE_PARTS, HELD_OUT, BundleDataset
from recsys.data.validate import check_features, feature_files, load_npy, require_file
from recsys.errors import DataError
from recsys.io import atomic_path, write_json, write_text

COUNT = "count.json"
UI_FILE = "ui_full.txt"
TORCH_MODALITIES = {"content": "content_feature.pt", "description": "description_feature.pt"}
CF_FILES = ("item_cf_feature.pt", "item_cf_feature.npy")
_ID_FILES = {"user_ids": "user_ids.txt", "bundle_ids": "bundle_ids.txt", "item_ids": "item_ids.txt"}
TITLES = "item_titles.txt"


def _part_file(part: str) -> str:
    return f"bi_{part}.txt"


def read_set_lines(path: Path, n_rows: int, n_items: int, row_kind: str) -> np.ndarray:
    """(2, N) pairs of a ``"row, item, item, ..."`` file; rows < n_rows, items < n_items."""
    require_file(path, f"one line per {row_kind}: '{row_kind}, item, item, ...'")
    rows, items = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f.strip() for f in line.split(",") if f.strip()]
        if not fields:
            continue
        try:
            values = [int(f) for f in fields]
        except ValueError:
            raise DataError(f"{path} line {number}: '{line.strip()[:80]}' is not a list of integer ids "
                            f"'{row_kind}, item, item, ...'") from None
        row, members = values[0], values[1:]
        if not 0 <= row < n_rows:
            raise DataError(f"{path} line {number}: {row_kind} {row} is outside [0, {n_rows}) of {COUNT}; "
                            f"fix the id or the count")
        bad = [i for i in members if not 0 <= i < n_items]
        if bad:
            raise DataError(f"{path} line {number}: item {bad[0]} is outside [0, {n_items}) of {COUNT}; "
                            f"fix the id or the count")
        rows.extend([row] * len(members))
        items.extend(members)
    pairs = np.array([rows, items], dtype=np.int64).reshape(2, -1)
    return np.unique(pairs, axis=1) if pairs.size else pairs


def write_set_lines(path: Path, pairs: np.ndarray) -> None:
    """Write (2, N) pairs as one ``"row, item, item"`` line per row, rows ascending."""
    order = np.lexsort((pairs[1], pairs[0]))
    rows, items = pairs[0][order], pairs[1][order]
    lines = []
    for row in np.unique(rows):
        members = items[rows == row]
        lines.append(", ".join(str(v) for v in [int(row), *members.tolist()]))
    write_text(path, "".join(line + "\n" for line in lines))


def _read_counts(folder: Path) -> tuple[int, int, int]:
    path = require_file(folder / COUNT, 'the sizes {"#U": users, "#B": bundles, "#I": items}')
    try:
        counts = json.loads(path.read_text())
        return int(counts["#U"]), int(counts["#B"]), int(counts["#I"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} must be a JSON object with integer keys '#U', '#B', '#I' ({exc!r})") from None


def _load_tensor(path: Path) -> np.ndarray:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise DataError(f"{path} is not a saved tensor ({exc}); re-save it with torch.save(tensor)") from None
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{path} holds a {type(value).__name__}, expected a (#I, D) tensor")
    return value.float().numpy()


def _features(folder: Path, modalities: list[str] | None, n_items: int) -> dict[str, np.ndarray]:
    npy = feature_files(folder)
    pt = {m: folder / f for m, f in TORCH_MODALITIES.items() if (folder / f).is_file()}
    available = sorted(set(npy) | set(pt))
    names = available if modalities is None else list(modalities)
    out = {}
    for name in names:
        if name in npy:
            out[name] = check_features(load_npy(npy[name], "feature file"), n_items, npy[name])
        elif name in pt:
            out[name] = check_features(_load_tensor(pt[name]), n_items, pt[name])
        else:
            raise DataError(f"modality '{name}' was requested in dataset.modalities but {folder} has no "
                            f"{name}_feat.npy; available: {available or 'none'}")
    return out


def _cf_features(folder: Path, n_items: int) -> np.ndarray | None:
    for name in CF_FILES:
        path = folder / name
        if path.is_file():
            raw = _load_tensor(path) if path.suffix == ".pt" else load_npy(path, "CF item embedding")
            return check_features(raw, n_items, path)
    return None


def _optional_lines(path: Path, count: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    lines = path.read_text().split("\n")[:count]
    if len(lines) != count:
        raise DataError(f"{path} has {len(lines)} lines but {COUNT} declares {count}; one line per index")
    return np.array(lines, dtype=object if path.name == TITLES else str)


def read_clhe(folder: str | Path, name: str | None = None, modalities: list[str] | None = None) -> BundleDataset:
    """Read a CLHE-layout folder (see the module docstring) into a :class:`BundleDataset`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"CLHE dataset folder {folder} does not exist; fix dataset.path")
    n_users, n_bundles, n_items = _read_counts(folder)
    ui = read_set_lines(folder / UI_FILE, n_users, n_items, "user")
    parts = {part: read_set_lines(folder / _part_file(part), n_bundles, n_items, "bundle") for part in BUNDLE_PARTS}
    for split in HELD_OUT:
        no_input = np.setdiff1d(parts[f"{split}_gt"][0], parts[f"{split}_input"][0])
        if no_input.size:
            raise DataError(f"{folder / _part_file(split + '_gt')}: bundle {no_input[0]} has ground-truth items "
                            f"but no line in {_part_file(split + '_input')}; give every held-out bundle an input")
    ids = {key: _optional_lines(folder / file, size)
           for (key, file), size in zip(_ID_FILES.items(), (n_users, n_bundles, n_items))}
    empty = np.zeros((2, 0), dtype=np.int64)
    return BundleDataset(
        name=name or folder.name, n_users=n_users, n_items=n_items, train=ui, valid=empty, test=empty,
        features=_features(folder, modalities, n_items), user_ids=ids["user_ids"], item_ids=ids["item_ids"],
        n_bundles=n_bundles, bundle_pairs=parts, bundle_ids=ids["bundle_ids"],
        item_titles=_optional_lines(folder / TITLES, n_items), cf_features=_cf_features(folder, n_items),
    )


def write_clhe(ds: BundleDataset, folder: str | Path) -> None:
    """Write ``ds`` in the CLHE layout (user-item ``train`` pairs become ``ui_full.txt``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / COUNT, {"#U": ds.n_users, "#B": ds.n_bundles, "#I": ds.n_items})
    write_set_lines(folder / UI_FILE, ds.train)
    for part in BUNDLE_PARTS:
        write_set_lines(folder / _part_file(part), ds.bundle_pairs[part])
    for modality, feat in ds.features.items():
        with atomic_path(folder / f"{modality}_feat.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(feat, dtype=np.float32))
    if ds.cf_features is not None:
        with atomic_path(folder / CF_FILES[1]) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(ds.cf_features, dtype=np.float32))
    for key, file in _ID_FILES.items():
        write_text(folder / file, "\n".join(str(v) for v in getattr(ds, key)))
    if ds.item_titles is not None:
        write_text(folder / TITLES, "\n".join(" ".join(str(t).split()) for t in ds.item_titles))
