"""Compare finished runs: one row per configuration, mean ± std over seeds, paired tests.

Runs are grouped by dataset and **config hash**: the SHA-256 of the run's resolved
``config.yaml`` without the keys that name or place a run and cannot change its metrics
(:data:`NOT_HASHED`: ``seed``, ``run_name``, ``output_dir``, ``cache_dir``,
``train.progress``, ``train.tensorboard``). Runs that differ only in their seed share a row,
whose numbers are the mean ± sample standard deviation (ddof 1) over those seeds.

Significance against a baseline row, per test metric, over users (Demšar, JMLR 2006, for the
choice of tests; Holm, Scand. J. Statist. 1979, for the correction):

- **what is paired**: users. A row's value for user u is the metric of u averaged over the
  row's seeds (``per_user_test.npz`` of each run); the baseline's likewise. The two rows must
  have evaluated the same users (same dataset split). The tests therefore ask whether the two
  configurations differ on these test users once seed noise is averaged out per user; they do
  not treat seeds as a random effect (the ± column shows the seed spread);
- **tests**: Wilcoxon signed-rank (two-sided, zero differences dropped; exact for small samples
  without ties, else the normal approximation: ``scipy.stats.wilcoxon``) and the paired t-test
  (``scipy.stats.ttest_rel``, two-sided) on those per-user values;
- **correction**: Holm's step-down adjustment across the rows compared with the baseline, for
  each metric and test separately: with raw p-values sorted p₍₁₎ ≤ … ≤ p₍ₘ₎,
  p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1) p₍ⱼ₎).

A test cell is marked ``*`` when the Holm-adjusted Wilcoxon p-value is below ``alpha`` and
``†`` when the Holm-adjusted t-test p-value is.
"""
from __future__ import annotations

import csv
import hashlib
import io as text_io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from recsys import io
from recsys.errors import ConfigError, RunFolderError
from recsys.runs import epoch_records, read_per_user

NOT_HASHED = ("seed", "run_name", "output_dir", "cache_dir", "train.progress", "train.tensorboard")
DEFAULT_METRICS = ("recall@20", "ndcg@20")
WILCOXON_MARK, T_TEST_MARK = "*", "†"


def config_hash(config: dict) -> str:
    """First 10 hex digits of the SHA-256 of ``config`` without the :data:`NOT_HASHED` keys."""
    kept = json.loads(json.dumps(config, default=str))
    for dotted in NOT_HASHED:
        *parents, last = dotted.split(".")
        node = kept
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Run:
    """A finished run folder: its resolved config, its results.json and its config hash."""

    run_dir: Path
    config: dict
    results: dict
    config_hash: str

    @classmethod
    def load(cls, run_dir: str | Path) -> "Run":
        run_dir = Path(run_dir)
        for name in ("config.yaml", "results.json"):
            if not (run_dir / name).is_file():
                raise RunFolderError(f"'{run_dir}' has no {name}: it is not a finished training run folder")
        config = io.load_yaml(run_dir / "config.yaml")
        return cls(run_dir, config, json.loads((run_dir / "results.json").read_text()), config_hash(config))

    @property
    def train_seconds(self) -> float:
        """Seconds spent in training epochs (recorded by newer runs, else summed from metrics.jsonl)."""
        if "train_seconds" in self.results:
            return float(self.results["train_seconds"])
        return float(sum(e["train_seconds"] for e in epoch_records(self.run_dir, self.results["epochs_run"])))


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """The runs named by ``paths``: a run folder itself, or every run folder below a folder that is not one."""
    runs: list[Run] = []
    for path in map(Path, paths):
        if (path / "results.json").is_file():
            runs.append(Run.load(path))
            continue
        if not path.is_dir():
            raise RunFolderError(f"'{path}' is not a folder")
        found = sorted(p.parent for p in path.rglob("results.json") if (p.parent / "config.yaml").is_file())
        if not found:
            raise RunFolderError(f"'{path}' is not a finished run folder and holds none below it "
                                 "(a run folder has config.yaml and results.json)")
        runs.extend(Run.load(p) for p in found)
    unique = {run.run_dir.resolve(): run for run in runs}
    return list(unique.values())


