"""Do FAISS kNN graphs change what the models learn? FREEDOM, SIGER and REARM on Amazon Sports
(text features) with exact and with FAISS kNN graphs, same seeds (issue 17).

Backends (``graphs`` config section):

- ``exact``: the exact builders;
- ``faiss``: ``knn_backend: faiss`` with the default parameters. At Sports size (18,357 items,
  35,598 users, below ``flat_max_rows``) the size rule picks the flat index, whose neighbours
  are the exact ones: this row measures only the float32 rounding of FAISS's similarities;
- ``faiss-hnsw``: HNSW forced (``graphs.faiss.index: hnsw``), so the approximation that large
  catalogues get is what is measured.

Fixed budget, the same for every run: seed 2024, batch 8192, learning rate 5e-3 (each model's
optimiser), ``--epochs`` epochs (default 20) with validation every ``--eval-every`` (default 5)
and no early stopping within the budget; test Recall@20 and NDCG@20 at the best-valid
evaluation. FREEDOM with MMRec's defaults, SIGER with ``detach_anchor`` and contrastive sets of
at most 2,048 nodes (the configuration chosen in ``multimodal_sports.py``), REARM with the
published Sports hyper-parameters (``configs/experiments/rearm_sports.yaml``: AdamW, item
k = 5, user k = 25, negatives outside train/valid/test) on the text modality alone, as in
``rearm_sports.py``. One torch thread
per run, ``--jobs`` runs at once, each in its own process; the kNN graphs of each backend are
built once and shared through a graph cache in ``--work-dir``. The graphs themselves are also
compared: per backend, recall of the exact neighbours (item k = 10, user k = 40) and the largest
weight difference on shared entries.

Verdict per model and FAISS backend: |test metric − exact| / exact ≤ 1 % for R@20 and N@20.

    python bench/knn_downstream.py --jobs 2                  # the full comparison (hours: REARM and SIGER)
    python bench/knn_downstream.py --dataset synthetic --epochs 2 --eval-every 1 --out /tmp/check.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, peak_memory_mb, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "knn_downstream.json"
BEGIN, END = "<!-- knn_downstream:begin -->", "<!-- knn_downstream:end -->"
SEED = 2024
TRAIN = {"batch_size": 8192, "lr": 5e-3}
MODELS = {
    "freedom": {"model": {"name": "freedom"}},
    "siger": {"model": {"name": "siger", "detach_anchor": True, "cl_max_nodes": 2048}},
    "rearm": {"file": "configs/experiments/rearm_sports.yaml"},
}
TEXT_ONLY = {"item_modality_weights": {"text": 1.0}, "user_modality_weights": {"text": 1.0}}
BACKENDS = {
    "exact": {"knn_backend": "exact"},
    "faiss": {"knn_backend": "faiss"},
    "faiss-hnsw": {"knn_backend": "faiss", "faiss": {"index": "hnsw"}},
}
TOLERANCE = 0.01
METRICS = ("recall@20", "ndcg@20")


def dataset_section(name: str) -> dict:
    if name == "sports":
        return {"format": "rearm", "path": str(SHARED_DATA / "amazon" / "sports"), "name": "sports",
                "modalities": ["text"]}
    return {"format": "synthetic", "name": "synthetic", "modalities": ["text"]}


def run_config(model: str, backend: str, args) -> dict:
    """The resolved config of one run (module docstring)."""
    from recsys.compose import resolve
    from recsys.config import merge
    from recsys.io import load_yaml

    base = load_yaml(REPO / MODELS[model]["file"]) if "file" in MODELS[model] else {}
    if model == "rearm":
        base["model"].update(TEXT_ONLY)
    override = {
        "seed": SEED, "device": "cpu", "threads": 1, "run_name": f"{model}-{backend}",
        "output_dir": str(args.work_dir / args.dataset / "runs"), "cache_dir": str(args.work_dir / args.dataset / "cache"),
        "dataset": dataset_section(args.dataset),
        "graphs": BACKENDS[backend],
        "train": {**TRAIN, "epochs": args.epochs, "eval_every": args.eval_every, "patience": args.epochs + 1,
                  "progress": False},
        "eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
        **{k: v for k, v in MODELS[model].items() if k != "file"},
    }
    return resolve(merge(base, override, None))


def run_single(model: str, backend: str, args) -> dict:
    """Child process: train one (model, backend) and return its record."""
    from recsys.runs import train

    results = train(run_config(model, backend, args))
    epochs = [json.loads(line) for line in Path(results["run_dir"], "metrics.jsonl").read_text().splitlines()]
    return {"valid": results["valid"], "test": results["test"], "best_epoch": results["best_epoch"],
            "epochs_run": results["epochs_run"],
            "seconds_per_epoch": round(sum(e["train_seconds"] for e in epochs) / max(1, len(epochs)), 1),
            "total_seconds": round(results["total_seconds"], 1), "peak_memory_mb": round(peak_memory_mb()),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _entries(graph) -> tuple[np.ndarray, np.ndarray]:
    """(row · n + column, value) of every stored entry of a sparse CSR graph."""
    n = graph.shape[0]
    rows = np.repeat(np.arange(n), np.diff(graph.crow_indices().numpy()))
    return rows * n + graph.col_indices().numpy(), graph.values().numpy()


def compare_graphs(args) -> dict:
    """Child process: recall of the exact neighbours and weight differences of each FAISS backend's
    item (k = 10) and user-interest (k = 40) graphs of every modality (sparse, never densified)."""
    import torch

    from recsys.data.loading import load_dataset
    from recsys.graphs import GraphStore

    torch.set_num_threads(1)
    dataset = load_dataset(dataset_section(args.dataset))
    cache = args.work_dir / args.dataset / "cache"
    stores = {b: GraphStore(dataset, "cpu", cache_dir=cache, graphs=BACKENDS[b]) for b in BACKENDS}
    out = {}
    for modality in sorted(dataset.features):
        for name, build in ((f"item_knn[{modality}, k=10]", lambda s, m=modality: s.item_knn({m: 1.0}, 10)),
                            (f"user_knn[{modality}, k=40]", lambda s, m=modality: s.user_interest_knn({m: 1.0}, 40))):
            exact_keys, exact_values = _entries(build(stores["exact"]))
            for backend in (b for b in BACKENDS if b != "exact"):
                keys, values = _entries(build(stores[backend]))
                _, in_exact, in_other = np.intersect1d(exact_keys, keys, assume_unique=True, return_indices=True)
                out.setdefault(backend, {})[name] = {
                    "recall": round(len(in_exact) / len(exact_keys), 4),
                    "identical": bool(np.array_equal(exact_keys, keys) and np.array_equal(exact_values, values)),
                    "max_weight_difference": float(np.abs(exact_values[in_exact] - values[in_other]).max())}
    return out


def child(argv: list[str]) -> dict:
    """Run one child process (``--single MODEL BACKEND`` or ``--graphs``) and parse its JSON line."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, *argv], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report
