"""Record every registered model's metrics on fixed small inputs, to show a refactor changed nothing.

Each model trains with its default configuration for ``--epochs`` epochs on one thread with a
fixed seed: the interaction models on a fixed synthetic dataset (its parameters are written
here, not taken from the dataset defaults, so that changing those defaults does not move this
check), CLHE on the clothing bundles of ../shared/data. The per-epoch losses and the valid and
test metrics of every model are written to ``--out``; ``--compare BEFORE.json`` then fails
unless every number equals the recorded one exactly.

    python bench/behaviour_check.py --out bench/results/behaviour_before.json
    python bench/behaviour_check.py --out bench/results/behaviour_after.json --compare bench/results/behaviour_before.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, commit, environment  # noqa: E402

SYNTHETIC = {"format": "synthetic", "synthetic": {
    "n_users": 600, "n_items": 300, "n_clusters": 8, "interactions_per_user": 20,
    "noise_dim": 32, "informative_dim": 32, "popularity_skew": 1.0, "seed": 0}}
BUNDLES = {"format": "bundle_csv", "path": str(SHARED_DATA / "bundles" / "clothing"),
           "name": "clothing_bundles", "split_ratios": [0.8, 0.1, 0.1], "split_seed": 2024}


def _train(model: str, epochs: int, workdir: Path) -> dict:
    from recsys.compose import resolve
    from recsys.runs import train

    dataset = BUNDLES if model == "clhe" else SYNTHETIC
    config = resolve({"dataset": dataset, "model": {"name": model}, "threads": 1, "seed": 7,
                      "output_dir": str(workdir), "run_name": model, "cache_dir": None,
                      "train": {"epochs": epochs, "progress": False, "batch_size": 512}})
    results = train(config)
    lines = (workdir / model / "metrics.jsonl").read_text().splitlines()
    losses = [{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in lines]
    return {"epochs": losses, "valid": results["valid"], "test": results["test"],
            "best_epoch": results["best_epoch"]}


def main(argv: list[str] | None = None) -> int:
    from recsys.models import available_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="a previous output; exit 1 unless every value is equal")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="default: every registered model")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models = args.models or available_models()
    with tempfile.TemporaryDirectory() as tmp:
        record = {"commit": commit(), "environment": environment(), "epochs": args.epochs,
                  "models": {m: _train(m, args.epochs, Path(tmp)) for m in models}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())["models"]
    differ = [m for m in models if before.get(m) != record["models"][m]]
    for m in differ:
        print(f"{m}: differs from {args.compare}\n  before {before.get(m)}\n  after  {record['models'][m]}")
    print(f"{len(models) - len(differ)} of {len(models)} models identical to {args.compare}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
