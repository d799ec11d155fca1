"""Top-50 export speed and memory on Clothing (issue 7).

Targets: all 39,387 users, K=50, train items excluded, Parquet output, from a LightGCN-like
64-d model in under 10 s with peak memory under 2 GB, and from 192-d representations
(REARM's size: [ID ‖ two projected modalities] × 64) in under 20 s, on this 2-core CPU.

Each case runs in its own process (so peak memory is its own): a LightGCN with the given
embedding size is built on the real Clothing split, saved untrained as a run folder
(config.yaml + best.pt; export cost does not depend on the weights), loaded back with
``recsys.export.load_run`` and exported with ``recsys.export.export``. Reported: load
seconds, export seconds (embeddings once + batched scoring + top-K + writing), wall and CPU
time, peak RSS, rows, and the 1-minute load average (the machine is shared).

    python bench/export_speed.py [--dims 64 192] [--repeats 2] [--device cpu]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, environment, peak_memory_mb  # noqa: E402

TARGET_SECONDS = {64: 10.0, 192: 20.0}
TARGET_PEAK_MB = 2048.0


def run_case(dim: int, repeats: int, device: str, batch_size: int) -> dict:
    """Child process: build, save, load and export one model; print a JSON line."""
    import torch

    from recsys import io
    from recsys.compose import build, resolve
    from recsys.export import export
    from recsys.io import dump_yaml
    from recsys.runs import load_run

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        config = resolve({
            "run_name": "run", "output_dir": tmp, "cache_dir": str(Path(tmp) / "cache"), "device": device,
            "dataset": {"format": "rearm", "path": str(SHARED_DATA / "amazon" / "clothing"), "name": "clothing",
                        "modalities": []},
            "model": {"name": "lightgcn", "embedding_size": dim},
        })
        model = build(config, torch.device(device)).model
        run_dir.mkdir()
        io.write_text(run_dir / "config.yaml", dump_yaml(config))
        io.torch_save({"model": model.state_dict()}, run_dir / "best.pt")
        del model
        start = time.perf_counter()
        recommender = load_run(run_dir, device=device)
        load_seconds = time.perf_counter() - start
        exports = []
        for _ in range(repeats):
            recommender._cache = None  # time the embeddings pass too
            start, cpu = time.perf_counter(), time.process_time()
            manifest = export(recommender, k=50, out=Path(tmp) / "top50.parquet", batch_size=batch_size,
                              progress=False)
            exports.append({"wall_seconds": round(time.perf_counter() - start, 3),
                            "cpu_seconds": round(time.process_time() - cpu, 3),
                            "load_average_1min": round(os.getloadavg()[0], 2)})
        return {
            "dim": dim, "device": device, "batch_size": batch_size, "users": manifest["users"]["exported"],
            "rows": manifest["rows"], "bytes": manifest["files"][0]["bytes"],
            "load_seconds": round(load_seconds, 3), "exports": exports,
            "best_export_seconds": min(e["wall_seconds"] for e in exports),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "target_seconds": TARGET_SECONDS.get(dim), "target_peak_mb": TARGET_PEAK_MB,
            "environment": environment(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 192])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "export.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_case(args.child, args.repeats, args.device, args.batch_size)))
        return

    import torch

    from recsys import io

    cases = []
    for dim in args.dims:
        command = [sys.executable, __file__, "--child", str(dim), "--repeats", str(args.repeats),
                   "--device", args.device, "--batch-size", str(args.batch_size)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"{dim}-d: export {result['best_export_seconds']:.2f} s (load {result['load_seconds']:.2f} s), "
              f"peak {result['peak_memory_mb']:.0f} MB, {result['rows']:,} rows")
        cases.append(result)
    io.write_json(args.out, {
        "benchmark": "top-50 export of all Clothing users, train items excluded, parquet",
        "commit": commit(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "cases": cases,
    })


if __name__ == "__main__":
    main()
