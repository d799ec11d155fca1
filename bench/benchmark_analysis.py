"""Where a model wins or loses against the suite's baseline, user by user (issue 14, item 5).

For every dataset of a benchmark suite, the finished seed runs' per-user test metrics
(``per_user_test.npz``, at each run's best valid epoch) are averaged over seeds per user and
compared with the baseline model's, within groups of users:

- **activity**: the user's number of train interactions, in tertiles (light / medium / heavy);
- **test-item popularity**: the mean train popularity (interaction count) of the user's test
  items, in tertiles (long tail / middle / head);
- **cold test items**: users with at least one test item that has at most ``COLD_MAX`` train
  interactions, against the others.

Per group and model: the mean test metric (the suite's selection metric, e.g. Recall@20), its
relative difference to the baseline, and a paired Wilcoxon signed-rank p-value over the group's
users (two-sided; ``scipy.stats.wilcoxon``, zero differences dropped). Written to
``bench/results/benchmarks/<name>/analysis.json`` and the ``benchmark_<name>_analysis`` section
of bench/README.md. Groups are formed from the train split only, so they are the same for every
model.

    python bench/benchmark_analysis.py configs/benchmarks/toys.yaml [--folder benchmarks/toys]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402
from recsys.benchmark.leaderboard import finished_runs  # noqa: E402
from recsys.benchmark.suite import load_suite  # noqa: E402
from recsys.data.loading import load_dataset  # noqa: E402
from recsys.runs import read_per_user  # noqa: E402

COLD_MAX = 5
TERTILE_NAMES = {"activity": ("light", "medium", "heavy"), "test-item popularity": ("long tail", "middle", "head")}


def user_groups(dataset) -> dict[str, dict[str, np.ndarray]]:
    """Group name → {bucket → boolean mask over users}, from the train and test splits."""
    popularity = np.bincount(dataset.train[1], minlength=dataset.n_items)
    activity = np.bincount(dataset.train[0], minlength=dataset.n_users).astype(float)
    test_users, test_items = dataset.test
    count = np.bincount(test_users, minlength=dataset.n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pop = np.bincount(test_users, weights=popularity[test_items], minlength=dataset.n_users) / count
    cold = np.bincount(test_users, weights=popularity[test_items] <= COLD_MAX, minlength=dataset.n_users) > 0
    has_test = count > 0
    groups = {}
    for name, value in (("activity", activity), ("test-item popularity", mean_pop)):
        cuts = np.quantile(value[has_test], [1 / 3, 2 / 3])
        bucket = np.digitize(value, cuts, right=True)
        groups[name] = {label: has_test & (bucket == index) for index, label in enumerate(TERTILE_NAMES[name])}
    groups["cold test items"] = {f"some test item with <= {COLD_MAX} train interactions": has_test & cold,
                                 "none": has_test & ~cold}
    return groups


def per_user_means(run_dirs: list[Path], metric: str, n_users: int) -> np.ndarray:
    """The metric of every user averaged over the seed runs (NaN for users never evaluated)."""
    total, seen = np.zeros(n_users), np.zeros(n_users)
    for run_dir in run_dirs:
        metrics = read_per_user(run_dir)
        total[metrics.users] += metrics.values[metric]
        seen[metrics.users] += 1
    with np.errstate(invalid="ignore"):
        return total / seen


def analyse(suite, dataset_name: str) -> dict | None:
    from scipy.stats import wilcoxon

    runs = finished_runs(suite, dataset_name)
    by_model: dict[str, list[Path]] = {}
    for run_dir, model in runs.items():
        by_model.setdefault(model, []).append(run_dir)
    if suite.baseline not in by_model:
        return None
    dataset = load_dataset(suite.datasets[dataset_name])
    metric = suite.metric
    values = {model: per_user_means(dirs, metric, dataset.n_users) for model, dirs in by_model.items()}
    base = values[suite.baseline]
    out = {"metric": metric, "baseline": suite.baseline, "seeds": {m: len(d) for m, d in by_model.items()},
           "groups": {}}
    for group, buckets in user_groups(dataset).items():
        rows = {}
        for bucket, mask in buckets.items():
            keep = mask & np.isfinite(base)
            row = {"users": int(keep.sum()), "baseline": float(np.mean(base[keep])) if keep.any() else None,
                   "models": {}}
            for model, value in values.items():
                if model == suite.baseline:
                    continue
                both = keep & np.isfinite(value)
                diff = value[both] - base[both]
                p = float(wilcoxon(diff).pvalue) if np.count_nonzero(diff) else 1.0
                mean, ref = float(np.mean(value[both])), float(np.mean(base[both]))
                row["models"][model] = {"mean": mean, "relative": mean / ref - 1 if ref > 0 else None,
                                        "wilcoxon_p": p, "users": int(both.sum())}
            rows[bucket] = row
        out["groups"][group] = rows
    return out


def markdown(name: str, analysis: dict) -> str:
    lines = [f"<!-- benchmark_{name}_analysis:begin -->", f"## Benchmark `{name}`: user groups "
             "(`benchmark_analysis.py`)", "",
             "Per-user test metrics at each run's best valid epoch, averaged over the seed runs, compared with the "
             "baseline within groups formed from the train split; relative difference of the group means and a "
             "paired two-sided Wilcoxon p-value over the group's users.", ""]
    for dataset, result in analysis["datasets"].items():
        if result is None:
            continue
        models = [m for m in result["seeds"] if m != result["baseline"]]
        lines += [f"**{dataset}** ({result['metric']}; baseline {result['baseline']}):", "",
                  "| group | users | " + f"{result['baseline']} | " + " | ".join(models) + " |",
                  "|---|---|---|" + "---|" * len(models)]
        for group, rows in result["groups"].items():
            for bucket, row in rows.items():
                cells = []
                for model in models:
                    m = row["models"].get(model)
                    cells.append("" if m is None or m["relative"] is None else
                                 f"{m['mean']:.4f} ({m['relative']:+.1%}, p {m['wilcoxon_p']:.2g})")
                base = "" if row["baseline"] is None else f"{row['baseline']:.4f}"
                lines.append(f"| {group}: {bucket} | {row['users']:,} | {base} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + [f"<!-- benchmark_{name}_analysis:end -->"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--folder", type=Path, help="benchmark folder (default: the suite's)")
    parser.add_argument("--trials", type=int, help="the --trials the benchmark ran with, if any")
    parser.add_argument("--seeds", type=int, help="the --seeds the benchmark ran with, if any")
    args = parser.parse_args(argv)
    suite = load_suite(args.suite, trials=args.trials, seeds=args.seeds)
    if args.folder is not None:
        suite.folder = args.folder
    analysis = {"suite": str(args.suite), "datasets": {d: analyse(suite, d) for d in suite.datasets},
                "environment": environment()}
    target = RESULTS / "benchmarks" / suite.name
    target.mkdir(parents=True, exist_ok=True)
    io.write_json(target / "analysis.json", analysis)
    write_readme_section(markdown(suite.name, analysis), f"<!-- benchmark_{suite.name}_analysis:begin -->",
                         f"<!-- benchmark_{suite.name}_analysis:end -->")
    print(f"analysis in {target / 'analysis.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
