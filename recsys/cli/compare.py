"""``recsys compare``: a table of finished runs, mean ± std over seeds, paired tests against a baseline."""
from __future__ import annotations

import argparse


def _cmd_compare(args: argparse.Namespace) -> int:
    from recsys.compare import compare, to_markdown, write

    comparison = compare(args.run_dirs, baseline=args.baseline, metrics=args.metrics, alpha=args.alpha)
    print(to_markdown(comparison), end="")
    for path in args.out or []:
        print(f"wrote {write(comparison, path)}")
    return 0


def add_parsers(subparsers) -> None:
    compare = subparsers.add_parser(
        "compare", help="compare finished runs (mean ± std over seeds, Wilcoxon and t-test against a baseline)",
        description="One row per configuration (runs differing only in their seed share a row: mean ± std). "
                    "With --baseline, every other row on the same dataset is tested against it user by user "
                    "(Wilcoxon signed-rank and paired t-test on the per-user test metrics averaged over seeds, "
                    "Holm-corrected across rows). A folder that is not a run folder stands for every run below it.")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding run folders")
    compare.add_argument("--baseline", metavar="RUN", help="a run folder; its configuration's row is the baseline")
    compare.add_argument("--metrics", nargs="+", metavar="METRIC",
                         help="metrics to show and test, e.g. recall@20 ndcg@20 (default: those two when present)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level of the marks (default 0.05)")
    compare.add_argument("--out", action="append", metavar="FILE",
                         help="also write the comparison to FILE.md, FILE.csv or FILE.png (repeatable)")
    compare.set_defaults(func=_cmd_compare)
