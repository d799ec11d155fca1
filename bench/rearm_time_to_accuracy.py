"""REARM time to accuracy on the parity data (issue 13, item 4): the fast recipe against the
reference code's 45 epochs and against the published settings trained to convergence.

Three runs on the input of ``bench/parity_data.py`` (the 3,000 most popular Sports items, real
text and seeded 4096-d stand-in image features), all with the published Sports hyper-parameters
and the published semantics (trained user interest):

- ``reference``: read from ``bench/results/rearm_parity.json`` (the reference code, 45 epochs,
  written by ``bench/rearm_parity.py`` on an idle machine). Its wall time counts the whole
  process (start-up, graph building, training and the reference's own evaluation after every
  epoch); the target is its valid Recall@20 after epoch 45.
- ``recipe``: ``configs/experiments/rearm_sports_fast.yaml`` (the recipe: the published model at a
  20x larger learning rate), trained to early stopping (valid Recall@20 every epoch, patience
  20) in a fresh process. The wall clock starts when the process is launched, so start-up,
  data loading and graph building count; the time to accuracy is the wall clock at which an
  evaluated valid Recall@20 first reaches the target.
- ``published``: ``configs/experiments/rearm_sports.yaml`` (lr 5e-5) trained to early stopping
  the same way (hundreds of epochs; an accuracy run, it may share the machine, and may be
  recorded with ``--published-run`` from a run folder trained earlier).

Pass: time to accuracy <= 1/10 of the reference's 45-epoch wall time, and the recipe's test
Recall@20 and NDCG@20 at its best valid epoch are not lower than the published settings'.
Written to ``bench/results/rearm_time_to_accuracy.json`` with a plot of valid Recall@20 against
wall-clock seconds (``rearm_time_to_accuracy.png``) and a section of bench/README.md.

    python bench/rearm_time_to_accuracy.py --threads 2 --work /tmp/rearm_tta      # alone on the machine
    python bench/rearm_time_to_accuracy.py --only published --work /tmp/rearm_tta  # long, may share
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment, read_json, write_readme_section  # noqa: E402
from parity_data import build_parity_dataset  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "rearm_time_to_accuracy.json"
PARITY = RESULTS / "rearm_parity.json"
CONFIGS = {"recipe": REPO / "configs" / "experiments" / "rearm_sports_fast.yaml",
           "published": REPO / "configs" / "experiments" / "rearm_sports.yaml"}
BEGIN, END = "<!-- rearm_time_to_accuracy:begin -->", "<!-- rearm_time_to_accuracy:end -->"
TARGET_EPOCH = 45
SPEED_GOAL = 10.0


def overrides(data: Path, run_dir: Path, threads: int, seed: int, max_epochs: int | None) -> list[str]:
    """The parity input in place of the dataset folder; one evaluation per epoch, patience 20."""
    sets = [f"dataset.path={data}", "dataset.name=parity", f"output_dir={run_dir.parent}", f"run_name={run_dir.name}",
            f"threads={threads}", f"seed={seed}", "device=cpu", "train.eval_every=1", "train.patience=20",
            "train.progress=false", f"cache_dir={run_dir.parent / 'cache'}"]
    return sets + ([f"train.epochs={max_epochs}"] if max_epochs else [])


def train_timed(name: str, data: Path, work: Path, threads: int, seed: int, max_epochs: int | None) -> dict:
    """Train ``CONFIGS[name]`` in a fresh process; the wall clock of each evaluated epoch is
    taken when its line appears in metrics.jsonl, counted from the launch of the process."""
    run_dir = work / name
    metrics = run_dir / "metrics.jsonl"
    if (run_dir / "results.json").exists():
        return read_json(work / f"{name}.timeline.json", None)
    command = [sys.executable, "-m", "recsys", "train", "--config", str(CONFIGS[name]), "--set",
               *overrides(data, run_dir, threads, seed, max_epochs)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    seen, timeline = 0, []
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    while True:
        finished = process.poll() is not None
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            for line in lines[seen:]:
                record = json.loads(line)
                timeline.append({"epoch": record["epoch"], "wall_seconds": time.perf_counter() - started,
                                 "valid_recall@20": record.get("valid/recall@20"),
                                 "valid_ndcg@20": record.get("valid/ndcg@20"),
                                 "train_seconds": record["train_seconds"], "eval_seconds": record.get("eval_seconds")})
            seen = len(lines)
        if finished:
            break
        time.sleep(0.2)
    if process.returncode != 0:
        raise SystemExit(f"{name} run failed with exit status {process.returncode}: {' '.join(command)}")
    result = {"command": command, "wall_seconds": time.perf_counter() - started, "timeline": timeline,
              "results": read_json(run_dir / "results.json", None), "load_after": os.getloadavg()}
    io.write_json(work / f"{name}.timeline.json", result)
    return result


def adopt(run_dir: Path) -> dict:
    """A run folder trained earlier (the published settings take hours): its per-epoch valid
    metrics and times; wall clock = the sum of its epochs' train and eval seconds."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    clock, timeline = 0.0, []
    for record in records:
        clock += record["train_seconds"] + record.get("eval_seconds", 0.0)
        timeline.append({"epoch": record["epoch"], "wall_seconds": clock,
                         "valid_recall@20": record.get("valid/recall@20"), "valid_ndcg@20": record.get("valid/ndcg@20"),
                         "train_seconds": record["train_seconds"], "eval_seconds": record.get("eval_seconds")})
    return {"adopted_from": str(run_dir), "timeline": timeline, "results": read_json(run_dir / "results.json", None),
            "config": io.load_yaml(run_dir / "config.yaml")}


