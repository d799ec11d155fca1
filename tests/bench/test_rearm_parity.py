"""bench/rearm_parity.py: its input builder, reference edits, flag check, comparisons and a
run of our side on a tiny input (the reference side needs a checkout of the reference code
and its interpreter, so it is not run here)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.data import Dataset
from recsys.data.rearm import read_rearm, write_rearm

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "bench"))
import rearm_parity  # noqa: E402
import rearm_parity_logger  # noqa: E402
from parity_data import build_parity_dataset  # noqa: E402


def skewed_source(folder: Path, n_users: int = 90, n_items: int = 60, seed: int = 0) -> Dataset:
    """Random interactions with a popularity skew and uneven user activity, written as a REARM folder."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(3, 16)), replace=False, p=weights / weights.sum())
        labels = rng.choice(3, size=items.size, p=[0.7, 0.15, 0.15])
        for item, label in zip(items, labels):
            rows[("train", "valid", "test")[label]].append((user, int(item)))
    arrays = {k: np.array(v, dtype=np.int64).T.reshape(2, -1) for k, v in rows.items()}
    features = {"text": rng.standard_normal((n_items, 8)).astype(np.float32)}
    dataset = Dataset("skewed", n_users, n_items, arrays["train"], arrays["valid"], arrays["test"], features)
    write_rearm(dataset, folder)
    return dataset


def brute_force_subset(source: Dataset, n_items: int, min_train: int) -> tuple[set, set]:
    popularity = {i: int((source.train[1] == i).sum()) for i in range(source.n_items)}
    popular = set(sorted(popularity, key=lambda i: (-popularity[i], i))[:n_items])
    users = set()
    for user in range(source.n_users):
        count = {s: sum(1 for u, i in source.split(s).T if u == user and i in popular) for s in ("train", "valid", "test")}
        if count["train"] >= min_train and count["valid"] >= 1 and count["test"] >= 1:
            users.add(user)
    pairs = {(s, int(u), int(i)) for s in ("train", "valid", "test") for u, i in source.split(s).T
             if u in users and i in popular}
    return users, pairs


def test_builder_keeps_the_popular_items_and_their_well_observed_users(tmp_path):
    source = skewed_source(tmp_path / "source")
    built = build_parity_dataset(tmp_path / "source", tmp_path / "out", n_items=20, min_train=4, image_dim=16, seed=3)
    users, pairs = brute_force_subset(source, 20, 4)
    back = read_rearm(tmp_path / "out", modalities=["image", "text"])
    raw_users, raw_items = back.user_ids.astype(int), back.item_ids.astype(int)
    assert set(raw_users) == users and back.n_users == len(users)
    assert np.all(np.diff(raw_users) > 0) and np.all(np.diff(raw_items) > 0)   # dense, in source order
    got = {(s, int(raw_users[u]), int(raw_items[i])) for s in ("train", "valid", "test") for u, i in back.split(s).T}
    assert got == pairs
    assert set(raw_items) == {i for _, _, i in pairs}                           # no item without interactions
    np.testing.assert_array_equal(back.features["text"], source.features["text"][raw_items])
    assert back.features["image"].shape == (back.n_items, 16)
    np.testing.assert_array_equal(back.features["image"], built.features["image"])
    again = build_parity_dataset(tmp_path / "source", tmp_path / "again", n_items=20, min_train=4, image_dim=16, seed=3)
    np.testing.assert_array_equal(again.features["image"], built.features["image"])


def test_builder_names_the_missing_text_features(tmp_path):
    source = skewed_source(tmp_path / "source")
    (tmp_path / "source" / "text_feat.npy").unlink()
    with pytest.raises(ValueError, match="text_feat.npy"):
        build_parity_dataset(tmp_path / "source", tmp_path / "out", n_items=10)
    assert source.n_users == 90


def test_edits_replace_their_text_once_and_fail_clearly(tmp_path):
    (tmp_path / "a.py").write_text("x = sample(pool)\nprint(x)\n")
    edits = (rearm_parity.Edit("a.py", "sample(pool)", "sample(tuple(pool))", "why"),)
    rearm_parity.apply_edits(tmp_path, edits)
    assert (tmp_path / "a.py").read_text() == "x = sample(tuple(pool))\nprint(x)\n"
    with pytest.raises(RuntimeError, match=r"a.py .*found it 0 times"):
        rearm_parity.apply_edits(tmp_path, edits)
    (tmp_path / "a.py").write_text("sample(pool); sample(pool)\n")
    with pytest.raises(RuntimeError, match="found it 2 times"):
        rearm_parity.apply_edits(tmp_path, edits)


