"""bench/rearm_report.py: the Clothing paragraph's epochs grouped by the sitting that trained them."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import rearm_report  # noqa: E402


def _epoch(epoch: int, wall: float, cpu: float, recall: float) -> dict:
    return {"epoch": epoch, "train_seconds": wall, "train_cpu_seconds": cpu, "eval_seconds": 1.0,
            "valid_recall@20": recall, "valid_ndcg@20": recall / 2}


def _sitting(first_epoch: int | None, threads: int, load: float) -> dict:
    return {"first_epoch": first_epoch, "threads": threads, "load_before": [load], "load_after": [load],
            "peak_rss_mb": 1024.0, "seconds_to_first_evaluation": 10.0, "commit_at_start": "abc1234",
            "data": {"users": 10, "items": 5, "train": 40}}


def test_epochs_are_grouped_by_the_sitting_that_trained_them():
    sittings = [_sitting(1, 1, 2.0), _sitting(None, 1, 2.0), _sitting(3, 2, 1.0), _sitting(5, 1, 2.5)]
    epochs = [_epoch(e, 100.0, 90.0, 0.01 * e) for e in range(1, 7)]
    groups = rearm_report.epochs_by_threads(sittings, epochs)
    assert {t: [e["epoch"] for e in group] for t, group in groups.items()} == {1: [1, 2, 5, 6], 2: [3, 4]}


def test_clothing_paragraph_gives_each_thread_count_its_own_epoch_cost():
    sittings = [_sitting(1, 1, 2.0), _sitting(3, 2, 1.0), _sitting(None, 2, 3.5)]  # the last trained no epoch
    epochs = [_epoch(1, 400.0, 390.0, 0.01), _epoch(2, 420.0, 400.0, 0.03),
              _epoch(3, 230.0, 410.0, 0.02), _epoch(4, 250.0, 420.0, 0.025), _epoch(5, 240.0, 415.0, 0.02)]
    text = rearm_report.clothing_paragraph({"sittings": sittings, "epochs": epochs, "recipe": "r.yaml",
                                            "memory_target_gb": 6.0, "reference_peak_gb": 19.9})
    assert "1 thread(s): 420 s wall, 400 CPU-s over 2 epochs, load average 2.0" in text
    assert "2 thread(s): 240 s wall, 415 CPU-s over 3 epochs, load average 1.0;" in text
    assert "best valid Recall@20 0.0300 at epoch 2" in text and "not converged yet" in text


def test_the_memory_verdict_comes_from_the_memory_check_when_there_is_one():
    sittings = [_sitting(1, 1, 2.0), {**_sitting(None, 2, 1.0), "peak_rss_mb": 7000.0, "commit_at_start": "def5678"}]
    clothing = {"sittings": sittings, "epochs": [_epoch(1, 400.0, 390.0, 0.01)], "recipe": "r.yaml",
                "memory_target_gb": 6.0, "reference_peak_gb": 19.9}
    without = rearm_report.clothing_paragraph(clothing)
    assert "the last sitting (commit def5678) 6.8 GB (7,000 MiB) against the 6 GB target (NOT met" in without
    assert "earlier sittings, commit abc1234: 1.0 GB)" in without
    check = {**_sitting(1, 2, 1.0), "peak_rss_mb": 5500.0, "commit_at_start": "0123abc"}
    text = rearm_report.clothing_paragraph({**clothing, "memory_check": check})
    assert "(`--memory-check`, commit 0123abc, 2 thread(s)" in text
    assert "5.4 GB (5,500 MiB) against the 6 GB target (met;" in text
    assert "the convergence run's sittings, commit abc1234: 1.0 GB, def5678: 6.8 GB)" in text
