"""Scaling study: graph building, training steps and evaluation at 10k, 100k and 1M items (issue 9).

Synthetic catalogues of :func:`recsys.data.synthetic.catalogue`: users = 2 × items and the
interactions per user of Amazon Clothing (278,677 / 39,387 ≈ 7.1), so the number of
interactions grows linearly with the catalogue. (Clothing's density in the users × items sense
would mean 6·10^8 interactions at 1M items; a catalogue that grows does not make each user buy
proportionally more.) Every catalogue has the same shape: clusters of 2,000 items, log-normal
item popularity, 80 % of a user's interactions in their own cluster, a random 8:1:1 split,
and two item modalities (64-d informative, 32-d noise).

Each (size, stage) runs in its own process, one torch thread, and records its peak resident
memory (and the memory of the process before the stage's data was loaded):

- ``data``: generate the catalogue (written once to ``--work-dir``, read by the other stages);
- ``graphs``: the normalised user-item graph, the row-normalised train matrix, item and user
  co-occurrence top-k (docs/graphs.md §1, §4);
- ``knn``: exact cosine kNN of items (k = 10) and of user interest vectors (k = 40), both
  modalities. Exact kNN scans all n candidates per row (n² time by nature, O(chunk × n)
  memory); from 100k items on it is timed on a sample of query rows (same blocks, all n
  candidates) and extrapolated linearly in rows; the 10k run times both, to calibrate;
- ``lightgcn`` / ``rearm``: training steps (batch 2048, configs of the model defaults; REARM
  with configs/models/rearm.yaml), seconds per step and per epoch (steps × batches per epoch,
  extrapolated from the measured steps except at 10k, where a whole epoch is timed too). From
  100k items on REARM's two semantic kNN graphs are random graphs with the same number of
  entries per row (an epoch's cost depends on the sizes only), its co-occurrence graphs real;
- ``rearm_d16``: the same REARM steps with embedding size 16 (a step's memory is a few
  thousand floats per node at d = 64, about 48 GB at 1M items: more than this machine has);
- ``eval``: full-ranking evaluation (Recall/NDCG@10,20 over all items, train items masked) of
  LightGCN, on every valid user up to 100k items and on a sample at 1M (extrapolated).

    python bench/scaling.py --sizes 10000 100000 1000000
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, commit, environment, peak_memory_mb, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402
from recsys.data.synthetic import catalogue  # noqa: E402
from recsys.graphs import GraphStore  # noqa: E402
from recsys.graphs.knn import neighbour_graph  # noqa: E402

OUT = RESULTS / "scaling.json"
PLOT = RESULTS / "scaling.png"
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
STAGES = ("data", "graphs", "knn", "lightgcn", "rearm", "rearm_d16", "eval")
MODALITIES = {"text": 64, "image": 32}
SAMPLE_ROWS = 4096
EVAL_SAMPLE_USERS = 20_000
SMALL_DIM = 16  # REARM's embedding size in the rearm_d16 stage
TRAINING_STAGES = ("lightgcn", "rearm", "rearm_d16")


# ----------------------------------------------------------------------------- data
def load(work_dir: Path, n_items: int):
    from recsys.data.dataset import Dataset

    arrays = np.load(work_dir / f"scaling-{n_items}.npz")
    return Dataset(f"scaling-{n_items}", int(arrays["n_users"]), int(arrays["n_items"]),
                   *(arrays[split] for split in ("train", "valid", "test")),
                   features={m: arrays[m] for m in MODALITIES})


# ----------------------------------------------------------------------------- stages
def timed(record: dict, name: str, fn):
    started = time.perf_counter()
    out = fn()
    record[name] = {"seconds": round(time.perf_counter() - started, 3), "peak_mb_so_far": round(peak_memory_mb())}
    return out


def stage_data(work_dir: Path, n_items: int) -> dict:
    record: dict = {}
    dataset = timed(record, "generate", lambda: catalogue(n_items, text_dim=MODALITIES["text"],
                                                          image_dim=MODALITIES["image"]))
    with io.atomic_path(work_dir / f"scaling-{n_items}.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, n_users=dataset.n_users, n_items=dataset.n_items, train=dataset.train,
                 valid=dataset.valid, test=dataset.test, **dataset.features)
    interactions = sum(getattr(dataset, split).shape[1] for split in ("train", "valid", "test"))
    return {"parts": record, "users": dataset.n_users, "interactions": interactions}


def stage_graphs(dataset) -> dict:

    store = GraphStore(dataset, "cpu")
    record: dict = {}
    for name, build in (("user_item", store.user_item), ("user_mean_items", store.user_mean_items),
                        ("item_cooccurrence[k=10]", lambda: store.item_cooccurrence(10)),
                        ("user_cooccurrence[k=40]", lambda: store.user_cooccurrence(40))):
        graph = timed(record, name, build)
        record[name]["nnz"] = int(graph._nnz())
    return {"parts": record}


def _sampled_topk(points, k: int, rows: int) -> float:
    """Seconds for the kNN blocks of ``rows`` query rows against all n (the exact builder's work
    per row: float32 products in blocks of at most 2^25 similarities, top-(k + margin))."""
    import torch

    from recsys.graphs.knn import MARGIN, default_chunk

    unit = points / points.norm(dim=1, keepdim=True).clamp_min(1e-30)
    chunk = default_chunk(unit.shape[0])
    started = time.perf_counter()
    for start in range(0, rows, chunk):
        sims = unit[start:min(start + chunk, rows)] @ unit.T
        torch.topk(sims, k + MARGIN, dim=1)
    return time.perf_counter() - started


def stage_knn(dataset, full: bool) -> dict:
    import torch

    from recsys.graphs.interest import user_interest

    record: dict = {}
    store = GraphStore(dataset, "cpu")
    for kind, n, k in (("item", dataset.n_items, 10), ("user", dataset.n_users, 40)):
        for modality in MODALITIES:
            name = f"{kind}_knn[{modality}, k={k}]"
            if kind == "item":
                points = torch.from_numpy(dataset.features[modality])
            else:
                points = timed(record, f"user_interest[{modality}]",
                               lambda m=modality: user_interest(dataset.csr("train"), dataset.features[m]))
            rows = min(SAMPLE_ROWS, n)
            sample = _sampled_topk(points, k, rows)
            entry = {"sample_rows": rows, "sample_seconds": round(sample, 3),
                     "extrapolated_seconds": round(sample * n / rows, 1)}
            if full:
                build = (lambda m=modality: store.item_knn({m: 1.0}, k)) if kind == "item" else \
                    (lambda m=modality: store.user_interest_knn({m: 1.0}, k))
                graph = timed(record, name, build)
                entry.update(record.pop(name), nnz=int(graph._nnz()), extrapolated=False)
                entry["extrapolation_over_measured"] = round(entry["extrapolated_seconds"] / entry["seconds"], 2)
            else:
                entry.update(seconds=entry["extrapolated_seconds"], extrapolated=True,
                             peak_mb_so_far=round(peak_memory_mb()))
            record[name] = entry
    return {"parts": record}


class _StandInKnnStore(GraphStore):
    """GraphStore whose two semantic kNN graphs are random graphs of the same shape (k entries
    per row, normalised like the real ones); every other graph is the real one."""

    def __init__(self, dataset) -> None:
        super().__init__(dataset, "cpu")

    @staticmethod
    def _random_knn(n: int, k: int):
        import torch

        generator = torch.Generator().manual_seed(n + k)
        indices = torch.randint(n, (n, k), generator=generator)
        return neighbour_graph(torch.rand(n, k, generator=generator), indices)

    def item_knn(self, modality_weights, k, weighted=True):
        return self._random_knn(self.dataset.n_items, k)

    def user_interest_knn(self, modality_weights, k, weighted=True):
        return self._random_knn(self.dataset.n_users, k)


def _config(model: str) -> dict:
    from recsys.compose import resolve
    from recsys.io import load_yaml

    if model.startswith("rearm"):
        raw = load_yaml(REPO / "configs" / "models" / "rearm.yaml")
        raw["train"]["progress"] = False
        if model == "rearm_d16":
            raw["model"]["embedding_size"] = SMALL_DIM
        return resolve({**raw, "device": "cpu", "seed": 0})
    return resolve({"model": {"name": "lightgcn", "n_layers": 3}, "device": "cpu", "seed": 0,
                    "train": {"batch_size": 2048, "progress": False}})


def _profile_top(step, rows: int = 5) -> list[dict]:
    from torch.profiler import profile

    with profile() as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3)} for e in events[:rows]]


def _endless(task):
    """The task's batches, epoch after epoch (a small catalogue has fewer batches than steps timed)."""
    epoch = 1
    while True:
        yield from task.batches(epoch)
        epoch += 1


