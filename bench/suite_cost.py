"""What a benchmark suite costs: short measurements per model, extrapolated to the suite's budget.

For every (dataset, model) of a suite (configs/benchmarks/*.yaml), in its own process with
``--threads`` torch threads: build the run (dataset, graphs with an empty cache, model), time
``--batches`` training steps (loss, backward, optimiser step, as the Trainer does) and one
full valid evaluation, recording wall and process CPU seconds. A searched model is measured at
its base config (the space's parameters at their base-config values).

The estimate is an upper bound: every trial and every seed run is assumed to reach the epoch
cap (early stopping and pruning only shorten them), with one evaluation every ``eval_every``
epochs, plus each model's graph building once (the suite's graph cache serves the other runs):

    runs(model) = trials (searched models) + seeds,
    seconds(model) = setup + runs × cap × (steps per epoch × seconds per step + evaluation / eval_every).

The machine is shared: the load average is recorded, and CPU seconds at one thread are what a
run costs on an idle core. ``--smoke`` measures a tiny synthetic suite (seconds; the tests).

    python bench/suite_cost.py configs/benchmarks/sports.yaml configs/benchmarks/toys.yaml --threads 1
    python bench/suite_cost.py --report        # rewrite the README section from the results file
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, environment, peak_memory_mb, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "suite_cost.json"
BEGIN, END = "<!-- suite_cost:begin -->", "<!-- suite_cost:end -->"
SMOKE_SUITE = """
name: smoke
seeds: 2
config:
  device: cpu
  train: {epochs: 3, eval_every: 1, batch_size: 256}
  eval: {ks: [20], metrics: [recall]}
datasets:
  synth: {format: synthetic, synthetic: {n_users: 80, n_items: 40, interactions_per_user: 8}}
search: {trials: 2}
models:
  bpr: {}
  lightgcn: {space: {model.n_layers: {type: int, low: 1, high: 2}}}
"""


def measured_config(suite, dataset: str, model: str) -> dict:
    """The config a model is measured at: fixed, or its search's base config."""
    if not suite.models[model].space:
        return suite.fixed_config(dataset, model)
    spec = suite.study(dataset, model)
    return spec.trial_config({})