@dataclass
class Group:
    """The runs of one configuration on one dataset (differing only in their seeds)."""

    runs: list[Run]
    label: str = ""

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def model(self) -> str:
        return self.first.results["model"]

    @property
    def dataset(self) -> str:
        return self.first.results["dataset"]

    @property
    def seeds(self) -> list:
        return [run.results.get("seed") for run in self.runs]

    def values(self, split: str, metric: str) -> np.ndarray:
        return np.array([run.results[split][metric] for run in self.runs], dtype=np.float64)

    def per_user(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, the metric of each user averaged over this group's runs)."""
        users, columns = None, []
        for run in self.runs:
            saved = read_per_user(run.run_dir)
            if metric not in saved.values:
                raise RunFolderError(f"'{run.run_dir}' saved no per-user {metric}; it has {sorted(saved.values)}")
            if users is None:
                users = saved.users
            elif not np.array_equal(users, saved.users):
                raise RunFolderError(f"runs '{self.first.run_dir}' and '{run.run_dir}' share a config but evaluated "
                                     "different users")
            columns.append(saved.values[metric])
        return users, np.mean(columns, axis=0)


def group_runs(runs: Sequence[Run], labels: Mapping[Path, str] | None = None) -> list[Group]:
    """Runs with the same dataset and config hash form a group, in order of first appearance,
    runs sorted by seed. A group is labelled by ``labels[run folder]`` of its first run when
    given, else by its model name, with the hash where a model has several rows."""
    groups: dict[tuple[str, str], Group] = {}
    for run in runs:
        groups.setdefault((run.results["dataset"], run.config_hash), Group([])).runs.append(run)
    result = list(groups.values())
    labels = {Path(path).resolve(): label for path, label in (labels or {}).items()}
    for group in result:
        group.runs.sort(key=lambda run: (str(run.results.get("seed")), str(run.run_dir)))
        clash = sum(g.model == group.model and g.dataset == group.dataset for g in result) > 1
        group.label = labels.get(group.first.run_dir.resolve()) or (
            f"{group.model} ({group.first.config_hash})" if clash else group.model)
    return result


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN entries are left out of the family)."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def paired_tests(candidate: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Mean per-user difference and the two-sided Wilcoxon signed-rank and paired t-test p-values."""
    difference = candidate - baseline
    if not np.any(difference):
        return {"mean_difference": 0.0, "wilcoxon_p": 1.0, "t_test_p": 1.0}
    t_p = float(stats.ttest_rel(candidate, baseline).pvalue)
    return {"mean_difference": float(difference.mean()),
            "wilcoxon_p": float(stats.wilcoxon(candidate, baseline).pvalue),
            "t_test_p": 1.0 if math.isnan(t_p) else t_p}


@dataclass
class Comparison:
    """The rows (groups), the compared metrics, the baseline and the tests against it.

    ``tests[(row index, metric)]`` holds ``mean_difference``, ``wilcoxon_p``, ``t_test_p`` and
    their Holm adjustments ``wilcoxon_holm``, ``t_test_holm``; rows without per-user files
    or on another dataset than the baseline are not tested (``untested`` says why).
    """

    groups: list[Group]
    metrics: list[str]
    baseline: int | None = None
    alpha: float = 0.05
    tests: dict[tuple[int, str], dict[str, float]] = field(default_factory=dict)
    untested: dict[int, str] = field(default_factory=dict)

    def marks(self, row: int, metric: str) -> str:
        test = self.tests.get((row, metric))
        if test is None:
            return ""
        return ((WILCOXON_MARK if test["wilcoxon_holm"] < self.alpha else "")
                + (T_TEST_MARK if test["t_test_holm"] < self.alpha else ""))

    def records(self) -> list[dict]:
        """One flat record per row (the CSV): identity, timings, mean/std of every metric, tests."""
        out = []
        for row, group in enumerate(self.groups):
            record = {"label": group.label, "model": group.model, "dataset": group.dataset,
                      "config_hash": group.first.config_hash, "seeds": " ".join(map(str, group.seeds)),
                      "n_seeds": len(group.runs), "baseline": row == self.baseline,
                      "best_epoch_mean": _mean([r.results["best_epoch"] for r in group.runs]),
                      "epochs_run_mean": _mean([r.results["epochs_run"] for r in group.runs]),
                      "train_seconds_mean": _mean([r.train_seconds for r in group.runs])}
            for split in ("valid", "test"):
                for metric in self.metrics:
                    values = group.values(split, metric)
                    record[f"{split}:{metric}:mean"] = float(values.mean())
                    record[f"{split}:{metric}:std"] = _std(values)
            for metric in self.metrics:
                test = self.tests.get((row, metric), {})
                for key in ("mean_difference", "wilcoxon_p", "wilcoxon_holm", "t_test_p", "t_test_holm"):
                    record[f"test:{metric}:{key}"] = test.get(key)
            out.append(record)
        return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else math.nan


