"""FAISS kNN graphs against the exact builders: time, speed-up and recall@k (issue 17).

Graphs: the item kNN graph (k = 10) and the user-interest kNN graph (k = 40) of every modality,
built with ``graphs.knn_backend: faiss`` (:class:`recsys.graphs.ann.FaissSearch`, default
parameters) and with the exact builder; the time is that of the whole graph (neighbour search
and the shared normalisation), on one thread, CPU seconds. Recall@k of a row = the share of its
k exact neighbours that the FAISS graph keeps; reported as the mean over rows.

Catalogues:

- ``sports``: the real Amazon Sports split and its 384-d all-MiniLM-L6-v2 text features. At this
  size ``index: auto`` picks the flat index (exact neighbours), so HNSW is also run, forced.
- ``10000``, ``100000``, ``1000000``: the synthetic catalogues of ``bench/scaling.py`` (users =
  2 × items; 64-d clustered ``text``, 32-d noise ``image`` features), written once to
  ``--work-dir``. At 10k items the exact graphs are built in full and HNSW is also forced; from
  100k on the exact time is extrapolated as scaling.py does (the exact builder's blocks for
  4,096 query rows against all n, scaled to n rows and divided by the extrapolated/measured
  ratio of the same graph at 10k items), and recall is measured on 1,000 seeded rows against
  their exact neighbours (float64 cosines of the row with all n, ties to the lower index).

Every catalogue runs in its own process (one torch thread, OMP/MKL one thread). Results go to
the ``knn_faiss`` part of ``bench/results/scaling.json`` and a section of bench/README.md.

    python bench/knn_faiss.py                                  # sports, 10k, 100k, 1M
    python bench/knn_faiss.py --cases sports 10000 --redo      # a subset again
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, peak_memory_mb, read_json, write_readme_section  # noqa: E402
from scaling import SAMPLE_ROWS, _sampled_topk, load, stage_data  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "scaling.json"
PART = "knn_faiss"
BEGIN, END = "<!-- knn_faiss:begin -->", "<!-- knn_faiss:end -->"
CASES = ("sports", "10000", "100000", "1000000")
ITEM_K, USER_K = 10, 40
RECALL_ROWS = 1000
FULL_EXACT_MAX_ITEMS = 10_000


def sports_dataset():
    from recsys.data.loading import load_dataset

    return load_dataset({"format": "rearm", "path": str(SHARED_DATA / "amazon" / "sports"), "name": "sports",
                         "modalities": ["text"]})


def graph_points(dataset) -> list[tuple[str, str, int, object]]:
    """(graph name, modality, k, points) for the item and user-interest graph of every modality."""
    import torch

    from recsys.graphs.interest import user_interest

    out = []
    for modality in sorted(dataset.features):
        out.append((f"item_knn[{modality}]", modality, ITEM_K, torch.from_numpy(dataset.features[modality])))
        out.append((f"user_knn[{modality}]", modality, USER_K,
                    user_interest(dataset.csr("train"), dataset.features[modality])))
    return out


def timed_graph(points, k: int, search) -> tuple[dict, object]:
    """CPU and wall seconds of the normalised kNN graph of ``points`` and its neighbour indices."""
    from recsys.graphs.knn import neighbour_graph, neighbours

    cpu, wall = time.process_time(), time.perf_counter()
    values, indices = neighbours(points, k, search=search)
    neighbour_graph(values, indices)
    return {"cpu_seconds": round(time.process_time() - cpu, 2), "wall_seconds": round(time.perf_counter() - wall, 2),
            "peak_mb_so_far": round(peak_memory_mb())}, indices


def exact_rows(points, rows: np.ndarray, k: int):
    """Exact top-k neighbours of ``rows`` (float64 cosines with all n, rounded to float32, ties to
    the lower index; a zero row keeps 0..k-1, as the builders do)."""
    import torch

    from recsys.graphs.topk import topk_rows

    x = points.double()
    norms = x.norm(dim=1)
    unit = x / norms.clamp_min(1e-300)[:, None]
    out = []
    for start in range(0, len(rows), 256):
        block = torch.from_numpy(rows[start:start + 256])
        sims = (unit[block] @ unit.T).float()
        top = topk_rows(sims, k)[1]
        top[norms[block] == 0] = torch.arange(k)
        out.append(top)
    return torch.cat(out)


def recall(found, exact) -> float:
    """Mean over rows of |found ∩ exact| / k."""
    hits = (found[:, :, None] == exact[:, None, :]).any(dim=2).sum(dim=1)
    return float((hits.double() / exact.shape[1]).mean())


def run_case(case: str, work_dir: Path) -> dict:
    import faiss
    import torch

    from recsys.graphs.ann import FaissSearch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    if case == "sports":
        dataset = sports_dataset()
    else:
        if not (work_dir / f"scaling-{case}.npz").exists():
            work_dir.mkdir(parents=True, exist_ok=True)
            stage_data(work_dir, int(case))
        dataset = load(work_dir, int(case))
    full_exact = case == "sports" or dataset.n_items <= FULL_EXACT_MAX_ITEMS
    auto = FaissSearch()
    graphs = {}
    for name, modality, k, points in graph_points(dataset):
        n = points.shape[0]
        entry = {"n": n, "dim": int(points.shape[1]), "k": k}
        variants = {"auto": auto}
        if auto.index_for(n) == "flat":
            variants["hnsw"] = FaissSearch(index="hnsw")
        found = {}
        for label, search in variants.items():
            entry[f"faiss_{label}"], found[label] = timed_graph(points, k, search)
            entry[f"faiss_{label}"]["index"] = search.index_for(n)
        sample_rows = min(SAMPLE_ROWS, n)
        cpu = time.process_time()
        _sampled_topk(points, k, sample_rows)
        sampled = (time.process_time() - cpu) * n / sample_rows
        if full_exact:
            entry["exact"], exact = timed_graph(points, k, None)
            measured = entry["exact"]["cpu_seconds"]
            entry["exact"]["sampled_over_measured"] = round(sampled / measured, 3) if measured > 0 else None
            rows = np.arange(n)
        else:
            entry["exact"] = {"sample_rows": sample_rows, "sampled_cpu_seconds": round(sampled, 1)}
            rows = np.sort(np.random.default_rng(0).choice(n, RECALL_ROWS, replace=False))
            exact = exact_rows(points, rows, k)
        for label in variants:
            entry[f"faiss_{label}"]["recall"] = round(recall(found[label][rows], exact), 4)
            entry[f"faiss_{label}"]["recall_rows"] = int(len(rows))
        graphs[name] = entry
        print(f"{case} {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    return {"items": dataset.n_items, "users": dataset.n_users, "graphs": graphs, "peak_rss_mb": round(peak_memory_mb()),
            "load_average": [round(x, 2) for x in os.getloadavg()], "threads": 1}


# ----------------------------------------------------------------------------- report
def exact_seconds(results: dict, case: str, graph: str) -> tuple[float, bool]:
    """Exact CPU seconds of a graph and whether extrapolated (scaled by the sampled/measured
    ratio of the same graph at the smallest synthetic size, as in scaling.py)."""
    exact = results["cases"][case]["graphs"][graph]["exact"]
    if "cpu_seconds" in exact:
        return exact["cpu_seconds"], False
    measured = [c for c in results["cases"] if c != "sports" and "cpu_seconds" in
                results["cases"][c]["graphs"].get(graph, {}).get("exact", {})]
    ratio = results["cases"][min(measured, key=int)]["graphs"][graph]["exact"]["sampled_over_measured"] \
        if measured else 1.0
    return exact["sampled_cpu_seconds"] / ratio, True


def rows_of_table(results: dict) -> list[dict]:
    rows = []
    for case in sorted(results["cases"], key=lambda c: (c != "sports", int(c) if c.isdigit() else 0)):
        entry = results["cases"][case]
        for graph, g in entry["graphs"].items():
            exact, extrapolated = exact_seconds(results, case, graph)
            for label in ("auto", "hnsw"):
                if f"faiss_{label}" not in g:
                    continue
                f = g[f"faiss_{label}"]
                rows.append({"case": case, "graph": graph, "n": g["n"], "dim": g["dim"], "k": g["k"],
                             "index": f["index"] + (" (forced)" if label == "hnsw" else ""),
                             "exact": exact, "extrapolated": extrapolated, "faiss": f["cpu_seconds"],
                             "speed_up": exact / max(f["cpu_seconds"], 1e-9), "recall": f["recall"],
                             "recall_rows": f["recall_rows"], "peak": f["peak_mb_so_far"]})
    return rows


def markdown(results: dict) -> str:
    rows = rows_of_table(results)
    params = results["params"]
    lines = [BEGIN, "## kNN graphs with FAISS (`knn_faiss.py`)", "",
             f"Commit {results['commit']}, faiss {results['faiss_version']}; one thread, CPU seconds of the whole "
             f"graph; FAISS parameters (`graphs.faiss`): {', '.join(f'{k} {v}' for k, v in params.items())}. Catalogues: Amazon Sports (text, 384-d) and the "
             "synthetic ones of `scaling.py` (twice as many users as items). `~` = exact time extrapolated from "
             f"{SAMPLE_ROWS:,} query rows (see the script). Recall@k = share of each row's exact k neighbours kept, "
             f"mean over all rows (sampled: over {RECALL_ROWS:,} seeded rows). Load average at the end of each "
             "catalogue: "
             + ", ".join(f"{c} {results['cases'][c]['load_average'][0]}" for c in results["cases"]) + ".", "",
             "| catalogue | graph | rows | dim | k | FAISS index | exact s | FAISS s | speed-up | recall@k | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['graph']} | {r['n']:,} | {r['dim']} | {r['k']} | {r['index']} | "
                     f"{'~' if r['extrapolated'] else ''}{r['exact']:,.1f} | {r['faiss']:,.1f} | "
                     f"{r['speed_up']:,.1f}× | {r['recall']:.4f} ({r['recall_rows']:,} rows) | {r['peak']:,} |")
    hnsw = [r for r in rows if r["index"].startswith("hnsw")]
    if hnsw:
        worst = min(hnsw, key=lambda r: r["recall"])
        lines += ["", f"Lowest HNSW recall: {worst['recall']:.4f} ({worst['case']}, {worst['graph']}). "
                  + "; ".join(f"{case}: all kNN graphs {sum(r['faiss'] for r in rows if r['case'] == case and not r['index'].endswith('(forced)')):,.0f} s "
                              f"with FAISS against {'~' if any(r['extrapolated'] for r in rows if r['case'] == case) else ''}"
                              f"{sum(r['exact'] for r in rows if r['case'] == case and not r['index'].endswith('(forced)')):,.0f} s exact"
                              for case in dict.fromkeys(r["case"] for r in rows)) + "."]
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/recsys-scaling"))
    parser.add_argument("--redo", action="store_true", help="measure again even if recorded")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_case(args.single, args.work_dir)))
        return
    import faiss

    from recsys.graphs.ann import FaissSearch

    results = read_json(OUT, {"sizes": {}})
    part = results.setdefault(PART, {"cases": {}})
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for case in args.cases:
        if case in part["cases"] and not args.redo:
            continue
        proc = subprocess.run([sys.executable, __file__, "--single", case, "--work-dir", str(args.work_dir)],
                              env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"{case} failed (exit {proc.returncode})", file=sys.stderr, flush=True)
            continue
        results = read_json(OUT, {"sizes": {}})
        part = results.setdefault(PART, {"cases": {}})
        part["cases"][case] = json.loads(proc.stdout.strip().splitlines()[-1])
        part.update(commit=commit(), faiss_version=faiss.__version__,
                    params=asdict(FaissSearch()))
        io.write_json(OUT, results)
    if part["cases"]:
        write_readme_section(markdown(part), BEGIN, END)


if __name__ == "__main__":
    main()
