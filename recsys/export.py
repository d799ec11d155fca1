"""Offline top-K recommendation export from a finished training run (``recsys export``).

For each requested user u (by raw id) the K items with the highest score
s(u, i) = ``model.scores`` — the model's final representations, computed once by
``model.embeddings()`` and then scored one batch of users at a time — are listed in order of
score descending, ties broken by the lower item index (the rule of
:func:`recsys.evaluation.ranking.stable_topk`, so exports agree with evaluation). Items the
user interacted with in ``train`` (default), ``train+valid`` or ``none`` are excluded; a
user with fewer than K remaining items gets fewer rows.

Output rows: ``user`` (raw id), ``rank`` (1..K), ``item`` (raw id), ``score`` (float32), as
Parquet, CSV or JSON lines, written to a temporary file that replaces the target only when
complete, next to a manifest (``<stem>.manifest.json``: run, checkpoint SHA-256, K,
exclusion, users, shard, row count, file checksums). ``--shard I/N`` exports the I-th
(0-based) of N contiguous slices of the user list, so the shards concatenated in order equal
the full export.

Python API: ``load_run(run_dir)`` returns a :class:`RunRecommender` with
``recommend(user_raw_ids, k, exclude=...)`` (a DataFrame of the same rows) and
``score(users, items)``.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch
from tqdm import tqdm

from recsys import __version__, io
from recsys.data.dataset import DataError, Dataset
from recsys.evaluation.ranking import csr_rows_to_coo, topk_excluding

EXCLUDE_MODES = ("train", "train+valid", "none")
FORMATS = ("parquet", "csv", "jsonl")
SCHEMA = pa.schema([("user", pa.string()), ("rank", pa.int32()), ("item", pa.string()), ("score", pa.float32())])
_SHOWN_UNKNOWN = 5


class UnknownUsersError(DataError):
    """Requested raw user ids that the run's dataset does not contain."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunRecommender:
    """A trained model with its dataset's raw ids: top-K lists and pair scores by raw id.

    The final representations (``model.embeddings()``) are computed on first use and kept;
    every score is ``model.scores(users, cache)`` on a batch of users.
    """

    def __init__(self, model: torch.nn.Module, dataset: Dataset, device: torch.device | str = "cpu",
                 run_dir: str | Path | None = None, config: dict | None = None) -> None:
        self.model = model.eval()
        self.dataset = dataset
        self.device = torch.device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config = config
        self._cache = None
        self._user_index = {str(raw): index for index, raw in enumerate(dataset.user_ids)}
        self._item_index = {str(raw): index for index, raw in enumerate(dataset.item_ids)}
        self._user_raw = pa.array(np.asarray(dataset.user_ids).astype(str))
        self._item_raw = pa.array(np.asarray(dataset.item_ids).astype(str))
        self._exclusions: dict[str, sp.csr_matrix | None] = {}

    @torch.no_grad()
    def _scores(self, users: torch.Tensor) -> torch.Tensor:
        if self._cache is None:
            self._cache = self.model.embeddings()
        return self.model.scores(users, self._cache).float()

    def user_indices(self, raw_ids: Sequence, skip_unknown: bool = False) -> tuple[np.ndarray, list[str]]:
        """Indices of ``raw_ids`` (in order) and the unknown ids; unknown ids raise unless skipped."""
        indices, unknown = [], []
        for raw in raw_ids:
            index = self._user_index.get(str(raw))
            if index is None:
                unknown.append(str(raw))
            else:
                indices.append(index)
        if unknown and not skip_unknown:
            raise UnknownUsersError(
                f"{len(unknown)} of {len(raw_ids)} requested user id(s) are not users of dataset "
                f"'{self.dataset.name}' (first: {', '.join(repr(u) for u in unknown[:_SHOWN_UNKNOWN])}); "
                f"use the raw ids of its user files, or pass --skip-unknown (skip_unknown=True) to leave them out")
        return np.asarray(indices, dtype=np.int64), unknown

    def _item_indices(self, raw_ids: Sequence) -> np.ndarray:
        unknown = [str(raw) for raw in raw_ids if str(raw) not in self._item_index]
        if unknown:
            raise DataError(f"{len(unknown)} item id(s) are not items of dataset '{self.dataset.name}' "
                            f"(first: {', '.join(repr(i) for i in unknown[:_SHOWN_UNKNOWN])})")
        return np.asarray([self._item_index[str(raw)] for raw in raw_ids], dtype=np.int64)

    def exclusion(self, mode: str) -> sp.csr_matrix | None:
        """The users × items matrix of items never recommended under ``mode`` (None for ``none``)."""
        if mode not in EXCLUDE_MODES:
            raise ValueError(f"exclude must be one of {', '.join(EXCLUDE_MODES)}, got '{mode}'")
        if mode not in self._exclusions:
            if mode == "none":
                self._exclusions[mode] = None
            else:
                matrix = self.dataset.csr("train")
                if mode == "train+valid":
                    matrix = (matrix + self.dataset.csr("valid")).tocsr()
                    matrix.data[:] = 1.0
                self._exclusions[mode] = matrix
        return self._exclusions[mode]

    def top_k(self, users: np.ndarray, k: int, exclude: str = "train", batch_size: int = 4096,
              progress: bool = False) -> Iterator[pa.Table]:
        """Top-``k`` rows (user, rank, item, score) for user indices ``users``, one table per batch."""
        if k < 1 or batch_size < 1:
            raise ValueError(f"k and batch_size must be positive, got k={k}, batch_size={batch_size}")
        excluded = self.exclusion(exclude)
        with tqdm(total=len(users), unit="user", desc="export", disable=not progress) as bar:
            for start in range(0, len(users), batch_size):
                batch = users[start:start + batch_size]
                scores = self._scores(torch.from_numpy(batch).to(self.device))
                mask = csr_rows_to_coo(excluded, batch, self.device) if excluded is not None else None
                values, items = topk_excluding(scores, mask, k)
                values, items = values.cpu().numpy(), items.cpu().numpy()
                keep = values > -np.inf
                rows, cols = np.nonzero(keep)
                yield pa.table({
                    "user": self._user_raw.take(batch[rows]),
                    "rank": (cols + 1).astype(np.int32),
                    "item": self._item_raw.take(items[rows, cols]),
                    "score": values[rows, cols].astype(np.float32),
                }, schema=SCHEMA)
                bar.update(len(batch))

    def recommend(self, user_raw_ids: Sequence, k: int = 10, exclude: str = "train", batch_size: int = 4096,
                  skip_unknown: bool = False) -> pd.DataFrame:
        """Top-``k`` items of each raw user id, columns user, rank, item, score (module docstring)."""
        if isinstance(user_raw_ids, (str, bytes)):
            user_raw_ids = [user_raw_ids]
        users, _ = self.user_indices(list(user_raw_ids), skip_unknown)
        return pa.concat_tables([SCHEMA.empty_table(), *self.top_k(users, k, exclude, batch_size)]).to_pandas()

    def score(self, users: Sequence, items: Sequence, batch_size: int = 4096) -> np.ndarray:
        """Scores of the aligned (raw user id, raw item id) pairs, float32, no exclusion."""
        if len(users) != len(items):
            raise ValueError(f"score needs aligned pairs: got {len(users)} users and {len(items)} items")
        user_index, _ = self.user_indices(list(users))
        item_index = self._item_indices(list(items))
        distinct, inverse = np.unique(user_index, return_inverse=True)
        out = np.empty(len(user_index), dtype=np.float32)
        for start in range(0, len(distinct), batch_size):
            chunk = distinct[start:start + batch_size]
            rows = self._scores(torch.from_numpy(chunk).to(self.device)).cpu().numpy()
            pairs = np.flatnonzero((inverse >= start) & (inverse < start + len(chunk)))
            out[pairs] = rows[inverse[pairs] - start, item_index[pairs]]
        return out


