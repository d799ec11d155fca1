"""A 30-trial TPE study of LightGCN on Amazon Baby with median pruning (issue 6).

Searches the space of ``configs/tune/lightgcn_baby.yaml`` (LightGCN paper: layers 1..4, L2
weight 1e-6..1e-2) with every trial bounded so the study fits in about an hour on two shared
CPU cores: at most ``--epochs`` epochs, validation every ``--eval-every`` epochs, early stop
after ``--patience`` evaluations without progress, batch 8192 at lr 1e-2 (converges in
about ten epochs instead of hundreds), ``--workers`` processes with one thread each. The
bounds are recorded in the result next to the trial counts, the wall time and the best
trial's valid and test Recall@20 (the test value is read, never used to choose).

    python bench/tune_lightgcn_baby.py                  # writes bench/results/tune_lightgcn_baby.json
    python bench/tune_lightgcn_baby.py --trials 4 --epochs 5 --out /tmp/smoke.json
Re-running resumes the study (its folder: studies/lightgcn_baby_bench).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment  # noqa: E402

import optuna  # noqa: E402
import torch  # noqa: E402

from recsys import io  # noqa: E402
from recsys.tuning.runner import run_study  # noqa: E402
from recsys.tuning.spec import load_spec  # noqa: E402

STUDY_FILE = REPO / "configs" / "tune" / "lightgcn_baby.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--timeout", type=float, default=3300, help="no trial starts after this many seconds")
    parser.add_argument("--study", default="lightgcn_baby_bench")
    parser.add_argument("--output-dir", default=str(REPO / "studies"))
    parser.add_argument("--out", default=str(RESULTS / "tune_lightgcn_baby.json"))
    args = parser.parse_args()

    data = SHARED_DATA / "amazon" / "baby"
    if not data.is_dir():
        sys.exit(f"Amazon Baby is missing at {data} (set RECSYS_SHARED_DATA)")
    bounds = {"epochs": args.epochs, "eval_every": args.eval_every, "patience": args.patience,
              "batch_size": args.batch_size, "lr": args.lr}
    overrides = {"dataset": {"path": str(data)}, "train": dict(bounds)}
    os.chdir(REPO)
    spec = load_spec(STUDY_FILE, trials=args.trials, workers=args.workers, study=args.study,
                     timeout=args.timeout, overrides=overrides)
    spec.study_dir = Path(args.output_dir) / spec.name
    spec.pruner = {"name": "median", "n_startup_trials": 4, "n_warmup_steps": args.eval_every}

    started = time.time()
    load_start = os.getloadavg()
    summary = run_study(spec)
    wall = time.time() - started

    best = summary.get("best") or {}
    result = {
        "what": f"{args.trials}-trial TPE study of LightGCN on Amazon Baby (MMRec split) with median pruning",
        "study_file": str(STUDY_FILE.relative_to(REPO)),
        "study_dir": str(spec.study_dir),
        "commit": commit(),
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "space": spec.space_raw,
        "bounds": {**bounds, "workers": spec.workers, "timeout_s": args.timeout,
                   "torch_threads_per_worker": max(1, (os.cpu_count() or 1) // spec.workers)
                   if spec.workers > 1 else torch.get_num_threads()},
        "trials": {k: summary[k] for k in ("trials", "complete", "pruned", "fail", "running", "waiting")},
        "finished": summary["complete"] + summary["pruned"],
        "wall_seconds": round(wall, 1),
        "best": {
            "number": best.get("number"),
            "params": best.get("params"),
            "best_epoch": best.get("best_epoch"),
            "valid_recall@20": best.get("value"),
            "test_recall@20": (best.get("test") or {}).get("recall@20"),
            "test_ndcg@20": (best.get("test") or {}).get("ndcg@20"),
        },
        "published_lightgcn_baby_test_recall@20": 0.0754,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                    "torch": torch.__version__, "optuna": optuna.__version__},
        "environment": environment(),
    }
    io.write_json(Path(args.out), result)
    print(f"{result['finished']} finished ({summary['complete']} complete, {summary['pruned']} pruned) in "
          f"{wall / 60:.1f} min; best valid Recall@20 {best.get('value')} (test {result['best']['test_recall@20']})")


if __name__ == "__main__":
    main()
