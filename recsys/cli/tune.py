"""``recsys tune``: run or resume an Optuna study described by a study file."""
from __future__ import annotations

import argparse

from recsys.config import parse_overrides


def _cmd_tune(args: argparse.Namespace) -> int:
    from recsys.tuning.runner import run_study
    from recsys.tuning.spec import load_spec
    from recsys.tuning.storage import storage_url

    spec = load_spec(args.config, trials=args.trials, workers=args.workers, storage=args.storage,
                     study=args.study, timeout=args.timeout, overrides=parse_overrides(args.set or []))
    result = run_study(spec)
    print(f"study '{spec.name}' in {spec.study_dir}: {result['complete']} complete, {result['pruned']} pruned, "
          f"{result['fail']} failed of {result['trials']} trials")
    if "best" in result:
        best = result["best"]
        print(f"best trial {best['number']}: valid {spec.metric} {best['value']:.5f} "
              f"(test {best['test'].get(spec.metric, float('nan')):.5f}) with {best['params']}")
        print(f"train it: recsys train --config {spec.study_dir / 'best.yaml'}")
    url = storage_url(spec.storage, spec.study_dir)
    print(f"dashboard: optuna-dashboard {url[len('journal:'):] if url.startswith('journal:') else url}")
    return 0


def add_parsers(subparsers) -> None:
    tune = subparsers.add_parser(
        "tune", help="tune hyper-parameters with Optuna (resumable, several workers, pruning)",
        description="Run the study a study file describes (configs/tune/*.yaml). Re-running the same command "
                    "resumes it; --trials is the total number of finished (complete + pruned) trials.")
    tune.add_argument("--config", required=True, help="study file: base run config, search space, sampler, pruner")
    tune.add_argument("--trials", type=int, help="finished trials the study should hold (overrides the file)")
    tune.add_argument("--workers", type=int, help="worker processes on this machine sharing the study")
    tune.add_argument("--storage", help="journal, journal:PATH or a SQLAlchemy URL (default: SQLite in the "
                                        "study folder)")
    tune.add_argument("--study", help="study name (default: the file's name); the folder is <output_dir>/<name>")
    tune.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    tune.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                      help="base run-config overrides, e.g. dataset.path=/data/baby train.epochs=50")
    tune.set_defaults(func=_cmd_tune)
