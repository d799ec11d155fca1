"""Where a REARM training step goes on the parity input, and how far it is from its floor.

Input: the parity harness's input (``bench/parity_data.py``: the 3,000 most popular Sports items,
their users with at least 5 train interactions and a valid and a test one, real 384-d text,
seeded stand-in 4096-d image features) or any REARM folder given with ``--data``. Settings:
``configs/experiments/rearm_sports.yaml`` (the reference README's Sports hyper-parameters;
AdamW, batch 2048) with the published ``train_user_interest: true``. Each thread count runs in
its own process:

1. two epochs through the project's Trainer (CPU and wall seconds per epoch, as recorded in
   metrics.jsonl) and the median of single training steps (forward, backward, gradient norm,
   AdamW) over the epoch's batches;
2. stage by stage, forward + backward in isolation (best of ``--repeats``): the feature-table
   projections (with the tables' AdamW step, taken in their backward pass as the Trainer
   does), the homography propagations, the attention integration, the heterography
   propagation, the meta-network with the final representations, the loss terms, the gradient
   norm and the AdamW step; and torch.profiler's most expensive operators in one step;
3. the floor of a step on this machine, in CPU seconds like the step times beside it (summed
   over threads: on T busy threads an ideal step takes floor / T of wall time): the
   multiply-adds of the dense matrix products no implementation can avoid (feature
   projections forward, weight and table gradients; the meta-network's layers over every node
   forward and backward; the contrastive logits forward and backward) at the measured rate of
   ``recsys.nn.dense`` (oneDNN; torch.mm's MKL rate is recorded beside it), the sparse
   products (nnz × columns per propagation, forward and backward) at the rate measured on
   these graphs, and the optimiser's memory traffic (the backward pass writes each gradient
   once; fused AdamW reads parameter, gradient and both moments and writes three back: 8 × 4
   bytes per parameter; 6 × 4 for the feature tables the Trainer steps in the backward pass,
   whose gradient blocks stay in cache, ``recsys.training.table_step``) at the measured
   fused-AdamW bandwidth. The attention's exponentials
   and dropout masks and all element-wise work are above the floor.

The shared 2-core machine is rarely idle: CPU seconds on one thread are the comparable figure
there. Two threads under load are dominated by OpenMP's spin-waiting (each of the ~1,000
parallel regions of a step waits for a descheduled partner): ``--omp-passive`` runs the children
with ``OMP_WAIT_POLICY=PASSIVE``. On an idle machine use the defaults.

    python bench/rearm_profile.py                         # 1 and 2 threads -> bench/results/rearm_profile.json
    python bench/rearm_profile.py --threads 1 --data /path/to/rearm/folder
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, peak_memory_mb, read_json, write_readme_section  # noqa: E402

OUT = RESULTS / "rearm_profile.json"
EXPERIMENT = REPO / "configs" / "experiments" / "rearm_sports.yaml"


# --------------------------------------------------------------------------- input and model
def parity_folder(cache: Path) -> Path:
    """The parity harness's input, built once into ``cache``."""
    from parity_data import build_parity_dataset

    folder = cache / "rearm_parity_input"
    if not (folder / "train.npy").is_file():
        build_parity_dataset(SHARED_DATA / "amazon" / "sports", folder)
    return folder


def run_config(data: Path, epochs: int) -> dict:
    from recsys.compose import resolve
    from recsys.io import load_yaml

    raw = load_yaml(EXPERIMENT)
    raw["dataset"] = {"format": "rearm", "path": str(data), "name": "parity", "modalities": ["image", "text"]}
    raw["model"]["train_user_interest"] = True
    raw["train"].update(epochs=epochs, eval_every=epochs, patience=epochs + 1, progress=False)
    raw["eval"] = {"ks": [20], "metrics": ["recall"]}
    raw.update(device="cpu", cache_dir=None, seed=2024)
    return resolve(raw)


