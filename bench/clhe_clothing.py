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

``--variants`` compares our CLHE (the config above: ``variant: paper``, content ID tokens for
cold items) with the public code's behaviour (``variant: reference``, see
:mod:`recsys.models.clhe`) over ``VARIANT_SEEDS``: every run's config.yaml, results.json and
per-bundle test metrics are kept in ``results/clhe_variants/<variant>/seed-<seed>/``, and
:mod:`recsys.compare` tests the reference against ours bundle by bundle (Wilcoxon and paired
t-test on the per-bundle metrics averaged over seeds, Holm-corrected). The README section is
written from those records; ``recsys compare bench/results/clhe_variants --baseline
bench/results/clhe_variants/ours/seed-0`` recomputes it.

    python bench/clhe_clothing.py --jobs 3
    python bench/clhe_clothing.py --variants --jobs 2
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
from common import REPO, RESULTS, SHARED_DATA, commit, environment, peak_memory_mb, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402

CONFIG = REPO / "configs" / "experiments" / "clhe_clothing.yaml"
OUT = RESULTS / "clhe_clothing.json"
VARIANT_RUNS = RESULTS / "clhe_variants"
VARIANTS = {"ours": {}, "reference": {"model": {"variant": "reference"}}}
VARIANT_SEEDS = (0, 1, 2)
KEPT_FILES = ("config.yaml", "results.json", "per_user_test.npz")
BEGIN, END = "<!-- clhe_variants:begin -->", "<!-- clhe_variants:end -->"
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
    """Child process: train one CLHE configuration, return its measurements; a run of the
    variant comparison also leaves its small run records in ``spec["keep_in"]``."""
    import torch

    from recsys.runs import train

    torch.set_num_threads(1)
    config = _config(spec["overrides"], spec["runs_dir"], spec["key"])
    results = train(config)
    if spec.get("keep_in"):
        for name in KEPT_FILES:
            with io.atomic_path(Path(spec["keep_in"]) / name) as tmp:
                tmp.write_bytes(Path(results["run_dir"], name).read_bytes())
    epochs = [json.loads(line) for line in Path(results["run_dir"], "metrics.jsonl").read_text().splitlines()]
    evals = [e["eval_seconds"] for e in epochs if "eval_seconds" in e]
    return {
        "overrides": spec["overrides"], "valid": results["valid"], "test": results["test"],
        "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"],
        "seconds_per_epoch": sum(e["train_seconds"] for e in epochs) / len(epochs),
        "evaluation_seconds": sum(evals) / max(1, len(evals)),
        "total_seconds": results["total_seconds"], "peak_memory_mb": peak_memory_mb(),
        "environment": environment(),
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
               "config": str(CONFIG.relative_to(REPO)), "settings": settings, "baselines": base, "runs": runs,
               **({"variants": state["variants"]} if state.get("variants") else {})}
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


def compare_variants(state: dict, seeds) -> None:
    """Compare the kept variant runs (reference against ours) into ``state["variants"]``."""
    from recsys.compare import compare, to_markdown

    baseline = VARIANT_RUNS / "ours" / f"seed-{seeds[0]}"
    runs = [VARIANT_RUNS / name / f"seed-{seed}" for name in VARIANTS for seed in seeds]
    done = [run for run in runs if (run / "results.json").is_file()]
    if not (baseline / "results.json").is_file() or len(done) < 2:
        return
    labels = {run: run.parent.name for run in done}
    comparison = compare(done, baseline=baseline, metrics=["recall@20", "ndcg@20"], labels=labels)
    valid = {group.label: float(group.values("valid", "recall@20").mean()) for group in comparison.groups}
    state["variants"] = {"runs": {f"{run.parent.name}/{run.name}": json.loads((run / "results.json").read_text())
                                  for run in done},
                         "table": to_markdown(comparison), "records": comparison.records(),
                         "valid_recall@20_mean": valid, "valid_prefers": max(valid, key=valid.get)}


def variants_markdown(variants: dict) -> str:
    """The README section of the variant comparison, from the recorded comparison."""
    valid = variants["valid_recall@20_mean"]
    seeds = sorted({run["seed"] for run in variants["runs"].values()})
    return "\n".join([
        BEGIN, "## CLHE: our encoder against the public code's (`clhe_clothing.py --variants`)", "",
        "Clothing bundles, configs/experiments/clhe_clothing.yaml; *ours* is that config (`variant: paper`, content "
        "ID tokens for cold items), *reference* adds `variant: reference` (bundle-encoder attention untrained, no "
        "value projections, the augmented view under the full bundle's mask, learned ID tokens for cold items: "
        f"recsys/models/clhe.py). Seeds {', '.join(map(str, seeds))}; run records in `results/clhe_variants/` "
        "(`recsys compare` recomputes the table from them).", "",
        variants["table"].rstrip("\n"), "",
        "Valid Recall@20 over the seeds: " + ", ".join(f"{name} {value:.4f}" for name, value in valid.items())
        + f"; valid prefers **{variants['valid_prefers']}**.", "", END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="CLHE runs trained at once")
    parser.add_argument("--runs-dir", default="/tmp/recsys-bench-clhe")
    parser.add_argument("--variants", action="store_true", help="compare variant paper (ours) with reference")
    parser.add_argument("--epochs", type=int, help="cap every run at this many epochs (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(VARIANT_SEEDS),
                        help="seeds of each variant (--variants)")
    parser.add_argument("--report", action="store_true", help="only rewrite the variants' README section")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        write_readme_section(variants_markdown(read_json(OUT, {})["variants"]), BEGIN, END)
        return
    if args.single:
        print(json.dumps(run_clhe(json.loads(args.single))))
        return
    if args.variants:
        run_variants(args)
        return
    settings = {"jobs": args.jobs, "torch_threads_per_run": 1, "candidates": CANDIDATES, "ablations": ABLATIONS}
    state = read_json(OUT, {})
    state = {"runs": state.get("runs", {}), "baselines": state.get("baselines"), "variants": state.get("variants")}
    if state["baselines"] is None:
        state["baselines"] = run_baselines()
        io.write_json(OUT, summarise(state, settings))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def launch(key: str, overrides: dict) -> None:
        started = time.time()
        spec = {"key": key, "overrides": _capped(overrides, args.epochs), "runs_dir": args.runs_dir}
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


def _capped(overrides: dict, epochs: int | None) -> dict:
    from recsys.config import merge

    return merge(overrides, {"train": {"epochs": epochs}}, None) if epochs else overrides


def run_variants(args) -> None:
    """Train each variant with each seed (runs already kept are skipped), then compare them."""
    from recsys.config import merge

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo = [(name, seed) for name in VARIANTS for seed in args.seeds
            if not (VARIANT_RUNS / name / f"seed-{seed}" / "results.json").is_file()]

    def launch(item: tuple[str, int]) -> None:
        name, seed = item
        started = time.time()
        spec = {"key": f"variant-{name}-seed{seed}", "runs_dir": args.runs_dir,
                "overrides": _capped(merge(VARIANTS[name], {"seed": seed}, None), args.epochs),
                "keep_in": str(VARIANT_RUNS / name / f"seed-{seed}")}
        proc = subprocess.run([sys.executable, __file__, "--single", json.dumps(spec)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} seed {seed} failed:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
            return
        print(f"{name} seed {seed}: done in {time.time() - started:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(launch, todo))
    state = read_json(OUT, {})
    compare_variants(state, args.seeds)
    io.write_json(OUT, state)
    if "variants" in state:
        write_readme_section(variants_markdown(state["variants"]), BEGIN, END)
        print(state["variants"]["table"])


if __name__ == "__main__":
    main()
