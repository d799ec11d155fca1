"""The REARM section of bench/README.md, written from the recorded REARM results.

Reads ``results/rearm_graphs.json`` (rearm_graphs.py: graph building on Clothing, the CPU's
matrix-product rate), ``results/rearm.json`` (rearm_speed.py: epoch speed and profile;
rearm_sports.py: Sports with its text features; rearm_clothing.py: Clothing to early
stopping), ``results/id_baselines.json`` (the
protocol LightGCN run REARM is compared with) and the leaderboards of the benchmark suites that
train REARM next to LightGCN, FREEDOM and SIGER (``results/benchmarks/<suite>/``, recorded by
benchmark_record.py: Toys, and Sports at default settings). Every figure of the section comes from those
files; the only constants here are the targets of issue 3. Run it after any of those scripts:

    python bench/rearm_report.py
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, read_json, write_readme_section  # noqa: E402

BEGIN, END = "<!-- rearm:begin -->", "<!-- rearm:end -->"
SPEED_TARGET = 10  # issue 3: an epoch ten times faster than the reference code's


def _k(graph_name: str) -> int:
    return int(re.search(r"k=(\d+)", graph_name).group(1))


def _gb(megabytes: float) -> str:
    return f"{megabytes / 1024:.1f} GB"


def _range(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)}–{format(high, fmt)}"


def graphs_paragraph(graphs: dict, speed: dict) -> str:
    run = graphs["runs"].get("exact-direct")
    if run is None:
        return ""
    by_name = {g["graph"]: g for g in run["graphs"]}
    item_k = _k(next(name for name in by_name if name.startswith("item_knn")))
    user_k = _k(next(name for name in by_name if name.startswith("user_interest_knn")))
    sizes = run.get("dataset") or next(v for k, v in speed.items() if k.startswith("clothing/"))
    users, items = sizes["users"], sizes["items"]
    dims = run["modalities"]
    widest = max(dims.values())
    cooc = {kind: next(g for name, g in by_name.items() if name.startswith(f"{kind}_cooccurrence"))
            for kind in ("item", "user")}
    text = [f"**Graphs for Clothing** ({users:,} users, {items:,} items, stand-in features "
            + " + ".join(f"{m} {d}-d" for m, d in dims.items())
            + f", user_knn_k {user_k}, item_knn_k {item_k}; exact kNN): {run['total_cpu_seconds']:,.0f} CPU-seconds "
            f"in all ({run['total_seconds']:,.0f} s wall at load {_range(run['load_average_1min'], '.0f')}), peak "
            f"{_gb(run['peak_rss_mb'])}. Co-occurrence top-k takes {cooc['item']['cpu_seconds']:.1f} CPU-s (items) and "
            f"{cooc['user']['cpu_seconds']:.1f} CPU-s (users). Almost all the time is the exact cosine kNN over the "
            f"{widest}-d features: the item graph needs half of {items:,}² × {widest:,} ≈ {items ** 2 / 2 * widest:.1e} "
            f"and the user-interest graph half of {users:,}² × {widest:,} ≈ {users ** 2 / 2 * widest:.1e} "
            "multiply-adds (similarities are computed once per pair)."]
    rate = graphs.get("matmul_rate")
    if rate:
        per_core = rate["multiply_adds_per_cpu_second_one_thread"]
        cores = rate["environment"]["cpu_count"]
        work = items ** 2 / 2 * widest
        bound = work / (cores * per_core["float32"])
        target = graphs.get("target", {}).get("seconds")
        text.append(f"This CPU multiplies dense matrices at {per_core['float32']:.2e} multiply-adds per CPU-second of "
                    f"one thread in float32 ({per_core['bfloat16']:.2e} in bfloat16; measured on "
                    f"{rate['environment']['date'][:10]}), so with its {cores} cores the item {max(dims, key=dims.get)} "
                    f"graph alone needs at least {bound:.0f} s ({work / (cores * per_core['bfloat16']):.0f} s in "
                    "bfloat16, which would break the exactness guarantee)"
                    + (f": the issue's {target}-second target for all graphs cannot be met with exact graphs on "
                       "this machine." if target and bound > target else "."))
    recalls = [g["recall_vs_exact"] for r in graphs["runs"].values() for g in r["graphs"] if "recall_vs_exact" in g]
    if recalls:
        text.append("The random-projection option (`knn_projection`) is faster but, on random stand-in features, keeps "
                    f"only {_range([100 * r for r in recalls], '.0f')} % of the exact neighbours (recorded per graph), "
                    "so it is not a substitute.")
    return " ".join(text)


def speed_paragraph(speed: dict) -> str:
    record = speed.get("baby/1-thread")
    reference = speed.get("reference", {}).get("baby")
    if record is None or reference is None:
        return ""
    by_cpu = reference["seconds_per_epoch"] / record["cpu_seconds_per_epoch"]
    by_wall = reference["seconds_per_epoch"] / record["seconds_per_epoch"]
    profile = ", ".join(f"{op['op'].removeprefix('aten::')} {op['share']:.0%}" for op in record["profile_one_step"][:5])
    step_cpu = record["cpu_seconds_per_epoch"] / (record["seconds_per_epoch"] / record["seconds_per_batch"])
    return (f"**Training speed on Baby-sized inputs** (the Baby split, {record['users']:,} users and "
            f"{record['items']:,} items, with stand-in features, the published Baby hyper-parameters, "
            f"{record['threads']} thread): one epoch through the Trainer costs {record['cpu_seconds_per_epoch']:.0f} "
            f"CPU-seconds ({record['seconds_per_epoch']:.0f} s wall at load {record['load_average'][0]:.0f}), against "
            f"{reference['seconds_per_epoch']:.0f} s for the reference code on {reference['threads']} core here: "
            f"{by_cpu:.1f}× less CPU time ({by_wall:.1f}× in wall time on the loaded machine), with peak memory "
            f"{_gb(record['peak_memory_mb'])} against {reference['peak_memory_gb']} GB. A full evaluation takes "
            f"{record['seconds_per_evaluation']:.1f} s. The {SPEED_TARGET}× target is "
            f"{'reached' if by_cpu >= SPEED_TARGET else 'not reached'}. A training step costs about {step_cpu:.1f} "
            f"CPU-s; the largest shares of one profiled step are {profile}: dense products (the projections of the "
            "trainable item feature table, forward and backward) and sparse propagation over the user homography "
            f"and user-item graphs, then the attention over every item's modality vectors and the meta-network over "
            f"all {record['users'] + record['items']:,} nodes. Those are the reference's operations too; the remaining "
            "gap would need fused kernels for the attention and the feature gradient.")


def sports_paragraph(sports: dict, baselines: dict) -> str:
    rearm = sports.get("rearm")
    lightgcn = baselines.get("selected", {}).get("sports/lightgcn")
    if rearm is None or lightgcn is None:
        return ""
    curve = rearm["valid_recall@20_per_evaluation"]
    rising = curve[-1][1] == max(value for _, value in curve)
    r_test, l_test = rearm["test"], lightgcn["test"]
    stop = (f"stopped by a {rearm['budget_minutes']:.0f}-minute budget" if rearm["stopped_by"] == "time budget"
            else f"stopped by {rearm['stopped_by']}")

    def compare(metric: str, name: str) -> str:
        gap = r_test[metric] / l_test[metric] - 1
        return f"its {name} {abs(gap):.1%} {'higher' if gap > 0 else 'lower'}"

    return (f"**Sports with its text features** (M = {len(rearm['config']['model']['item_modality_weights'])}): REARM "
            f"test Recall@20 {r_test['recall@20']:.4f} / NDCG@20 {r_test['ndcg@20']:.4f} ({rearm['epochs_run']} epochs, "
            f"lr {rearm['config']['train']['lr']:g}, batch {rearm['config']['train']['batch_size']}, {stop}"
            f"{' while valid was still rising' if rising else ''}), against our protocol LightGCN run "
            f"(`reproduce_id_baselines.py`, {lightgcn['status']}) {l_test['recall@20']:.4f} / {l_test['ndcg@20']:.4f}: "
            f"REARM's {compare('recall@20', 'Recall@20')[4:]}, {compare('ndcg@20', 'NDCG@20')}.")


def epochs_by_threads(sittings: list[dict], epochs: list[dict]) -> dict[int, list[dict]]:
    """The epochs grouped by the thread count of the sitting that trained them (a sitting trains
    from its ``first_epoch`` up to the next sitting's)."""
    starts = sorted((s["first_epoch"], s["threads"]) for s in sittings if s.get("first_epoch"))
    groups: dict[int, list[dict]] = {}
    for epoch in epochs:
        threads = next((t for first, t in reversed(starts) if first <= epoch["epoch"]), None)
        if threads is not None:
            groups.setdefault(threads, []).append(epoch)
    return groups


def _commit_of(record: dict) -> str:
    return record.get("commit_at_start") or record["environment"]["commit"]


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def clothing_paragraph(clothing: dict) -> str:
    sittings, epochs = clothing.get("sittings", []), clothing.get("epochs", [])
    data = next((s["data"] for s in sittings if s.get("data")), None)
    if not epochs or data is None:
        return ""
    cpu = [e["train_cpu_seconds"] for e in epochs if e.get("train_cpu_seconds")]
    evaluation = [e["eval_seconds"] for e in epochs if e.get("eval_seconds")]
    best = max((e for e in epochs if e["valid_recall@20"] is not None), key=lambda e: e["valid_recall@20"])
    check = clothing.get("memory_check")
    judged = check or sittings[-1]
    peak = judged["peak_rss_mb"]
    judged_by = (f"a whole run's path in one process (`--memory-check`, commit {_commit_of(check)}, "
                 f"{check['threads']} thread(s): data, graphs, one epoch, validation, checkpoints, the best weights "
                 "reloaded, test evaluation)" if check else f"the last sitting (commit {_commit_of(judged)})")
    others = [f"{_commit_of(s)}: {_gb(s['peak_rss_mb'])}" for s in (sittings if check else sittings[:-1])]
    starts = [s["seconds_to_first_evaluation"] for s in sittings if s.get("seconds_to_first_evaluation")]
    per_threads = []
    for threads, group in sorted(epochs_by_threads(sittings, epochs).items()):
        loads = [x for s in sittings if s["threads"] == threads and s.get("first_epoch")
                 for x in (s["load_before"][0], s["load_after"][0])]
        per_threads.append(f"{threads} thread(s): {_median([e['train_seconds'] for e in group]):.0f} s wall, "
                           f"{_median([e['train_cpu_seconds'] for e in group]):.0f} CPU-s over {len(group)} "
                           f"epochs, load average {_range(loads, '.1f')}")
    target = clothing["memory_target_gb"]
    results = clothing.get("results")
    to_best = sum(e["train_cpu_seconds"] for e in epochs if e["epoch"] <= best["epoch"])
    if results:
        state = (f"early stopping ended it after {results['epochs_run']} epochs (best valid epoch "
                 f"{results['best_epoch']}; training to it took {to_best / 3600:.1f} CPU-hours, the whole run "
                 f"{sum(cpu) / 3600:.1f} CPU-hours and {sum(e['train_seconds'] for e in epochs) / 3600:.1f} h "
                 f"of wall time); test Recall@20 {results['test']['recall@20']:.4f} / NDCG@20 "
                 f"{results['test']['ndcg@20']:.4f} (stand-in features: a check that training converges, not a "
                 "Clothing accuracy)")
    else:
        state = (f"not converged yet: {len(epochs)} epochs over {len(sittings)} sitting(s) "
                 f"({sum(cpu) / 3600:.1f} CPU-hours of training), best valid Recall@20 "
                 f"{best['valid_recall@20']:.4f} at epoch {best['epoch']} (stand-in features); the same command "
                 "resumes it")
    return (f"**Clothing at full size** (`rearm_clothing.py`: the Clothing split, {data['users']:,} users, "
            f"{data['items']:,} items, {data['train']:,} train interactions, stand-in features; "
            f"`{clothing['recipe']}`, trained user interest): an epoch costs {_median(cpu):.0f} CPU-s (median; "
            f"{_range(cpu, '.0f')} over the epochs, as the shared machine's load varied); median per epoch with "
            + "; ".join(per_threads) + "; a full validation "
            f"{_median(evaluation):.1f} s, "
            f"the first evaluation comes {_range(starts, '.0f')} s after launch (data, graphs, model, one epoch); "
            f"peak resident memory of {judged_by} {_gb(peak)} ({peak:,.0f} MiB) "
            f"against the {target:g} GB target ({'met' if peak / 1024 <= target else 'NOT met'}; the reference "
            f"code: {clothing['reference_peak_gb']:g} GB"
            + ("; " + ("the convergence run's" if check else "earlier") + f" sittings, commit {', '.join(others)}"
               if others else "") + "); "
            f"{state}.")


# benchmark suites with REARM (recorded leaderboards)
SUITES = (("toys", "Toys"), ("sports", "Sports (searched)"), ("sports-defaults", "Sports (default settings)"))
COMPARED = ("rearm", "lightgcn", "freedom", "siger")


def suite_paragraph(folder: Path, label: str) -> str:
    """REARM next to LightGCN, FREEDOM and SIGER in one recorded benchmark suite (its leaderboard,
    ``benchmark_record.py``): test Recall@20 / NDCG@20, seeds, the selection, the paired test."""
    board = folder / "leaderboard.csv"
    if not board.is_file():
        return ""
    with board.open() as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    if "rearm" not in rows:
        return ""
    selection = next(iter(read_json(folder / "selection.json", {}).values()), {})
    chosen = {selection[m]["chosen_by"] for m in COMPARED if m in selection}
    how = "each at its default settings (no search)" if chosen == {"fixed"} else \
        "each with its configuration chosen on valid Recall@20 by the same search budget (" + \
        "; ".join(sorted(chosen)) + ")"
    cells = [f"{model} {float(rows[model]['test:recall@20:mean']):.4f} / {float(rows[model]['test:ndcg@20:mean']):.4f} "
             f"({rows[model]['n_seeds']} seed(s); means: best epoch {float(rows[model]['best_epoch_mean']):.0f}, "
             f"{float(rows[model]['epochs_run_mean']):.0f} epochs run)" for model in COMPARED if model in rows]
    rearm = rows["rearm"]
    test = ""
    if rearm.get("test:recall@20:wilcoxon_holm"):
        test = (f" REARM against LightGCN: test Recall@20 {float(rearm['test:recall@20:mean_difference']):+.4f} "
                f"(Wilcoxon over users, Holm-corrected p {float(rearm['test:recall@20:wilcoxon_holm']):.2g}).")
    missing = [model for model in COMPARED if model not in rows]
    pending = f" Not in the leaderboard yet (the suite is still running): {', '.join(missing)}." if missing else ""
    return (f"**{label}, real text features** (benchmark suite `{folder.name}`, leaderboard in "
            f"`results/benchmarks/{folder.name}/` and its own section below; {how}; the suite's shared budget): "
            f"test Recall@20 / NDCG@20, mean over seeds: " + "; ".join(cells) + "." + test + pending)


def real_data_paragraphs(results: Path) -> list[str]:
    return [suite_paragraph(results / "benchmarks" / name, label) for name, label in SUITES]


def markdown(graphs: dict, rearm: dict, baselines: dict, results: Path = RESULTS) -> str:
    paragraphs = [graphs_paragraph(graphs, rearm.get("speed", {})), speed_paragraph(rearm.get("speed", {})),
                  *real_data_paragraphs(results),
                  sports_paragraph(rearm.get("sports", {}), baselines),
                  clothing_paragraph(rearm.get("clothing", {}))]
    title = "## REARM (`rearm_graphs.py`, `rearm_speed.py`, `rearm_sports.py`, `rearm_clothing.py`)"
    return "\n\n".join([BEGIN + "\n" + title,
                        "Results in `results/rearm_graphs.json` and `results/rearm.json` (this section: "
                        "`rearm_report.py`); each entry records its commit and the load average of the shared "
                        "machine when it ran.", *[p for p in paragraphs if p], END])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    parser.add_argument("--readme", type=Path, default=None, help="README to update (default bench/README.md)")
    args = parser.parse_args(argv)
    records = (read_json(args.results / "rearm_graphs.json", {"runs": {}}), read_json(args.results / "rearm.json", {}),
               read_json(args.results / "id_baselines.json", {}))
    write_readme_section(markdown(*records, results=args.results), BEGIN, END, args.readme)


if __name__ == "__main__":
    main()
