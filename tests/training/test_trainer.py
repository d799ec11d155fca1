import json

import numpy as np
import pytest
import torch

from recsys.compose import build, resolve, resolve_device
from recsys.errors import ConfigError, NonFiniteLossError
from recsys.evaluation import evaluate_ranking
from recsys.models.bpr import BPRMF
from recsys.runs import train


def _config(tmp_path, model="bpr", **train_overrides):
    return resolve({
        "run_name": "run", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"),
        "model": {"name": model},
        "train": {"lr": 0.01, "batch_size": 256, "epochs": 30, "patience": 5, "progress": False,
                  **train_overrides},
        "eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
    })


def _popularity_metrics(dataset, split):
    counts = torch.from_numpy(np.bincount(dataset.train[1], minlength=dataset.n_items).astype(np.float32))
    return evaluate_ranking(lambda users: counts.expand(users.shape[0], -1).clone(),
                            exclude_csr=dataset.csr("train"), target_csr=dataset.csr(split),
                            ks=[10, 20], metrics=["recall", "ndcg"], batch_size=64, device=torch.device("cpu"))


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_model_learns_and_beats_popularity(planted, tmp_path, model):
    results = train(_config(tmp_path, model), dataset=planted)
    popularity = _popularity_metrics(planted, "test")
    assert results["test"]["recall@20"] > 1.5 * popularity["recall@20"]
    assert results["test"]["ndcg@20"] > 1.5 * popularity["ndcg@20"]


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_loss_terms_shapes_and_gradients(planted, tmp_path, model):
    run = build(_config(tmp_path, model), torch.device("cpu"), planted)
    net, task = run.model, run.task
    users, pos, neg = next(iter(task.batches(1)))
    losses = net.loss(users, pos, neg)
    assert {"loss", "bpr", "reg"} <= set(losses)
    assert torch.allclose(losses["loss"], losses["bpr"] + losses["reg"])
    losses["loss"].backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    user_emb, item_emb = net.embeddings()
    assert user_emb.shape == (planted.n_users, 64) and item_emb.shape == (planted.n_items, 64)
    assert net.scores(users[:5]).shape == (5, planted.n_items)


def test_same_seed_gives_identical_metrics(planted, tmp_path):
    a = train(_config(tmp_path / "a", "lightgcn", epochs=4), dataset=planted)
    b = train(_config(tmp_path / "b", "lightgcn", epochs=4), dataset=planted)
    assert a["valid"] == b["valid"] and a["test"] == b["test"]


def test_early_stopping_keeps_the_best_valid_epoch(planted, tmp_path):
    results = train(_config(tmp_path, "bpr", lr=0.05, epochs=200, patience=3), dataset=planted)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r["valid/recall@20"] for r in records]
    best_epoch = int(np.argmax(valid)) + 1
    assert results["best_epoch"] == best_epoch
    assert results["epochs_run"] == len(records) == best_epoch + 3 < 200
    assert results["valid"]["recall@20"] == pytest.approx(max(valid))
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert saved["epoch"] == best_epoch


class _ExplodingBPR(BPRMF):
    name = "exploding_bpr_for_tests"

    def loss(self, users, pos, neg):
        losses = super().loss(users, pos, neg)
        if self.epochs_seen >= 3:
            losses["bpr"] = losses["bpr"] * float("nan")
        return losses

    epochs_seen = 0


def test_non_finite_loss_stops_with_epoch_batch_and_term(planted, tmp_path):
    config = _config(tmp_path, "bpr", epochs=10)
    run = build(config, torch.device("cpu"), planted)
    task = run.task
    exploding = _ExplodingBPR(planted, config["model"], None)
    from recsys.training.trainer import Trainer

    (tmp_path / "run").mkdir()
    trainer = Trainer(exploding, task, config["train"], tmp_path / "run",
                      on_evaluate=lambda epoch, _: setattr(exploding, "epochs_seen", epoch))
    with pytest.raises(NonFiniteLossError, match=r"loss term 'bpr' is nan at epoch 4, batch 0"):
        trainer.fit()
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["epoch"] <= 3


class _Crash(Exception):
    pass


