from pathlib import Path

import pytest

from recsys.compose import resolve
from recsys.config import parse_overrides
from recsys.errors import ConfigError
from recsys.io import load_yaml


def test_defaults_resolve_with_model_defaults():
    config = resolve()
    assert config["model"]["name"] == "lightgcn"
    assert config["model"]["n_layers"] == 3
    assert config["train"]["patience"] == 20


def test_overrides_parse_yaml_values_and_win():
    config = resolve({"train": {"lr": 0.1}}, parse_overrides(["train.lr=1e-2", "eval.ks=[5,10]", "model.n_layers=2",
                                                                   "train.monitor=ndcg@10"]))
    assert config["train"]["lr"] == pytest.approx(1e-2)
    assert config["eval"]["ks"] == [5, 10]
    assert config["model"]["n_layers"] == 2


def test_unknown_key_names_closest_valid_key():
    with pytest.raises(ConfigError, match="unknown config key 'train.patiense'.*Did you mean 'patience'"):
        resolve({"train": {"patiense": 3}})


def test_unknown_model_key_is_checked_against_the_model_class():
    with pytest.raises(ConfigError, match="unknown config key 'model.n_layer'.*'n_layers'"):
        resolve({"model": {"name": "lightgcn", "n_layer": 2}})


def test_unknown_model_name_suggests_a_registered_one():
    with pytest.raises(ConfigError, match="Did you mean 'lightgcn'"):
        resolve({"model": {"name": "lightgnc"}})


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["train.lr"])


def test_renamed_model_key_is_an_error_naming_the_new_key(monkeypatch):
    from recsys.models import get_model_class

    monkeypatch.setattr(get_model_class("lightgcn"), "renamed_keys", {"num_layer": "n_layers", "l2": "reg_weight"},
                        raising=False)
    with pytest.raises(ConfigError, match="'model.num_layer' is now 'model.n_layers'") as error:
        resolve({"model": {"name": "lightgcn", "num_layer": 2}})
    assert "l2" not in str(error.value)  # only the keys the user wrote
    with pytest.raises(ConfigError, match="'model.num_layer' is now 'model.n_layers', 'model.l2' is now 'model.reg_weight'"):
        resolve({"model": {"name": "lightgcn"}}, parse_overrides(["model.num_layer=2", "model.l2=0.1"]))
    assert resolve({"model": {"name": "lightgcn", "n_layers": 2}})["model"]["n_layers"] == 2


def test_every_renamed_key_points_from_a_retired_name_to_a_current_one():
    from recsys.models import available_models, get_model_class

    for name in available_models():
        cls = get_model_class(name)
        current = cls.default_config()
        for old, new in cls.renamed_keys.items():
            assert new in current and old not in current, (name, old, new)


@pytest.mark.parametrize("model, old, new", [("rearm", "cl_tmp", "temperature"), ("siger", "tau", "temperature"),
                                             ("clhe", "cl_temp", "item_cl_temperature"),
                                             ("freedom", "dropout", "edge_dropout")])
def test_reference_names_of_shared_concepts_point_to_the_shared_name(model, old, new):
    with pytest.raises(ConfigError, match=f"'model.{old}' is now 'model.{new}'"):
        resolve({"model": {"name": model, old: 0.5}})


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/[me]*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_run_configs_use_current_keys(path):
    written = load_yaml(path)
    config = resolve(written)  # a retired or unknown key raises ConfigError
    assert {k: config["model"][k] for k in written["model"]} == written["model"]
