"""Search-space and study-file validation (no training)."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from recsys.errors import ConfigError
from recsys.tuning.space import SearchSpace, nest
from recsys.tuning.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": {"name": "lightgcn"}}


def _space(raw, base=BASE):
    space = SearchSpace.parse(raw)
    space.validate(base)
    return space


def test_unknown_train_key_names_the_closest_and_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        _space({"train.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    message = str(err.value)
    assert "train.lrr" in message and "Did you mean 'lr'" in message
    assert "Valid keys:" in message and "weight_decay" in message


def test_unknown_model_key_is_checked_against_the_model_class():
    with pytest.raises(ConfigError, match=r"model\.n_layer.*n_layers"):
        _space({"model.n_layer": {"type": "int", "low": 1, "high": 4}})
    _space({"model.n_layers": {"type": "int", "low": 1, "high": 4}})


def test_sections_and_paths_below_values_are_rejected():
    with pytest.raises(ConfigError, match="names a section.*train.lr"):
        _space({"train": {"type": "categorical", "choices": [1]}})
    with pytest.raises(ConfigError, match="'train.lr' is a value"):
        _space({"train.lr.x": {"type": "float", "low": 0.1, "high": 0.2}})


@pytest.mark.parametrize("spec, message", [
    ({"type": "float", "low": 1.0, "high": 0.5}, "must be below"),
    ({"type": "float", "low": 0.0, "high": 0.5, "log": True}, "low > 0"),
    ({"type": "int", "low": 1.5, "high": 4}, "integer"),
    ({"type": "float", "low": 0.1, "high": 0.5, "lo": 1}, "unknown field"),
    ({"type": "uniform", "low": 0.1, "high": 0.5}, "must be one of"),
    ({"type": "categorical", "choices": []}, "non-empty"),
    ({"type": "categorical", "choices": [object()]}, "must be YAML values"),
])
def test_bad_parameter_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace.parse({"train.lr": spec})


def test_sampled_values_respect_bounds_steps_and_log_scale():
    space = _space({
        "train.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "model.n_layers": {"type": "int", "low": 1, "high": 7, "step": 2},
        "train.batch_size": {"type": "categorical", "choices": [256, 1024]},
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws = [space.suggest(study.ask()) for _ in range(200)]
    lrs = [d["train.lr"] for d in draws]
    assert all(1e-5 <= lr <= 1e-1 for lr in lrs)
    assert 0.3 < sum(lr < 1e-3 for lr in lrs) / len(lrs) < 0.7  # log-uniform: half the draws below 1e-3
    assert {d["model.n_layers"] for d in draws} == {1, 3, 5, 7}
    assert {d["train.batch_size"] for d in draws} == {256, 1024}


def test_conditional_parameter_is_sampled_only_when_its_condition_holds():
    space = _space({
        "train.optimizer": {"type": "categorical", "choices": ["adam", "adamw"]},
        "train.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True,
                               "when": {"train.optimizer": "adamw"}},
    })
    assert space.suggest(optuna.trial.FixedTrial({"train.optimizer": "adam"})) == {"train.optimizer": "adam"}
    values = space.suggest(optuna.trial.FixedTrial({"train.optimizer": "adamw", "train.weight_decay": 1e-4}))
    assert values == {"train.optimizer": "adamw", "train.weight_decay": 1e-4}
    assert nest(values) == {"train": {"optimizer": "adamw", "weight_decay": 1e-4}}


def test_structured_choices_are_stored_as_json_and_decoded():
    weights = [{"image": 0.1, "text": 0.9}, {"image": 0.0, "text": 1.0}]
    _space({"eval.ks": {"type": "categorical", "choices": [[10, 20], [20, 50]]}})
    space = SearchSpace.parse({"eval.ks": {"type": "categorical", "choices": [[10, 20], [20, 50]]},
                               "model.item_modality_weights": {"type": "categorical", "choices": weights}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = space.suggest(trial)
    assert values["eval.ks"] in ([10, 20], [20, 50]) and values["model.item_modality_weights"] in weights
    assert all(isinstance(v, str) for v in trial.params.values())
    assert space.decode(trial.params) == values


def test_condition_must_name_an_earlier_discrete_parameter_and_a_possible_value():
    wd = {"type": "float", "low": 1e-6, "high": 1e-2}
    with pytest.raises(ConfigError, match="not a parameter declared above"):
        SearchSpace.parse({"train.weight_decay": {**wd, "when": {"train.optimizer": "adamw"}}})
    with pytest.raises(ConfigError, match="not a possible value"):
        SearchSpace.parse({"train.optimizer": {"type": "categorical", "choices": ["adam", "adamw"]},
                           "train.weight_decay": {**wd, "when": {"train.optimizer": "sgd"}}})
    with pytest.raises(ConfigError, match="float parameter"):
        SearchSpace.parse({"train.lr": {"type": "float", "low": 0.1, "high": 0.2},
                           "train.weight_decay": {**wd, "when": {"train.lr": 0.1}}})


def _study_file(tmp_path, **fields):
    data = {"config": {"model": {"name": "lightgcn"}},
            "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}, **fields}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_study_file_keys_sampler_and_pruner_arguments_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'trails'.*Did you mean 'trials'"):
        load_spec(_study_file(tmp_path, trails=3))
    with pytest.raises(ConfigError, match="unknown key 'n_startup'.*n_startup_trials"):
        load_spec(_study_file(tmp_path, sampler={"name": "tpe", "n_startup": 3}))
    with pytest.raises(ConfigError, match="not one of median, hyperband, none"):
        load_spec(_study_file(tmp_path, pruner={"name": "asha"}))
    with pytest.raises(ConfigError, match="not computed by the run config"):
        load_spec(_study_file(tmp_path, objective={"metric": "recall@50"}))


def test_cmaes_needs_unconditional_floats(tmp_path):
    path = _study_file(tmp_path, sampler={"name": "cmaes", "seed": 0},
                       space={"model.n_layers": {"type": "int", "low": 1, "high": 3}})
    with pytest.raises(ConfigError, match="cmaes sampler needs every parameter"):
        load_spec(path)


def test_command_line_choices_win_over_the_file_and_set_the_folder(tmp_path):
    path = _study_file(tmp_path, trials=30, output_dir=str(tmp_path / "studies"))
    spec = load_spec(path, trials=5, workers=2, study="renamed", overrides={"train": {"epochs": 3}})
    assert (spec.trials, spec.workers, spec.name) == (5, 2, "renamed")
    assert spec.study_dir == tmp_path / "studies" / "renamed"
    config = spec.trial_config({"train.lr": 0.005})
    assert config["train"]["lr"] == 0.005 and config["train"]["epochs"] == 3
    assert config["train"]["monitor"] == "recall@20"


def test_worker_samplers_are_seeded_differently():
    space = _space({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    from recsys.tuning.spec import StudySpec

    spec = StudySpec("s", Path("."), BASE, "recall@20", {"name": "random", "seed": 3}, {"name": "none"}, space,
                     {}, 1, None, 1, None, 60)
    first = [optuna.create_study(sampler=spec.make_sampler(k)).ask().suggest_float("x", 0, 1) for k in (0, 0, 1)]
    assert first[0] == first[1] != first[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "tune").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_study_files_are_valid(path, monkeypatch):
    monkeypatch.chdir(REPO)
    base = yaml.safe_load(path.read_text()).get("base_config") or []
    missing = [f for f in ([base] if isinstance(base, str) else base) if not (REPO / f).is_file()]
    if missing:
        pytest.skip(f"{path.name}: base config {missing} is not in the repository yet")
    try:
        spec = load_spec(path)
    except ConfigError as exc:
        if "unknown model" in str(exc):
            pytest.skip(f"{path.name}: its model is not in the registry yet ({exc})")
        raise
    assert spec.space.params and spec.trials > 0


def test_cmaes_sampler_drives_a_float_space(tmp_path):
    pytest.importorskip("cmaes")
    path = _study_file(tmp_path, sampler={"name": "cmaes", "seed": 0, "n_startup_trials": 1},
                       space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                              "model.reg_weight": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}})
    spec = load_spec(path)
    study = optuna.create_study(sampler=spec.make_sampler(), direction="maximize")
    for _ in range(4):
        trial = study.ask()
        values = spec.space.suggest(trial)
        study.tell(trial, -abs(values["train.lr"] - 1e-2))
    assert isinstance(study.sampler, optuna.samplers.CmaEsSampler)
    assert all(1e-4 <= t.params["train.lr"] <= 1e-1 for t in study.trials)


def test_pruners_are_built_with_their_arguments(tmp_path):
    spec = load_spec(_study_file(tmp_path, pruner={"name": "hyperband", "min_resource": 5, "reduction_factor": 2}))
    pruner = spec.make_pruner()
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._reduction_factor) == (5, 2)
    assert isinstance(load_spec(_study_file(tmp_path)).make_pruner(), optuna.pruners.MedianPruner)
    assert isinstance(load_spec(_study_file(tmp_path, pruner={"name": "none"})).make_pruner(),
                      optuna.pruners.NopPruner)
