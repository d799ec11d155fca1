"""REARM vs LightGCN on Amazon Sports with the real text features (issue 3, item 4a).

Sports has one real modality here (``text_feat.npy``, 384-d MiniLM), so REARM runs with
M = 1: the published Sports hyper-parameters (configs/experiments/rearm_sports.yaml) with
every modality weight on text. Training is bounded by wall time (``--minutes``): the
trainer runs to the next evaluation at a time until the budget is spent, early stopping
(patience 20 evaluations) still applies, and the test metrics are those of the best-valid
epoch (docs/protocol.md).

The reference optimiser (AdamW, lr 5e-5, batch 2048, up to 2000 epochs) needs far more
compute than a 40-minute budget on 2 shared CPU cores: every step recomputes the full graph
forward pass, so an epoch costs (train pairs / batch) full passes. ``--batch-size`` and
``--lr`` trade steps for that budget; the values used are recorded with the results.

    python bench/rearm_sports.py --model rearm --minutes 38 --batch-size 16384 --lr 5e-3
    python bench/rearm_sports.py --model lightgcn --minutes 38       # the protocol settings
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, SHARED_DATA, commit, environment, peak_memory_mb, read_json  # noqa: E402

from recsys import io  # noqa: E402
from recsys.compose import build, resolve  # noqa: E402
from recsys.io import load_yaml  # noqa: E402
from recsys.training import Trainer  # noqa: E402

OUT = RESULTS / "rearm.json"


def sports_config(model: str, args) -> dict:
    raw = load_yaml(REPO / "configs" / "experiments" / f"{model}_sports.yaml")
    raw["dataset"].update(path=str(SHARED_DATA / "amazon" / "sports"), modalities=["text"] if model == "rearm" else [])
    if model == "rearm":
        raw["model"].update(item_modality_weights={"text": 1.0}, user_modality_weights={"text": 1.0})
        for key in ("rank",):
            if getattr(args, key) is not None:
                raw["model"][key] = getattr(args, key)
        for key in ("batch_size", "lr", "weight_decay"):
            if getattr(args, key) is not None:
                raw["train"][key] = getattr(args, key)
    raw["train"].update(progress=False, eval_every=args.eval_every)
    raw.update(output_dir=str(args.runs), run_name=f"{model}-sports", cache_dir=str(args.cache), device="cpu")
    raw["eval"] = {"ks": [10, 20, 50], "metrics": ["recall", "ndcg"]}
    return resolve(raw)


def run(model: str, args) -> dict:
    torch.set_num_threads(args.threads)
    config = sports_config(model, args)
    run_dir = Path(config["output_dir"]) / config["run_name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = build(config, torch.device("cpu"))
    net, task = run.model, run.task
    setup_seconds = time.perf_counter() - started
    trainer = Trainer(net, task, config["train"], run_dir)
    budget, max_epochs = args.minutes * 60, int(config["train"]["epochs"])
    while not trainer.state["stopped"] and trainer.state["epoch"] < max_epochs and (
            trainer.state["epoch"] == 0 or time.perf_counter() - started < budget):
        # run up to the next evaluation (fit() also evaluates at its last epoch); at least one
        trainer.cfg["epochs"] = min(max_epochs, trainer.state["epoch"] + int(config["train"]["eval_every"]))
        trainer.fit()
        print(f"{model} epoch {trainer.state['epoch']} best valid recall@20 {trainer.state['best_value']:.4f} "
              f"@ {trainer.state['best_epoch']} ({time.perf_counter() - started:.0f} s)", flush=True)
    records = _records(run_dir)
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    net.load_state_dict(best["model"])
    valid, test = task.evaluate(net, "valid"), task.evaluate(net, "test")
    train_seconds = [r["train_seconds"] for r in records]
    eval_seconds = [r["eval_seconds"] for r in records if "eval_seconds" in r]
    return {
        "model": model,
        "config": {"model": config["model"], "train": {**config["train"], "epochs": max_epochs}},
        "valid": valid,
        "test": test,
        "best_epoch": trainer.state["best_epoch"],
        "epochs_run": trainer.state["epoch"],
        "stopped_by": "early stopping" if trainer.state["stopped"] else "time budget",
        "seconds_per_epoch": sum(train_seconds) / max(1, len(train_seconds)),
        "seconds_per_evaluation": sum(eval_seconds) / max(1, len(eval_seconds)),
        "setup_seconds": setup_seconds,
        "total_seconds": time.perf_counter() - started,
        "valid_recall@20_per_evaluation": [[r["epoch"], r["valid/recall@20"]] for r in records if "valid/recall@20" in r],
        "peak_memory_mb": peak_memory_mb(),
        "threads": args.threads,
        "budget_minutes": args.minutes,
    }


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["rearm", "lightgcn"], required=True)
    parser.add_argument("--minutes", type=float, default=38.0, help="wall-time budget of the training loop")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--weight-decay", dest="weight_decay", type=float, default=None)
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--eval-every", dest="eval_every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/rearm-bench/runs"))
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "recsys")
    args = parser.parse_args()
    if not (SHARED_DATA / "amazon" / "sports").is_dir():
        sys.exit(f"{SHARED_DATA / 'amazon' / 'sports'} is absent; set RECSYS_SHARED_DATA")
    result = run(args.model, args)
    result.update(commit=commit(), machine=platform.node(), load_average=list(os.getloadavg()),
                  environment=environment())
    results = read_json(OUT, {})
    results.setdefault("sports", {})[args.model] = result
    io.write_json(OUT, results)
    print(f"{args.model}: test {result['test']}, best epoch {result['best_epoch']} of {result['epochs_run']}")


if __name__ == "__main__":
    main()
