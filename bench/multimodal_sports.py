"""Multimodal models on Amazon Sports with the real text features (issue 4).

Trains LightGCN, VBPR, FREEDOM and SIGER on the MMRec split of Sports with its one real
modality (``text_feat.npy``, all-MiniLM-L6-v2 of the item keywords), then SIGER with each of
its mechanisms ablated (no co-occurrence infusion, no perturbation, no anchor alignment).

Protocol (docs/protocol.md): train interactions only, one uniform negative per positive
from the user's non-train items, full ranking with train items masked, test metrics at the
best-VALID evaluation; every choice between configurations (LightGCN's depth, SIGER's
``detach_anchor``) is made on valid Recall@20 only. Deviations, all forced by the CPU budget
of this machine (2 shared cores) and applied to every model alike, are recorded in the results
file: batch 8192 with Adam lr 5e-3 (instead of 2048 / 1e-3), at most ``--max-epochs`` epochs,
validation every ``--eval-every`` epochs with patience counted in evaluations, and SIGER's
contrastive sets capped at 2048 nodes per batch (``cl_max_nodes``, about the set size at the
protocol's batch 2048).

Stage 1 trains the baselines and the SIGER candidates; stage 2 ablates the SIGER
configuration chosen on valid. Every run is its own process (``--jobs`` at once); finished
runs are kept in the results file, so an interrupted benchmark resumes where it stopped.

``--continue KEY ... --max-epochs N`` goes on with runs that hit their epoch cap, from their
last.pt (optimiser, RNG and early-stopping state included), up to the larger cap N; the capped
record stays as ``KEY@<cap>`` (the selection between variants and the ablation base use it).
``--collect-interrupted KEY ...`` records a continuation that was stopped between epochs:
best-valid checkpoint so far, marked "interrupted, not converged". A family's variant is chosen
on valid at the largest epoch cap all its variants were trained at.

    python bench/multimodal_sports.py --jobs 4 --threads 1
    python bench/multimodal_sports.py --continue siger-detach lightgcn-L2 lightgcn-L3 freedom --max-epochs 60 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, commit, environment, peak_memory_mb, read_json, write_readme_section  # noqa: E402

from recsys import io  # noqa: E402

OUT = RESULTS / "multimodal_sports.json"
BEGIN, END = "<!-- multimodal_sports:begin -->", "<!-- multimodal_sports:end -->"

TRAIN = {"batch_size": 8192, "lr": 5e-3}
SIGER_COMMON = {"cl_max_nodes": 2048}
STAGE1 = {  # the slow runs first, so that the cheap ones fill the other workers meanwhile
    "siger": ("siger", dict(SIGER_COMMON)),
    "siger-detach": ("siger", {**SIGER_COMMON, "detach_anchor": True}),
    "lightgcn-L2": ("lightgcn", {"n_layers": 2}),
    "lightgcn-L3": ("lightgcn", {"n_layers": 3}),
    "freedom": ("freedom", {}),
    "vbpr": ("vbpr", {}),
}
FAMILIES = {"LightGCN": ["lightgcn-L2", "lightgcn-L3"], "VBPR": ["vbpr"], "FREEDOM": ["freedom"],
            "SIGER": ["siger", "siger-detach"]}
ABLATIONS = {"no co-occurrence infusion": {"cooccurrence_infusion": False},
             "no perturbation": {"perturbation": False},
             "no anchor alignment": {"anchor_alignment": False}}


def run_single(spec: dict) -> dict:
    """Child process: train one configuration and return its measurements."""
    from recsys.compose import resolve
    from recsys.runs import train

    if spec.get("continue"):
        return continue_single(spec)
    config = resolve({
        "seed": 2024,
        "run_name": spec["key"],
        "output_dir": spec["runs_dir"],
        "cache_dir": spec["cache_dir"],
        "device": "cpu",
        "dataset": {"format": "rearm", "path": str(SHARED_DATA / "amazon" / "sports"), "name": "sports",
                    "modalities": ["text"]},
        "model": {"name": spec["model"], **spec["params"]},
        "train": {**TRAIN, "epochs": spec["max_epochs"], "eval_every": spec["eval_every"],
                  "patience": spec["patience"], "progress": False},
        "eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
    })
    return {"model": spec["model"], "params": spec["params"], **measured(train(config), spec["max_epochs"])}


def continue_single(spec: dict) -> dict:
    """Child process: continue a finished run from its last.pt up to ``max_epochs``.

    The optimiser, RNG and early-stopping state come from last.pt, so the run goes on exactly
    as if its epoch cap had been ``max_epochs`` from the start.
    """
    from recsys.compose import resolve
    from recsys.io import dump_yaml, load_yaml
    from recsys.runs import train

    run_dir = Path(spec["runs_dir"]) / spec["key"]
    config = resolve(load_yaml(run_dir / "config.yaml"))
    config["train"]["epochs"] = spec["max_epochs"]
    io.write_text(run_dir / "config.yaml", dump_yaml(config))
    return {**measured(train(config, run_dir=run_dir, resume=True), spec["max_epochs"]),
            "continued_from_epoch": spec["continue"]}


def interrupted(run_dir: Path, previous: dict) -> dict:
    """The record of a continuation stopped between epochs (its process killed).

    Valid and test metrics are those of best.pt, the best-valid checkpoint so far; the epochs
    run are those of last.pt, the state a later ``--continue`` would go on from. Peak memory
    is not known across processes (null).
    """
    import torch

    from recsys.compose import build, resolve
    from recsys.io import load_yaml

    config = resolve(load_yaml(run_dir / "config.yaml"))
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)["state"]
    if last["epoch"] <= previous["epochs_run"]:
        sys.exit(f"{run_dir}: last.pt is at epoch {last['epoch']}, no later than the recorded "
                 f"{previous['epochs_run']} epochs; nothing to collect (continue it with --continue)")
    if last["stopped"] or last["epoch"] >= config["train"]["epochs"]:
        sys.exit(f"{run_dir}: the run ended at epoch {last['epoch']} but wrote no results.json record here; "
                 "finish it with --continue, which returns at once with its results")
    run = build(config, torch.device("cpu"))
    model, task = run.model, run.task
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best["model"])
    model.eval()
    results = {"valid": task.evaluate(model, "valid"), "test": task.evaluate(model, "test"),
               "best_epoch": best["epoch"], "epochs_run": last["epoch"], "run_dir": str(run_dir)}
    record = measured(results, config["train"]["epochs"])
    return {**record, "peak_memory_mb": None, "stopped_by": f"interrupted at epoch {last['epoch']}, not converged "
                          f"({last['bad_evals']} of {config['train']['patience']} evaluations without gain)"}


def measured(results: dict, max_epochs: int) -> dict:
    """The record of one run (metrics at the best valid epoch, curve, timings).

    Timings are taken from metrics.jsonl, which a continued run extends, so they cover every
    epoch of the run.
    """
    epochs = [json.loads(line) for line in Path(results["run_dir"], "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e["epoch"] <= results["epochs_run"]]
    evals = [e["eval_seconds"] for e in epochs if "eval_seconds" in e]
    curve = {e["epoch"]: e["valid/recall@20"] for e in epochs if "valid/recall@20" in e}
    train_seconds = [e["train_seconds"] for e in epochs]
    return {
        "valid": results["valid"], "test": results["test"],
        "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"], "epoch_cap": max_epochs,
        "stopped_by": "early stopping" if results["epochs_run"] < max_epochs else "epoch cap",
        "valid_recall@20_curve": curve,
        "seconds_per_epoch": sum(train_seconds) / len(epochs),
        "evaluation_seconds": sum(evals) / max(1, len(evals)), "total_seconds": sum(train_seconds) + sum(evals),
        "peak_memory_mb": peak_memory_mb(), "environment": environment(),
    }


def epoch_cap(run: dict) -> int:
    """The run's epoch cap; records made before the cap was stored ran to it (epochs run)."""
    return run.get("epoch_cap", run["epochs_run"])


