"""Bundle completion export: top-K completions of given partial bundles, with raw ids and titles.

Input file: one partial bundle per line, its raw item ids separated by commas (blank lines
and lines starting with ``#`` are skipped). Each bundle is scored by a trained bundle model
(``complete``), its own items are excluded, and the K best items are kept (ties broken by
the lower item index, as in evaluation). Output JSON: a list with, per input line,
``{"line", "input": [{"item_id", "title"}], "completions": [{"rank", "item_id", "title", "score"}]}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from recsys import io
from recsys.data.bundles import BundleDataset
from recsys.errors import DataError
from recsys.evaluation.ranking import topk_excluding
from recsys.runs import load_run


def read_partial_bundles(path: str | Path) -> list[tuple[int, list[str]]]:
    """(line number, raw item ids) of every partial bundle in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"partial bundle file {path} does not exist; give one bundle per line as "
                        f"comma-separated raw item ids")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        ids = [field.strip() for field in line.split(",") if field.strip()]
        if ids and not ids[0].startswith("#"):
            out.append((number, ids))
    if not out:
        raise DataError(f"{path} holds no partial bundle; give one bundle per line as comma-separated raw item ids")
    return out


def _title(dataset: BundleDataset, item: int) -> str:
    return "" if dataset.item_titles is None else str(dataset.item_titles[item])


@torch.no_grad()
def complete_bundles(model, dataset: BundleDataset, bundles: Sequence[tuple[int, Sequence[str]]], k: int = 10,
                     device: torch.device | str = "cpu") -> list[dict]:
    """Top-``k`` completions of each (line, raw item ids) partial bundle (module docstring)."""
    index_of = {str(raw): i for i, raw in enumerate(dataset.item_ids)}
    rows = []
    for line, ids in bundles:
        unknown = [raw for raw in ids if str(raw) not in index_of]
        if unknown:
            raise DataError(f"partial bundle on line {line}: item id '{unknown[0]}' is not an item of dataset "
                            f"'{dataset.name}'; use the raw ids of its item files")
        rows.append(sorted({index_of[str(raw)] for raw in ids}))
    width = max(len(r) for r in rows)
    inputs = torch.full((len(rows), width), dataset.n_items, dtype=torch.long)
    for b, items in enumerate(rows):
        inputs[b, :len(items)] = torch.tensor(items)
    device = torch.device(device)
    model.eval()
    scores = model.complete(inputs.to(device), model.completion_cache()).float()
    exclude_rows = torch.tensor(np.repeat(np.arange(len(rows)), [len(r) for r in rows]), device=device)
    exclude_cols = torch.tensor([i for r in rows for i in r], device=device)
    values, top = topk_excluding(scores, (exclude_rows, exclude_cols), min(k, dataset.n_items))
    results = []
    for b, (line, _) in enumerate(bundles):
        completions = [{"rank": r + 1, "item_id": str(dataset.item_ids[i]), "title": _title(dataset, i),
                        "score": float(v)}
                       for r, (i, v) in enumerate(zip(top[b].tolist(), values[b].tolist())) if v > -np.inf]
        results.append({"line": line,
                        "input": [{"item_id": str(dataset.item_ids[i]), "title": _title(dataset, i)} for i in rows[b]],
                        "completions": completions})
    return results


def export_completions(run_dir: str | Path, bundles_path: str | Path, out_path: str | Path, k: int = 10,
                       device: str = "auto") -> list[dict]:
    """Load a finished bundle training run, complete the bundles of ``bundles_path``, write JSON."""
    run = load_run(run_dir, device=device)
    if not isinstance(run.dataset, BundleDataset):
        raise DataError(f"run {run_dir} was trained on '{run.dataset.name}', which is not a bundle dataset")
    results = complete_bundles(run.model, run.dataset, read_partial_bundles(bundles_path), k, run.device)
    io.write_json(out_path, results)
    return results
