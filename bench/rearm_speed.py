"""REARM training and evaluation speed on Baby- and Clothing-sized inputs (issue 3, item 4b).

The real Baby / Clothing splits (../shared/data/amazon) with stand-in item features of the
published sizes (image 4096-d, text 384-d; seeded standard normal, since the MMRec features
are not available here) and the published hyper-parameters (configs/experiments/rearm_*.yaml).
Each measurement runs in its own process (peak memory is per process) with a fixed number of
torch threads: one epoch through the project's Trainer (AdamW, batch 2048, negatives drawn
per epoch), one full validation evaluation, and a torch.profiler table of one training step.
Graphs are built (or read from the cache) before the clock starts; their time is recorded.
On a shared machine the wall time of an epoch includes waiting for a core; the epoch's CPU
time (``cpu_seconds_per_epoch``, the process's user + system time) is what it costs on an idle
core when one thread is used, so both are recorded, with the load average.

Reference: the public REARM code needs 878 s per Baby epoch on one core (7.4 GB peak).

    python bench/rearm_speed.py                          # baby and clothing, 1 and 2 threads
    python bench/rearm_speed.py --datasets baby --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment, peak_memory_mb, read_json  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "rearm.json"
FEATURE_DIMS = {"image": 4096, "text": 384}
REFERENCE = {"baby": {"seconds_per_epoch": 878.0, "threads": 1, "peak_memory_gb": 7.4}}


def stand_in_dataset(name: str):
    from recsys.data import load_dataset

    dataset = load_dataset({"format": "rearm", "path": str(SHARED_DATA / "amazon" / name), "name": name,
                            "modalities": []})
    rng = np.random.default_rng(0)
    dataset.features = {m: rng.standard_normal((dataset.n_items, dim), dtype=np.float32)
                        for m, dim in FEATURE_DIMS.items()}
    return dataset


def profile_step(model, task, optimizer, rows: int = 14) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    users, pos, neg = next(iter(task.batches(1)))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        losses = model.loss(users, pos, neg)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
             "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in events[:rows]]


def measure(name: str, threads: int, cache: Path) -> dict:
    from recsys.compose import build, resolve
    from recsys.io import load_yaml
    from recsys.training.trainer import Trainer

    torch.set_num_threads(threads)
    raw = load_yaml(REPO / "configs" / "experiments" / f"rearm_{name}.yaml")
    raw["train"].update(epochs=1, eval_every=1, progress=False)
    raw.update(cache_dir=str(cache), device="cpu")
    config = resolve(raw)
    dataset = stand_in_dataset(name)
    started = time.perf_counter()
    run = build(config, torch.device("cpu"), dataset)
    model, task = run.model, run.task
    setup_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, task, config["train"], run_dir)
        trainer.fit()
        record = json.loads((Path(run_dir) / "metrics.jsonl").read_text().splitlines()[-1])
        profile = profile_step(model, task, trainer.optimizer)
    batches = -(-dataset.train.shape[1] // int(config["train"]["batch_size"]))
    return {
        "dataset": f"{name} split, stand-in features {FEATURE_DIMS}",
        "users": dataset.n_users, "items": dataset.n_items, "train": int(dataset.train.shape[1]),
        "threads": threads,
        "seconds_per_epoch": record["train_seconds"],
        "cpu_seconds_per_epoch": record["train_cpu_seconds"],
        "seconds_per_batch": record["train_seconds"] / batches,
        "seconds_per_evaluation": record["eval_seconds"],
        "setup_seconds_graphs_and_model": setup_seconds,
        "peak_memory_mb": peak_memory_mb(),
        "profile_one_step": profile,
        "load_average": list(os.getloadavg()),
        "environment": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["baby", "clothing"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "recsys")
    parser.add_argument("--single", nargs=2, metavar=("DATASET", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single[0], int(args.single[1]), args.cache)))
        return
    for name in args.datasets:
        if not (SHARED_DATA / "amazon" / name).is_dir():
            sys.exit(f"{SHARED_DATA / 'amazon' / name} is absent; set RECSYS_SHARED_DATA")
        for threads in args.threads:
            out = subprocess.run([sys.executable, __file__, "--single", name, str(threads), "--cache", str(args.cache)],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if name in REFERENCE:
                reference = REFERENCE[name]["seconds_per_epoch"]
                result["speedup_vs_reference_one_core"] = reference / result["seconds_per_epoch"]
                result["speedup_vs_reference_one_core_by_cpu_time"] = reference / result["cpu_seconds_per_epoch"]
            results = read_json(OUT, {})
            results.setdefault("speed", {})[f"{name}/{threads}-thread"] = {**result, "commit": commit()}
            results["speed"]["reference"] = REFERENCE
            io.write_json(OUT, results)
            print(f"{name} {threads} thread(s): {result['seconds_per_epoch']:.1f} s/epoch, "
                  f"{result['seconds_per_evaluation']:.1f} s/eval, {result['peak_memory_mb']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