def stage_training(dataset, model_name: str, steps: int, whole_epoch: bool, stand_in: bool) -> dict:
    import torch

    from recsys.compose import seed_everything
    from recsys.models import get_model_class
    from recsys.training.tasks import make_task
    from recsys.training.trainer import make_optimizer

    config = _config(model_name)
    record: dict = {}
    graphs = _StandInKnnStore(dataset) if stand_in else GraphStore(dataset, "cpu")
    seed_everything(0)
    model = timed(record, "graphs_and_model",
                  lambda: get_model_class(config["model"]["name"])(dataset, config["model"], graphs))
    task = make_task("interaction", dataset, config, torch.device("cpu"))
    optimizer = make_optimizer(model.parameters(), config["train"])
    batches = timed(record, "negative_sampling_and_batches", lambda: _endless(task))

    def step() -> None:
        losses = model.loss(*next(batches))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()

    model.train()
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - started) / steps
    out = {"parts": record, "measured_steps": steps, "seconds_per_step": round(per_step, 3),
           "batches_per_epoch": task.n_batches(), "seconds_per_epoch": round(per_step * task.n_batches(), 1),
           "extrapolated": True, "profile_one_step": _profile_top(step),
           "semantic_knn_graphs": "random stand-ins of the same shape" if stand_in else "exact"}
    if whole_epoch:
        batches = iter(task.batches(2))
        started = time.perf_counter()
        for _ in range(task.n_batches()):
            step()
        out["measured_seconds_per_epoch"] = round(time.perf_counter() - started, 1)
    return out