def reference_side(parity: dict) -> dict:
    side = parity["sides"]["reference"]
    epochs = side["epochs"]
    clock = side["timing"]["setup_seconds"] or 0.0
    timeline = []
    for record in epochs:
        clock += record["train_seconds"] + record.get("eval_seconds", 0.0)
        timeline.append({"epoch": record["epoch"], "wall_seconds": clock,
                         "valid_recall@20": record["valid"]["recall@20"], "valid_ndcg@20": record["valid"]["ndcg@20"]})
    return {"timeline": timeline, "wall_seconds": side["wall_seconds"], "commit": parity.get("reference_commit"),
            "load": side.get("load"), "threads": parity["threads"]}


def time_to(timeline: list[dict], target: float) -> dict | None:
    for point in timeline:
        if point["valid_recall@20"] is not None and point["valid_recall@20"] >= target:
            return point
    return None


def verdict(results: dict) -> dict:
    reference, recipe, published = (results["runs"].get(k) for k in ("reference", "recipe", "published"))
    out: dict = {}
    if reference and recipe:
        target = next(p for p in reference["timeline"] if p["epoch"] == TARGET_EPOCH)["valid_recall@20"]
        budget = reference["wall_seconds"] / SPEED_GOAL
        hit = time_to(recipe["timeline"], target)
        out["time"] = {"target_valid_recall@20": target, "reference_wall_seconds": reference["wall_seconds"],
                       "budget_seconds": budget, "reached_at": hit,
                       "ratio": reference["wall_seconds"] / hit["wall_seconds"] if hit else None,
                       "pass": bool(hit and hit["wall_seconds"] <= budget)}
    if recipe and published and recipe.get("results") and published.get("results"):
        own, base = recipe["results"]["test"], published["results"]["test"]
        out["accuracy"] = {metric: {"recipe": own[metric], "published": base[metric],
                                    "pass": own[metric] >= base[metric]} for metric in ("recall@20", "ndcg@20")}
        out["accuracy"]["best_epochs"] = {"recipe": recipe["results"]["best_epoch"],
                                          "published": published["results"]["best_epoch"]}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, run in results["runs"].items():
        points = [p for p in run["timeline"] if p["valid_recall@20"] is not None]
        ax.plot([p["wall_seconds"] for p in points], [p["valid_recall@20"] for p in points], label=name,
                marker="." if len(points) < 60 else None)
    goal = results["verdict"].get("time")
    if goal:
        ax.axhline(goal["target_valid_recall@20"], color="grey", lw=0.8, ls="--",
                   label=f"reference after epoch {TARGET_EPOCH}")
        ax.axvline(goal["budget_seconds"], color="grey", lw=0.8, ls=":", label="1/10 of the reference's time")
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds since launch (log)")
    ax.set_ylabel("valid Recall@20")
    ax.set_title("REARM on the parity data: valid Recall@20 against time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def markdown(results: dict) -> str:
    lines = [BEGIN, "## REARM time to accuracy (`rearm_time_to_accuracy.py`)", ""]
    runs = []
    for name in ("recipe", "published"):
        env = ((results["runs"].get(name) or {}).get("results") or {}).get("environment")
        if env:
            runs.append(f"{name} run: commit {env['commit']}{'+changes' if env.get('uncommitted_changes') else ''}, "
                        f"{env['date']}, {env['torch_threads']} torch thread(s), load average at its end "
                        f"{env['load_average'][0]:.2f}")
    lines.append(f"Parity data of `rearm_parity.py`; CPU count {results['cpu_count']}; "
                 + "; ".join(runs) + " (the recipe is the timed run, alone on the machine; the published run is "
                 "an accuracy run). Recipe: "
                 f"`{CONFIGS['recipe'].relative_to(REPO)}` (train: "
                 f"{', '.join(f'{k} {v}' for k, v in results['recipe_train'].items())}); published: "
                 f"`{CONFIGS['published'].relative_to(REPO)}`. Plot: `results/{OUT.with_suffix('.png').name}`.")
    lines.append("")
    goal, accuracy = results["verdict"].get("time"), results["verdict"].get("accuracy")
    if goal:
        hit = goal["reached_at"]
        lines += ["| | wall seconds | valid R@20 |", "|---|---|---|",
                  f"| reference, {TARGET_EPOCH} epochs (start-up included) | {goal['reference_wall_seconds']:.1f} | "
                  f"{goal['target_valid_recall@20']:.4f} |",
                  f"| recipe, first epoch at or above it (epoch {hit['epoch'] if hit else '-'}) | "
                  f"{hit['wall_seconds'] if hit else float('nan'):.1f} | "
                  f"{hit['valid_recall@20'] if hit else float('nan'):.4f} |", "",
                  f"Speed-up to the reference's epoch-{TARGET_EPOCH} accuracy: "
                  f"{goal['ratio'] or float('nan'):.1f}x (goal {SPEED_GOAL:.0f}x): "
                  f"{'PASS' if goal['pass'] else 'FAIL'}.", ""]
    if accuracy:
        lines += ["| test at the best valid epoch | recipe | published |", "|---|---|---|"]
        lines += [f"| {m} | {accuracy[m]['recipe']:.4f} | {accuracy[m]['published']:.4f} |"
                  for m in ("recall@20", "ndcg@20")]
        lines += [f"| best epoch | {accuracy['best_epochs']['recipe']} | {accuracy['best_epochs']['published']} |", ""]
        ok = all(accuracy[m]["pass"] for m in ("recall@20", "ndcg@20"))
        lines.append(f"Converged recipe not below the published settings on both metrics: {'PASS' if ok else 'FAIL'}.")
    lines.append(END)
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SHARED_DATA / "amazon" / "sports")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rearm_time_to_accuracy"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--only", choices=["recipe", "published"], action="append",
                        help="run only these sides (default: the recipe; the published settings with --published)")
    parser.add_argument("--published-run", type=Path, help="a run folder of the published settings trained earlier")
    parser.add_argument("--max-epochs", type=int, help="cap for a smoke run")
    parser.add_argument("--parity", type=Path, default=PARITY, help="the parity results with the reference side")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-readme", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = args.work / "data"
    build_parity_dataset(args.source, data, name="parity")
    results = read_json(args.out, {}) if args.out.exists() else {}
    results.update({"commit": commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "threads": args.threads, "cpu_count": os.cpu_count(), "seed": args.seed,
                    "load_before": os.getloadavg(),
                    "recipe_train": {k: v for k, v in io.load_yaml(CONFIGS["recipe"])["train"].items()
                                     if k in ("lr", "batch_size", "optimizer", "weight_decay")}})
    runs = results.setdefault("runs", {})
    parity = read_json(args.parity, None)
    if parity and "reference" in parity.get("sides", {}):
        runs["reference"] = reference_side(parity)
    for name in args.only or ["recipe"]:
        runs[name] = train_timed(name, data, args.work, args.threads, args.seed, args.max_epochs)
    if args.published_run is not None:
        runs["published"] = adopt(args.published_run)
    results["verdict"] = verdict(results)
    results["environment"] = environment()
    io.write_json(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    if not args.no_readme:
        write_readme_section(markdown(results), BEGIN, END)
    print(json.dumps(results["verdict"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
