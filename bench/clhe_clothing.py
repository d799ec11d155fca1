"""CLHE vs popularity and text-kNN bundle completion on the clothing bundles (issue 5).

Data and protocol: configs/experiments/clhe_clothing.yaml (BundleRec Amazon clothing bundles,
seeded 8:1:1 bundle split, half of each valid/test bundle as input, Recall/NDCG@5..80 with
the input items excluded). Every choice is made on VALID Recall@20 only:

- text-kNN: aggregation ``sum`` or ``max`` of the cosine similarities;
- CLHE: the config plus each entry of ``CANDIDATES`` (learning rate), early stopping on
  valid Recall@20 within a run;
- ablations of the chosen CLHE: without item-level contrast (``item_cl_weight = 0``), without
  bundle-level contrast (``bundle_cl_weight = 0``), without both, and with learned ID tokens
  for items in no train bundle (the reference code's behaviour).

Each CLHE run trains in its own process with one torch thread (the CPU is shared; these
models gain little from more); finished runs are kept in the results file, so an interrupted
benchmark resumes.

    python bench/clhe_clothing.py --jobs 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, peak_memory_mb, read_json  # noqa: E402

from recsys import io  # noqa: E402

CONFIG = REPO / "configs" / "experiments" / "clhe_clothing.yaml"
OUT = RESULTS / "clhe_clothing.json"
CANDIDATES = {"lr1e-3": {"train": {"lr": 1e-3}}, "lr3e-3": {"train": {"lr": 3e-3}}}
ABLATIONS = {
    "no_item_cl": {"model": {"item_cl_weight": 0.0}},
    "no_bundle_cl": {"model": {"bundle_cl_weight": 0.0}},
    "no_cl": {"model": {"item_cl_weight": 0.0, "bundle_cl_weight": 0.0}},
    "learned_cold_ids": {"model": {"cold_id_token": "learned"}},
}


def _config(overrides: dict, runs_dir: str, name: str) -> dict:
    from recsys.compose import resolve
    from recsys.config import merge
    from recsys.io import load_yaml

    user = merge(load_yaml(CONFIG), overrides, None)
    user["dataset"]["path"] = str(SHARED_DATA / "bundles" / "clothing")
    return resolve(merge(user, {"run_name": name, "output_dir": runs_dir, "device": "cpu",
                                "train": {"progress": False}}, None))


def run_clhe(spec: dict) -> dict:
    """Child process: train one CLHE configuration, return its measurements."""
    import torch

    from recsys.runs import train

    torch.set_num_threads(1)
    config = _config(spec["overrides"], spec["runs_dir"], spec["key"])
    results = train(config)
    epochs = [json.loads(line) for line in Path(results["run_dir"], "metrics.jsonl").read_text().splitlines()]
    evals = [e["eval_seconds"] for e in epochs if "eval_seconds" in e]
    return {
        "overrides": spec["overrides"], "valid": results["valid"], "test": results["test"],
        "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"],
        "seconds_per_epoch": sum(e["train_seconds"] for e in epochs) / len(epochs),
        "evaluation_seconds": sum(evals) / max(1, len(evals)),
        "total_seconds": results["total_seconds"], "peak_memory_mb": peak_memory_mb(),
    }


def run_baselines() -> dict:
    import torch

    from recsys.data import load_dataset
    from recsys.models.bundle_baselines import FeatureKNNCompletion, PopularityCompletion
    from recsys.training.bundle_task import BundleTask

    torch.set_num_threads(1)
    config = _config({}, "/tmp", "unused")
    dataset = load_dataset(config["dataset"])
    task = BundleTask(dataset, config["train"], config["eval"], int(config["seed"]), torch.device("cpu"))
    out = {"dataset": dataset.stats()}
    models = {"popularity": PopularityCompletion(dataset),
              **{f"text_knn_{agg}": FeatureKNNCompletion(dataset, "text", agg) for agg in ("sum", "max")}}
    for name, model in models.items():
        started = time.perf_counter()
        out[name] = {"valid": task.evaluate(model, "valid"), "test": task.evaluate(model, "test"),
                     "evaluation_seconds": (time.perf_counter() - started) / 2}
    return out


def _best(runs: dict, keys) -> str:
    return max(keys, key=lambda k: runs[k]["valid"]["recall@20"])


def summarise(state: dict, settings: dict) -> dict:
    runs, base = state["runs"], state.get("baselines")
    summary = {"commit": commit(), "protocol": "docs/models/clhe.md; selection on valid Recall@20 only",
               "config": str(CONFIG.relative_to(REPO)), "settings": settings, "baselines": base, "runs": runs}
    if base is not None:
        knn = max(("text_knn_sum", "text_knn_max"), key=lambda k: base[k]["valid"]["recall@20"])
        summary["selected"] = {"popularity": base["popularity"], "text_knn": {"choice": knn, **base[knn]}}
    done = [k for k in CANDIDATES if k in runs]
    if done:
        chosen = _best(runs, done)
        summary.setdefault("selected", {})["clhe"] = {"choice": chosen, **runs[chosen]}
        for name in ABLATIONS:
            if f"{chosen}+{name}" in runs:
                summary["selected"][f"clhe_{name}"] = runs[f"{chosen}+{name}"]
    selected = summary.get("selected", {})
    if {"clhe", "popularity", "text_knn"} <= set(selected):
        summary["clhe_beats_baselines_on_test"] = {
            metric: all(selected["clhe"]["test"][metric] > selected[b]["test"][metric]
                        for b in ("popularity", "text_knn"))
            for metric in ("recall@20", "ndcg@20")}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="CLHE runs trained at once")
    parser.add_argument("--runs-dir", default="/tmp/recsys-bench-clhe")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_clhe(json.loads(args.single))))
        return
    settings = {"jobs": args.jobs, "torch_threads_per_run": 1, "candidates": CANDIDATES, "ablations": ABLATIONS}
    state = read_json(OUT, {})
    state = {"runs": state.get("runs", {}), "baselines": state.get("baselines")}
    if state["baselines"] is None:
        state["baselines"] = run_baselines()
        io.write_json(OUT, summarise(state, settings))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def launch(key: str, overrides: dict) -> None:
        started = time.time()
        spec = {"key": key, "overrides": overrides, "runs_dir": args.runs_dir}
        proc = subprocess.run([sys.executable, __file__, "--single", json.dumps(spec)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{key} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return
        state["runs"][key] = json.loads(proc.stdout.strip().splitlines()[-1])
        io.write_json(OUT, summarise(state, settings))
        print(f"{key}: done in {time.time() - started:.0f} s", flush=True)

    from recsys.config import merge

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda kv: launch(*kv), [(k, v) for k, v in CANDIDATES.items() if k not in state["runs"]]))
        chosen = _best(state["runs"], [k for k in CANDIDATES if k in state["runs"]])
        todo = [(f"{chosen}+{name}", merge(CANDIDATES[chosen], extra, None)) for name, extra in ABLATIONS.items()
                if f"{chosen}+{name}" not in state["runs"]]
        list(pool.map(lambda kv: launch(*kv), todo))
    io.write_json(OUT, summarise(state, settings))


if __name__ == "__main__":
    main()
