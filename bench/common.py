"""Helpers shared by the benchmark scripts: paths, provenance, peak memory, README sections.

Every results record a script writes carries :func:`environment` (commit, date, load average,
torch threads, CPU count: :func:`recsys.provenance.environment`), and every number of
bench/README.md is formatted by a script from such records (:func:`write_readme_section`):
the prose strings of the generators hold no digits (tests/bench/test_bench_prose.py).
"""
from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECSYS_SHARED_DATA", REPO.parent / "shared" / "data"))
# Where results and the README go; the smoke tests (tests/bench) point both at a temporary folder.
RESULTS = Path(os.environ.get("RECSYS_BENCH_RESULTS", REPO / "bench" / "results"))
README = Path(os.environ.get("RECSYS_BENCH_README", REPO / "bench" / "README.md"))

sys.path.insert(0, str(REPO))
from recsys.provenance import commit, environment  # noqa: E402

__all__ = ["REPO", "RESULTS", "SHARED_DATA", "commit", "environment", "peak_memory_mb", "read_json",
           "write_readme_section"]


def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default


def write_readme_section(section: str, begin: str, end: str, readme: Path | None = None) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) into bench/README.md
    (or ``readme``), replacing the text between those markers; other sections are left alone."""
    from recsys import io

    readme = readme or README
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    io.write_text(readme, text)
