import pytest

from recsys.compose import resolve
from recsys.config import parse_overrides
from recsys.errors import ConfigError


def test_defaults_resolve_with_model_defaults():
    config = resolve()
    assert config["model"]["name"] == "lightgcn"
    assert config["model"]["n_layers"] == 3
    assert config["train"]["patience"] == 20


def test_overrides_parse_yaml_values_and_win():
    config = resolve({"train": {"lr": 0.1}}, parse_overrides(["train.lr=1e-2", "eval.ks=[5,10]", "model.n_layers=2"]))
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
