"""Offline top-K recommendation export from a finished training run (``recsys export``).

The rows are those of :meth:`recsys.serving.TrainedRun.top_k` (user, rank, item, score with
raw ids; ties to the lower item index; train, train+valid or no items excluded; exact, or from
a FAISS index with ``index="faiss"``), written as
Parquet, CSV or JSON lines to a temporary file that replaces the target only when complete,
next to a manifest (``<stem>.manifest.json``: run, checkpoint SHA-256, K, exclusion, users,
shard, row count, file checksums). A shard ``I/N`` exports the I-th (0-based) of N
contiguous slices of the user list, so the shards concatenated in order equal the full export.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from recsys import io
from recsys.errors import DataError
from recsys.runs import load_run
from recsys.serving import SCHEMA, SHOWN_UNKNOWN, TrainedRun
from recsys.version import __version__

FORMATS = ("parquet", "csv", "jsonl")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_user_file(path: str | Path) -> list[str]:
    """Raw user ids, one per line (blank lines and lines starting with ``#`` skipped),
    duplicates dropped keeping the first occurrence."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"user file {path} does not exist; give one raw user id per line, or --users all")
    ids = [line.strip() for line in path.read_text().splitlines()]
    ids = list(dict.fromkeys(i for i in ids if i and not i.startswith("#")))
    if not ids:
        raise DataError(f"user file {path} holds no user id; give one raw user id per line")
    return ids


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 <= I < N."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be I/N with 0 <= I < N (shards are numbered from 0), got '{text}'")
    return i, n


def _default_out(run_dir: Path | None, k: int, exclude: str, fmt: str, shard: tuple[int, int] | None) -> Path:
    stem = f"top{k}-exclude_{exclude.replace('+', '_')}"
    if shard is not None:
        stem += f".shard{shard[0]}of{shard[1]}"
    return (run_dir if run_dir is not None else Path(".")) / "exports" / f"{stem}.{fmt}"


def manifest_path(out: Path) -> Path:
    return out.with_name(out.stem + ".manifest.json")


class _Writer:
    """Streams row batches into one file of the chosen format."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        if fmt == "parquet":
            self._sink = pq.ParquetWriter(path, SCHEMA)
        elif fmt == "csv":
            self._sink = pa_csv.CSVWriter(path, SCHEMA, write_options=pa_csv.WriteOptions(quoting_style="needed"))
        else:
            self._sink = open(path, "w", encoding="utf-8")

    def write(self, table: pa.Table) -> None:
        if self.fmt == "jsonl":
            if table.num_rows:
                text = table.to_pandas().to_json(orient="records", lines=True, double_precision=15)
                self._sink.write(text if text.endswith("\n") else text + "\n")
        else:
            self._sink.write_table(table)

    def close(self) -> None:
        self._sink.close()


def export(recommender: TrainedRun, k: int = 50, users: str | Path = "all", exclude: str = "train",
           fmt: str = "parquet", out: str | Path | None = None, batch_size: int = 4096,
           shard: str | tuple[int, int] | None = None, skip_unknown: bool = False, progress: bool = True) -> dict:
    """Write the top-``k`` lists of ``users`` ("all" or a file of raw ids) and their manifest.

    Returns the manifest. The data file and the manifest are each written atomically; an
    error at any point leaves no partial file at ``out``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    recommender.exclusion(exclude)
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    started = time.perf_counter()
    if str(users) == "all":
        source, unknown = "all", []
        indices = np.arange(recommender.dataset.n_users, dtype=np.int64)
    else:
        source = str(users)
        indices, unknown = recommender.user_indices(read_user_file(users), skip_unknown)
    requested = len(indices) + len(unknown)
    if shard is not None:
        indices = np.array_split(indices, shard[1])[shard[0]]
    out = Path(out) if out is not None else _default_out(recommender.run_dir, k, exclude, fmt, shard)
    rows = 0
    with io.atomic_path(out) as tmp:
        writer = _Writer(tmp, fmt)
        try:
            for table in recommender.top_k(indices, k, exclude, batch_size, progress):
                writer.write(table)
                rows += table.num_rows
        finally:
            writer.close()
        manifest = _manifest(recommender, k, exclude, fmt, source, requested, unknown, indices, shard, rows,
                             out, tmp, time.perf_counter() - started)
    io.write_json(manifest_path(out), manifest)
    return manifest


def _manifest(recommender: TrainedRun, k, exclude, fmt, source, requested, unknown, indices, shard, rows,
              out: Path, written: Path, seconds: float) -> dict:
    run_dir = recommender.run_dir
    checkpoint = run_dir / "best.pt" if run_dir is not None else None
    return {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "model": (recommender.config or {}).get("model", {}).get("name") or type(recommender.model).__name__,
        "dataset": recommender.dataset.name,
        "dataset_fingerprint": recommender.dataset.fingerprint(),
        "checkpoint": ({"path": str(checkpoint), "sha256": _sha256(checkpoint)}
                       if checkpoint is not None and checkpoint.is_file() else None),
        "k": k,
        "exclude": exclude,
        "index": recommender.index,
        "tie_break": "score descending, then lower item index",
        "users": {"source": source, "requested": requested, "unknown_skipped": len(unknown),
                  "unknown_first": unknown[:SHOWN_UNKNOWN], "exported": int(len(indices))},
        "shard": {"index": shard[0], "count": shard[1]} if shard is not None else None,
        "format": fmt,
        "columns": SCHEMA.names,
        "rows": rows,
        "output": str(out),
        "files": [{"path": out.name, "bytes": written.stat().st_size, "sha256": _sha256(written)}],
        "device": str(recommender.device),
        "seconds": round(seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recsys_version": __version__,
    }


def export_run(run_dir: str | Path, k: int = 50, users: str | Path = "all", exclude: str = "train",
               fmt: str = "parquet", out: str | Path | None = None, batch_size: int = 4096, device: str = "auto",
               shard: str | tuple[int, int] | None = None, skip_unknown: bool = False, progress: bool = True,
               data: str | Path | None = None, index: str = "exact") -> dict:
    """Load ``run_dir``'s best checkpoint and :func:`export` its top-K lists (``recsys export``);
    ``data`` is the dataset folder when it is no longer where the run was trained from; ``index``
    is ``exact`` or ``faiss`` (:class:`recsys.serving.TrainedRun`)."""
    if isinstance(shard, str):
        shard = parse_shard(shard)
    return export(load_run(run_dir, device, data, index), k, users, exclude, fmt, out, batch_size, shard,
                  skip_unknown, progress)
