"""Top-50 export with the FAISS index (``recsys export --index faiss``) against the exact export:
recall@50 and time for all users (issue 17).

Cases, each in its own process (one torch thread, OMP/MKL one thread):

- ``sports``: LightGCN trained on the Amazon Sports split (seed 2024, batch 8192, lr 5e-3,
  ``--sports-epochs`` epochs, default 20; the run is kept in ``--work-dir`` and reused), its
  64-d final representations;
- ``10000``, ``100000``, ``1000000``: the synthetic catalogues of ``bench/scaling.py`` (users = 2 × items)
  with stand-in representations, since training LightGCN at a million items takes days here:
  item i is its 64-d clustered ``text`` feature vector, user u the mean of the vectors of u's
  train items (scores ⟨z_u, z_i⟩ then favour the user's clusters, as trained ones do).

For every case the top-50 lists of the users (train items excluded) come from the export's
:meth:`recsys.serving.TrainedRun.top_k` (scoring, exclusion, top-K and the Arrow rows, not
the file writing, which is the same for both), with ``index="exact"`` and ``index="faiss"``
(default parameters, index build included in its time). The exact export of all users is timed
up to 100k items; at 1M items it is timed on 20,000 seeded users and extrapolated linearly in
users. Recall@50 = share of a user's exact top-50 items that the FAISS list holds, mean over
all users up to 50,000 users, else over 20,000 seeded users.

    python bench/export_faiss.py                       # sports, 10k, 100k, 1M
    python bench/export_faiss.py --cases sports --redo
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, peak_memory_mb, read_json, write_readme_section  # noqa: E402
from scaling import load, stage_data  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "export_faiss.json"
BEGIN, END = "<!-- export_faiss:begin -->", "<!-- export_faiss:end -->"
CASES = ("sports", "10000", "100000", "1000000")
K = 50
SAMPLE_USERS = 20_000
RECALL_ALL_USERS = 50_000
FULL_EXACT_MAX_ITEMS = 100_000
TARGET_RECALL = 0.98


def sports_recommender(work_dir: Path, epochs: int, index: str):
    from recsys.compose import resolve
    from recsys.runs import load_run, train

    run_dir = work_dir / "sports-lightgcn"
    if not (run_dir / "results.json").exists():
        train(resolve({"seed": 2024, "device": "cpu", "threads": 1, "run_name": run_dir.name,
                       "output_dir": str(work_dir), "cache_dir": str(work_dir / "cache"),
                       "dataset": {"format": "rearm", "path": str(SHARED_DATA / "amazon" / "sports"),
                                   "name": "sports", "modalities": []},
                       "model": {"name": "lightgcn", "n_layers": 3},
                       "train": {"batch_size": 8192, "lr": 5e-3, "epochs": epochs, "progress": False,
                                 "eval_every": 5, "patience": epochs + 1}}), run_dir=run_dir)
    return load_run(run_dir, device="cpu", index=index)


class StandIn:
    """Fixed user and item vectors in the place of a trained model (module docstring)."""

    def __init__(self, dataset) -> None:
        import torch

        from recsys.graphs.interest import user_interest
        from recsys.models.base import Recommender

        items = torch.from_numpy(dataset.features["text"])
        users = user_interest(dataset.csr("train"), dataset.features["text"])

        class Fixed(Recommender):
            def embeddings(self):
                return users, items

        self.model = Fixed(dataset, {}, None)


def synthetic_recommender(work_dir: Path, n_items: int, index: str):
    from recsys.serving import TrainedRun

    if not (work_dir / f"scaling-{n_items}.npz").exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        stage_data(work_dir, n_items)
    dataset = load(work_dir, n_items)
    return TrainedRun(StandIn(dataset).model, dataset, "cpu", index=index)


def timed_rows(recommender, users: np.ndarray) -> dict:
    """CPU and wall seconds of the top-K rows of ``users`` (the Arrow tables are dropped)."""
    cpu, wall = time.process_time(), time.perf_counter()
    rows = sum(table.num_rows for table in recommender.top_k(users, K, "train"))
    return {"cpu_seconds": round(time.process_time() - cpu, 2), "wall_seconds": round(time.perf_counter() - wall, 2),
            "rows": rows}


def top_items(recommender, users: np.ndarray) -> np.ndarray:
    """Item indices of the top-K lists of ``users`` (users × K, -1 where a list is shorter)."""
    import pandas as pd

    item_index = pd.Series(np.arange(recommender.dataset.n_items),
                           index=np.asarray(recommender.dataset.item_ids).astype(str))
    user_row = pd.Series(np.arange(len(users)), index=np.asarray(recommender.dataset.user_ids).astype(str)[users])
    items = np.full((len(users), K), -1)
    for table in recommender.top_k(users, K, "train"):
        frame = table.to_pandas()
        items[user_row[frame["user"]].to_numpy(), frame["rank"].to_numpy() - 1] = item_index[frame["item"]].to_numpy()
    return items


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over users of |found ∩ exact| / |exact| (users with an empty exact list left out)."""
    hits = ((exact[:, :, None] == found[:, None, :]) & (exact[:, :, None] >= 0)).any(axis=2).sum(axis=1)
    sizes = (exact >= 0).sum(axis=1)
    return float(np.mean(hits[sizes > 0] / sizes[sizes > 0]))