def stage_eval(dataset, sample_users: int | None) -> dict:
    import scipy.sparse as sp
    import torch

    from recsys.evaluation.ranking import evaluate_ranking
    from recsys.models import get_model_class

    config = _config("lightgcn")
    record: dict = {}
    model = get_model_class("lightgcn")(dataset, config["model"], GraphStore(dataset, "cpu")).eval()
    with torch.no_grad():
        cache = timed(record, "embeddings (propagation)", model.embeddings)
    target = dataset.csr("valid")
    users_with_targets = np.flatnonzero(np.diff(target.indptr))
    evaluated = users_with_targets
    if sample_users is not None and sample_users < users_with_targets.size:
        evaluated = np.random.default_rng(0).choice(users_with_targets, sample_users, replace=False)
        keep = np.zeros(dataset.n_users)
        keep[evaluated] = 1.0
        target = (sp.diags(keep) @ target).tocsr()
    with torch.no_grad():
        timed(record, "ranking", lambda: evaluate_ranking(lambda u: model.scores(u, cache), dataset.csr("train"),
                                                          target, [10, 20], ["recall", "ndcg"]))
    ranking = record["ranking"]["seconds"] * users_with_targets.size / evaluated.size
    return {"parts": record, "users_evaluated": int(evaluated.size), "users_with_targets": int(users_with_targets.size),
            "seconds": round(record["embeddings (propagation)"]["seconds"] + ranking, 1),
            "extrapolated": bool(evaluated.size < users_with_targets.size)}


def _rearm_memory_check(stage: str, n_items: int) -> dict | None:
    """A skip record when REARM's training step would not fit in this machine's memory.

    A REARM step keeps, for autograd, a few thousand floats per node (the (M + 1)·d-wide
    propagated features of every layer, the meta-network's activations and the attention inputs
    of every node: the forward pass is full-graph by design). The per-node memory of the largest
    measured size predicts this size's peak; that is linear in the nodes, not quadratic.
    """
    measured = [(int(size), entry[stage]) for size, entry in read_json(OUT, {"sizes": {}})["sizes"].items()
                if "seconds_per_step" in entry.get(stage, {}) and int(size) < n_items]
    if not measured:
        return None
    size, rearm = max(measured)
    per_node_mb = (rearm["peak_rss_mb"] - rearm["parts"]["graphs_and_model"]["peak_mb_so_far"]) / (3 * size)
    predicted = rearm["peak_rss_mb"] + per_node_mb * 3 * (n_items - size)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    if predicted < 0.85 * available:
        return None
    return {"skipped": f"a training step needs about {predicted / 1024:.0f} GB (linear extrapolation of the "
                       f"{per_node_mb * 1024:.1f} KB per node measured at {size:,} items), more than this machine's "
                       f"{available / 1024:.0f} GB", "predicted_peak_rss_mb": round(predicted),
            "per_node_kb_measured": round(per_node_mb * 1024, 1), "measured_at_items": size}


