"""Every bench script runs end to end on tiny synthetic data, so none can silently break again.

Each script runs as the lead runs it (``python bench/<script>.py ...``) with arguments that
make it small, against a stand-in for ../shared/data (:mod:`fake_shared`); results and the
README go to a temporary folder (``RECSYS_BENCH_RESULTS``, ``RECSYS_BENCH_README``). The
assertions check what each script must record (its results, their environment, its README
section), not the numbers, which mean nothing on such data.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_shared import write_shared_data  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    shared = write_shared_data(root / "shared")
    results = root / "results"
    results.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECSYS_SHARED_DATA": str(shared),
           "RECSYS_BENCH_RESULTS": str(results), "RECSYS_BENCH_README": str(root / "README.md"),
           "OMP_NUM_THREADS": "1"}
    return {"root": root, "results": results, "readme": root / "README.md", "env": env}


def run(bench_env, script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], env=bench_env["env"], capture_output=True,
                          text=True, cwd=bench_env["root"], timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{script} {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def results(bench_env, name: str) -> dict:
    return json.loads((bench_env["results"] / name).read_text())


def section(bench_env, name: str) -> str:
    text = bench_env["readme"].read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert begin in text and end in text, f"no {name} section in the README"
    return text[text.index(begin):text.index(end)]


def assert_environment(record: dict) -> None:
    env = record["environment"]
    assert {"commit", "date", "load_average", "torch_threads", "cpu_count"} <= set(env)


def test_multimodal_sports_default_command_trains_and_ablates_the_chosen_siger(bench_env, tmp_path):
    out = tmp_path / "multimodal.json"
    run(bench_env, "multimodal_sports.py", "--max-epochs", "1", "--eval-every", "1", "--jobs", "2", "--only",
        "siger-detach", "lightgcn-L2", "--results", str(out), "--runs-dir", str(tmp_path / "runs"),
        "--cache-dir", str(tmp_path / "cache"))
    summary = json.loads(out.read_text())
    assert summary["chosen"]["SIGER"] == "siger-detach" and summary["chosen"]["LightGCN"] == "lightgcn-L2"
    assert {f"siger-detach/{label}" for label in ("no co-occurrence infusion", "no perturbation",
                                                  "no anchor alignment")} <= set(summary["runs"])
    assert_environment(summary["runs"]["siger-detach"])


def test_reproduce_id_baselines_records_runs_and_writes_its_section(bench_env, tmp_path):
    run(bench_env, "reproduce_id_baselines.py", "--datasets", "baby", "--models", "bpr", "lightgcn", "--grid",
        "single", "--max-epochs", "1", "--runs-dir", str(tmp_path))
    summary = results(bench_env, "id_baselines.json")
    assert set(summary["selected"]) == {"baby/bpr", "baby/lightgcn"}
    assert_environment(next(iter(summary["runs"].values())))
    text = section(bench_env, "id_baselines")
    assert f"{summary['selected']['baby/lightgcn']['test']['recall@20']:.4f}" in text
    run(bench_env, "reproduce_id_baselines.py", "--report")
    assert section(bench_env, "id_baselines") == text


def test_clhe_clothing_baselines_candidates_ablations_and_variants(bench_env, tmp_path):
    run(bench_env, "clhe_clothing.py", "--jobs", "2", "--epochs", "1", "--runs-dir", str(tmp_path))
    summary = results(bench_env, "clhe_clothing.json")
    assert {"popularity", "text_knn", "clhe"} <= set(summary["selected"])
    assert len(summary["runs"]) == 2 + 4
    run(bench_env, "clhe_clothing.py", "--variants", "--seeds", "0", "2", "--jobs", "2", "--epochs", "1",
        "--runs-dir", str(tmp_path))
    variants = results(bench_env, "clhe_clothing.json")["variants"]
    assert len(variants["runs"]) == 4 and variants["valid_prefers"] in ("ours", "reference")
    assert len(summary["runs"]) == len(results(bench_env, "clhe_clothing.json")["runs"]), "earlier runs are kept"
    kept = bench_env["results"] / "clhe_variants" / "reference" / "seed-2"
    assert {p.name for p in kept.iterdir()} == {"config.yaml", "results.json", "per_user_test.npz"}
    assert "Paired tests over users against **ours**" in section(bench_env, "clhe_variants")


def test_scaling_measures_every_stage_of_a_small_catalogue(bench_env, tmp_path):
    run(bench_env, "scaling.py", "--sizes", "300", "--work-dir", str(tmp_path))
    entry = results(bench_env, "scaling.json")["sizes"]["300"]
    assert {"data", "graphs", "knn", "lightgcn", "rearm", "rearm_d16", "eval"} <= set(entry)
    assert_environment(entry["lightgcn"])
    assert "Where the time goes" in section(bench_env, "scaling")
    assert (bench_env["results"] / "scaling.png").is_file()


def test_rearm_scripts_and_their_report(bench_env, tmp_path):
    run(bench_env, "rearm_graphs.py", "--name", "smoke")
    graphs = results(bench_env, "rearm_graphs.json")["runs"]["smoke"]
    assert graphs["dataset"]["name"] == "clothing" and len(graphs["graphs"]) == 9
    assert_environment(graphs)
    run(bench_env, "rearm_speed.py", "--datasets", "baby", "--threads", "1", "--cache", str(tmp_path / "cache"))
    speed = results(bench_env, "rearm.json")["speed"]["baby/1-thread"]
    assert speed["cpu_seconds_per_epoch"] > 0 and speed["profile_one_step"]
    assert_environment(speed)
    for model in ("rearm", "lightgcn"):
        run(bench_env, "rearm_sports.py", "--model", model, "--minutes", "0.01", "--threads", "1", "--runs",
            str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"))
    assert set(results(bench_env, "rearm.json")["sports"]) == {"rearm", "lightgcn"}
    run(bench_env, "rearm_report.py")
    text = section(bench_env, "rearm")
    assert "**Training speed on Baby-sized inputs**" in text and "**Graphs for Clothing**" not in text


def test_rearm_clothing_resumes_over_sittings_and_reports_memory(bench_env, tmp_path):
    out, work = tmp_path / "rearm.json", tmp_path / "work"
    common = ("--work", str(work), "--cache", str(tmp_path / "cache"), "--out", str(out), "--threads", "1")
    run(bench_env, "rearm_clothing.py", *common, "--max-epochs", "1")
    first = json.loads(out.read_text())["clothing"]
    assert [e["epoch"] for e in first["epochs"]] == [1] and first["results"]["epochs_run"] == 1
    run(bench_env, "rearm_clothing.py", *common, "--max-epochs", "2")
    clothing = json.loads(out.read_text())["clothing"]
    assert [e["epoch"] for e in clothing["epochs"]] == [1, 2], "the second sitting resumes after epoch 1"
    assert [s["first_epoch"] for s in clothing["sittings"]] == [1, 2]
    assert all(s["peak_rss_mb"] > 0 and s["ended_by"] == "run finished" for s in clothing["sittings"])
    assert_environment(clothing["sittings"][-1])
    readme = tmp_path / "README.md"
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "rearm.json").write_text(out.read_text())
    run(bench_env, "rearm_report.py", "--results", str(results_dir), "--readme", str(readme))
    assert "**Clothing at full size**" in readme.read_text()


def test_rearm_report_writes_every_paragraph_from_the_recorded_results(bench_env):
    readme = bench_env["root"] / "rearm_report.md"
    run(bench_env, "rearm_report.py", "--results", str(BENCH / "results"), "--readme", str(readme))
    text = readme.read_text()
    speed = json.loads((BENCH / "results" / "rearm.json").read_text())["speed"]
    record, reference = speed["baby/1-thread"], speed["reference"]["baby"]
    assert f"{reference['seconds_per_epoch'] / record['cpu_seconds_per_epoch']:.1f}× less CPU time" in text
    assert all(f"**{title}**" in text for title in ("Graphs for Clothing", "Training speed on Baby-sized inputs",
                                                    "Sports with its text features"))


def test_rearm_report_puts_rearm_beside_the_suite_baselines(bench_env, tmp_path):
    results = tmp_path / "results"
    board = results / "benchmarks" / "toys"
    board.mkdir(parents=True)
    header = ("label,model,dataset,n_seeds,best_epoch_mean,epochs_run_mean,test:recall@20:mean,test:ndcg@20:mean,"
              "test:recall@20:mean_difference,test:recall@20:wilcoxon_holm")
    rows = ["lightgcn,lightgcn,toys,3,40,40,0.0301,0.0119,,", "rearm,rearm,toys,2,21,31,0.0436,0.0172,0.0135,2e-30",
            "siger,siger,toys,3,39,40,0.0553,0.0216,0.0252,3e-79"]
    (board / "leaderboard.csv").write_text("\n".join([header, *rows]) + "\n")
    (board / "selection.json").write_text(json.dumps({"toys": {m: {"chosen_by": "search: best of 3 trials"}
                                                               for m in ("lightgcn", "rearm", "siger")}}))
    readme = tmp_path / "README.md"
    run(bench_env, "rearm_report.py", "--results", str(results), "--readme", str(readme))
    text = readme.read_text()
    assert "**Toys, real text features**" in text and "**Sports" not in text
    assert "rearm 0.0436 / 0.0172 (2 seed(s)" in text and "siger 0.0553 / 0.0216" in text
    assert "test Recall@20 +0.0135 (Wilcoxon over users, Holm-corrected p 2e-30)" in text
    assert "search: best of 3 trials" in text
    assert "Not in the leaderboard yet (the suite is still running): freedom." in text


def test_matmul_rate_is_recorded_per_cpu_second():
    spec = importlib.util.spec_from_file_location("rearm_graphs", BENCH / "rearm_graphs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rate = module.matmul_rate(rows=64, columns=64, dim=64, repeats=1)
    assert set(rate["multiply_adds_per_cpu_second_one_thread"]) == {"float32", "bfloat16"}
    assert all(value > 0 for value in rate["multiply_adds_per_cpu_second_one_thread"].values())


def test_speed_scripts(bench_env, tmp_path):
    run(bench_env, "eval_speed.py", "--repeats", "1", "--batch-sizes", "16", "--out", str(tmp_path / "eval.json"))
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert evaluation["runs"][0]["batch_size"] == 16
    assert_environment(evaluation)
    run(bench_env, "export_speed.py", "--dims", "8", "--repeats", "1", "--out", str(tmp_path / "export.json"))
    export = json.loads((tmp_path / "export.json").read_text())
    assert export["cases"][0]["rows"] > 0
    assert_environment(export["cases"][0])


def test_tune_lightgcn_baby_runs_a_small_study(bench_env, tmp_path):
    out = tmp_path / "tune.json"
    run(bench_env, "tune_lightgcn_baby.py", "--trials", "2", "--workers", "1", "--epochs", "1", "--eval-every", "1",
        "--out", str(out), "--output-dir", str(tmp_path / "studies"))
    result = json.loads(out.read_text())
    assert result["finished"] == 2 and result["what"].startswith("2-trial")
    assert_environment(result)


def test_behaviour_check_records_and_compares(bench_env, tmp_path):
    out = tmp_path / "behaviour.json"
    run(bench_env, "behaviour_check.py", "--out", str(out), "--epochs", "1", "--models", "bpr", "clhe")
    assert set(json.loads(out.read_text())["models"]) == {"bpr", "clhe"}
    same = run(bench_env, "behaviour_check.py", "--out", str(tmp_path / "again.json"), "--epochs", "1", "--models",
               "bpr", "--compare", str(out))
    assert "1 of 1 models identical" in same.stdout


def test_suite_cost_measures_and_estimates_a_suite(bench_env):
    run(bench_env, "suite_cost.py", "--smoke", "--in-process")
    suite = results(bench_env, "suite_cost.json")["suites"]["smoke"]
    lightgcn = suite["models"]["synth/lightgcn"]
    assert lightgcn["runs"] == 2 + 2 and lightgcn["estimate_seconds"] > 0
    assert_environment(lightgcn)
    assert "Benchmark suites: cost estimates" in section(bench_env, "suite_cost")


def test_dependencies_measures_torch_geometric(bench_env):
    pytest.importorskip("torch_geometric")
    run(bench_env, "dependencies.py", "--repeats", "1")
    summary = results(bench_env, "dependencies.json")
    assert summary["propagation"]["max_abs_difference"] < 1e-4
    assert_environment(summary)
    assert "Dependencies: PyTorch Geometric" in section(bench_env, "dependencies")


def test_rearm_time_to_accuracy_trains_the_recipe_on_the_parity_input(bench_env, tmp_path):
    out = tmp_path / "tta.json"
    run(bench_env, "rearm_time_to_accuracy.py", "--source", str(bench_env["root"] / "shared" / "amazon" / "sports"),
        "--work", str(tmp_path / "work"), "--max-epochs", "1", "--threads", "1", "--out", str(out),
        "--parity", str(tmp_path / "no_parity.json"))
    result = json.loads(out.read_text())
    assert result["runs"]["recipe"]["timeline"][0]["epoch"] == 1
    assert_environment(result)
    assert "REARM time to accuracy" in section(bench_env, "rearm_time_to_accuracy")


def test_dry_run_memory_estimates_and_measures(bench_env):
    run(bench_env, "dry_run_memory.py", "--only", "rearm, fixed user interest")
    case = results(bench_env, "dry_run_memory.json")["cases"]["rearm, fixed user interest"]
    assert case["estimate_bytes"] > 0 and case["measured_bytes"] > 0
    assert_environment(case)
    run(bench_env, "dry_run_memory.py", "--estimate-only", "--only", "rearm, fixed user interest")
    assert results(bench_env, "dry_run_memory.json")["cases"]["rearm, fixed user interest"]["measured_bytes"] == \
        case["measured_bytes"], "--estimate-only keeps the recorded measurement"
    assert "Dry-run memory estimate" in section(bench_env, "dry_run_memory")


TINY_SUITE = """
name: tiny
seeds: 1
baseline: bpr
config:
  threads: 1
  device: cpu
  train: {epochs: 1, eval_every: 1, batch_size: 512, lr: 0.01}
  eval: {ks: [20], metrics: [recall, ndcg]}