def budgets(runs: dict, key: str) -> dict[int, dict]:
    """The records of one run by epoch cap: the latest one and the capped ones kept as ``KEY@<cap>``."""
    records = {epoch_cap(r): r for k, r in runs.items() if k.startswith(f"{key}@")}
    if key in runs:
        records[epoch_cap(runs[key])] = runs[key]
    return records


def best_of(runs: dict, keys: list[str]) -> tuple[str, int] | tuple[None, None]:
    """The variant with the best valid Recall@20 at the largest epoch cap all variants were run at."""
    done = [k for k in keys if k in runs]
    if not done:
        return None, None
    cap = max(set.intersection(*(set(budgets(runs, k)) for k in done)))
    return max(done, key=lambda k: budgets(runs, k)[cap]["valid"]["recall@20"]), cap


def summarise(runs: dict, settings: dict, commit_id: str | None = None) -> dict:
    """The results file: the chosen variants, the table and every run; ``commit_id`` is the commit
    of the latest invocation that added a run (default: this checkout's)."""
    chosen, chosen_at = {}, {}
    for family, keys in FAMILIES.items():
        chosen[family], chosen_at[family] = best_of(runs, keys)
    table = []
    for family, key in chosen.items():
        if key is not None:
            table.append({"model": family, "run": key, **_row(runs[key])})
    siger = chosen["SIGER"]
    caps = {epoch_cap(runs[f"{siger}/{label}"]) for label in ABLATIONS if f"{siger}/{label}" in runs}
    base = f"{siger}@{caps.pop()}" if len(caps) == 1 else None
    if base in runs:
        table.append({"model": "SIGER, ablation base (the ablations' budget)", "run": base, **_row(runs[base])})
    for label in ABLATIONS:
        key = f"{siger}/{label}"
        if siger is not None and key in runs:
            table.append({"model": f"SIGER, {label}", "run": key, **_row(runs[key])})
    return {"commit": commit_id or commit(), "protocol": "docs/protocol.md, selection on valid Recall@20 only",
            "settings_of_last_invocation": settings, "chosen": chosen, "chosen_at_epoch_cap": chosen_at,
            "not_continued": not_continued(runs, chosen), "table": table, "runs": runs}


