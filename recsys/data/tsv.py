"""Tab-separated files: strict reading with line-accurate errors, atomic writing, id maps.

Line numbers in messages count the header as line 1, so data row ``i`` (0-based) is line
``i + 2``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.validate import require_file
from recsys.errors import DataError
from recsys.io import atomic_path


def line_of(row: int) -> int:
    return row + 2


def read_tsv(path: Path, what: str) -> pd.DataFrame:
    """All columns as strings; a missing, empty or ragged file becomes a DataError."""
    require_file(path, what)
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                            quoting=csv.QUOTE_NONE, engine="c")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"file {path} is empty; expected a header line and tab-separated rows ({what})") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"file {path} is not a valid tab-separated file: {exc}; "
                        f"every line needs the same number of tab-separated fields as the header") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes the leading column(s) as the index when line 2 has more fields than the header
        raise DataError(f"file {path} line 2 has more tab-separated fields than the header's {len(frame.columns)}; "
                        f"every line needs the same number of tab-separated fields as the header")
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"file {path} line 1 (header): missing column(s) {missing}; found "
                        f"{list(frame.columns)} (the header must name the columns, tab-separated)")


def int_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column of non-negative integers as int64; the first bad value is reported by line."""
    values = frame[column].to_numpy(dtype=str)
    try:
        return values.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    row = _first_non_integer(values)
    raise DataError(f"file {path} line {line_of(row)}, column '{column}': value '{values[row]}' is not "
                    f"an integer; ids in this column must be whole numbers")


def _first_non_integer(values: np.ndarray) -> int:
    """Position of the first value that numpy cannot read as an int64 (as ``int(value)`` parses).

    Plain decimal literals of up to 18 digits always parse, so only the other values are tried.
    """
    candidates = np.flatnonzero(~pd.Series(values).str.fullmatch(r"\s*[+-]?\d{1,18}\s*").to_numpy(dtype=bool))
    for row in candidates:
        try:
            if -2**63 <= int(values[row]) < 2**63:
                continue
        except ValueError:
            pass
        return int(row)
    return 0


def float_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A numeric column as float64; the first unparsable value is reported by line."""
    values = frame[column].to_numpy(dtype=str)
    parsed = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(parsed) & (np.char.lower(values.astype(str)) != "nan"))
    if bad.size:
        raise DataError(f"file {path} line {line_of(int(bad[0]))}, column '{column}': value "
                        f"'{values[bad[0]]}' is not a number")
    return parsed


def read_id_map(path: Path, index_column: str) -> np.ndarray:
    """Raw ids ordered by index from a ``raw<TAB>index`` file (first column = raw id).

    The indices must be exactly ``0 .. rows-1``, each once.
    """
    frame = read_tsv(path, f"raw id list with columns <raw id>, {index_column}")
    require_columns(frame, [index_column], path)
    raw_column = next((c for c in frame.columns if c != index_column), None)
    if raw_column is None:
        raise DataError(f"file {path} line 1 (header): expected two columns, <raw id> and {index_column}")
    index = int_column(frame, index_column, path)
    n = index.size
    bad = np.flatnonzero((index < 0) | (index >= n))
    if bad.size:
        raise DataError(f"file {path} line {line_of(int(bad[0]))}, column '{index_column}': index "
                        f"{index[bad[0]]} is out of range [0, {n}) for a file of {n} rows; "
                        f"indices must be 0 .. rows-1")
    order = np.argsort(index, kind="stable")
    dup = np.flatnonzero(index[order][1:] == index[order][:-1])
    if dup.size:
        row = int(order[dup[0] + 1])
        raise DataError(f"file {path} line {line_of(row)}, column '{index_column}': index {index[row]} "
                        f"appears twice; every index must appear once")
    raw = np.empty(n, dtype=object)
    raw[index] = frame[raw_column].to_numpy(dtype=str)
    return raw.astype(str)


def check_writable_ids(ids: np.ndarray, what: str) -> None:
    text = ids.astype(str)
    bad = np.flatnonzero((np.char.find(text, "\t") >= 0) | (np.char.find(text, "\n") >= 0)
                         | (np.char.find(text, "\r") >= 0) | (np.char.str_len(text) == 0))
    if bad.size:
        raise DataError(f"{what} {bad[0]} has raw id {text[bad[0]]!r}, which cannot be written to a "
                        f"tab-separated file (empty, or holds a tab or newline); rename it")


def write_tsv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write columns (in order) with a header line, atomically."""
    frame = pd.DataFrame({name: np.asarray(values) for name, values in columns.items()})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE)
