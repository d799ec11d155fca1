"""Build every REARM graph for Clothing and record time and peak memory (issue 2/3).

Clothing train split (39,387 users, 23,033 items) with stand-in item features of the paper's
shapes (image 4096-d, text 384-d; seeded standard-normal float32, since the real features
are not available here) and the published Clothing hyper-parameters: user_knn_k 45,
item_knn_k 10 (co-occurrence k the same), image share 0.1 of both modality mixtures,
user_co_weight 0.7, item_co_weight 0.1. Every graph goes through :class:`recsys.graphs.GraphStore` (no disk cache),
components first, so the homography steps time only the mixing. Peak memory is the process
peak resident set size (ru_maxrss) after each step, which includes the 412 MB of features.
Target (issue 3): all graphs < 10 s on 2 cores, peak < 3 GB. The machine is shared: the load
average and process CPU time are recorded next to wall time.

``--projection D'`` builds the kNN graphs from features randomly projected to D' dimensions
(an explicit approximation, GraphStore(knn_projection=D')); the run then records, per kNN
graph, the recall of the exact top-k neighbours on a seeded sample of rows (exact neighbours
by brute force on the original features), and the same on the real Sports text features.

``--matmul-rate`` instead records this CPU's dense matrix-product rate (multiply-adds per
CPU-second of one thread, float32 and bfloat16, on the kNN builder's block shape), the figure
that bounds how fast an exact kNN graph can be built here (bench/rearm_report.py).

    python bench/rearm_graphs.py [--user-knn-method direct|gram] [--projection 128] [--skip image] [--name NAME]
    python bench/rearm_graphs.py --matmul-rate
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, environment, peak_memory_mb, read_json  # noqa: E402

from recsys import io  # noqa: E402
from recsys.data.rearm import read_rearm  # noqa: E402
from recsys.graphs import GraphStore, knn_graph, user_interest  # noqa: E402

SHAPES = {"image": 4096, "text": 384}
USER_K, ITEM_K = 45, 10
U_IMAGE, I_IMAGE, UU_CO, II_CO = 0.1, 0.1, 0.7, 0.1


def _nnz(graph: torch.Tensor) -> int:
    return int(graph._nnz())


def recall(graph: torch.Tensor, points: torch.Tensor, k: int, sample: int = 300, seed: int = 0) -> float:
    """Mean fraction of the exact top-k cosine neighbours of sampled rows that ``graph`` keeps."""
    rows = np.random.default_rng(seed).choice(points.shape[0], size=min(sample, points.shape[0]), replace=False)
    unit = points / points.norm(dim=1, keepdim=True).clamp_min(1e-30)
    exact = torch.topk(unit[rows] @ unit.T, k, dim=1).indices.numpy()
    crow, col = graph.crow_indices().numpy(), graph.col_indices().numpy()
    hits = [len(set(exact[i]) & set(col[crow[r]:crow[r + 1]])) for i, r in enumerate(rows)]
    return round(float(np.mean(hits)) / k, 4)


def sports_text_recall(projection: int) -> dict:
    """Item kNN recall of the projection on the real Sports text features (MiniLM, 384-d)."""
    path = SHARED_DATA / "amazon" / "sports" / "text_feat.npy"
    if not path.exists():
        return {"skipped": f"{path} is absent"}
    features = torch.from_numpy(np.load(path))
    approx = knn_graph(features, ITEM_K, projection=projection)
    return {"items": int(features.shape[0]), "dim": int(features.shape[1]), "k": ITEM_K,
            "recall": recall(approx, features, ITEM_K)}


def matmul_rate(rows: int = 4096, columns: int = 8192, dim: int = 4096, repeats: int = 3) -> dict:
    """Multiply-adds per CPU-second of one thread for (rows × dim) @ (dim × columns) products,
    best of ``repeats``, in float32 and bfloat16 (process CPU time: robust to a shared machine)."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(rows, dim, generator=generator).to(dtype)
        b = torch.randn(dim, columns, generator=generator).to(dtype)
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            a @ b
            best = min(best, time.process_time() - started)
        rates[str(dtype).removeprefix("torch.")] = rows * columns * dim / best
    return {"multiply_adds_per_cpu_second_one_thread": rates, "shape": [rows, dim, columns],
            "environment": environment()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user-knn-method", choices=["direct", "gram"], default="direct")
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(SHAPES),
                        help="modalities left out (their kNN graphs are not built; mixing uses the rest)")
    parser.add_argument("--projection", type=int, default=None, help="approximate kNN from D'-dim projections")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default=None, help="key of this run in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS / "rearm_graphs.json")
    parser.add_argument("--matmul-rate", action="store_true", help="record the CPU's matrix-product rate only")
    args = parser.parse_args()
    if args.matmul_rate:
        results = read_json(args.out, {"benchmark": __doc__.split("\n\n")[0], "target": {"seconds": 10, "peak_gb": 3},
                                       "runs": {}})
        results["matmul_rate"] = matmul_rate()
        io.write_json(args.out, results)
        print(results["matmul_rate"]["multiply_adds_per_cpu_second_one_thread"])
        return

    dataset = read_rearm(SHARED_DATA / "amazon" / "clothing", name="clothing")
    rng = np.random.default_rng(0)
    modalities = [m for m in SHAPES if m not in args.skip]
    dataset.features = {m: rng.standard_normal((dataset.n_items, SHAPES[m]), dtype=np.float32) for m in modalities}
    store = GraphStore(dataset, args.device, user_knn_method=args.user_knn_method, knn_projection=args.projection)

    def mixture(image_weight: float) -> dict[str, float]:
        if len(modalities) == 1:
            return {modalities[0]: 1.0}
        return {"image": image_weight, "text": 1.0 - image_weight}

    steps = [("user_item", store.user_item)]
    for m in modalities:
        steps.append((f"item_knn[{m}, k={ITEM_K}]", lambda m=m: store.item_knn({m: 1.0}, ITEM_K)))
    for m in modalities:
        steps.append((f"user_interest_knn[{m}, k={USER_K}]", lambda m=m: store.user_interest_knn({m: 1.0}, USER_K)))
    steps += [
        (f"item_cooccurrence[k={ITEM_K}]", lambda: store.item_cooccurrence(ITEM_K)),
        (f"user_cooccurrence[k={USER_K}]", lambda: store.user_cooccurrence(USER_K)),
        ("item_homography (mixing)", lambda: store.item_homography(mixture(I_IMAGE), ITEM_K, II_CO)),
        ("user_homography (mixing)", lambda: store.user_homography(mixture(U_IMAGE), USER_K, UU_CO)),
    ]
    load_start = os.getloadavg()[0]
    records = []
    for name, build in steps:
        start, cpu_start = time.perf_counter(), time.process_time()
        graph = build()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        records.append({"graph": name, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                        "nnz": _nnz(graph), "peak_rss_mb_so_far": round(peak_memory_mb(), 1)})
        print(f"{name:36s} {seconds:8.2f} s  cpu {cpu:8.2f} s  nnz {_nnz(graph):>10d}  "
              f"peak {peak_memory_mb():7.0f} MB  load {os.getloadavg()[0]:.1f}", flush=True)
    total, peak = sum(r["seconds"] for r in records), peak_memory_mb()
    if args.projection:
        by_name = {r["graph"]: r for r in records}
        for m in modalities:
            points = torch.from_numpy(dataset.features[m])
            by_name[f"item_knn[{m}, k={ITEM_K}]"]["recall_vs_exact"] = recall(
                store.item_knn({m: 1.0}, ITEM_K), points, ITEM_K)
            by_name[f"user_interest_knn[{m}, k={USER_K}]"]["recall_vs_exact"] = recall(
                store.user_interest_knn({m: 1.0}, USER_K), user_interest(dataset.csr("train"), points), USER_K)
    run = {
        "exact": args.projection is None, "knn_projection": args.projection,
        "user_knn_method": args.user_knn_method, "modalities": {m: SHAPES[m] for m in modalities},
        "device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "graphs": records, "total_seconds": round(total, 2),
        "total_cpu_seconds": round(sum(r["cpu_seconds"] for r in records), 2),
        "peak_rss_mb": round(peak, 1), "commit": commit(), "torch": torch.__version__,
        "dataset": {"name": dataset.name, "users": dataset.n_users, "items": dataset.n_items},
        "environment": environment(),
    }
    if args.projection:
        run["sports_real_text_item_knn"] = sports_text_recall(args.projection)
    print(f"total {total:.1f} s, peak {peak:.0f} MB")
    results = read_json(args.out, {"benchmark": __doc__.split("\n\n")[0], "target": {"seconds": 10, "peak_gb": 3},
                                   "runs": {}})
    default_name = f"{'exact' if args.projection is None else f'projection{args.projection}'}-{args.user_knn_method}"
    results["runs"][args.name or f"{default_name}-{'+'.join(modalities)}"] = run
    io.write_json(args.out, results)


if __name__ == "__main__":
    main()