def run_stage(stage: str, n_items: int, work_dir: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    baseline = peak_memory_mb()
    started = time.perf_counter()
    if stage == "data":
        result = stage_data(work_dir, n_items)
    else:
        dataset = load(work_dir, n_items)
        loaded = peak_memory_mb()
        small = n_items <= 10_000
        if stage == "graphs":
            result = stage_graphs(dataset)
        elif stage == "knn":
            result = stage_knn(dataset, full=small)
        elif stage.startswith("rearm") and (skip := _rearm_memory_check(stage, n_items)) is not None:
            result = skip
        elif stage in ("lightgcn", "rearm", "rearm_d16"):
            steps = 20 if small or (stage == "lightgcn" and n_items <= 100_000) else 2
            result = stage_training(dataset, stage, steps, whole_epoch=small and stage != "rearm_d16",
                                    stand_in=stage.startswith("rearm") and not small)
        else:
            result = stage_eval(dataset, None if n_items <= 100_000 else EVAL_SAMPLE_USERS)
        result["rss_after_loading_mb"] = round(loaded)
    return {**result, "stage_seconds": round(time.perf_counter() - started, 1),
            "rss_before_stage_mb": round(baseline), "peak_rss_mb": round(peak_memory_mb()),
            "load_average": [round(x, 2) for x in os.getloadavg()], "threads": 1, "environment": environment()}


# ----------------------------------------------------------------------------- report
def stage_seconds(entry: dict, stage: str, calibration: dict | None = None) -> tuple[float, bool]:
    """Headline seconds of a stage and whether any part of it is extrapolated.

    Extrapolated kNN parts are divided by ``calibration[part]``, the ratio of extrapolated to
    measured seconds at the smallest size (the full builder also merges column candidates and
    decides near-ties exactly, which the sampled blocks leave out)."""
    if "skipped" in entry:
        return math.nan, True
    if stage in ("lightgcn", "rearm", "rearm_d16"):
        return entry.get("measured_seconds_per_epoch", entry["seconds_per_epoch"]), \
            "measured_seconds_per_epoch" not in entry
    if stage == "eval":
        return entry["seconds"], entry["extrapolated"]
    calibration = calibration or {}
    total = sum(p["seconds"] / (calibration.get(name, 1.0) if p.get("extrapolated") else 1.0)
                for name, p in entry["parts"].items())
    return total, any(p.get("extrapolated") for p in entry["parts"].values())


def knn_calibration(results: dict) -> dict:
    smallest = results["sizes"][str(min(int(s) for s in results["sizes"]))].get("knn", {"parts": {}})
    return {name: part["extrapolation_over_measured"] for name, part in smallest["parts"].items()
            if "extrapolation_over_measured" in part}


def memory_verdict(results: dict) -> dict:
    """Per stage: log-log slope of peak RSS against interactions between consecutive sizes, and
    the stage's memory above the bare interpreter (``rss_before_stage_mb``) in bytes per
    interaction; a quadratic term shows as slopes near 2 and bytes per interaction growing with n."""
    verdict = {}
    sizes = sorted(int(s) for s in results["sizes"])
    for stage in STAGES:
        entries = [(results["sizes"][str(s)]["interactions"], results["sizes"][str(s)][stage])
                   for s in sizes if "skipped" not in results["sizes"][str(s)].get(stage, {"skipped": True})]
        slopes = [round(math.log(e2["peak_rss_mb"] / e1["peak_rss_mb"]) / math.log(i2 / i1), 2)
                  for (i1, e1), (i2, e2) in zip(entries, entries[1:])]
        if slopes:
            verdict[stage] = {"peak_rss_mb": [e["peak_rss_mb"] for _, e in entries], "slopes": slopes,
                              "bytes_per_interaction": [round((e["peak_rss_mb"] - e["rss_before_stage_mb"]) * 2**20 / i)
                                                        for i, e in entries],
                              "quadratic_term": any(s > 1.3 for s in slopes)}
    return verdict


def _shape(results: dict) -> tuple[float, float]:
    """(users per item, interactions per user) of the recorded catalogues."""
    entry = results["sizes"][str(min(int(size) for size in results["sizes"]))]
    return entry["users"] / int(min(int(size) for size in results["sizes"])), entry["interactions"] / entry["users"]


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(s) for s in results["sizes"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in STAGES:
        done = [s for s in sizes if "skipped" not in results["sizes"][str(s)].get(stage, {"skipped": True})]
        if not done:
            continue
        seconds = [stage_seconds(results["sizes"][str(s)][stage], stage, knn_calibration(results))[0] for s in done]
        left.plot(done, seconds, marker="o", label=f"{stage} epoch" if stage in TRAINING_STAGES else stage)
        right.plot(done, [results["sizes"][str(s)][stage]["peak_rss_mb"] for s in done], marker="o", label=stage)
    for axis, title in ((left, "seconds (one thread; most large-size values extrapolated)"), (right, "peak RSS (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"items (users = {_shape(results)[0]:g} × items)")
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def _label(stage: str) -> str:
    return {"lightgcn": "LightGCN epoch", "rearm": "REARM epoch", "rearm_d16": f"REARM epoch, d = {SMALL_DIM}",
            "eval": "full evaluation"}.get(stage, stage)


def machine_memory_gb(results: dict) -> float | None:
    """The memory of the machine the stages ran on, where they recorded it."""
    values = [entry[stage]["environment"]["memory_gb"] for entry in results["sizes"].values() for stage in STAGES
              if "memory_gb" in entry.get(stage, {}).get("environment", {})]
    return max(values) if values else None


def markdown(results: dict) -> str:
    sizes = sorted(int(s) for s in results["sizes"])
    users_per_item, per_user = _shape(results)
    lines = [BEGIN, "## Scaling with the catalogue (`scaling.py`)", "",
             f"Commit {results['commit']}; one torch thread; synthetic catalogues with users = {users_per_item:g} × "
             f"items and {per_user:.1f} interactions per user, as in Clothing (see the script's docstring). `~` marks "
             "values extrapolated from measured steps, query rows or users (the measured parts are in "
             "`results/scaling.json`; sampled kNN times are scaled by the extrapolated/measured ratio of the "
             "smallest size). Plot: `results/scaling.png`.", "",
             "| items | users | interactions | stage | seconds | peak RSS MB |", "|---|---|---|---|---|---|"]
    for size in sizes:
        entry = results["sizes"][str(size)]
        for stage in STAGES:
            if stage not in entry:
                continue
            if "skipped" in entry[stage]:
                lines.append(f"| {size:,} | {entry['users']:,} | {entry['interactions']:,} | "
                             f"{_label(stage)} | not run: {entry[stage]['skipped']} | "
                             f"~{entry[stage]['predicted_peak_rss_mb']:,} (predicted) |")
                continue
            seconds, extrapolated = stage_seconds(entry[stage], stage, knn_calibration(results))
            lines.append(f"| {size:,} | {entry['users']:,} | {entry['interactions']:,} | {_label(stage)} | "
                         f"{'~' if extrapolated else ''}{seconds:,.1f} | {entry[stage]['peak_rss_mb']:,} |")
    largest = sizes[-1]
    memory = machine_memory_gb(results)
    within = f"within this machine's {memory:.0f} GB" if memory else "within this machine's memory"
    lines += ["", "Peak memory against interactions (log-log slope between consecutive sizes: one is linear, two "
              "quadratic), and the stage's memory above the bare interpreter in bytes per interaction at each "
              "size (falling with size: no quadratic term): "
              + "; ".join(f"{stage} {v['slopes']}, {v['bytes_per_interaction']} B" for stage, v in results["memory"].items())
              + f". A dense float32 item × item matrix would take {largest ** 2 * 4 / 1e12:,.0f} TB at {largest:,} "
              f"items, so every stage that finished there {within} has no n² memory term.",
              "", where_time_goes(results), "", END]
    return "\n".join(lines)


def _seconds_by_size(results: dict, stage: str) -> tuple[list[int], list[float]]:
    sizes = [int(s) for s in sorted(results["sizes"], key=int)
             if "seconds_per_step" in results["sizes"][s].get(stage, {})]
    return sizes, [results["sizes"][str(s)][stage]["seconds_per_step"] for s in sizes]


def _steps(results: dict, stage: str) -> str:
    sizes, seconds = _seconds_by_size(results, stage)
    return (" / ".join(f"{v:g}" for v in seconds) + " s at " + " / ".join(f"{s:,}" for s in sizes) + " items")


def where_time_goes(results: dict) -> str:
    """The paragraph on where each stage spends its time, from the recorded parts and profiles."""
    sizes = sorted(int(s) for s in results["sizes"])
    largest = results["sizes"][str(sizes[-1])]
    sentences = [f"Where the time goes (one thread; {sizes[-1]:,} items unless said)."]
    graphs = largest.get("graphs", {}).get("parts", {})
    user_co = next((v for k, v in graphs.items() if k.startswith("user_cooccurrence")), None)
    if user_co:
        sentences.append(
            f"Graphs: the user co-occurrence top-k takes {user_co['seconds']:.0f} of the stage's "
            f"{sum(p['seconds'] for p in graphs.values()):.0f} s (a blocked sparse product R Rᵀ and a sort per row; "
            "its cost is the sum over items of the squared item degree, linear for a fixed degree distribution), and "
            f"its blocks and outputs set the stage's peak of {user_co['peak_mb_so_far'] / 1024:.1f} GB.")
    knn = {k: v for k, v in largest.get("knn", {}).get("parts", {}).items() if "knn" in k}
    if knn:
        calibration = knn_calibration(results)
        hours = ", ".join(
            f"{name} {'~' if part.get('extrapolated') else ''}"
            f"{part['seconds'] / (calibration.get(name, 1.0) if part.get('extrapolated') else 1.0) / 3600:.1f} h"
            for name, part in knn.items())
        sentences.append(f"Exact kNN is the only stage quadratic in time ({hours}; measured on "
                         f"{next(iter(knn.values()))['sample_rows']:,} query rows and scaled to all rows and by the "
                         "smallest size's calibration), while its memory stays bounded by the block size.")
    for stage, name in (("lightgcn", "LightGCN"), ("rearm", "REARM"), ("rearm_d16", f"REARM with d = {SMALL_DIM}")):
        sizes_done, _ = _seconds_by_size(results, stage)
        if not sizes_done:
            continue
        top = results["sizes"][str(sizes_done[-1])][stage]["profile_one_step"][0]
        sentences.append(f"{name}: a training step takes {_steps(results, stage)}; {top['op']} is "
                         f"{top['share']:.0%} of a step's CPU time at {sizes_done[-1]:,} items.")
        skip = largest.get(stage, {}).get("skipped")
        if skip:
            sentences.append(f"{name} at {sizes[-1]:,} items was not run: {skip}.")
    evaluation = largest.get("eval")
    if evaluation:
        ranking = evaluation["parts"]["ranking"]["seconds"] / evaluation["users_evaluated"]
        sentences.append(f"Evaluation: one propagation ({evaluation['parts']['embeddings (propagation)']['seconds']:.0f} "
                         f"s), then {ranking * 1000:.1f} ms per user (scores for every item and a top-k).")
    return " ".join(sentences)


def write_readme(results: dict) -> None:
    """Replace this benchmark's section of bench/README.md."""
    write_readme_section(markdown(results), BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/recsys-scaling"))
    parser.add_argument("--redo", action="store_true", help="measure again even if recorded")
    parser.add_argument("--single", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_stage(args.single[0], int(args.single[1]), args.work_dir)))
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    results = read_json(OUT, {"sizes": {}})
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    measured = False
    for size in args.sizes:
        entry = results["sizes"].setdefault(str(size), {})
        for stage in ("data", *[s for s in args.stages if s != "data"]):
            if stage in entry and not args.redo:
                continue
            if stage == "data" and (args.work_dir / f"scaling-{size}.npz").exists() and "data" in entry:
                continue
            proc = subprocess.run([sys.executable, __file__, "--single", stage, str(size), "--work-dir",
                                   str(args.work_dir)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                entry[f"{stage}_error"] = proc.stderr[-1500:]
                print(f"{size} {stage} failed:\n{proc.stderr[-1500:]}", file=sys.stderr, flush=True)
                continue
            entry[stage] = json.loads(proc.stdout.strip().splitlines()[-1])
            entry.pop(f"{stage}_error", None)
            if stage == "data":
                entry.update(users=entry["data"]["users"], interactions=entry["data"]["interactions"])
            results.update(commit=commit(), memory=memory_verdict(results))
            io.write_json(OUT, results)
            measured = True
            print(f"{size} {stage}: {entry[stage]['stage_seconds']} s, peak {entry[stage]['peak_rss_mb']} MB", flush=True)
    results.pop("analysis", None)  # the paragraph is generated from the records (where_time_goes)
    results.update(memory=memory_verdict(results), **({"commit": commit()} if measured else {}))
    io.write_json(OUT, results)
    plot(results)
    write_readme(results)


if __name__ == "__main__":
    main()