def _choose_metrics(groups: list[Group], metrics: Sequence[str] | None) -> list[str]:
    common = set.intersection(*(set(run.results["test"]) & set(run.results["valid"])
                                for group in groups for run in group.runs))
    if metrics:
        for group in groups:
            for run in group.runs:
                missing = [m for m in metrics if m not in run.results["test"] or m not in run.results["valid"]]
                if missing:
                    raise ConfigError(f"run '{run.run_dir}' has no {', '.join(missing)}; its metrics are "
                                      f"{', '.join(run.results['test'])}")
        return list(metrics)
    chosen = [m for m in DEFAULT_METRICS if m in common]
    return chosen or sorted(common)[:2]


def compare(paths: Iterable[str | Path], baseline: str | Path | None = None, metrics: Sequence[str] | None = None,
            alpha: float = 0.05, labels: Mapping[Path, str] | None = None) -> Comparison:
    """Group the runs under ``paths`` and test every row against the baseline run's row
    (``labels``: row labels by run folder, see :func:`group_runs`)."""
    paths = list(paths)
    if baseline is not None:
        paths.append(baseline)
    groups = group_runs(find_runs(paths), labels)
    comparison = Comparison(groups, _choose_metrics(groups, metrics), alpha=alpha)
    if baseline is None:
        return comparison
    base_dir = Path(baseline).resolve()
    if not (base_dir / "results.json").is_file():
        raise RunFolderError(f"--baseline '{baseline}' is not a finished run folder")
    comparison.baseline = next(i for i, g in enumerate(groups) if any(r.run_dir.resolve() == base_dir for r in g.runs))
    _test_against_baseline(comparison)
    return comparison


def _test_against_baseline(comparison: Comparison) -> None:
    base = comparison.groups[comparison.baseline]
    rows = []
    for row, group in enumerate(comparison.groups):
        if row == comparison.baseline:
            continue
        if group.first.config["dataset"] != base.first.config["dataset"]:
            comparison.untested[row] = "another dataset than the baseline"
        elif not all((run.run_dir / "per_user_test.npz").is_file() for run in group.runs + base.runs):
            comparison.untested[row] = "a run without per-user test metrics"
        else:
            rows.append(row)
    for metric in comparison.metrics:
        base_users, base_values = (base.per_user(metric) if rows else (None, None))
        for row in rows:
            users, values = comparison.groups[row].per_user(metric)
            if not np.array_equal(users, base_users):
                raise RunFolderError(f"'{comparison.groups[row].first.run_dir}' and the baseline evaluated different "
                                     "users; paired tests need runs on the same dataset split")
            comparison.tests[(row, metric)] = paired_tests(values, base_values)
        for test in ("wilcoxon", "t_test"):
            adjusted = holm([comparison.tests[(row, metric)][f"{test}_p"] for row in rows])
            for row, p in zip(rows, adjusted):
                comparison.tests[(row, metric)][f"{test}_holm"] = p


