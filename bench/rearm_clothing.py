"""REARM on Clothing-sized inputs trained to early stopping with the fast recipe: time per
epoch, time to converge and peak memory (issue 13, items 5 and 6).

Input: the real Amazon Clothing split with seeded stand-in item features of the published sizes
(image 4096-d, text 384-d; ``rearm_speed.stand_in_dataset``). The accuracy is therefore a
stand-in result: it shows that training converges and what it costs at full size, not how well
REARM recommends clothing. Settings: ``configs/experiments/rearm_clothing_fast.yaml`` (the
published Clothing model with trained user-interest tables, at the recipe's lr 1e-3).

Training runs in a child process through ``recsys.runs.train`` in the run folder
``<work>/run``. A sitting ends when the run ends (early stopping, or the epoch cap) or after ``--hours``, when the
child is killed; the next invocation of the same command resumes from ``last.pt`` (the run is
the same as an uninterrupted one), so a long convergence run can be spread over several
sittings. Each sitting records its wall seconds, the seconds from launch to its first epoch
(data, graphs from the cache or built, model), the peak resident memory of the child (which
builds the graphs, trains and evaluates; Linux ``ru_maxrss`` of the waited-for child), the
load average before and after, and its environment. ``results/rearm.json["clothing"]`` holds
the sittings, every epoch's wall and CPU seconds and valid Recall@20 / NDCG@20 (from the run's
metrics.jsonl) and, once the run has ended, its results (test metrics at the best valid epoch).
``--memory-check`` instead starts a fresh one-epoch run in ``<work>/memory-check`` and
records its one sitting as ``clothing["memory_check"]``: data, graphs, an epoch, the
validation, both checkpoints, the best weights reloaded and the test evaluation, all in one
process at one commit, so its peak RSS covers every stage of a run's path (the convergence
run's sittings each cover part of it, some at older commits).
The memory target is ``MEMORY_TARGET_GB`` of peak RSS (the reference code needs
``REFERENCE_PEAK_GB`` on this input, issue 13). ``rearm_report.py`` writes the README
paragraph.

    python bench/rearm_clothing.py --hours 1.5          # run again to continue until early stopping
    python bench/rearm_clothing.py --memory-check --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment, read_json  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "rearm.json"
RECIPE = REPO / "configs" / "experiments" / "rearm_clothing_fast.yaml"
MEMORY_TARGET_GB = 6.0
REFERENCE_PEAK_GB = 19.9


def run_config(threads: int, cache: Path, max_epochs: int | None) -> dict:
    from recsys.compose import resolve

    raw = io.load_yaml(RECIPE)
    raw["dataset"]["path"] = str(SHARED_DATA / "amazon" / "clothing")
    raw["train"]["progress"] = False
    if max_epochs is not None:
        raw["train"]["epochs"] = max_epochs
    raw.update(cache_dir=str(cache), device="cpu", threads=threads)
    return resolve(raw)


def child(args) -> None:
    """Train (or resume) the run; append the launch-to-first-epoch seconds to the sitting file."""
    launched = time.perf_counter()
    from rearm_speed import stand_in_dataset

    from recsys.runs import train

    config = run_config(args.threads, args.cache, args.max_epochs)
    dataset = stand_in_dataset("clothing")
    run_dir = args.work / "run"
    sitting = args.work / "sitting.json"

    def first_epoch(epoch: int, metrics: dict) -> None:
        if not sitting.exists():
            io.write_json(sitting, {"first_epoch": epoch, "seconds_to_first_evaluation": time.perf_counter() - launched,
                                    "data": {"users": dataset.n_users, "items": dataset.n_items,
                                             "train": int(dataset.train.shape[1])}})

    train(config, run_dir, resume=(run_dir / "last.pt").exists(), on_evaluate=first_epoch, dataset=dataset)


def epochs_of(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [{"epoch": r["epoch"], "train_seconds": r["train_seconds"], "train_cpu_seconds": r.get("train_cpu_seconds"),
             "eval_seconds": r.get("eval_seconds"), "valid_recall@20": r.get("valid/recall@20"),
             "valid_ndcg@20": r.get("valid/ndcg@20")} for r in records]


def sitting(args) -> dict:
    marker = args.work / "sitting.json"
    marker.unlink(missing_ok=True)
    before, code = list(os.getloadavg()), commit()
    started, date = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--work", str(args.work), "--threads",
               str(args.threads), "--cache", str(args.cache),
               *(["--max-epochs", str(args.max_epochs)] if args.max_epochs is not None else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    try:
        proc = subprocess.run(command, env=env, timeout=args.hours * 3600, capture_output=True, text=True)
        ended = "run finished" if proc.returncode == 0 else f"exit status {proc.returncode}"
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
    except subprocess.TimeoutExpired:
        ended = "time limit (resume with the same command)"
    first = read_json(marker, {})
    return {"date": date, "commit_at_start": code, "threads": args.threads, "hours_limit": args.hours, "ended_by": ended,
            "wall_seconds": time.perf_counter() - started,
            "seconds_to_first_evaluation": first.get("seconds_to_first_evaluation"),
            "first_epoch": first.get("first_epoch"), "data": first.get("data"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "load_before": before, "load_after": list(os.getloadavg()), "environment": environment()}


def memory_check(args) -> int:
    record = sitting(args)
    results = read_json(args.out, {})
    results.setdefault("clothing", {"sittings": []})["memory_check"] = record
    io.write_json(args.out, results)
    print(f"memory check ended by {record['ended_by']}: peak RSS {record['peak_rss_mb']:.0f} MB", flush=True)
    return 0 if record["ended_by"] == "run finished" else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "rearm_clothing",
                        help="run folder parent; keep it to resume")
    parser.add_argument("--hours", type=float, default=2.0, help="length of this sitting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "recsys")
    parser.add_argument("--max-epochs", type=int, help="cap (smoke runs)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--memory-check", action="store_true",
                        help="a fresh one-epoch run in <work>/memory-check: the peak memory of every stage in one "
                             "process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_check:
        args.work, args.max_epochs = args.work / "memory-check", 1
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return 0
    if args.memory_check:
        return memory_check(args)
    record = sitting(args)
    results = read_json(args.out, {})
    clothing = results.setdefault("clothing", {"sittings": []})
    clothing["sittings"].append(record)
    run_dir = args.work / "run"
    clothing.update(recipe=str(RECIPE.relative_to(REPO)), memory_target_gb=MEMORY_TARGET_GB,
                    reference_peak_gb=REFERENCE_PEAK_GB, epochs=epochs_of(run_dir),
                    config=io.load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").exists() else None,
                    results=read_json(run_dir / "results.json", None))
    io.write_json(args.out, results)
    print(f"sitting ended by {record['ended_by']}: {len(clothing['epochs'])} epochs in all, "
          f"peak RSS {record['peak_rss_mb']:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
