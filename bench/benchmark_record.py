"""Record a benchmark suite's leaderboard in bench/results and its section of bench/README.md.

``recsys benchmark SUITE.yaml`` writes its leaderboard (``leaderboard.md`` / ``.csv`` /
``leaderboard-<dataset>.png``), ``selection.json`` and ``progress.json`` into its benchmark
folder (``benchmarks/<name>``, not committed: it holds every run folder). This script copies
those files to ``bench/results/benchmarks/<name>/`` and writes the leaderboard, with how far
the suite got (finished runs and trials against the totals, as ``progress.json`` counts them),
into the ``benchmark_<name>`` section of bench/README.md. The leaderboard itself states the
protocol, the search budget, each choice, the paired tests and the environment of the runs;
every figure comes from the run folders through ``recsys.benchmark.leaderboard``.

    recsys benchmark configs/benchmarks/toys.yaml && python bench/benchmark_record.py configs/benchmarks/toys.yaml
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402
from recsys.benchmark.suite import load_suite  # noqa: E402

FILES = ("leaderboard.md", "leaderboard.csv", "selection.json", "progress.json")


def record(suite_path: Path, folder: Path | None, trials: int | None, seeds: int | None) -> tuple[Path, str]:
    suite = load_suite(suite_path, trials=trials, seeds=seeds)
    source = folder or suite.folder
    if not (source / "leaderboard.md").is_file():
        raise SystemExit(f"{source} has no leaderboard.md: run `recsys benchmark {suite_path}` first")
    target = RESULTS / "benchmarks" / suite.name
    target.mkdir(parents=True, exist_ok=True)
    for name in [*FILES, *(p.name for p in source.glob("leaderboard-*.png"))]:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    return target, suite.name


def markdown(name: str, target: Path) -> str:
    progress = json.loads((target / "progress.json").read_text()) if (target / "progress.json").is_file() else {}
    board = (target / "leaderboard.md").read_text().strip().splitlines()
    body = [line.replace("# ", "### ", 1) if line.startswith("# ") else
            line.replace("## ", "#### ", 1) if line.startswith("## ") else line for line in board[1:]]
    status = (f"runs {progress['runs_done']} of {progress['runs_total']}, search trials {progress['trials_done']} of "
              f"{progress['trials_total']}") if progress else ""
    return "\n".join([f"<!-- benchmark_{name}:begin -->", f"## Benchmark suite `{name}` (`benchmark_record.py`)", "",
                      f"Copied from the benchmark folder to `results/benchmarks/{name}/`"
                      + (f"; finished when recorded: {status}." if status else "."), "", *body,
                      f"<!-- benchmark_{name}:end -->"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path, help="the suite file the benchmark ran")
    parser.add_argument("--folder", type=Path, help="benchmark folder (default: the suite's)")
    parser.add_argument("--trials", type=int, help="the --trials the benchmark ran with, if any")
    parser.add_argument("--seeds", type=int, help="the --seeds the benchmark ran with, if any")
    args = parser.parse_args(argv)
    target, name = record(args.suite, args.folder, args.trials, args.seeds)
    write_readme_section(markdown(name, target), f"<!-- benchmark_{name}:begin -->", f"<!-- benchmark_{name}:end -->")
    io.write_json(target / "recorded.json", {"suite": str(args.suite), "trials": args.trials, "seeds": args.seeds})
    print(f"recorded in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