def _cell(values: np.ndarray) -> str:
    return f"{values.mean():.4f}" if values.size == 1 else f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    if value == 0.0:
        return "< 1e-300"  # below the smallest float the test statistics' tails resolve
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def to_markdown(comparison: Comparison) -> str:
    """The comparison table, then the paired tests and the legend."""
    metrics, groups = comparison.metrics, comparison.groups
    several_datasets = len({g.dataset for g in groups}) > 1
    head = ["model", *(["dataset"] if several_datasets else []), "config", "seeds", "best epoch", "epochs",
            "train s", *(f"valid {m}" for m in metrics), *(f"test {m}" for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, group in enumerate(groups):
        label = f"**{group.label}** (baseline)" if row == comparison.baseline else group.label
        cells = [label, *([group.dataset] if several_datasets else []), f"`{group.first.config_hash}`",
                 str(len(group.runs)), f"{_mean([r.results['best_epoch'] for r in group.runs]):.1f}",
                 f"{_mean([r.results['epochs_run'] for r in group.runs]):.1f}",
                 f"{_mean([r.train_seconds for r in group.runs]):.1f}",
                 *(_cell(group.values("valid", m)) for m in metrics),
                 *(_cell(group.values("test", m)) + comparison.marks(row, m) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± sample std over seeds ({'; '.join(_seed_note(g) for g in groups if len(g.runs) > 1) or 'one seed per row'})."]
    if comparison.baseline is None:
        return "\n".join(lines) + "\n"
    base = groups[comparison.baseline]
    lines += ["", f"Paired tests over users against **{base.label}** (per-user test metric averaged over each row's "
              "seeds; two-sided; Holm-adjusted across rows per metric and test). "
              f"{WILCOXON_MARK}: Wilcoxon signed-rank p < {comparison.alpha}; {T_TEST_MARK}: paired t-test "
              f"p < {comparison.alpha}.", "",
              "| model | metric | mean difference | Wilcoxon p | Wilcoxon p (Holm) | t-test p | t-test p (Holm) |",
              "|---|---|---|---|---|---|---|"]
    tested = sorted({row for row, _ in comparison.tests})
    for row, metric in ((row, metric) for row in tested for metric in comparison.metrics):
        test = comparison.tests[(row, metric)]
        lines.append(f"| {groups[row].label} | test {metric} | {test['mean_difference']:+.4f} | "
                     f"{_p(test['wilcoxon_p'])} | {_p(test['wilcoxon_holm'])} | {_p(test['t_test_p'])} | "
                     f"{_p(test['t_test_holm'])} |")
    for row, reason in sorted(comparison.untested.items()):
        lines.append(f"| {groups[row].label} | all | not tested: {reason} | | | | |")
    return "\n".join(lines) + "\n"


def _seed_note(group: Group) -> str:
    return f"{group.label}: seeds {', '.join(map(str, group.seeds))}"


def to_csv(comparison: Comparison) -> str:
    records = comparison.records()
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def plot(comparison: Comparison, path: str | Path) -> Path:
    """One panel per test metric: a bar per row (mean over seeds) with the seed std as error bar."""
    from matplotlib.figure import Figure

    groups, metrics = comparison.groups, comparison.metrics
    several_datasets = len({g.dataset for g in groups}) > 1
    labels = [f"{g.label}\n{g.dataset}" if several_datasets else g.label for g in groups]
    figure = Figure(figsize=(max(4.0, 0.9 * len(groups) + 1.5) * len(metrics), 3.8))
    for index, metric in enumerate(metrics):
        axis = figure.add_subplot(1, len(metrics), index + 1)
        means = [g.values("test", metric).mean() for g in groups]
        errors = [np.nan_to_num(_std(g.values("test", metric))) for g in groups]
        colours = ["tab:grey" if row == comparison.baseline else "tab:blue" for row in range(len(groups))]
        axis.bar(range(len(groups)), means, yerr=errors, capsize=4, color=colours)
        for row in range(len(groups)):
            mark = comparison.marks(row, metric)
            if mark:
                axis.annotate(mark, (row, means[row] + errors[row]), ha="center", va="bottom")
        axis.set_xticks(range(len(groups)), labels, rotation=30, ha="right", fontsize=8)
        axis.set_title(f"test {metric} (mean ± std over seeds)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path


def write(comparison: Comparison, path: str | Path) -> Path:
    """Write the comparison as markdown (``.md``), CSV (``.csv``) or a bar plot (``.png``)."""
    path = Path(path)
    if path.suffix == ".md":
        io.write_text(path, to_markdown(comparison))
    elif path.suffix == ".csv":
        io.write_text(path, to_csv(comparison))
    elif path.suffix == ".png":
        plot(comparison, path)
    else:
        raise ConfigError(f"--out '{path}': the file name must end in .md, .csv or .png")
    return path
