"""recsys.compare on hand-made run folders: grouping, mean ± std, paired tests against scipy, Holm."""
from __future__ import annotations

import csv
import io as text_io

import numpy as np
import pytest
from scipy import stats

from recsys import io
from recsys.cli import main
from recsys.compare import compare, config_hash, holm, to_csv, to_markdown, write
from recsys.compose import resolve
from recsys.errors import RunFolderError
from recsys.evaluation import PerUserMetrics
from recsys.runs import write_per_user

USERS = np.arange(0, 80, 2)  # the evaluated users (rows with test items)


def make_run(folder, name, seed, lr, recall, ndcg, users=USERS):
    """A finished run folder with the given per-user test metrics (valid = test + 0.01)."""
    run_dir = folder / name
    config = resolve({"seed": seed, "run_name": name, "output_dir": str(folder), "cache_dir": str(folder / name),
                      "train": {"lr": lr}})
    io.write_text(run_dir / "config.yaml", io.dump_yaml(config))
    values = {"recall@20": np.asarray(recall, dtype=np.float64), "ndcg@20": np.asarray(ndcg, dtype=np.float64)}
    write_per_user(run_dir / "per_user_test.npz", PerUserMetrics(users, values))
    test = {key: float(v.astype(np.float32).mean()) for key, v in values.items()}
    io.write_json(run_dir / "results.json", {
        "model": "lightgcn", "dataset": "synthetic", "seed": seed, "best_epoch": seed + 1, "epochs_run": 10,
        "valid": {k: v + 0.01 for k, v in test.items()}, "test": test, "train_seconds": 2.0 * (seed + 1)})
    return run_dir


@pytest.fixture
def runs(tmp_path):
    """Baseline (lr 1e-3) and a better config (lr 1e-2) with two seeds each, a third config with one."""
    rng = np.random.default_rng(0)
    n = USERS.size
    base = rng.uniform(0, 0.5, size=(2, 2, n))
    better = base + rng.uniform(0.0, 0.2, size=(2, 2, n))
    noisy = base[0] + rng.normal(0.0, 0.05, size=(2, n))
    dirs = {
        "base-0": make_run(tmp_path, "base-0", 0, 1e-3, *base[0]),
        "base-1": make_run(tmp_path, "base-1", 1, 1e-3, *base[1]),
        "better-0": make_run(tmp_path, "better-0", 0, 1e-2, *better[0]),
        "better-1": make_run(tmp_path, "better-1", 1, 1e-2, *better[1]),
        "noisy-0": make_run(tmp_path, "noisy-0", 0, 5e-3, *noisy),
    }
    return dirs, base, better, noisy


def test_config_hash_ignores_seed_and_placement_but_not_hyper_parameters():
    a = resolve({"seed": 1, "run_name": "a", "output_dir": "x", "cache_dir": "c", "train": {"progress": True}})
    b = resolve({"seed": 2, "run_name": "b", "output_dir": "y", "cache_dir": "d", "train": {"progress": False}})
    assert config_hash(a) == config_hash(b)
    assert config_hash(resolve({"train": {"lr": 0.01}})) != config_hash(resolve({"train": {"lr": 0.02}}))


def test_holm_matches_a_hand_computation():
    # sorted 0.01, 0.03, 0.04 with m = 3: 3 × 0.01 = 0.03; max(0.03, 2 × 0.03) = 0.06; max(0.06, 1 × 0.04) = 0.06
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    # sorted 0.001, 0.3, 0.5, 0.6: 4 × 0.001; 3 × 0.3 = 0.9; 2 × 0.5 = 1.0; 1 × 0.6 = 0.6, raised to
    # the running maximum 1.0
    assert holm([0.3, 0.5, 0.6, 0.001]) == pytest.approx([0.9, 1.0, 1.0, 0.004])
    assert holm([0.4, 0.45]) == pytest.approx([0.8, 0.8])  # 2 × 0.4, then max(0.8, 0.45)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 2 × 0.6 = 1.2 capped at 1
    assert holm([0.02]) == [0.02]
    assert np.isnan(holm([0.02, float("nan")])[1]) and holm([0.02, float("nan")])[0] == 0.02