def run_case(case: str, work_dir: Path, sports_epochs: int) -> dict:
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    make = (lambda index: sports_recommender(work_dir, sports_epochs, index)) if case == "sports" else \
        (lambda index: synthetic_recommender(work_dir, int(case), index))
    exact_rec, faiss_rec = make("exact"), make("faiss")
    n_users, n_items = exact_rec.dataset.n_users, exact_rec.dataset.n_items
    everyone = np.arange(n_users)
    compared = everyone if n_users <= RECALL_ALL_USERS else \
        np.sort(np.random.default_rng(0).choice(n_users, SAMPLE_USERS, replace=False))
    record = {"items": n_items, "users": n_users, "k": K, "faiss": timed_rows(faiss_rec, everyone)}
    if n_items <= FULL_EXACT_MAX_ITEMS:
        record["exact"] = {**timed_rows(exact_rec, everyone), "extrapolated": False}
    else:
        sample = timed_rows(exact_rec, compared)
        record["exact"] = {"sample_users": len(compared), **{f"sample_{k}": v for k, v in sample.items()},
                           "cpu_seconds": round(sample["cpu_seconds"] * n_users / len(compared), 1),
                           "extrapolated": True}
    record["recall_users"] = int(len(compared))
    record["recall@50"] = round(recall(top_items(faiss_rec, compared), top_items(exact_rec, compared)), 4)
    record.update(peak_rss_mb=round(peak_memory_mb()), load_average=[round(x, 2) for x in os.getloadavg()], threads=1)
    return record


def markdown(results: dict) -> str:
    lines = [BEGIN, "## Top-50 export with the FAISS index (`export_faiss.py`)", "",
             f"Commit {results['commit']}, faiss {results['faiss_version']}; one thread, CPU seconds of the top-50 rows "
             "of all users (train items excluded; file writing left out, it is the same for both); FAISS retriever "
             f"parameters {', '.join(f'{k} {v}' for k, v in results['params'].items())}, index build included. `~` = "
             f"exact time extrapolated from {SAMPLE_USERS:,} users. Sports: LightGCN trained {results['sports_epochs']} "
             "epochs; synthetic catalogues: stand-in representations (see the script). Recall@50 against the exact "
             f"export, target ≥ {TARGET_RECALL}.", "",
             "| catalogue | users | items | exact s | FAISS s | speed-up | recall@50 (users) | peak RSS MB | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in (c for c in CASES if c in results["cases"]):
        r = results["cases"][case]
        exact, fast = r["exact"]["cpu_seconds"], r["faiss"]["cpu_seconds"]
        lines.append(f"| {case} | {r['users']:,} | {r['items']:,} | {'~' if r['exact']['extrapolated'] else ''}"
                     f"{exact:,.1f} | {fast:,.1f} | {exact / max(fast, 1e-9):,.1f}× | {r['recall@50']:.4f} "
                     f"({r['recall_users']:,}) | {r['peak_rss_mb']:,} | {r['load_average'][0]} |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/recsys-scaling"))
    parser.add_argument("--sports-epochs", type=int, default=20)
    parser.add_argument("--redo", action="store_true", help="measure again even if recorded")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_case(args.single, args.work_dir, args.sports_epochs)))
        return
    import inspect

    import faiss

    from recsys.evaluation.retrieval import FaissRetriever

    results = read_json(OUT, {"cases": {}})
    params = {name: p.default for name, p in inspect.signature(FaissRetriever).parameters.items()
              if p.default is not inspect.Parameter.empty}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for case in args.cases:
        if case in results["cases"] and not args.redo:
            continue
        proc = subprocess.run([sys.executable, __file__, "--single", case, "--work-dir", str(args.work_dir),
                               "--sports-epochs", str(args.sports_epochs)], env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"{case} failed (exit {proc.returncode})", file=sys.stderr, flush=True)
            continue
        results["cases"][case] = json.loads(proc.stdout.strip().splitlines()[-1])
        results.update(commit=commit(), faiss_version=faiss.__version__, params=params,
                       sports_epochs=args.sports_epochs)
        io.write_json(OUT, results)
        print(f"{case}: {json.dumps(results['cases'][case])}", flush=True)
    if results["cases"]:
        write_readme_section(markdown(results), BEGIN, END)


if __name__ == "__main__":
    main()