def load_run(run_dir: str | Path, device: str = "auto") -> RunRecommender:
    """A finished run's best checkpoint as a :class:`RunRecommender`."""
    from recsys.training.run import load_run as load_training_run

    run = load_training_run(run_dir, device=device)
    return RunRecommender(run.model, run.dataset, run.device, run.run_dir, run.config)


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


def export(recommender: RunRecommender, k: int = 50, users: str | Path = "all", exclude: str = "train",
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


def _manifest(recommender: RunRecommender, k, exclude, fmt, source, requested, unknown, indices, shard, rows,
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
        "tie_break": "score descending, then lower item index",
        "users": {"source": source, "requested": requested, "unknown_skipped": len(unknown),
                  "unknown_first": unknown[:_SHOWN_UNKNOWN], "exported": int(len(indices))},
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
               shard: str | tuple[int, int] | None = None, skip_unknown: bool = False, progress: bool = True) -> dict:
    """Load ``run_dir``'s best checkpoint and :func:`export` its top-K lists (``recsys export``)."""
    if isinstance(shard, str):
        shard = parse_shard(shard)
    return export(load_run(run_dir, device), k, users, exclude, fmt, out, batch_size, shard, skip_unknown, progress)


def _shard_argument(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _cmd_export(args: argparse.Namespace) -> int:
    manifest = export_run(args.run_dir, k=args.k, users=args.users, exclude=args.exclude, fmt=args.format,
                          out=args.out, batch_size=args.batch_size, device=args.device, shard=args.shard,
                          skip_unknown=args.skip_unknown, progress=not args.no_progress)
    out = Path(manifest["output"])
    skipped = manifest["users"]["unknown_skipped"]
    print(f"wrote {manifest['rows']:,} rows for {manifest['users']['exported']:,} users to {out}"
          + (f" ({skipped} unknown user id(s) skipped)" if skipped else ""))
    print(f"manifest: {manifest_path(out)}")
    return 0


def add_export_parser(subparsers) -> None:
    """Register ``recsys export`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "export", help="write top-K recommendations of a trained run (parquet, csv or jsonl) with a manifest",
        description="Top-K items per user from a run's best checkpoint, train items (or train+valid, or none) "
                    "excluded, ties broken by the lower item index; rows user, rank, item, score; written "
                    "atomically next to a manifest with checksums.")
    parser.add_argument("run_dir", help="a finished training run folder (config.yaml, best.pt)")
    parser.add_argument("--k", type=_positive, default=50, help="items per user (default 50)")
    parser.add_argument("--users", default="all", help="'all' or a file with one raw user id per line")
    parser.add_argument("--exclude", choices=EXCLUDE_MODES, default="train",
                        help="interactions never recommended again (default train)")
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--out", default=None,
                        help="output file (default RUN_DIR/exports/top{K}-exclude_{EXCLUDE}[.shardIofN].{FORMAT})")
    parser.add_argument("--batch-size", type=_positive, default=4096, help="users scored at once")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--shard", type=_shard_argument, default=None, metavar="I/N",
                        help="export only the I-th (0-based) of N contiguous slices of the users")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="leave out user ids the dataset does not know instead of failing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_export)
