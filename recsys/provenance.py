"""Where and when a result was produced: commit, date, machine load, threads.

Every training run records :func:`environment` in its ``results.json`` and every benchmark
script in its results file, so a published number can be traced to the code that produced
it and read against the load of the machine it ran on (timings on a shared machine are only
comparable at similar load).
"""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from recsys.version import __version__

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None


def commit() -> str:
    """Short hash of the checkout this package runs from; ``unknown`` outside a git checkout."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def uncommitted_changes() -> bool | None:
    """Whether tracked files of the checkout differ from the commit (None outside a checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def environment() -> dict:
    """Commit (and whether the checkout had uncommitted changes), UTC date, 1/5/15-minute load
    average, torch threads, CPU count, physical memory, host and versions, as a JSON-ready mapping."""
    return {
        "commit": commit(),
        "uncommitted_changes": uncommitted_changes(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recsys": __version__,
    }