def measure(suite_path: str, dataset: str, model: str, batches: int, threads: int) -> dict:
    """Child process: build, time ``batches`` training steps and one valid evaluation."""
    import torch

    from recsys.benchmark.suite import load_suite
    from recsys.compose import build
    from recsys.training.trainer import make_optimizer

    torch.set_num_threads(threads)
    suite = load_suite(suite_path)
    config = measured_config(suite, dataset, model)
    with tempfile.TemporaryDirectory() as cache:
        config["cache_dir"] = cache
        wall, cpu = time.perf_counter(), time.process_time()
        run = build(config, torch.device("cpu"))
        setup = (time.perf_counter() - wall, time.process_time() - cpu)
    net, task = run.model, run.task
    optimizer = make_optimizer([p for p in net.parameters() if p.requires_grad], config["train"])
    net.train()
    steps = []
    for index, batch in enumerate(task.batches(1)):
        if index == batches:
            break
        wall, cpu = time.perf_counter(), time.process_time()
        losses = net(*batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        steps.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall, cpu = time.perf_counter(), time.process_time()
    task.evaluate(net, "valid")
    evaluation = (time.perf_counter() - wall, time.process_time() - cpu)
    return {
        "setup_seconds": setup[0], "setup_cpu_seconds": setup[1],
        "steps_measured": len(steps), "steps_per_epoch": task.n_batches(),
        "step_seconds": sum(s[0] for s in steps) / len(steps), "step_cpu_seconds": sum(s[1] for s in steps) / len(steps),
        "evaluation_seconds": evaluation[0], "evaluation_cpu_seconds": evaluation[1],
        "peak_memory_mb": peak_memory_mb(), "environment": environment(),
    }


def estimate(suite, record: dict, model: str, clock: str) -> float:
    """Upper-bound seconds of one model of the suite (module docstring), on ``clock`` (wall | cpu)."""
    suffix = "cpu_seconds" if clock == "cpu" else "seconds"
    config = measured_config(suite, next(iter(suite.datasets)), model)
    cap, every = int(config["train"]["epochs"]), int(config["train"]["eval_every"])
    runs = (int(suite.search["trials"]) if suite.models[model].space else 0) + len(suite.seeds)
    epoch = record["steps_per_epoch"] * record[f"step_{suffix}"]
    return record[f"setup_{suffix}"] + runs * cap * (epoch + record[f"evaluation_{suffix}"] / every)


def summarise(suite_path: str, measured: dict) -> dict:
    from recsys.benchmark.suite import load_suite

    suite = load_suite(suite_path)
    models = {}
    for key, record in measured.items():
        model = key.split("/", 1)[1]
        config = measured_config(suite, key.split("/", 1)[0], model)
        models[key] = {**record, "runs": (int(suite.search["trials"]) if suite.models[model].space else 0)
                       + len(suite.seeds), "epoch_cap": int(config["train"]["epochs"]),
                       "eval_every": int(config["train"]["eval_every"]),
                       "estimate_seconds": estimate(suite, record, model, "wall"),
                       "estimate_cpu_seconds": estimate(suite, record, model, "cpu")}
    return {"suite": suite_path, "name": suite.name, "seeds": suite.seeds, "trials": suite.search["trials"],
            "models": models, "total_estimate_seconds": sum(m["estimate_seconds"] for m in models.values()),
            "total_estimate_cpu_seconds": sum(m["estimate_cpu_seconds"] for m in models.values())}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def markdown(results: dict) -> str:
    lines = [BEGIN, "## Benchmark suites: cost estimates (`suite_cost.py`)", "",
             "Upper bounds from short measurements (the script's docstring has the formula: every trial and seed "
             "run reaches the epoch cap, graphs are built once per model). CPU seconds at the recorded thread "
             "count are what the runs cost on idle cores; wall seconds include the waiting of a shared machine.", ""]
    for result in results["suites"].values():
        envs = [m["environment"] for m in result["models"].values()]
        loads = [env["load_average"][0] for env in envs]
        lines += [f"**`{result['suite']}`** (commit {envs[0]['commit']}, {envs[0]['torch_threads']} torch "
                  f"thread(s), load average {min(loads)} to {max(loads)}): {_hours(result['total_estimate_cpu_seconds'])} "
                  f"of CPU time ({_hours(result['total_estimate_seconds'])} wall as measured), "
                  f"{result['trials']} search trials per searched model and {len(result['seeds'])} seeds.", "",
                  "| dataset / model | runs | epoch cap | steps per epoch | s/step (CPU) | evaluation s (CPU) | "
                  "graphs and model s (CPU) | estimate (CPU) | peak MB |", "|---|---|---|---|---|---|---|---|---|"]
        for key, m in result["models"].items():
            lines.append(f"| {key} | {m['runs']} | {m['epoch_cap']} | {m['steps_per_epoch']} | "
                         f"{m['step_cpu_seconds']:.2f} | {m['evaluation_cpu_seconds']:.1f} | "
                         f"{m['setup_cpu_seconds']:.1f} | {_hours(m['estimate_cpu_seconds'])} | "
                         f"{m['peak_memory_mb']:,.0f} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help="suite files (default: configs/benchmarks/*.yaml)")
    parser.add_argument("--batches", type=int, default=3, help="training steps timed per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="dataset/model keys to measure (default: all)")
    parser.add_argument("--smoke", action="store_true", help="a tiny synthetic suite; results under --out only")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process instead of one process per model (peak memory is then "
                             "this process's)")
    parser.add_argument("--report", action="store_true", help="only rewrite the README section from the results")
    parser.add_argument("--single", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:
        write_readme_section(markdown(read_json(args.out, {"suites": {}})), BEGIN, END)
        return
    if args.single:
        print(json.dumps(measure(*args.single, batches=args.batches, threads=args.threads)))
        return
    suites = args.suites or sorted(str(p.relative_to(REPO)) for p in (REPO / "configs" / "benchmarks").glob("*.yaml"))
    if args.smoke:
        smoke = args.out.parent / "smoke_suite.yaml"
        io.write_text(smoke, SMOKE_SUITE)
        suites = [str(smoke)]
    from recsys.benchmark.suite import load_suite

    results = read_json(args.out, {"suites": {}})
    for suite_path in suites:
        suite = load_suite(suite_path)
        measured = results["suites"].get(suite.name, {}).get("models", {})
        measured = {k: {f: v[f] for f in v if f not in ("runs", "epoch_cap", "eval_every", "estimate_seconds",
                                                        "estimate_cpu_seconds")} for k, v in measured.items()}
        for dataset, model in suite.pairs():
            key = f"{dataset}/{model}"
            if args.only and key not in args.only:
                continue
            if args.in_process:
                measured[key] = measure(suite_path, dataset, model, args.batches, args.threads)
            else:
                proc = subprocess.run([sys.executable, __file__, "--single", suite_path, dataset, model, "--batches",
                                       str(args.batches), "--threads", str(args.threads)], capture_output=True,
                                      text=True)
                if proc.returncode != 0:
                    print(f"{suite.name} {key} failed:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
                    continue
                measured[key] = json.loads(proc.stdout.strip().splitlines()[-1])
            results["suites"][suite.name] = summarise(suite_path, measured)
            io.write_json(args.out, results)
            print(f"{suite.name} {key}: {measured[key]['step_cpu_seconds']:.2f} CPU-s/step, "
                  f"{measured[key]['evaluation_cpu_seconds']:.1f} CPU-s/evaluation", flush=True)
    if args.out == OUT:
        write_readme_section(markdown(results), BEGIN, END)


if __name__ == "__main__":
    main()
