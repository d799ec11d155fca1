"""Run a suite: search (valid only), retrain the chosen configs with every seed, leaderboard.

Folder ``<output_dir>/<name>/``:

- ``studies/<dataset>-<model>/``: the Optuna study of each searched model (``recsys tune``'s
  layout: study.db, trials/, trials.csv, best.yaml, summary.json, plots);
- ``runs/<dataset>/<model>/seed-<seed>/``: one training run folder per seed of the chosen
  config (``config.yaml``, ``results.json``, ``per_user_test.npz``, ...);
- ``selection.json``: per dataset and model, the chosen config's hash and searched values, the
  best trial's valid metric and the trial counts (or ``fixed``);
- ``progress.json``: done / total runs and trials and what runs now;
- ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard-<dataset>.png``
  (:mod:`recsys.benchmark.leaderboard`);
- ``cache/``: graphs shared by every trial and run.

Resuming: running the same suite again continues where it stopped. A study keeps its
finished trials and reruns those a killed process left running; a run folder with
``results.json`` is finished and never trained again; one with ``config.yaml`` only is
continued from its ``last.pt`` (:func:`recsys.runs.resume`). A finished run folder whose
config is not the one the suite now asks for is an error (the suite or its search changed),
never silently mixed into the leaderboard.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import optuna

from recsys import io
from recsys.benchmark.leaderboard import write_leaderboard
from recsys.benchmark.suite import Suite
from recsys.compare import config_hash
from recsys.errors import RecsysError, RunFolderError
from recsys.runs import resume, train
from recsys.tuning.outputs import best_config
from recsys.tuning.runner import open_study, run_study
from recsys.tuning.worker import FINISHED

log = logging.getLogger("recsys.benchmark")


def run_folder(suite: Suite, dataset: str, model: str, seed: int) -> Path:
    return suite.folder / "runs" / dataset / model / f"seed-{seed}"


@dataclass
class Progress:
    """Counts of finished runs and search trials; every change is reported and written to progress.json."""

    suite: Suite
    report: Callable[[str], None]
    runs_total: int = 0
    runs_done: int = 0
    trials_total: int = 0
    trials_done: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        searched = [pair for pair in self.suite.pairs() if self.suite.models[pair[1]].space]
        self.runs_total = len(self.suite.pairs()) * len(self.suite.seeds)
        self.trials_total = len(searched) * int(self.suite.search["trials"])
        self.runs_done = sum((run_folder(self.suite, d, m, s) / "results.json").is_file()
                             for d, m in self.suite.pairs() for s in self.suite.seeds)
        for dataset, model in searched:
            spec = self.suite.study(dataset, model)
            if spec.study_dir.is_dir():
                self.trials_done[f"{dataset}/{model}"] = _finished_trials(open_study(spec))

    def line(self, message: str) -> None:
        trials = sum(self.trials_done.values())
        status = f"runs {self.runs_done}/{self.runs_total}" + (
            f", search trials {trials}/{self.trials_total}" if self.trials_total else "")
        self.report(f"[{self.suite.name}: {status}] {message}")
        io.write_json(self.suite.folder / "progress.json",
                      {"runs_done": self.runs_done, "runs_total": self.runs_total, "trials_done": trials,
                       "trials_total": self.trials_total, "now": message})


def _finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def choose_config(suite: Suite, dataset: str, model: str, progress: Progress) -> tuple[dict, dict]:
    """The config ``model`` is retrained with on ``dataset`` and how it was chosen.

    A fixed model's config is its suite config; a searched model's is the best trial of its
    study by the valid objective (trials finished earlier are kept: the study resumes).
    """
    key = f"{dataset}/{model}"
    if not suite.models[model].space:
        config = suite.fixed_config(dataset, model)
        return config, {"chosen_by": "fixed", "config_hash": config_hash(config)}
    spec = suite.study(dataset, model)
    progress.trials_done[key] = _finished_trials(open_study(spec))
    progress.line(f"{dataset} / {model}: search on valid {suite.metric}, "
                  f"{progress.trials_done[key]} of {spec.trials} trials finished so far")
    summary = run_study(spec)
    progress.trials_done[key] = summary["complete"] + summary["pruned"]
    if "best" not in summary:
        raise RecsysError(f"the search of {model} on {dataset} ({spec.study_dir}) has no completed trial: every "
                          "trial was pruned or failed; lower the pruner's aggressiveness or check the trials' logs")
    config = best_config(spec, open_study(spec).best_trial)
    best = summary["best"]
    progress.line(f"{dataset} / {model}: trial {best['number']} chosen, valid {suite.metric} "
                  f"{best['value']:.5f}, {best['params']}")
    return config, {"chosen_by": f"search: best of {spec.trials} trials on valid {suite.metric}",
                    "config_hash": config_hash(config), "trial": best["number"], "params": best["params"],
                    "valid_at_search": best["value"], "complete": summary["complete"], "pruned": summary["pruned"],
                    "failed": summary["fail"], "study": str(spec.study_dir)}


def train_seed(suite: Suite, config: dict, dataset: str, model: str, seed: int, progress: Progress) -> None:
    """Train (or finish) one seed of a chosen config; a finished run folder is left alone."""
    run_dir = run_folder(suite, dataset, model, seed)
    config = {**config, "seed": seed, "output_dir": str(run_dir.parent), "run_name": run_dir.name,
              "cache_dir": str(suite.folder / "cache")}
    config["train"] = {**config["train"], "progress": False}
    where = f"{dataset} / {model} / seed {seed}"
    if (run_dir / "config.yaml").is_file():
        saved = io.load_yaml(run_dir / "config.yaml")
        if config_hash(saved) != config_hash(config) or saved.get("seed") != seed:
            raise RunFolderError(f"'{run_dir}' holds a run of another configuration than the one the suite now "
                                 "chooses (the suite file or its search changed); move it away or use another "
                                 "--output-dir")
        if (run_dir / "results.json").is_file():
            return
        progress.line(f"{where}: continuing the interrupted run")
        resume(run_dir)
    else:
        progress.line(f"{where}: training (run {progress.runs_done + 1} of {progress.runs_total})")
        train(config, run_dir=run_dir)
    progress.runs_done += 1
    progress.line(f"{where}: done")


def run_suite(suite: Suite, report: Callable[[str], None] = log.info) -> dict:
    """Run every search and seed of ``suite`` that is not finished, writing the leaderboard as
    runs finish; returns the selection (dataset → model → how its config was chosen)."""
    suite.folder.mkdir(parents=True, exist_ok=True)
    progress = Progress(suite, report)
    selection_path = suite.folder / "selection.json"
    selection: dict = json.loads(selection_path.read_text()) if selection_path.exists() else {}
    progress.line(f"{suite.source}: {len(suite.datasets)} dataset(s) × {len(suite.models)} model(s) × "
                  f"{len(suite.seeds)} seed(s) in {suite.folder}")
    for dataset, model in suite.pairs():
        config, chosen = choose_config(suite, dataset, model, progress)
        selection.setdefault(dataset, {})[model] = chosen
        io.write_json(selection_path, selection)
        for seed in suite.seeds:
            train_seed(suite, config, dataset, model, seed, progress)
            write_leaderboard(suite, selection)
    write_leaderboard(suite, selection)
    progress.line(f"finished; leaderboard in {suite.folder / 'leaderboard.md'}")
    return selection


def report_suite(suite: Suite, report: Callable[[str], None] = log.info) -> dict:
    """Rewrite ``selection.json`` and the leaderboard from what is finished, training nothing:
    fixed models, and searched models whose study has its full trial budget (their best trial);
    the leaderboard holds the finished seed runs. For a look at a benchmark that is still
    running or was stopped part-way (a later ``run_suite`` continues it)."""
    progress = Progress(suite, report)
    selection: dict = {}
    for dataset, model in suite.pairs():
        if suite.models[model].space:
            spec = suite.study(dataset, model)
            if not spec.study_dir.is_dir() or _finished_trials(open_study(spec)) < int(spec.trials):
                progress.line(f"{dataset} / {model}: search not finished, left out")
                continue
        config, chosen = choose_config(suite, dataset, model, progress)
        selection.setdefault(dataset, {})[model] = chosen
    io.write_json(suite.folder / "selection.json", selection)
    write_leaderboard(suite, selection)
    progress.line(f"reported; leaderboard in {suite.folder / 'leaderboard.md'}")
    return selection
