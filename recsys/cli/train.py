"""``recsys train | evaluate | plot``: training runs and their folders."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from recsys import io
from recsys.config import merge, parse_overrides
from recsys.errors import ConfigError


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
    from recsys.compose import resolve
    from recsys.runs import resume, train
    from recsys.training import distributed

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
            user = merge(user, io.load_yaml(path), None)
        overrides = parse_overrides(args.set or [])
        if args.tensorboard:
            overrides = merge(overrides, {"train": {"tensorboard": True}}, None)
        config = resolve(user, overrides)
        if args.dry_run:
            from recsys.dry_run import dry_run

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
    from recsys.runs import evaluate_run, load_run

    results = evaluate_run(load_run(args.run_dir, device=args.device, data=args.data))
    print(_metrics_table(results) if not args.json else json.dumps(results, indent=2))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from recsys.plotting import plot_run

    for path in plot_run(args.run_dir):
        print(f"wrote {path}")
    return 0


def add_parsers(sub) -> None:
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
    evaluate.add_argument("--data", metavar="PATH", default=None,
                          help="the run's dataset folder, when it is no longer where the run was trained from")
    evaluate.set_defaults(func=_cmd_evaluate)

    plot = sub.add_parser("plot", help="write PNG training curves (loss terms, valid Recall/NDCG) into a run folder")
    plot.add_argument("run_dir")
    plot.set_defaults(func=_cmd_plot)
