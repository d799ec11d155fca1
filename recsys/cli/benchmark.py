"""``recsys benchmark``: run a benchmark suite (valid-only selection, several seeds, leaderboard)."""
from __future__ import annotations

import argparse

from recsys.config import parse_overrides


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from recsys.benchmark.runner import report_suite, run_suite
    from recsys.benchmark.suite import load_suite

    suite = load_suite(args.suite, output_dir=args.output_dir, trials=args.trials, seeds=args.seeds,
                       overrides=parse_overrides(args.set or []))
    (report_suite if args.report else run_suite)(suite, report=lambda line: print(line, flush=True))
    print(f"leaderboard: {suite.folder / 'leaderboard.md'}")
    return 0


def add_parsers(subparsers) -> None:
    benchmark = subparsers.add_parser(
        "benchmark", help="run a benchmark suite: datasets × models, valid-only search, seeds, leaderboard",
        description="Run the suite a suite file describes (configs/benchmarks/*.yaml): each searched model's "
                    "config is chosen by an Optuna study on the valid split (one trial budget for all), then "
                    "retrained with every seed; the leaderboard compares them with paired tests. Re-running "
                    "the same command resumes it without redoing a finished trial or run.")
    benchmark.add_argument("suite", metavar="SUITE.yaml", help="suite file")
    benchmark.add_argument("--output-dir", help="parent folder of the benchmark folder (overrides the file's)")
    benchmark.add_argument("--trials", type=int, help="search trials of every searched model (overrides the file)")
    benchmark.add_argument("--seeds", type=int, help="retraining seeds 0..N-1 (overrides the file)")
    benchmark.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                           help="run-config overrides of every run, e.g. train.epochs=1 for a quick check (use "
                                "another --output-dir: a finished run of another config is not mixed in)")
    benchmark.add_argument("--report", action="store_true",
                           help="train nothing: rewrite selection.json and the leaderboard from the finished searches "
                                "and runs (a benchmark still running or stopped part-way)")
    benchmark.set_defaults(func=_cmd_benchmark)
