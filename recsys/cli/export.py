"""``recsys export`` and ``recsys bundle complete``: offline outputs of trained runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from recsys.export.topk import FORMATS, parse_shard
from recsys.serving import EXCLUDE_MODES, INDEXES


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
    from recsys.export import export_run, manifest_path

    manifest = export_run(args.run_dir, k=args.k, users=args.users, exclude=args.exclude, fmt=args.format,
                          out=args.out, batch_size=args.batch_size, device=args.device, shard=args.shard,
                          skip_unknown=args.skip_unknown, progress=not args.no_progress, data=args.data,
                          index=args.index)
    out = Path(manifest["output"])
    skipped = manifest["users"]["unknown_skipped"]
    print(f"wrote {manifest['rows']:,} rows for {manifest['users']['exported']:,} users to {out}"
          + (f" ({skipped} unknown user id(s) skipped)" if skipped else ""))
    print(f"manifest: {manifest_path(out)}")
    return 0


def _cmd_bundle_complete(args: argparse.Namespace) -> int:
    from recsys.export import export_completions

    rows = export_completions(args.run_dir, args.input, args.out, k=args.k, device=args.device)
    print(f"wrote {len(rows)} completed bundles to {args.out}")
    return 0


def add_parsers(subparsers) -> None:
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
    parser.add_argument("--index", choices=INDEXES, default="exact",
                        help="exact: score every item (default); faiss: approximate top-K from a FAISS HNSW index "
                             "over the item representations, for large catalogues (needs recsys[faiss])")
    parser.add_argument("--out", default=None,
                        help="output file (default RUN_DIR/exports/top{K}-exclude_{EXCLUDE}[.shardIofN].{FORMAT})")
    parser.add_argument("--batch-size", type=_positive, default=4096, help="users scored at once")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--shard", type=_shard_argument, default=None, metavar="I/N",
                        help="export only the I-th (0-based) of N contiguous slices of the users")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="leave out user ids the dataset does not know instead of failing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="the run's dataset folder, when it is no longer where the run was trained from")
    parser.set_defaults(func=_cmd_export)

    bundle = subparsers.add_parser("bundle", help="bundle construction: complete partial bundles with a trained run")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)
    complete = bundle_sub.add_parser("complete", help="top-K completions (raw ids and titles) of partial bundles")
    complete.add_argument("run_dir")
    complete.add_argument("--input", required=True, help="one partial bundle per line: comma-separated raw item ids")
    complete.add_argument("--out", required=True, help="JSON output")
    complete.add_argument("--k", type=int, default=10)
    complete.add_argument("--device", default="auto")
    complete.set_defaults(func=_cmd_bundle_complete)