def best_cpu_ms(fn, repeats: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return 1e3 * best


# --------------------------------------------------------------------------- stages
def stage_times(model, optimizer, batch, repeats: int) -> dict[str, float]:
    """CPU milliseconds of each stage's forward + backward in isolation (best of ``repeats``)."""
    import torch

    from recsys.nn import propagate

    users, pos, neg = batch
    n_users, n_items, d = model.n_users, model.n_items, model.dim
    n_mod = len(model.modalities)

    def leaves(*shapes):
        return [torch.randn(*shape, requires_grad=True) for shape in shapes]

    def backward(outputs):
        flat = []
        for out in outputs:
            flat += out if isinstance(out, list) else [out]
        torch.autograd.backward([o.sum() for o in flat])
        model.zero_grad(set_to_none=True)

    def homography(graph, graph_t, n, layers):
        ids, *parts = leaves(*[(n, d)] * (1 + n_mod))
        out_ids, modal = model._homography(graph, graph_t, ids, parts, layers)
        return [out_ids, *modal]

    def meta():
        feats, ids = leaves((n_users + n_items, n_mod * d), (n_users + n_items, d))
        return list(model._batch_representations(feats, ids, torch.unique(users), torch.unique(torch.cat([pos, neg]))))

    def losses():
        feats, ids = leaves((n_users + n_items, n_mod * d), (n_users + n_items, d))
        return [model._batch_loss(feats, ids, users, pos, neg)["loss"]]

    stages = {
        "item feature projections": lambda: backward(model._item_modalities()),
        "user interest projections": lambda: backward(model._user_modalities()),
        "item homography": lambda: backward(homography(model.item_graph, model.item_graph_t, n_items,
                                                       model.n_item_layers)),
        "user homography": lambda: backward(homography(model.user_graph, model.user_graph_t, n_users,
                                                       model.n_user_layers)),
        "attention integration": lambda: backward(model._integrate(leaves(*[(n_items, d)] * n_mod))),
        "heterography": lambda: backward([propagate(model.adjacency, leaves((n_users + n_items, (n_mod + 1) * d))[0],
                                                    model.n_layers, symmetric=True)]),
        "meta-network and representations": lambda: backward(meta()),
        "batch loss from F and Z": lambda: backward(losses()),
    }
    times = {name: best_cpu_ms(fn, repeats) for name, fn in stages.items()}
    times["loss terms"] = times.pop("batch loss from F and Z") - times["meta-network and representations"]

    model.loss(*batch)["loss"].backward()
    params = [p for p in model.parameters() if p.grad is not None]
    times["gradient norm"] = best_cpu_ms(lambda: torch.nn.utils.clip_grad_norm_(params, math.inf), repeats)
    times["AdamW step"] = best_cpu_ms(optimizer.step, repeats)
    return {k: round(v, 2) for k, v in times.items()}


def profile_table(step, rows: int = 20) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "shapes": str(e.input_shapes)[:120], "self_ms": round(e.self_cpu_time_total / 1e3, 2),
             "share": round(e.self_cpu_time_total / total, 4), "calls": e.count} for e in events[:rows]]


# --------------------------------------------------------------------------- floor
def machine_rates(repeats: int) -> dict[str, float]:
    """Matrix-product rates (multiply-adds per CPU second: ``recsys.nn.dense``, i.e. oneDNN on
    CPU, and torch.mm, i.e. MKL) and fused-AdamW bandwidth (bytes per CPU second) of this process."""
    import torch

    from recsys.nn.dense import matmul

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    gemm_seconds = best_cpu_ms(lambda: matmul(a, b), repeats) / 1e3
    mkl_seconds = best_cpu_ms(lambda: torch.mm(a, b), repeats) / 1e3
    n = 32 * 2**20
    tensors = [torch.randn(n) for _ in range(4)]
    param, grad, exp_avg, exp_avg_sq = tensors
    step = torch.tensor(1.0)

    def adamw():
        torch._fused_adamw_([param], [grad], [exp_avg], [exp_avg_sq], [], [step], lr=1e-4, beta1=0.9, beta2=0.999,
                            weight_decay=0.05, eps=1e-8, amsgrad=False, maximize=False)

    adam_seconds = best_cpu_ms(adamw, repeats) / 1e3
    return {"gemm_multiply_adds_per_second": 2048**3 / gemm_seconds,
            "torch_mm_multiply_adds_per_second": 2048**3 / mkl_seconds,
            "fused_adamw_bytes_per_second": 7 * 4 * n / adam_seconds}