def test_rows_group_seeds_and_show_mean_and_std(runs):
    dirs, base, better, _ = runs
    comparison = compare(dirs.values())
    labels = [g.label for g in comparison.groups]
    assert [len(g.runs) for g in comparison.groups] == [2, 2, 1]
    assert labels[0].startswith("lightgcn (") and len(set(labels)) == 3  # same model, hashes tell rows apart
    recall = comparison.groups[1].values("test", "recall@20")
    assert recall == pytest.approx(better[:, 0].astype(np.float32).mean(axis=1), abs=1e-7)
    record = comparison.records()[1]
    assert record["test:recall@20:mean"] == pytest.approx(recall.mean())
    assert record["test:recall@20:std"] == pytest.approx(recall.std(ddof=1))
    assert record["best_epoch_mean"] == 1.5 and record["train_seconds_mean"] == 3.0
    assert np.isnan(comparison.records()[2]["test:recall@20:std"])  # one seed: no spread
    assert f"{recall.mean():.4f} ± {recall.std(ddof=1):.4f}" in to_markdown(comparison)


def test_paired_tests_match_scipy_on_per_user_means_over_seeds(runs):
    dirs, base, better, noisy = runs
    comparison = compare([dirs["better-0"], dirs["better-1"], dirs["noisy-0"], dirs["base-1"]],
                         baseline=dirs["base-0"])
    assert comparison.baseline == 2
    assert len(comparison.groups[2].runs) == 2  # the baseline run and its other seed form one row
    raw = {}
    for metric, index in (("recall@20", 0), ("ndcg@20", 1)):
        base_mean = base[:, index].astype(np.float32).astype(np.float64).mean(axis=0)
        better_mean = better[:, index].astype(np.float32).astype(np.float64).mean(axis=0)
        noisy_values = noisy[index].astype(np.float32).astype(np.float64)
        for row, values in ((0, better_mean), (1, noisy_values)):  # rows in the order given
            test = comparison.tests[(row, metric)]
            assert test["wilcoxon_p"] == pytest.approx(stats.wilcoxon(values, base_mean).pvalue, rel=1e-9)
            assert test["t_test_p"] == pytest.approx(stats.ttest_rel(values, base_mean).pvalue, rel=1e-9)
            assert test["mean_difference"] == pytest.approx((values - base_mean).mean())
            raw[(row, metric)] = test
        for kind in ("wilcoxon", "t_test"):
            p = [raw[(0, metric)][f"{kind}_p"], raw[(1, metric)][f"{kind}_p"]]
            assert [raw[(0, metric)][f"{kind}_holm"], raw[(1, metric)][f"{kind}_holm"]] == pytest.approx(holm(p))
    # "better" improves every user: significant after correction; its mark is in the table
    assert comparison.tests[(0, "recall@20")]["wilcoxon_holm"] < 0.05
    assert comparison.marks(0, "recall@20") == "*†"
    assert comparison.marks(comparison.baseline, "recall@20") == ""
    assert "**lightgcn" in to_markdown(comparison).splitlines()[4]  # the baseline row is in bold


def test_outputs_markdown_csv_png_and_the_command(runs, tmp_path, capsys):
    dirs, *_ = runs
    comparison = compare([tmp_path], baseline=dirs["base-1"], metrics=["recall@20"])
    rows = list(csv.DictReader(text_io.StringIO(to_csv(comparison))))
    assert [row["n_seeds"] for row in rows] == ["2", "2", "1"] and rows[0]["baseline"] == "True"
    assert float(rows[1]["test:recall@20:wilcoxon_holm"]) == pytest.approx(
        comparison.tests[(1, "recall@20")]["wilcoxon_holm"])
    png = write(comparison, tmp_path / "cmp.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "better-0"), str(tmp_path / "better-1"), "--baseline",
                 str(dirs["base-0"]), "--out", str(out / "t.md"), "--out", str(out / "t.csv")]) == 0
    printed = capsys.readouterr().out
    assert "Paired tests over users" in printed and (out / "t.md").read_text() in printed
    assert (out / "t.csv").read_text().startswith("label,")


def test_runs_on_other_users_cannot_be_paired(runs, tmp_path):
    dirs, base, *_ = runs
    shifted = make_run(tmp_path, "shifted", 0, 2e-3, *base[0], users=USERS + 1)
    with pytest.raises(RunFolderError, match="different users"):
        compare([shifted], baseline=dirs["base-0"])


def test_runs_without_per_user_files_are_listed_but_not_tested(runs):
    dirs, *_ = runs
    (dirs["noisy-0"] / "per_user_test.npz").unlink()
    comparison = compare(dirs.values(), baseline=dirs["base-0"])
    assert comparison.untested == {2: "a run without per-user test metrics"}
    assert "not tested: a run without per-user test metrics" in to_markdown(comparison)


def test_a_folder_without_runs_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="holds none below it"):
        compare([tmp_path / "empty"])
    with pytest.raises(RunFolderError, match="not a folder"):
        compare([tmp_path / "missing"])