def test_resume_after_crash_matches_uninterrupted_run(planted, tmp_path):
    full = train(_config(tmp_path / "full", "lightgcn", epochs=8), dataset=planted)

    def crash_at_epoch_4(epoch, _):
        if epoch == 4:
            raise _Crash

    crashed_config = _config(tmp_path / "crash", "lightgcn", epochs=8)
    with pytest.raises(_Crash):
        train(crashed_config, on_evaluate=crash_at_epoch_4, dataset=planted)
    resumed = train(crashed_config, run_dir=tmp_path / "crash" / "run", resume=True, dataset=planted)
    assert resumed["best_epoch"] == full["best_epoch"]
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    lines = (tmp_path / "crash" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_run_saves_per_user_test_metrics_and_its_environment(planted, tmp_path):
    from recsys.io import load_yaml
    from recsys.runs import PER_USER_FILE, read_per_user

    results = train(_config(tmp_path, "bpr", epochs=2), dataset=planted)
    run_dir = tmp_path / "run"
    per_user = read_per_user(run_dir)
    assert per_user.users.tolist() == sorted(set(planted.test[0].tolist()))
    assert set(per_user.values) == set(results["test"])
    for key, values in per_user.values.items():
        assert values.shape == per_user.users.shape
        assert values.mean() == pytest.approx(results["test"][key], rel=1e-6)
    assert not list(run_dir.glob(f".{PER_USER_FILE}*")), "no temporary file is left behind"
    env = results["environment"]
    assert env["torch_threads"] == torch.get_num_threads() and len(env["load_average"]) == 3
    assert env["commit"] and env["cpu_count"] >= 1 and env["date"].startswith("20")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert results["train_seconds"] == pytest.approx(sum(r["train_seconds"] for r in records))
    assert load_yaml(run_dir / "config.yaml")["seed"] == results["seed"]


def _expected_lrs(valid: list[float], lr: float, factor: float, patience: int, min_lr: float) -> list[float]:
    """Brute-force replay of the plateau rule: the lr each epoch trained with, given the valid curve."""
    lrs, best, waiting = [], -np.inf, 0
    for value in valid:
        lrs.append(lr)
        if value > best:
            best, waiting = value, 0
        else:
            waiting += 1
            if waiting == patience:
                lr, waiting = max(lr * factor, min_lr), 0
    return lrs


def test_lr_plateau_lowers_the_rate_after_evaluations_without_gain(planted, tmp_path):
    plateau = {"factor": 0.5, "patience": 2, "min_lr": 0.01}
    train(_config(tmp_path, "bpr", lr=0.08, epochs=40, patience=12, lr_plateau=plateau), dataset=planted)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid, lrs = [r["valid/recall@20"] for r in records], [r["lr"] for r in records]
    assert lrs == pytest.approx(_expected_lrs(valid, 0.08, 0.5, 2, 0.01))
    assert lrs[0] == 0.08 and min(lrs) < 0.08, "the valid curve of this run has plateaus: the rate must drop"


def test_lr_plateau_state_survives_a_resume(planted, tmp_path):
    plateau = {"factor": 0.5, "patience": 1, "min_lr": 1e-4}
    full = train(_config(tmp_path / "full", "bpr", lr=0.08, epochs=10, patience=20, lr_plateau=plateau),
                 dataset=planted)

    def crash_at_epoch_6(epoch, _):
        if epoch == 6:
            raise _Crash

    crashed_config = _config(tmp_path / "crash", "bpr", lr=0.08, epochs=10, patience=20, lr_plateau=plateau)
    with pytest.raises(_Crash):
        train(crashed_config, on_evaluate=crash_at_epoch_6, dataset=planted)
    resumed = train(crashed_config, run_dir=tmp_path / "crash" / "run", resume=True, dataset=planted)
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    lrs = [[json.loads(line)["lr"] for line in (tmp_path / run / "run" / "metrics.jsonl").read_text().splitlines()]
           for run in ("full", "crash")]
    assert lrs[0] == lrs[1] and min(lrs[0]) < 0.08


@pytest.mark.parametrize("plateau, message", [
    ({"factor": 1.5, "patience": 2, "min_lr": 0.0}, "factor"),
    ({"factor": 0.5, "patience": 0, "min_lr": 0.0}, "patience"),
    ({"factor": 0.5, "patience": 2}, "exactly the keys"),
    (0.5, "must be null or a mapping"),
])
def test_bad_lr_plateau_is_a_config_error(tmp_path, plateau, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, "bpr", lr_plateau=plateau)
