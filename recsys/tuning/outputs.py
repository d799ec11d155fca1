"""What a study leaves in its folder once its workers stop.

- ``best.yaml``: the complete run config of the best trial, runnable as is with
  ``recsys train --config best.yaml`` (same seed, so it reproduces the trial's valid metric);
- ``trials.csv``: one row per trial (number, state, objective, parameters, best epoch, the
  last reported epoch, valid and test metrics of completed trials);
- ``summary.json``: counts by state, the best trial with its valid and test metrics;
- plots of the optimisation history, parameter importances (PED-ANOVA, Optuna's default),
  parallel coordinates and intermediate values: PNG with matplotlib, else HTML with plotly,
  else none (a warning says what to install).
"""
from __future__ import annotations

import importlib.util
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from recsys import io
from recsys.compose import resolve
from recsys.tuning.spec import StudySpec
from recsys.tuning.worker import trial_dir

log = logging.getLogger("recsys.tune")

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")


def best_config(spec: StudySpec, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The best trial's run config with the base config's output, cache and progress settings."""
    config = spec.trial_config(spec.space.decode(trial.params))
    base = resolve(spec.base)
    for key in ("output_dir", "run_name", "cache_dir"):
        config[key] = base[key]
    config["train"]["progress"] = base["train"]["progress"]
    return config


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "last_step": trial.last_step,
            "best_epoch": trial.user_attrs.get("best_epoch"),
            "retry_of": trial.system_attrs.get("failed_trial"),
        }
        row.update({f"param:{k}": v for k, v in trial.params.items()})
        for split in ("valid", "test"):
            row.update({f"{split}:{k}": v for k, v in trial.user_attrs.get(split, {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def summary(spec: StudySpec, study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    out: dict[str, Any] = {"study": spec.name, "metric": f"valid {spec.metric}", "trials": len(trials),
                           **{state: counts.get(state, 0) for state in ("complete", "pruned", "fail", "running",
                                                                         "waiting")}}
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        out["best"] = {"number": best.number, "value": best.value, "params": spec.space.decode(best.params),
                       "best_epoch": best.user_attrs.get("best_epoch"),
                       "valid": best.user_attrs.get("valid"), "test": best.user_attrs.get("test"),
                       "run_dir": str(trial_dir(spec, best.number))}
    return out


def _plot_backend() -> str | None:
    if importlib.util.find_spec("matplotlib") is not None:
        return "matplotlib"
    if importlib.util.find_spec("plotly") is not None:
        return "plotly"
    return None


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Write the study plots; a plot Optuna cannot draw yet (too few trials) is skipped with a note."""
    backend = _plot_backend()
    if backend is None:
        log.warning("no plots written: install matplotlib (PNG) or plotly (HTML)")
        return []
    written = []
    if backend == "matplotlib":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as vis
    else:
        from optuna import visualization as vis
    for name in PLOTS:
        path = folder / f"{name}.{'png' if backend == 'matplotlib' else 'html'}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API notes, degenerate axis limits
                figure = getattr(vis, f"plot_{name}")(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.warning("plot %s skipped: %s", name, exc)
            continue
        with io.atomic_path(path) as tmp:
            if backend == "matplotlib":
                fig = figure.figure if hasattr(figure, "figure") else figure.flat[0].figure
                fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
                plt.close(fig)
            else:
                figure.write_html(str(tmp), include_plotlyjs="cdn")
        written.append(path)
    return written


def write_outputs(spec: StudySpec, study: optuna.Study) -> dict[str, Any]:
    """Write best.yaml, trials.csv, summary.json and plots; returns the summary."""
    folder = spec.study_dir
    result = summary(spec, study)
    if "best" in result:
        best = study.best_trial
        header = (f"# Best trial {best.number} of study '{spec.name}': valid {spec.metric} = {best.value:.6f}.\n"
                  f"# Train it with: recsys train --config {folder / 'best.yaml'}\n")
        io.write_text(folder / "best.yaml", header + io.dump_yaml(best_config(spec, best)))
    with io.atomic_path(folder / "trials.csv") as tmp:
        trials_frame(study).to_csv(tmp, index=False)
    result["plots"] = [str(p) for p in write_plots(study, folder)]
    io.write_json(folder / "summary.json", result)
    return result
