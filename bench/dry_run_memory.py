"""The dry run's memory estimate against the measured peak: REARM on Baby-sized stand-in data.

Baby's MMRec split (19,445 users, 7,050 items, 118,551 train interactions) from
../shared/data/amazon/baby with stand-in item features of the paper's shapes (image 4096-d,
text 384-d; seeded standard-normal float32: the real features are not available here), REARM
with its defaults and ``train_user_interest`` false and true. For each: the estimate of
``recsys train --dry-run`` (:func:`recsys.dry_run.inspect_run`) and the measured peak
(:func:`recsys.dry_run.measure_memory`: a fresh process builds the run with a cold graph
cache, runs one training step and one evaluation of the valid split; peak RSS above the RSS
after loading the data and a warm-up run on a miniature of it, with glibc's mmap threshold
fixed, so that it tracks live memory). One torch thread. Writes
bench/results/dry_run_memory.json and the README section.

    python bench/dry_run_memory.py                  # estimate and measure (minutes: the graphs are built)
    python bench/dry_run_memory.py --estimate-only  # new estimates against the recorded measurements
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, environment, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402
from recsys.dry_run import MMAP_THRESHOLD  # noqa: E402

OUT = RESULTS / "dry_run_memory.json"
BEGIN, END = "<!-- dry_run_memory:begin -->", "<!-- dry_run_memory:end -->"
SHAPES = {"image": 4096, "text": 384}
SETTINGS = {"rearm, fixed user interest": {"train_user_interest": False},
            "rearm, trained user interest": {"train_user_interest": True}}
MIB = 2**20


def baby_stand_in(seed: int = 0):
    """Baby's split with seeded standard-normal stand-in features of the paper's shapes."""
    from recsys.data.loading import load_dataset

    dataset = load_dataset(_section())
    rng = np.random.default_rng(seed)
    dataset.features = {m: rng.standard_normal((dataset.n_items, dim), dtype=np.float32) for m, dim in SHAPES.items()}
    return dataset


def _section() -> dict:
    return {"format": "rearm", "path": str(SHARED_DATA / "amazon" / "baby"), "name": "baby"}


def measure(name: str, overrides: dict, dataset, previous: dict | None = None) -> dict:
    """Estimate and (unless ``previous`` holds a measurement to keep) measure one setting."""
    from recsys.compose import resolve
    from recsys.dry_run import inspect_run, measure_memory

    config = resolve({"dataset": _section(), "model": {"name": "rearm", **overrides}, "cache_dir": None})
    started = time.perf_counter()
    report = inspect_run(config, dataset)
    estimate_seconds = time.perf_counter() - started
    if previous is None:
        started = time.perf_counter()
        measured = measure_memory(config, dataset, timeout=4 * 3600)
        previous = {"measured_bytes": measured["peak"],
                    "measured_phases": {k: v for k, v in measured.items() if k != "peak"},
                    "measure_wall_seconds": round(time.perf_counter() - started, 1),
                    "measured_commit": commit(), "load_average": round(os.getloadavg()[0], 2),
                    "environment": environment()}
    nodes = dataset.n_users + dataset.n_items
    record = {
        "model": dict(overrides), "estimate_bytes": report.memory_total, "estimate_phases": report.memory_phases,
        "estimate_parts": report.memory, "estimate_seconds": round(estimate_seconds, 2), "estimate_commit": commit(),
        **{k: previous[k] for k in ("measured_bytes", "measured_phases", "measure_wall_seconds", "measured_commit",
                                    "load_average") + (("environment",) if "environment" in previous else ())},
        "ratio": round(report.memory_total / previous["measured_bytes"], 3),
        "measured_kb_per_node": round(previous["measured_bytes"] / nodes / 1024, 2),
    }
    print(f"{name}: estimate {record['estimate_bytes'] / MIB:,.0f} MiB, measured {record['measured_bytes'] / MIB:,.0f} "
          f"MiB (ratio {record['ratio']}), {record['measure_wall_seconds']} s, load {record['load_average']}",
          flush=True)
    return record


def markdown(results: dict) -> str:
    lines = [BEGIN, "## Dry-run memory estimate (REARM, Baby-sized stand-in data)", "",
             f"`python bench/dry_run_memory.py` (estimates at commit {results['commit']}; measurements at the "
             "commit recorded with each in `bench/results/dry_run_memory.json`). Baby's split with seeded stand-in "
             f"features ({', '.join(f'{m} {d}-d' for m, d in SHAPES.items())}), REARM defaults. Estimate: "
             "`recsys train --dry-run`; measured: peak RSS of a fresh process that builds the run (cold graph "
             "cache), runs one training step and one evaluation, above the RSS after loading the data and a warm-up "
             f"on a miniature of it, with glibc's mmap threshold fixed at {MMAP_THRESHOLD // 1024} KiB (live memory; "
             "see `recsys/dry_run.py`). One thread.", "",
             "| setting | estimate (MiB) | measured (MiB) | estimate / measured | measured peak phase | "
             "measured KB per node |", "|---|---:|---:|---:|---|---:|"]
    for name, r in results["cases"].items():
        phase = max(r["measured_phases"], key=r["measured_phases"].get)
        lines.append(f"| {name} | {r['estimate_bytes'] / MIB:,.0f} | {r['measured_bytes'] / MIB:,.0f} | "
                     f"{r['ratio']:.2f} | {phase} | {r['measured_kb_per_node']:.1f} |")
    lines += ["", "Estimated by phase (MiB): " + "; ".join(
        f"{name}: " + ", ".join(f"{p} {v / MIB:,.0f}" for p, v in r["estimate_phases"].items())
        for name, r in results["cases"].items()) + ".",
        "Measured by phase (MiB): " + "; ".join(
        f"{name}: " + ", ".join(f"{p} {v / MIB:,.0f}" for p, v in r["measured_phases"].items())
        for name, r in results["cases"].items()) + ".", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), help="settings to run (default: all)")
    parser.add_argument("--estimate-only", action="store_true",
                        help="recompute the estimates, keep the recorded measurements (after an estimate change)")
    parser.add_argument("--report", action="store_true", help="only rewrite the README section from the results")
    args = parser.parse_args(argv)
    if args.report:
        write_readme_section(markdown(read_json(OUT, {"cases": {}})), BEGIN, END)
        return 0
    if not (SHARED_DATA / "amazon" / "baby").is_dir():
        print(f"{SHARED_DATA / 'amazon' / 'baby'} is absent; nothing to measure", file=sys.stderr)
        return 1
    dataset = baby_stand_in()
    results = read_json(OUT, {"cases": {}})
    for name in args.only or SETTINGS:
        previous = results["cases"].get(name) if args.estimate_only else None
        if args.estimate_only and previous is None:
            print(f"{name}: no recorded measurement to keep; run without --estimate-only", file=sys.stderr)
            return 1
        results["cases"][name] = measure(name, SETTINGS[name], dataset, previous)
    results["commit"] = commit()
    io.write_json(OUT, results)
    write_readme_section(markdown(results), BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