datasets:
  synth: {format: synthetic, synthetic: {n_users: 80, n_items: 40, interactions_per_user: 8}}
search: {trials: 1, sampler: {name: random, seed: 0}, pruner: {name: none}}
models:
  bpr: {}
  lightgcn: {space: {model.n_layers: {type: int, low: 1, high: 2}}}
"""


def test_benchmark_record_copies_the_leaderboard_and_writes_its_section(bench_env, tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    subprocess.run([sys.executable, "-m", "recsys", "benchmark", str(suite), "--output-dir", str(tmp_path / "out")],
                   env=bench_env["env"], cwd=tmp_path, check=True, capture_output=True, timeout=600)
    run(bench_env, "benchmark_record.py", str(suite), "--folder", str(tmp_path / "out" / "tiny"))
    recorded = bench_env["results"] / "benchmarks" / "tiny"
    assert {"leaderboard.md", "leaderboard.csv", "selection.json", "progress.json"} <= {p.name for p in
                                                                                      recorded.iterdir()}
    text = section(bench_env, "benchmark_tiny")
    assert "runs 2 of 2, search trials 1 of 1" in text and "lightgcn" in text
    run(bench_env, "benchmark_analysis.py", str(suite), "--folder", str(tmp_path / "out" / "tiny"))
    analysis = json.loads((recorded / "analysis.json").read_text())["datasets"]["synth"]
    assert analysis["baseline"] == "bpr" and set(analysis["seeds"]) == {"bpr", "lightgcn"}
    activity = analysis["groups"]["activity"]
    assert sum(row["users"] for row in activity.values()) == sum(
        row["users"] for row in analysis["groups"]["cold test items"].values()), "every tested user in one bucket"
    assert all(0.0 <= row["models"]["lightgcn"]["wilcoxon_p"] <= 1.0 for row in activity.values())
    assert "user groups" in section(bench_env, "benchmark_tiny_analysis")


def test_faiss_scripts_measure_graphs_exports_and_models(bench_env, tmp_path):
    pytest.importorskip("faiss")
    run(bench_env, "knn_faiss.py", "--cases", "sports", "--work-dir", str(tmp_path / "work"))
    graphs = results(bench_env, "scaling.json")["knn_faiss"]["cases"]["sports"]["graphs"]
    assert graphs and all(0.0 <= g["faiss_hnsw"]["recall"] <= 1.0 and g["faiss_auto"]["recall"] == 1.0
                          for g in graphs.values()), "flat (auto at this size) finds the exact neighbours"
    assert "kNN graphs with FAISS" in section(bench_env, "knn_faiss")
    run(bench_env, "export_faiss.py", "--cases", "sports", "--sports-epochs", "1", "--work-dir", str(tmp_path / "work"))
    export = results(bench_env, "export_faiss.json")["cases"]["sports"]
    assert 0.0 <= export["recall@50"] <= 1.0 and export["recall_users"] > 0
    assert "FAISS index" in section(bench_env, "export_faiss")
    out = tmp_path / "downstream.json"
    run(bench_env, "knn_downstream.py", "--dataset", "synthetic", "--models", "freedom", "--backends", "exact",
        "faiss-hnsw", "--epochs", "2", "--eval-every", "1", "--out", str(out), "--work-dir", str(tmp_path / "down"))
    table = json.loads(out.read_text())["table"]
    assert {row["backend"] for row in table} == {"exact", "faiss-hnsw"}
    assert all("relative_recall@20" in row for row in table if row["backend"] == "faiss-hnsw")
