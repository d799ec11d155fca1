"""GPU check: the gpu-marked tests and the speed figures on CUDA, in one command, in at most
8 minutes on one GPU (``bash bench/gpu_check.sh`` runs this).

    bash bench/gpu_check.sh                        # CUDA: writes bench/results/gpu_check.json
    bash bench/gpu_check.sh --device cpu --smoke   # checks this script on a CPU (about a minute):
                                                   # small inputs, writes bench/results/gpu_check_smoke.json

Each step runs in its own process under its own time limit (and all of them under an 8-minute
budget), so a failure or a hang is recorded and the other steps still run:

1. ``tests``: ``pytest -m gpu tests`` (every CUDA-parametrised device test; see tests/device).
2. ``lightgcn_clothing_epoch``: LightGCN with configs/experiments/lightgcn_clothing.yaml on the
   Clothing split, two epochs through the Trainer (the first includes CUDA start-up), each
   epoch's seconds and the valid evaluation's.
3. ``rearm_parity_epoch``: REARM with the hyper-parameters of configs/experiments/rearm_sports.yaml
   on the parity-sized Sports input (:func:`parity_dataset`), two epochs, as above.
4. ``evaluation``: full ranking of every Clothing user (train items masked, test targets, the
   default metrics at 10 and 20) from random 64-d embeddings; best of three after a warm-up.
5. ``export``: top-50 Parquet export of every Clothing user from a 64-d LightGCN run folder;
   best of two, each recomputing the embeddings.

The JSON holds the device name, torch and CUDA versions, commit, date, and per step its status
(ok / failed / timeout / skipped), wall seconds and figures. Steps 2-5 read
../shared/data/amazon (or ``RECSYS_SHARED_DATA``); without it they are recorded as skipped.
``--smoke`` runs the same code on small inputs (the CPU half of one device test file, the
first 2,000 Clothing users, 300 parity items with a 64-d stand-in image): it checks that the
script works, its figures are not benchmarks, and it never writes gpu_check.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, peak_memory_mb  # noqa: E402

BUDGET_SECONDS = 480
STEP_SECONDS = {"tests": 240, "lightgcn_clothing_epoch": 75, "rearm_parity_epoch": 90, "evaluation": 40,
                "export": 50}
SMOKE = {"users": 2000, "parity_items": 300, "image_dim": 64}


# ------------------------------------------------------------------------------- inputs
def parity_dataset(n_items: int = 3000, min_train: int = 5, image_dim: int = 4096, seed: int = 0):
    """The REARM parity input: the ``n_items`` Sports items with the most train interactions
    (ties: lower index); the users that keep at least ``min_train`` train interactions and a
    valid and a test one among them; every split restricted to those users and items,
    renumbered densely in the original order; the real 384-d text features and a seeded
    standard-normal ``image_dim``-d stand-in image.

    The same definition as the parity builder of the REARM comparison (bench/parity_data.py
    when it is on main: switch to its ``build_parity_dataset`` then), built here in memory.
    """
    from recsys.data import Dataset
    from recsys.data.rearm import read_rearm

    full = read_rearm(SHARED_DATA / "amazon" / "sports", modalities=["text"], name="sports")
    popularity = np.bincount(full.train[1], minlength=full.n_items)
    kept_items = np.zeros(full.n_items, dtype=bool)
    kept_items[np.lexsort((np.arange(full.n_items), -popularity))[:n_items]] = True
    counts = {s: np.bincount(full.split(s)[0][kept_items[full.split(s)[1]]], minlength=full.n_users)
              for s in ("train", "valid", "test")}
    kept_users = (counts["train"] >= min_train) & (counts["valid"] >= 1) & (counts["test"] >= 1)
    pairs = {s: full.split(s)[:, kept_users[full.split(s)[0]] & kept_items[full.split(s)[1]]]
             for s in ("train", "valid", "test")}
    users = np.unique(np.concatenate([p[0] for p in pairs.values()]))
    items = np.unique(np.concatenate([p[1] for p in pairs.values()]))
    splits = {s: np.stack([np.searchsorted(users, p[0]), np.searchsorted(items, p[1])]) for s, p in pairs.items()}
    image = np.random.default_rng(seed).standard_normal((items.size, image_dim), dtype=np.float32)
    return Dataset(f"sports-top{n_items}", int(users.size), int(items.size), splits["train"], splits["valid"],
                   splits["test"], {"image": image, "text": np.ascontiguousarray(full.features["text"][items])},
                   user_ids=full.user_ids[users], item_ids=full.item_ids[items])


def clothing(max_users: int | None = None):
    """The Clothing split (interactions only), optionally restricted to its first users."""
    from recsys.data import Dataset
    from recsys.data.rearm import read_rearm

    full = read_rearm(SHARED_DATA / "amazon" / "clothing", modalities=[], name="clothing")
    if max_users is None or max_users >= full.n_users:
        return full
    splits = [full.split(s)[:, full.split(s)[0] < max_users] for s in ("train", "valid", "test")]
    return Dataset(f"clothing-first{max_users}", max_users, full.n_items, *splits, item_ids=full.item_ids)


# -------------------------------------------------------------------------------- steps
def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _epochs(config_file: str, dataset, device, overrides: dict) -> dict:
    """Two epochs of the config's model through the Trainer: seconds per epoch and evaluation."""
    import torch

    from recsys.compose import build, resolve
    from recsys.config import merge
    from recsys.io import load_yaml
    from recsys.training import Trainer

    raw = merge(load_yaml(REPO / "configs" / "experiments" / config_file),
                {"device": str(device), "cache_dir": None, "train": {"epochs": 2, "eval_every": 1, "progress": False}},
                None)
    config = resolve(merge(raw, overrides, None))
    started = time.perf_counter()
    run = build(config, device, dataset)
    _synchronize(device)
    setup = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(run.model, run.task, config["train"], run_dir).fit()
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return {
        "dataset": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
        "train_interactions": int(dataset.train.shape[1]), "batch_size": config["train"]["batch_size"],
        "setup_seconds_graphs_and_model": round(setup, 3),
        "epoch_seconds": [round(r["train_seconds"], 3) for r in records],
        "eval_seconds": [round(r["eval_seconds"], 3) for r in records],
        "valid_recall@20": [round(r["valid/recall@20"], 5) for r in records],
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
    }