def test_every_reference_edit_names_a_reason_and_changes_its_text():
    for edit in rearm_parity.REFERENCE_EDITS:
        assert edit.why and edit.pattern != edit.replacement and edit.pattern.strip()


def _sports_readme(tmp_path: Path, rank: str) -> Path:
    line = ("python main.py --dataset='sports' --num_layer=5  --reg_weight=0.05 --rank=" + rank + " --s_drop=1 "
            "--m_drop=0.2 --u_mm_image_weight=0 --i_mm_image_weight=0.2 --uu_co_weight=0.9 --ii_co_weight=0.2 "
            "--user_knn_k=25 --item_knn_k=5 --n_ii_layers=2 --n_uu_layers=2 --cl_tmp=1.5 --cl_loss_weight=1e-3 "
            "--diff_loss_weight=5e-4")
    path = tmp_path / "README.md"
    path.write_text(f"# REARM\n\n* Baby dataset\n```\npython main.py --dataset='baby' --rank=3\n```\n\n```\n{line}\n```\n")
    return path


def _our_config(tmp_path: Path) -> dict:
    from recsys.compose import resolve

    return resolve(rearm_parity.ours_config(tmp_path, 3, 1, 1, "cpu", tmp_path))


def test_reference_flags_come_from_our_config_and_must_match_the_readme(tmp_path):
    config = _our_config(tmp_path)
    flags = rearm_parity.reference_hyper_parameters(
        config, rearm_parity.readme_sports_flags(_sports_readme(tmp_path, "7")))
    assert flags["rank"] == "7" and flags["num_layer"] == "5" and flags["u_mm_image_weight"] == "0.0"
    assert flags["l_r"] == str(config["train"]["lr"]) and flags["reg_weight"] == "0.05"
    assert config["model"]["train_user_interest"] is True
    with pytest.raises(RuntimeError, match=r"model.rank = 7.*--rank=3"):
        rearm_parity.reference_hyper_parameters(config, rearm_parity.readme_sports_flags(_sports_readme(tmp_path, "3")))
    command = rearm_parity.reference_command("py", flags, 4, 9, "cpu")
    assert "--num_epoch=4" in command and "--stopping_step=4" in command and "--use_gpu=" in command


def test_neighbour_sets_count_tie_only_and_other_differences():
    reference = {0: [[1, 2, 3], [3.0, 2.0, 2.0]],      # keeps 1, 2 (tie at 2 between 2 and 3)
                 1: [[0, 2], [4.0, 1.0]],               # same set as ours
                 2: [[], []],                           # no co-occurring node on either side
                 3: [[0, 1], [5.0, 1.0]]}               # differs with other counts: not a tie
    counts = np.array([[3, 2], [4, 1], [0, 0], [5, 2]], dtype=np.float32)
    indices = np.array([[1, 3], [0, 2], [0, 0], [0, 2]])
    result = rearm_parity.neighbour_sets_differ(reference, counts, indices, np.array([2, 2, 0, 2]), k=2)
    assert result["rows_with_neighbours"] == 3 and result["rows_differing"] == 2
    assert result["tie_only"] == 1 and result["other"] == 1
    assert result["share_differing"] == pytest.approx(2 / 3)


def test_reference_neighbour_lists_replace_ours_with_their_tie_choices(tmp_path, monkeypatch):
    import scipy.sparse as sp
    import torch

    from recsys.graphs import cooccurrence

    monkeypatch.setattr(cooccurrence, "cooccurrence_topk", cooccurrence.cooccurrence_topk)  # restored afterwards
    incidence = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=np.float32))  # 3 users
    counts, indices, n_neighbours = cooccurrence.cooccurrence_topk(incidence, 1)
    assert indices[1].tolist() == [0] and counts[1].tolist() == [2.0]       # user 1: a tie (2, 2) kept by index
    users = {row: [indices[row, :n].tolist(), counts[row, :n].tolist()] for row, n in enumerate(n_neighbours.tolist())}
    users[1] = [[2, 0], [2.0, 2.0]]                                         # the reference kept the other one
    items = {row: [[], []] for row in range(4)}
    torch.save(users, tmp_path / "dict_user_co_occ_graph.pt")
    torch.save(items, tmp_path / "dict_item_co_occ_graph.pt")
    served = rearm_parity.use_reference_neighbours(tmp_path, n_users=3, n_items=4)
    graph = cooccurrence.cooccurrence_graph(incidence, 1, pad="none").to_dense()
    assert served == ["users"] and graph[1].nonzero().flatten().tolist() == [2]
    assert graph[0].nonzero().flatten().tolist() == [1] and graph[2].nonzero().flatten().tolist() == [1]
    counts, indices, n_neighbours = rearm_parity.reference_topk(users, 2)
    assert indices[1].tolist() == [2, 0] and n_neighbours.tolist() == [1, 2, 1]