def sparse_seconds(model, repeats: int) -> float:
    """Measured time of every sparse product of a step (forward and backward, all layers)."""
    import torch

    d, n_mod = model.dim, len(model.modalities)
    products = [(model.item_graph, model.n_item_layers), (model.user_graph, model.n_user_layers),
                (model.adjacency, model.n_layers)]
    total = 0.0
    for graph, layers in products:
        x = torch.randn(graph.shape[1], (n_mod + 1) * d)
        total += 2 * layers * best_cpu_ms(lambda: torch.sparse.mm(graph, x), repeats) / 1e3
    return total


def dense_multiply_adds(model, batch) -> dict[str, int]:
    """Multiply-adds of the dense products every implementation of a step performs."""
    import torch

    users, pos, neg = batch
    d, r, n_users, n_items = model.dim, model.rank, model.n_users, model.n_items
    widths = [x.shape[1] for x in model.item_features]
    user_tables = model.train_user_interest
    n_unique_items = int(torch.unique(torch.cat([pos, neg])).numel())
    n_unique_users = int(torch.unique(users).numel())
    n_pairs = len(list(combinations(range(len(widths)), 2)))
    head = d * d * r + 3 * (d * r) ** 2 + d * r * d  # forward both layers; ∂W_o, ∂h, ∂W_h
    return {
        "item feature projections (forward, weight and table gradients)": 3 * n_items * d * sum(widths),
        "user interest projections": (3 if user_tables else 1) * n_users * d * sum(widths),
        "meta-network (2 heads per node type, every node)": 2 * (n_users + n_items) * head,
        "contrastive logits (forward, two gradients)": 3 * n_pairs * d * (n_unique_items**2 + n_unique_users**2),
    }