def step_lightgcn_clothing_epoch(device, smoke: bool) -> dict:
    dataset = clothing(SMOKE["users"] if smoke else None)
    return _epochs("lightgcn_clothing.yaml", dataset, device, {"dataset": {"path": None}})


def step_rearm_parity_epoch(device, smoke: bool) -> dict:
    dataset = parity_dataset(SMOKE["parity_items"], image_dim=SMOKE["image_dim"]) if smoke else parity_dataset()
    return _epochs("rearm_sports.yaml", dataset, device, {"dataset": {"path": None}})


def step_evaluation(device, smoke: bool) -> dict:
    import torch

    from recsys.config import CORE_DEFAULTS
    from recsys.evaluation import evaluate_ranking

    dataset = clothing(SMOKE["users"] if smoke else None)
    generator = torch.Generator().manual_seed(0)
    user_emb = torch.randn(dataset.n_users, 64, generator=generator).to(device)
    item_emb = torch.randn(dataset.n_items, 64, generator=generator).to(device)
    ks, metrics = CORE_DEFAULTS["eval"]["ks"], CORE_DEFAULTS["eval"]["metrics"]
    seconds = []
    for _ in range(4):                                   # the first is a warm-up
        _synchronize(device)
        start = time.perf_counter()
        result = evaluate_ranking(lambda users: user_emb[users] @ item_emb.T, dataset.csr("train"),
                                  dataset.csr("test"), ks, metrics, batch_size=4096, device=device)
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    return {"dataset": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
            "best_seconds": round(min(seconds[1:]), 4), "all_seconds": [round(s, 4) for s in seconds],
            "sanity_recall@20_random": result["recall@20"]}


def step_export(device, smoke: bool) -> dict:
    import torch

    from recsys import io
    from recsys.compose import build, resolve
    from recsys.data.rearm import write_rearm
    from recsys.export import export
    from recsys.runs import load_run

    dataset = clothing(SMOKE["users"] if smoke else None)
    with tempfile.TemporaryDirectory() as tmp:
        data = SHARED_DATA / "amazon" / "clothing"
        if smoke:                                        # the run folder must name the subset's own files
            data = Path(tmp) / "clothing-subset"
            write_rearm(dataset, data)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        config = resolve({"device": str(device), "cache_dir": None, "model": {"name": "lightgcn"},
                          "dataset": {"format": "rearm", "path": str(data), "name": "clothing", "modalities": []}})
        model = build(config, device, dataset).model     # untrained: export cost does not depend on the weights
        io.write_text(run_dir / "config.yaml", io.dump_yaml(config))
        io.torch_save({"model": model.state_dict()}, run_dir / "best.pt")
        start = time.perf_counter()
        recommender = load_run(run_dir, device=str(device))
        load_seconds = time.perf_counter() - start
        seconds = []
        for _ in range(2):
            recommender._cache = None                    # each export recomputes the embeddings
            _synchronize(device)
            start = time.perf_counter()
            manifest = export(recommender, k=50, out=Path(tmp) / "top50.parquet", progress=False)
            _synchronize(device)
            seconds.append(time.perf_counter() - start)
    return {"dataset": dataset.name, "users": manifest["users"]["exported"], "rows": manifest["rows"],
            "load_seconds": round(load_seconds, 3), "best_seconds": round(min(seconds), 3),
            "all_seconds": [round(s, 3) for s in seconds], "torch_threads": torch.get_num_threads()}


