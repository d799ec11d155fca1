"""Helpers shared by the benchmark scripts: paths, commit id, peak memory, atomic JSON."""
from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECSYS_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default


def write_readme_section(section: str, begin: str, end: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) into bench/README.md,
    replacing the text between those markers; other sections are left alone."""
    from recsys import io

    readme = REPO / "bench" / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    io.write_text(readme, text)