def verdicts(runs: dict) -> list[dict]:
    rows = []
    for model in MODELS:
        exact = runs.get(f"{model}/exact")
        for backend in BACKENDS:
            run = runs.get(f"{model}/{backend}")
            if run is None or "error" in run:
                continue
            row = {"model": model, "backend": backend, "valid_recall@20": run["valid"]["recall@20"],
                   **{f"test_{m}": run["test"][m] for m in METRICS}, "best_epoch": run["best_epoch"],
                   "seconds_per_epoch": run["seconds_per_epoch"]}
            if exact is not None and "error" not in exact and backend != "exact":
                for m in METRICS:
                    row[f"relative_{m}"] = run["test"][m] / exact["test"][m] - 1.0
                row["within_tolerance"] = all(abs(row[f"relative_{m}"]) <= TOLERANCE for m in METRICS)
            rows.append(row)
    return rows


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [BEGIN, "## Models on FAISS kNN graphs (`knn_downstream.py`)", "",
             f"Commit {results['commit']}; dataset {s['dataset']}; seed {SEED}; batch {TRAIN['batch_size']}, "
             f"lr {TRAIN['lr']}, {s['epochs']} epochs, validation every {s['eval_every']}, no early stopping; test "
             "metrics at the best-valid evaluation. `faiss` = default parameters (flat index at this size: exact "
             "neighbours), `faiss-hnsw` = HNSW forced. Δ = relative difference of the test metric to exact; verdict: both "
             f"|Δ| ≤ {100 * TOLERANCE:g} %.", "",
             "| model | kNN backend | valid R@20 | test R@20 | test N@20 | Δ R@20 | Δ N@20 | "
             f"within ±{100 * TOLERANCE:g} % | best epoch | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["table"]:
        delta = [f"{100 * r[f'relative_{m}']:+.2f} %" if f"relative_{m}" in r else "" for m in METRICS]
        verdict = ("yes" if r["within_tolerance"] else "**no**") if "within_tolerance" in r else ""
        lines.append(f"| {r['model']} | {r['backend']} | {r['valid_recall@20']:.4f} | {r['test_recall@20']:.4f} | "
                     f"{r['test_ndcg@20']:.4f} | {delta[0]} | {delta[1]} | {verdict} | {r['best_epoch']} | "
                     f"{r['seconds_per_epoch']} |")
    if results.get("graphs") and "error" not in results["graphs"]:
        lines += ["", "The graphs against the exact ones (recall of the exact neighbours; largest weight difference "
                  "on shared entries):", ""]
        for backend, graphs in results["graphs"].items():
            lines.append(f"- `{backend}`: " + "; ".join(
                f"{name} {g['recall']:.4f}{' (identical)' if g['identical'] else ''}, {g['max_weight_difference']:.1e}"
                for name, g in graphs.items()))
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument("--dataset", choices=("sports", "synthetic"), default="sports",
                        help="synthetic: the built-in dataset, to check the script quickly")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/recsys-knn-downstream"))
    parser.add_argument("--out", type=Path, default=OUT, help="results file (the README section only for the default)")
    parser.add_argument("--redo", action="store_true", help="train again even if recorded")
    parser.add_argument("--single", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--graphs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_single(*args.single, args)))
        return
    if args.graphs:
        print(json.dumps(compare_graphs(args)))
        return
    settings = {"dataset": args.dataset, "epochs": args.epochs, "eval_every": args.eval_every, "jobs": args.jobs,
                "train": TRAIN}
    results = read_json(args.out, {"runs": {}})
    if results.get("settings", settings) != settings:
        sys.exit(f"{args.out} holds runs with other settings {results['settings']}; use --out or remove it")
    common = ["--dataset", args.dataset, "--epochs", str(args.epochs), "--eval-every", str(args.eval_every),
              "--work-dir", str(args.work_dir)]
    # the exact graphs and each FAISS backend's graphs are built once here, then read from the cache
    if "error" in results.get("graphs", {"error": ""}) or args.redo:
        results["graphs"] = child(["--graphs", *common])
    todo = [(m, b) for m in args.models for b in args.backends
            if args.redo or "error" in results["runs"].get(f"{m}/{b}", {"error": ""})]

    def one(job):
        model, backend = job
        record = child(["--single", model, backend, *common])
        results["runs"][f"{model}/{backend}"] = record
        print(f"{model}/{backend}: {json.dumps(record)[:300]}", flush=True)
        return record

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for _ in pool.map(one, todo):
            results.update(commit=commit(), settings=settings, table=verdicts(results["runs"]))
            io.write_json(args.out, results)
    results.update(commit=commit(), settings=settings, table=verdicts(results["runs"]))
    io.write_json(args.out, results)
    if args.out == OUT:
        write_readme_section(markdown(results), BEGIN, END)


if __name__ == "__main__":
    main()