def _records(recalls: dict[int, float], epochs: int, every_epoch: bool) -> list[dict]:
    out = []
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch, "bpr": 0.5 / epoch}
        if every_epoch or epoch in recalls:
            record["valid"] = {"recall@20": recalls.get(epoch, 0.01), "ndcg@20": 0.01}
        out.append(record)
    return out


def test_comparison_passes_within_three_percent_at_every_checkpoint():
    reference = _records({5: 0.100, 10: 0.200, 12: 0.300}, 12, every_epoch=True)
    ours = _records({5: 0.1029, 10: 0.1941, 12: 0.300}, 12, every_epoch=False)
    result = rearm_parity.compare(reference, ours, 12)
    assert [r["epoch"] for r in result["checkpoints"]] == [5, 10, 12]
    assert result["verdict"] == "PASS"
    ours[9]["valid"]["recall@20"] = 0.1939                                   # -3.05 % at epoch 10
    result = rearm_parity.compare(reference, ours, 12)
    assert result["verdict"] == "FAIL" and [r["within_tolerance"] for r in result["checkpoints"]] == [True, False, True]
    assert result["losses"][0]["loss_gap"] == pytest.approx(0.0)


def _seed_run(seed: int, reference: dict[int, float], ours: dict[int, float], epochs: int = 10) -> dict:
    comparison = rearm_parity.compare(_records(reference, epochs, True), _records(ours, epochs, False), epochs)
    return {"seed": seed, "threads": 1, "commit": "abc1234", "epochs": epochs, "same_init": False,
            "comparison": comparison, "verdict": comparison["verdict"]}


def test_seed_means_compare_the_two_codes_means_over_seeds():
    runs = [_seed_run(1, {5: 0.100, 10: 0.200}, {5: 0.104, 10: 0.192}),     # +4 %, -4 %: both FAIL alone
            _seed_run(2, {5: 0.100, 10: 0.200}, {5: 0.098, 10: 0.206})]     # -2 %, +3 %
    assert [run["verdict"] for run in runs] == ["FAIL", "PASS"]
    means = rearm_parity.seed_means(runs[::-1])
    assert means["seeds"] == [1, 2] and means["verdict"] == "PASS"
    first, second = means["checkpoints"]
    assert first["reference_recall@20"] == pytest.approx(0.100) and first["ours_recall@20"] == pytest.approx(0.101)
    assert first["recall_gap"] == pytest.approx(0.01) and first["seed_gaps"] == pytest.approx([0.04, -0.02])
    assert second["recall_gap"] == pytest.approx(0.199 / 0.200 - 1)
    assert means["last_epoch_spread"]["ours"]["range"] == pytest.approx(0.206 / 0.192 - 1)
    assert means["last_epoch_spread"]["reference"]["range"] == pytest.approx(0.0)
    shifted = [_seed_run(s, {5: 0.100, 10: 0.200}, {5: 0.1035, 10: 0.207}) for s in (1, 2)]   # +3.5 % at every seed
    assert rearm_parity.seed_means(shifted)["verdict"] == "FAIL"
    with pytest.raises(ValueError, match="distinct seeds"):
        rearm_parity.seed_means([runs[0], runs[0]])


def test_report_puts_the_seed_means_beside_the_single_seed_comparison():
    runs = [_seed_run(s, {5: 0.100, 10: 0.200}, ours) for s, ours in
            ((2025, {5: 0.104, 10: 0.192}), (2026, {5: 0.098, 10: 0.206}))]
    lines = "\n".join(rearm_parity.companions(runs[0], None, runs[1:]))
    assert "| epoch | gap seed 2025 | gap seed 2026 |" in lines
    assert "| 5 | +4.0% | -2.0% | 0.1000 | 0.1010 | +1.0% |" in lines
    assert "**PASS**" in lines and "Our side alone" not in lines and "reference-ties" not in lines
    ties = [_seed_run(s, {5: 0.100, 10: 0.200}, {5: 0.101, 10: 0.199}) for s in (2025, 2026)]
    lines = "\n".join(rearm_parity.companions(runs[0], None, runs[1:], ties))
    assert "With `--reference-ties`" in lines and "| 5 | +1.0% | +1.0% | 0.1000 | 0.1010 | +1.0% |" in lines


