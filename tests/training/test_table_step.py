"""Feature tables stepped inside the backward pass: the same optimiser step as torch's, resumable."""
import gc
import weakref

import pytest
import torch
from torch import nn

from recsys.compose import build, resolve
from recsys.nn.feature_table import GradientMemory, project_table
from recsys.training import table_step
from recsys.training.trainer import Trainer


class _TableModel(nn.Module):
    """A 300 × 4096 feature table (three row blocks), its projection and an id embedding."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.table = nn.Parameter(torch.randn(300, 4096))
            self.proj = nn.Linear(4096, 8)
            self.ids = nn.Parameter(torch.randn(300, 8))
        self.memory = GradientMemory()

    def feature_tables(self):
        return [(self.table, self.memory)]

    def loss(self, step: int) -> torch.Tensor:
        target = torch.randn(300, 8, generator=torch.Generator().manual_seed(step)).to(self.table.device)
        return ((project_table(self.table, self.proj, self.memory) * self.ids - target) ** 2).mean()


def _train(model, optimizer, steps, start=0):
    for step in range(start, start + steps):
        optimizer.zero_grad(set_to_none=True)
        model.loss(step).backward()
        optimizer.step()


def _optimizer(model, name, fused, amsgrad=False):
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    return cls(model.parameters(), lr=0.01, weight_decay=0.1, amsgrad=amsgrad,
               **({"fused": True} if fused else {"foreach": True}))


def _assert_same(a, b, opt_a, opt_b, rtol=1e-5, atol=1e-6):
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=name)
    state_a, state_b = opt_a.state[a.table], opt_b.state[b.table]
    assert set(state_a) == set(state_b)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key].to(state_a[key].dtype), rtol=rtol, atol=atol, msg=key)


@pytest.mark.parametrize("name,fused,amsgrad", [("adamw", True, False), ("adam", True, False),
                                                ("adamw", False, False), ("adamw", True, True)])
def test_step_in_backward_equals_the_optimiser_step(name, fused, amsgrad):
    plain, inside = _TableModel(), _TableModel()
    opt_plain, opt_inside = _optimizer(plain, name, fused, amsgrad), _optimizer(inside, name, fused, amsgrad)
    assert table_step.attach(inside, opt_inside, {"tables_in_backward": True}) == 1
    _train(plain, opt_plain, 4)
    _train(inside, opt_inside, 4)
    assert inside.table.grad is None and plain.table.grad is not None
    assert float(opt_inside.state[inside.table]["step"]) == 4
    assert not torch.equal(inside.table, _TableModel().table)
    _assert_same(inside, plain, opt_inside, opt_plain)


def test_checkpoint_resume_and_learning_rate_changes_apply_to_the_tables():
    plain, inside = _TableModel(), _TableModel()
    opt_plain, opt_inside = _optimizer(plain, "adamw", True), _optimizer(inside, "adamw", True)
    table_step.attach(inside, opt_inside, {})
    _train(plain, opt_plain, 2)
    _train(inside, opt_inside, 2)
    saved = {"model": inside.state_dict(), "optimizer": opt_inside.state_dict()}

    resumed = _TableModel()
    opt_resumed = _optimizer(resumed, "adamw", True)
    table_step.attach(resumed, opt_resumed, {})
    resumed.load_state_dict(saved["model"])
    opt_resumed.load_state_dict(saved["optimizer"])  # new parameter groups and state
    for optimizer in (opt_plain, opt_resumed):
        optimizer.param_groups[0]["lr"] = 0.5
    _train(plain, opt_plain, 2, start=2)
    _train(resumed, opt_resumed, 2, start=2)
    _assert_same(resumed, plain, opt_resumed, opt_plain)


@pytest.mark.parametrize("settings", [{"tables_in_backward": False}, {"grad_clip": 1.0}])
def test_settings_that_need_stored_gradients_keep_the_plain_step(settings):
    model = _TableModel()
    optimizer = _optimizer(model, "adamw", True)
    table_step.attach(model, optimizer, {"tables_in_backward": True})
    assert table_step.attach(model, optimizer, settings) == 0  # detached again
    model.loss(0).backward()
    assert model.table.grad is not None and not optimizer.state
    assert table_step.elements_in_backward(model, settings) == 0
    assert table_step.elements_in_backward(model, {"tables_in_backward": True}) == 300 * 4096
    model.table.requires_grad_(False)
    assert table_step.elements_in_backward(model, {"tables_in_backward": True}) == 0


def _rearm_config(tmp_path, **train):
    return resolve({
        "run_name": "run", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "seed": 3,
        "model": {"name": "rearm", "n_layers": 2, "user_knn_k": 5, "item_knn_k": 5},
        "train": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.01, "batch_size": 256, "epochs": 2,
                  "eval_every": 5, "progress": False, **train},
        "eval": {"ks": [20], "metrics": ["recall"]},
    })


def test_rearm_trained_with_tables_stepped_in_backward_equals_the_plain_step(planted, tmp_path):
    finals = {}
    for inside in (True, False):
        torch.manual_seed(0)
        config = _rearm_config(tmp_path / str(inside), tables_in_backward=inside)
        run = build(config, torch.device("cpu"), planted)
        trainer = Trainer(run.model, run.task, config["train"], tmp_path / str(inside))
        trainer.fit()
        tables = [t for t, _ in run.model.feature_tables()]
        assert len(tables) == 2 and all((t.grad is None) == inside for t in tables)
        finals[inside] = run.model.state_dict()
    for key, value in finals[True].items():
        torch.testing.assert_close(value, finals[False][key], rtol=1e-4, atol=1e-5, msg=key)


def test_release_after_training_frees_the_optimiser_moments_the_table_steps_held(planted, tmp_path):
    config = _rearm_config(tmp_path, epochs=1)
    run = build(config, torch.device("cpu"), planted)
    trainer = Trainer(run.model, run.task, config["train"], tmp_path)
    trainer.fit()
    tables = [table for table, _ in run.model.feature_tables()]
    moments = [weakref.ref(trainer.optimizer.state[table][key]) for table in tables
               for key in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 4 and all(memory.update is not None for _, memory in run.model.feature_tables())
    trainer.release()
    gc.collect()
    assert [moment() for moment in moments] == [None] * 4
    assert all(memory.update is None for _, memory in run.model.feature_tables())
