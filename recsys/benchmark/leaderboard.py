"""A suite's leaderboard: per dataset, the comparison of its finished seed runs.

``leaderboard.md`` states the protocol (valid-only selection, the search budget, the seeds),
then per dataset the :func:`recsys.compare.to_markdown` table (mean ± std over seeds, paired
tests against the suite's baseline model), how each configuration was chosen, and where and
when the runs ran (commits, dates, load averages, threads: from their results.json).
``leaderboard.csv`` holds every row of every dataset; ``leaderboard-<dataset>.png`` the test
metrics with their seed spread as error bars. Every figure is read from the run folders and
``selection.json``; the leaderboard can be rewritten at any time from them.
"""
from __future__ import annotations

import json
from pathlib import Path

from recsys import io
from recsys.benchmark.suite import Suite
from recsys.compare import Comparison, compare, plot, to_csv, to_markdown


def finished_runs(suite: Suite, dataset: str) -> dict[Path, str]:
    """Run folder → model label, for the finished seed runs of ``dataset`` (suite order)."""
    runs = {}
    for model in suite.models:
        for seed in suite.seeds:
            run_dir = suite.folder / "runs" / dataset / model / f"seed-{seed}"
            if (run_dir / "results.json").is_file():
                runs[run_dir] = model
    return runs


def dataset_comparison(suite: Suite, dataset: str) -> Comparison | None:
    runs = finished_runs(suite, dataset)
    if not runs:
        return None
    baseline = next((path for path, model in runs.items() if model == suite.baseline), None)
    return compare(list(runs), baseline=baseline, metrics=report_metrics(suite, next(iter(runs))), labels=runs)


def report_metrics(suite: Suite, run_dir: Path) -> list[str]:
    """The selection metric and, when the runs compute it, NDCG at the same cut-off."""
    computed = json.loads((run_dir / "results.json").read_text())["test"]
    ndcg = "ndcg@" + suite.metric.split("@")[1]
    return [suite.metric] + ([ndcg] if ndcg in computed and ndcg != suite.metric else [])


def _protocol(suite: Suite) -> str:
    search = suite.search
    searched = [m for m, entry in suite.models.items() if entry.space]
    fixed = [m for m in suite.models if m not in searched]
    parts = [f"Every choice is made on valid {suite.metric} only (test metrics never take part)."]
    if searched:
        parts.append(f"Searched models ({', '.join(searched)}) each get the same budget: {search['trials']} finished "
                     f"trials (sampler {search.get('sampler', {'name': 'tpe'})}, pruner "
                     f"{search.get('pruner', {'name': 'median'})}); the best trial's config is kept.")
    if fixed:
        parts.append(f"Fixed configurations: {', '.join(fixed)}.")
    parts.append(f"Each chosen config is trained again with seeds {', '.join(map(str, suite.seeds))}; test metrics "
                 "are those of each run's best-valid epoch.")
    return " ".join(parts)


def _selection_table(selection: dict, dataset: str, metric: str) -> list[str]:
    lines = [f"| model | chosen by | config | valid {metric} at search | trials complete / pruned / failed | "
             "searched values |", "|---|---|---|---|---|---|"]
    for model, chosen in selection.get(dataset, {}).items():
        valid = f"{chosen['valid_at_search']:.4f}" if "valid_at_search" in chosen else ""
        counts = (f"{chosen['complete']} / {chosen['pruned']} / {chosen['failed']}" if "complete" in chosen else "")
        values = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in chosen.get("params", {}).items())
        lines.append(f"| {model} | {chosen['chosen_by']} | `{chosen['config_hash']}` | {valid} | {counts} | "
                     f"{values} |")
    return lines


def _environment(comparison: Comparison) -> str:
    runs = [run for group in comparison.groups for run in group.runs]
    envs = [run.results.get("environment") for run in runs]
    envs = [env for env in envs if env]
    if not envs:
        return "The runs recorded no environment."
    loads = [env["load_average"][0] for env in envs]
    dates = sorted(env["date"] for env in envs)
    commits = sorted({env["commit"] + ("+changes" if env.get("uncommitted_changes") else "") for env in envs})
    return (f"Runs: commit {', '.join(commits)}; {dates[0]} to {dates[-1]}; one-minute load average at the end of "
            f"a run {min(loads)} to {max(loads)}; torch threads {sorted({env['torch_threads'] for env in envs})}, "
            f"CPU count {sorted({env['cpu_count'] for env in envs})}. Training seconds depend on that load.")


def write_leaderboard(suite: Suite, selection: dict) -> list[Path]:
    """(Re)write leaderboard.md, leaderboard.csv and one PNG per dataset with finished runs."""
    lines = [f"# Benchmark `{suite.name}`", "", f"Suite: {suite.source}.", "", _protocol(suite)]
    csv_parts, written = [], []
    for dataset in suite.datasets:
        comparison = dataset_comparison(suite, dataset)
        lines += ["", f"## {dataset}", ""]
        if comparison is None:
            lines.append("No finished run yet.")
            continue
        lines += [to_markdown(comparison).rstrip("\n"), "", "How each configuration was chosen:", "",
                  *_selection_table(selection, dataset, suite.metric), "", _environment(comparison)]
        csv_text = to_csv(comparison)
        csv_parts.append(csv_text if not csv_parts else csv_text.split("\n", 1)[1])
        written.append(plot(comparison, suite.folder / f"leaderboard-{dataset}.png"))
    io.write_text(suite.folder / "leaderboard.md", "\n".join(lines) + "\n")
    written.insert(0, suite.folder / "leaderboard.md")
    if csv_parts:
        io.write_text(suite.folder / "leaderboard.csv", "".join(csv_parts))
        written.insert(1, suite.folder / "leaderboard.csv")
    return written