def optimizer_bytes(model, in_backward: int) -> int:
    """AdamW's memory traffic per step; ``in_backward`` parameters are stepped in the backward pass."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 4 * (8 * (trainable - in_backward) + 6 * in_backward)


# --------------------------------------------------------------------------- one process
def measure(data: Path, threads: int, epochs: int, repeats: int) -> dict:
    import torch

    from recsys.compose import build
    from recsys.training import table_step
    from recsys.training.trainer import Trainer, make_optimizer

    torch.set_num_threads(threads)
    config = run_config(data, epochs)
    run = build(config, torch.device("cpu"))
    model, task = run.model, run.task
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(model, task, config["train"], run_dir).fit()
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]

    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config["train"])
    table_step.attach(model, optimizer, config["train"])
    in_backward = table_step.elements_in_backward(model, config["train"])
    model.train()
    batches = list(task.batches(epochs + 1))

    def step(batch):
        losses = model.loss(*batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], math.inf)
        optimizer.step()

    full = batches[0]  # a full-sized batch (only the last one of an epoch can be smaller)
    step(full)
    cpu, wall = [], []
    for batch in batches[1:] or batches:
        start, start_cpu = time.perf_counter(), time.process_time()
        step(batch)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    stages = stage_times(model, optimizer, full, repeats)
    table = profile_table(lambda: step(full))

    rates = machine_rates(repeats)
    macs = dense_multiply_adds(model, full)
    floor = {
        "dense products": sum(macs.values()) / rates["gemm_multiply_adds_per_second"],
        "sparse products": sparse_seconds(model, repeats),
        "optimizer memory traffic": optimizer_bytes(model, in_backward) / rates["fused_adamw_bytes_per_second"],
    }
    step_seconds = statistics.median(cpu)
    return {
        "input": {"users": model.n_users, "items": model.n_items, "train": int(run.dataset.train.shape[1]),
                  "batches_per_epoch": len(batches), "feature_dims": [x.shape[1] for x in model.item_features]},
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "epochs": [{k: r[k] for k in ("epoch", "train_seconds", "train_cpu_seconds")} for r in records],
        "step_cpu_seconds_median": step_seconds,
        "step_wall_seconds_median": statistics.median(wall),
        "stage_cpu_ms": stages,
        "profile_one_step": table,
        "machine": rates,
        "dense_multiply_adds": macs,
        "floor_cpu_seconds": {k: round(v, 4) for k, v in floor.items()},
        "floor_cpu_seconds_total": round(sum(floor.values()), 4),
        "step_over_floor": round(step_seconds / sum(floor.values()), 2),
        "peak_memory_mb": peak_memory_mb(),
        "load_average": list(os.getloadavg()),
    }


BEGIN, END = "<!-- rearm_profile:begin -->", "<!-- rearm_profile:end -->"


def markdown(results: dict) -> str:
    """Per thread count: epoch and step times, the stages, the floor's terms and the ratio."""
    lines = [BEGIN, "## Where a REARM step goes (`rearm_profile.py`)", "",
             "The published Sports settings with trained user interest on the parity input; CPU seconds are "
             "summed over threads (on T busy threads an ideal step takes floor / T of wall time); the floor is "
             "the dense and sparse products and the optimiser's memory traffic at this machine's measured rates "
             "(the script's docstring).", ""]
    for label, r in sorted(results.items()):
        data, stages = r["input"], r["stage_cpu_ms"]
        epoch_wall = statistics.median(e["train_seconds"] for e in r["epochs"])
        epoch_cpu = statistics.median(e["train_cpu_seconds"] for e in r["epochs"])
        floor = ", ".join(f"{name} {seconds * 1e3:.0f}" for name, seconds in r["floor_cpu_seconds"].items())
        lines += [f"**{r['threads']} thread(s)** (commit {r['commit']}, load average {r['load_average'][0]:.2f}, "
                  f"{data['users']:,} users, {data['items']:,} items, {data['batches_per_epoch']} batches per epoch): "
                  f"epoch {epoch_wall:.2f} s wall / {epoch_cpu:.2f} CPU-s (median); step "
                  f"{r['step_wall_seconds_median'] * 1e3:.0f} ms wall / "
                  f"{r['step_cpu_seconds_median'] * 1e3:.0f} CPU-ms "
                  f"(median) against a floor of {r['floor_cpu_seconds_total'] * 1e3:.0f} CPU-ms ({floor}): "
                  f"{r['step_over_floor']:.2f}x the floor. Stages, CPU-ms: "
                  + ", ".join(f"{name} {ms:.0f}" for name, ms in stages.items()) + ".", ""]
    return "\n".join(lines + [END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--data", type=Path, help="a REARM folder (default: the parity input, built into --cache)")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "recsys")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--omp-passive", action="store_true", help="run the children with OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true", help="only rewrite the README section from the results")
    args = parser.parse_args()
    if args.report:
        write_readme_section(markdown(read_json(OUT, {})), BEGIN, END)
        return
    if args.single:
        print(json.dumps(measure(args.data, args.single, args.epochs, args.repeats)))
        return
    from recsys import io

    data = args.data or parity_folder(args.cache)
    env = {**os.environ, **({"OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else {})}
    for threads in args.threads:
        out = subprocess.run([sys.executable, __file__, "--single", str(threads), "--data", str(data),
                              "--epochs", str(args.epochs), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True, env=env).stdout
        result = {**json.loads(out.strip().splitlines()[-1]), "commit": commit()}
        results = read_json(OUT, {})
        results[f"{threads}-thread"] = result
        io.write_json(OUT, results)
        print(f"{threads} thread(s): {statistics.mean(e['train_cpu_seconds'] for e in result['epochs']):.2f} CPU-s "
              f"/ {statistics.mean(e['train_seconds'] for e in result['epochs']):.2f} s per epoch; step "
              f"{result['step_cpu_seconds_median']:.3f} CPU-s, floor {result['floor_cpu_seconds_total']:.3f} CPU-s "
              f"({result['step_over_floor']}x)", flush=True)
    write_readme_section(markdown(read_json(OUT, {})), BEGIN, END)


if __name__ == "__main__":
    main()