def test_report_gives_the_runs_from_identical_parameters_and_graphs_their_own_table():
    runs = [_seed_run(2025, {5: 0.100, 10: 0.200}, {5: 0.104, 10: 0.192})]
    identical = [_seed_run(s, {5: 0.100, 10: 0.200}, ours) for s, ours in
                 ((2026, {5: 0.1035, 10: 0.200}), (2025, {5: 0.099, 10: 0.2016}))]
    lines = "\n".join(rearm_parity.companions(runs[0], None, [], (), identical))
    assert "With `--same-init --reference-ties`" in lines and "| epoch | gap seed 2025 | gap seed 2026 |" in lines
    assert "| 5 | -1.0% | +3.5% |" in lines and "| 10 | +0.8% | +0.0% |" in lines
    assert "Largest gap 3.5%" in lines and "seed 2025 **PASS**, seed 2026 **FAIL**" in lines
    assert "--same-init --reference-ties" not in "\n".join(rearm_parity.companions(runs[0], None, []))


def test_reference_logger_writes_one_record_per_validation(tmp_path, monkeypatch):
    import importlib

    import torch

    log = tmp_path / "ref.jsonl"
    monkeypatch.setenv("PARITY_LOG", str(log))
    logger = importlib.reload(rearm_parity_logger)
    for epoch in range(2):
        logger.train_started()
        logger.train_finished([torch.tensor(0.7 - epoch / 10), torch.tensor(0.69), 0.0, torch.tensor(0.01),
                               torch.tensor(0.001)])
        logger.validated(epoch, {"Recall@20": 0.05 + epoch / 100, "NDCG@20": 0.02}, 0.5)
    first, second = rearm_parity.read_log(log)
    assert first["epoch"] == 1 and second["epoch"] == 2
    assert first["loss"] == pytest.approx(0.7) and second["loss"] == pytest.approx(0.6)
    assert first["contrast"] == pytest.approx(0.01) and first["orthogonality"] == pytest.approx(0.001)
    assert second["valid"] == {"recall@20": pytest.approx(0.06), "ndcg@20": pytest.approx(0.02)}
    assert "setup_seconds" in first and "setup_seconds" not in second
    assert first["train_cpu_seconds"] >= 0 and first["eval_seconds"] == 0.5


def test_our_side_alone_runs_on_a_tiny_input(tmp_path):
    skewed_source(tmp_path / "source")
    out = tmp_path / "results" / "parity.json"
    code = rearm_parity.main(["--source", str(tmp_path / "source"), "--items", "20", "--min-train", "3",
                              "--image-dim", "16", "--epochs", "2", "--threads", "1", "--work", str(tmp_path / "work"),
                              "--out", str(out), "--no-readme"])
    assert code == 0
    results = json.loads(out.read_text())
    ours = results["sides"]["ours"]
    assert "reference" not in results["sides"] and "verdict" not in results
    assert [r["epoch"] for r in ours["epochs"]] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in ours["epochs"])
    assert "valid" not in ours["epochs"][0] and 0 <= ours["epochs"][1]["valid"]["recall@20"] <= 1
    assert ours["timing"]["torch_threads"] == 1 and ours["load_average"]["before"]
    assert results["data"]["items"] <= 20 and out.with_suffix(".png").stat().st_size > 0


def test_reference_parameters_map_onto_every_parameter_of_ours(tmp_path):
    import torch

    from recsys.compose import build, resolve

    skewed_source(tmp_path / "source")
    build_parity_dataset(tmp_path / "source", tmp_path / "data", n_items=20, min_train=3, image_dim=16)
    config = resolve(rearm_parity.ours_config(tmp_path / "data", 1, 0, 1, "cpu", tmp_path))
    model = build(config, torch.device("cpu")).model
    ours = model.state_dict()
    reference_shapes = {"in_proj_weight": (3, 1), "out_proj.weight": (1, 1)}
    generator = torch.Generator().manual_seed(0)
    reference = {}
    for ref_key, our_key in rearm_parity.PARAMETER_MAP.items():
        shape = next((s for suffix, s in reference_shapes.items() if ref_key.endswith(suffix)), ours[our_key].shape)
        reference[ref_key] = torch.randn(shape, generator=generator)
    rearm_parity.load_reference_state(model, reference)
    loaded = model.state_dict()
    for ref_key, our_key in rearm_parity.PARAMETER_MAP.items():
        torch.testing.assert_close(loaded[our_key].flatten(), reference[ref_key].flatten())
    with pytest.raises(RuntimeError, match="without a counterpart.*'extra.weight'"):
        rearm_parity.load_reference_state(model, {**reference, "extra.weight": torch.zeros(1)})


def test_options_that_need_the_reference_are_refused_without_it(capsys):
    for argv in (["--same-init"], ["--reference", "somewhere"]):
        with pytest.raises(SystemExit):
            rearm_parity.parse_args(argv)
        assert "needs" in capsys.readouterr().err