def not_continued(runs: dict, chosen: dict) -> dict[str, list[str]]:
    """Per family, the variants left at a smaller epoch cap than the chosen one (early-stopped ones excepted)."""
    left = {}
    for family, keys in FAMILIES.items():
        if chosen[family] is not None:
            cap = max(budgets(runs, chosen[family]))
            left[family] = [k for k in keys if k in runs and max(budgets(runs, k)) < cap
                            and runs[k].get("stopped_by") != "early stopping"]
    return left


def _row(run: dict) -> dict:
    return {"valid_recall@20": run["valid"]["recall@20"], "test_recall@10": run["test"]["recall@10"],
            "test_recall@20": run["test"]["recall@20"], "test_ndcg@10": run["test"]["ndcg@10"],
            "test_ndcg@20": run["test"]["ndcg@20"], "best_epoch": run["best_epoch"],
            "epochs_run": run["epochs_run"], "epoch_cap": epoch_cap(run),
            "stopped_by": run.get("stopped_by", "epoch cap"), "seconds_per_epoch": round(run["seconds_per_epoch"], 1)}


def markdown(summary: dict) -> str:
    s = summary["settings_of_last_invocation"]
    runs = summary["runs"]
    first_cap = min(epoch_cap(run) for run in runs.values())
    ablation_caps = sorted({row["epoch_cap"] for row in summary["table"] if row["model"].startswith("SIGER, ")})
    lines = [
        BEGIN,
        "## Multimodal models on Amazon Sports with text features (`multimodal_sports.py`)",
        "",
        f"Commit {summary['commit']}; MMRec split of Sports, modality `text` only (all-MiniLM-L6-v2, 384-d). "
        "Protocol of docs/protocol.md with these budget deviations, the same for every model: "
        f"batch {TRAIN['batch_size']}, Adam lr {TRAIN['lr']}, valid every {s['eval_every']} epochs, early "
        f"stopping after {s['patience_evaluations']} evaluations without gain, SIGER contrastive sets capped at "
        f"{SIGER_COMMON['cl_max_nodes']} nodes, and an epoch cap per run (column *cap*: every run was first "
        f"trained with a cap of {first_cap} epochs; the runs with a larger cap were then continued from their last "
        "checkpoint, optimiser, RNG and early-stopping state included, which gives the same run as training "
        "with the larger cap from the start; the ablations kept the "
        f"{' / '.join(map(str, ablation_caps)) or first_cap}-epoch budget). Test metrics at the "
        "best-valid epoch. The published figures used 4096-d image + 384-d text features and full training "
        "and are not comparable.",
        "",
        selection(summary),
        "",
        "| model | run | valid R@20 | test R@10 | test R@20 | test N@10 | test N@20 | best epoch / run / cap "
        "| stopped by | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        lines.append(f"| {row['model']} | {row['run']} | {row['valid_recall@20']:.4f} | {row['test_recall@10']:.4f} | "
                     f"{row['test_recall@20']:.4f} | {row['test_ndcg@10']:.4f} | {row['test_ndcg@20']:.4f} | "
                     f"{row['best_epoch']} / {row['epochs_run']} / {row['epoch_cap']} | {row['stopped_by']} | "
                     f"{row['seconds_per_epoch']} |")
    lines += ["", "s/epoch is the mean training time of the run's epochs on this machine shared with "
              "other jobs (several runs at once), so it reflects the load as much as the model"
              + load_note(runs) + ".", "", verdict(summary["table"]), "", END]
    return "\n".join(lines)


