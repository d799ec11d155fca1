"""Full-ranking evaluation speed on Clothing (issue 2 item 4): target < 5 s on a 2-core CPU.

All 39,387 Clothing users are ranked against all 23,033 items from random 64-d embeddings,
train items masked, test items as targets, Recall/NDCG/Precision/MAP/HitRate at 10 and 20
(the defaults of ``eval``). Reports the best and median of several timed repetitions after
one warm-up, for a few batch sizes, with the process CPU time next to the wall time: the
machine is shared, so the load average is recorded too.

    python bench/eval_speed.py [--repeats 5] [--batch-sizes 1024 4096] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, environment, peak_memory_mb  # noqa: E402

from recsys import io  # noqa: E402
from recsys.config import CORE_DEFAULTS  # noqa: E402
from recsys.data.rearm import read_rearm  # noqa: E402
from recsys.evaluation import evaluate_ranking  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "eval_speed.json")
    args = parser.parse_args()

    dataset = read_rearm(SHARED_DATA / "amazon" / "clothing", name="clothing")
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    user_emb = torch.randn(dataset.n_users, args.dim, generator=generator).to(device)
    item_emb = torch.randn(dataset.n_items, args.dim, generator=generator).to(device)
    exclude, target = dataset.csr("train"), dataset.csr("test")
    ks, metrics = CORE_DEFAULTS["eval"]["ks"], CORE_DEFAULTS["eval"]["metrics"]

    def score(users: torch.Tensor) -> torch.Tensor:
        return user_emb[users] @ item_emb.T

    runs = []
    for batch_size in args.batch_sizes:
        times, cpu_times = [], []
        for repeat in range(args.repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
            result = evaluate_ranking(score, exclude, target, ks, metrics, batch_size=batch_size, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if repeat:  # the first run is a warm-up
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
        runs.append({"batch_size": batch_size, "best_seconds": round(min(times), 3),
                     "median_seconds": round(statistics.median(times), 3), "all_seconds": [round(t, 3) for t in times],
                     "best_cpu_seconds": round(min(cpu_times), 3)})
        print(f"batch {batch_size}: best {min(times):.2f} s, median {statistics.median(times):.2f} s, "
              f"cpu {min(cpu_times):.2f} s, load {os.getloadavg()[0]:.1f}")
    io.write_json(args.out, {
        "benchmark": "full-ranking evaluation, Clothing test split, random embeddings",
        "users_evaluated": int((np.diff(target.indptr) > 0).sum()), "n_items": dataset.n_items,
        "dim": args.dim, "ks": ks, "metrics": metrics, "device": str(device),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2), "torch": torch.__version__, "commit": commit(),
        "target_seconds": 5.0, "runs": runs, "peak_memory_mb": round(peak_memory_mb(), 1),
        "sanity_recall@20_random": result["recall@20"], "environment": environment(),
    })


if __name__ == "__main__":
    main()