STEPS = {"lightgcn_clothing_epoch": step_lightgcn_clothing_epoch, "rearm_parity_epoch": step_rearm_parity_epoch,
         "evaluation": step_evaluation, "export": step_export}
DATA = {"lightgcn_clothing_epoch": ["clothing"], "rearm_parity_epoch": ["sports"], "evaluation": ["clothing"],
        "export": ["clothing"]}


# ------------------------------------------------------------------------------- driver
def environment(device_name: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "host": platform.node(), "cpu_count": os.cpu_count(), "commit": commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name}
    if device_name.startswith("cuda"):
        properties = torch.cuda.get_device_properties(0)
        info.update(device_name=properties.name, device_memory_gb=round(properties.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(), cuda_devices=torch.cuda.device_count())
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def _run(command: list[str], limit: float) -> tuple[str, float, str]:
    """Run ``command`` under ``limit`` seconds: (status, seconds, the end of its output)."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(1.0, limit))
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"")[-4000:]
        return "timeout", time.perf_counter() - start, output.decode() if isinstance(output, bytes) else output
    status = "ok" if done.returncode == 0 else "failed"
    return status, time.perf_counter() - start, (done.stdout + done.stderr)[-4000:]


def tests_step(device: str, smoke: bool, limit: float) -> dict:
    selection = ["tests/device/test_ranking.py", "-m", "not gpu"] if smoke else ["tests", "-m", "gpu"]
    status, seconds, output = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection], limit)
    summaries = [line.strip(" =") for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    summary = summaries[-1] if summaries else ""
    if status == "ok" and "passed" not in summary:
        status = "failed"                                # nothing ran (e.g. every CUDA test skipped)
    return {"status": status, "seconds": round(seconds, 1), "selection": " ".join(selection), "summary": summary,
            **({} if status == "ok" else {"output_tail": output})}


def bench_step(name: str, device: str, smoke: bool, limit: float) -> dict:
    missing = [d for d in DATA[name] if not (SHARED_DATA / "amazon" / d).is_dir()]
    if missing:
        return {"status": "skipped", "reason": f"{SHARED_DATA / 'amazon' / missing[0]} is absent (RECSYS_SHARED_DATA)"}
    command = [sys.executable, __file__, "--step", name, "--device", device, *(["--smoke"] if smoke else [])]
    status, seconds, output = _run(command, limit)
    result = {"status": status, "seconds": round(seconds, 1)}
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if status == "ok" and lines:
        result.update(json.loads(lines[-1]))
    else:
        result["output_tail"] = output
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --smoke: checks the script)")
    parser.add_argument("--smoke", action="store_true", help="small inputs: check the script, not the figures")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default bench/results/gpu_check.json, or gpu_check_smoke.json with --smoke)")
    parser.add_argument("--steps", nargs="+", choices=["tests", *STEPS], default=["tests", *STEPS])
    parser.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; run it on a GPU, or check the script with "
              "--device cpu --smoke", file=sys.stderr)
        return 2
    if not args.smoke and not args.device.startswith("cuda"):
        print("gpu_check: figures are taken on CUDA only; on a CPU use --smoke (it checks the script)",
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if args.step:
        print(json.dumps({**STEPS[args.step](device, args.smoke), "peak_memory_mb": round(peak_memory_mb(), 1)}))
        return 0

    out = args.out or RESULTS / ("gpu_check_smoke.json" if args.smoke else "gpu_check.json")
    report = {"benchmark": "gpu_check", "smoke": args.smoke, **environment(str(device)),
              "budget_seconds": BUDGET_SECONDS, "steps": {}}
    deadline = time.perf_counter() + BUDGET_SECONDS
    for name in args.steps:
        limit = min(STEP_SECONDS[name], deadline - time.perf_counter())
        if limit < 5:
            report["steps"][name] = {"status": "skipped", "reason": "the 8-minute budget is spent"}
        elif name == "tests":
            report["steps"][name] = tests_step(args.device, args.smoke, limit)
        else:
            report["steps"][name] = bench_step(name, args.device, args.smoke, limit)
        step = report["steps"][name]
        print(f"{name}: {step['status']} ({step.get('seconds', 0):.0f} s) "
              + ", ".join(f"{k}={step[k]}" for k in ("summary", "epoch_seconds", "best_seconds") if k in step),
              flush=True)
    report["total_seconds"] = round(BUDGET_SECONDS - (deadline - time.perf_counter()), 1)
    report["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    from recsys import io

    io.write_json(out, report)
    print(f"wrote {out}")
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