def load_note(runs: dict) -> str:
    """The range of the recorded one-minute load averages (runs recorded since they were stored)."""
    loads = [run["environment"]["load_average"][0] for run in runs.values() if "environment" in run]
    return f" (one-minute load average {min(loads)} to {max(loads)} where recorded)" if loads else ""


def selection(summary: dict) -> str:
    """How each family's variant was chosen (on valid only) and which variants were not continued."""
    runs, sentences = summary["runs"], []
    for family, key in summary["chosen"].items():
        candidates = [k for k in FAMILIES[family] if k in runs]
        if key is None or len(candidates) < 2:
            continue
        cap = summary["chosen_at_epoch_cap"][family]
        scores = ", ".join(f"`{k}` {budgets(runs, k)[cap]['valid']['recall@20']:.4f}" for k in candidates)
        sentence = f"{family}: `{key}` chosen on valid Recall@20 at the {cap}-epoch budget ({scores})"
        left = summary["not_continued"].get(family, [])
        if left:
            sentence += (f"; {', '.join(f'`{k}`' for k in left)} not continued beyond that budget for lack of "
                         "CPU time")
        sentences.append(sentence + ".")
    caps = sorted({row["epoch_cap"] for row in summary["table"] if row["model"].startswith("SIGER, ")})
    if caps:
        sentences.append(f"The ablations remove one mechanism each from the chosen SIGER at the "
                         f"{' / '.join(map(str, caps))}-epoch budget; compare them with the *ablation base* row (the "
                         "chosen SIGER at that same budget), not with the continued SIGER row.")
    return " ".join(sentences)


def verdict(table: list[dict]) -> str:
    """One sentence per multimodal model: does it beat LightGCN on test Recall@20 and NDCG@20?

    Different epoch caps are flagged unless both runs ended by early stopping (then the cap did not bind).
    """
    rows = {row["model"]: row for row in table}
    if "LightGCN" not in rows:
        return ""
    base = rows["LightGCN"]
    sentences = []
    for model in ("FREEDOM", "SIGER", "VBPR"):
        if model in rows:
            row = rows[model]
            recall, ndcg = row["test_recall@20"] > base["test_recall@20"], row["test_ndcg@20"] > base["test_ndcg@20"]
            outcome = ("beats LightGCN on test R@20 and N@20" if recall and ndcg
                       else "does not beat LightGCN on test R@20 or N@20" if not (recall or ndcg)
                       else f"beats LightGCN on test {'R@20' if recall else 'N@20'} but not on "
                            f"{'N@20' if recall else 'R@20'}")
            converged = row["stopped_by"] == base["stopped_by"] == "early stopping"
            budget = (f"; {model} with a {row['epoch_cap']}-epoch cap, LightGCN with {base['epoch_cap']}, "
                      "so not a like-for-like comparison" if row["epoch_cap"] != base["epoch_cap"] and not converged
                      else "")
            sentences.append(f"**{model} {outcome}** "
                             f"({row['test_recall@20']:.4f} / {row['test_ndcg@20']:.4f} vs "
                             f"{base['test_recall@20']:.4f} / {base['test_ndcg@20']:.4f}{budget}).")
    return " ".join(sentences)


def write_readme(summary: dict) -> None:
    """Replace this benchmark's section of bench/README.md."""
    write_readme_section(markdown(summary), BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--patience", type=int, default=5, help="in evaluations")
    parser.add_argument("--jobs", type=int, default=4, help="runs trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--only", nargs="*", help="stage-1 run keys to train (default: all)")
    parser.add_argument("--ablate", help="only train the ablations of this stage-1 run key (e.g. siger-detach)")
    parser.add_argument("--results", type=Path, default=OUT, help="results file (default bench/results/...)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="results files of other invocations whose runs are added to --results")
    parser.add_argument("--runs-dir", default="/tmp/recsys-bench-runs/multimodal_sports")
    parser.add_argument("--cache-dir", default="/tmp/recsys-bench-cache")
    parser.add_argument("--continue", dest="continue_keys", nargs="+", metavar="KEY",
                        help="continue these finished runs that hit their epoch cap up to --max-epochs (from last.pt); "
                             "the capped result stays in the results as KEY@<cap>")
    parser.add_argument("--collect-interrupted", nargs="+", metavar="KEY",
                        help="record these continuations, stopped between epochs, at their best-valid checkpoint so "
                             "far, marked as interrupted and not converged")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_single(json.loads(args.single))))
        return

    settings = {"max_epochs": args.max_epochs, "eval_every": args.eval_every,
                "patience_evaluations": args.patience, "jobs": args.jobs, "threads": args.threads,
                "train": TRAIN, "siger_common": SIGER_COMMON}
    previous = read_json(args.results, {"runs": {}})
    runs = previous.get("runs", {})
    recorded, recorded_commit = json.loads(json.dumps(runs)), previous.get("commit")
    for path in args.merge:
        runs.update(read_json(path, {"runs": {}})["runs"])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def spec(key: str, model: str, params: dict) -> dict:
        return {"key": key.replace("/", "--").replace(" ", "_"), "model": model, "params": params,
                "max_epochs": args.max_epochs, "eval_every": args.eval_every, "patience": args.patience,
                "runs_dir": args.runs_dir, "cache_dir": args.cache_dir}

    def launch(item: tuple[str, dict]) -> tuple[str, dict | None]:
        key, job = item
        started = time.time()
        proc = subprocess.run([sys.executable, __file__, "--single", json.dumps(job)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{key} failed:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
            return key, None
        print(f"{key}: done in {time.time() - started:.0f} s", flush=True)
        return key, json.loads(proc.stdout.strip().splitlines()[-1])

    def run_all(jobs: dict[str, dict]) -> None:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for key, result in pool.map(launch, jobs.items()):
                if result is not None:
                    runs[key] = {**runs.get(key, {}), **result}
                    write_all()

    def write_all() -> None:
        unchanged = runs == recorded  # only the report is rewritten: keep the recorded commit and settings
        summary = summarise(runs, previous.get("settings_of_last_invocation", settings) if unchanged else settings,
                            recorded_commit if unchanged else None)
        io.write_json(args.results, summary)
        if args.results == OUT:
            write_readme(summary)

    def ablations(base_key: str) -> dict[str, dict]:
        base = STAGE1[base_key][1]
        return {f"{base_key}/{label}": spec(f"{base_key}/{label}", "siger", {**base, **change})
                for label, change in ABLATIONS.items() if f"{base_key}/{label}" not in runs}

    def continuations(keys: list[str]) -> dict[str, dict]:
        jobs = {}
        for key in keys:
            old = runs[key]
            if old.get("stopped_by") == "early stopping" or old["epochs_run"] >= args.max_epochs:
                continue
            capped = epoch_cap(old)
            runs.setdefault(f"{key}@{capped}", dict(old))
            jobs[key] = {**spec(key, old["model"], old["params"]), "continue": old["epochs_run"]}
        return jobs

    if args.collect_interrupted:
        for key in args.collect_interrupted:
            old = runs[key]
            runs.setdefault(f"{key}@{epoch_cap(old)}", dict(old))
            runs[key] = {**old, **interrupted(Path(args.runs_dir) / spec(key, "", {})["key"], old),
                         "continued_from_epoch": old["epochs_run"]}
            write_all()
            print(f"{key}: {runs[key]['stopped_by']}", flush=True)
    elif args.continue_keys:
        missing = [k for k in args.continue_keys if k not in runs]
        if missing:
            sys.exit(f"no recorded runs {missing}; recorded: {sorted(runs)}")
        run_all(continuations(args.continue_keys))
    elif args.ablate:
        run_all(ablations(args.ablate))
    else:
        wanted = args.only or list(STAGE1)
        run_all({k: spec(k, *STAGE1[k]) for k in wanted if k not in runs})
        chosen, _ = best_of(runs, FAMILIES["SIGER"])
        if chosen is not None:
            run_all(ablations(chosen))
    write_all()


if __name__ == "__main__":
    main()
