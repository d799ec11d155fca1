"""Config values are checked when the config is resolved, not an epoch into training."""
from __future__ import annotations

from pathlib import Path

import pytest

from recsys import cli, compose, runs
from recsys.compose import resolve
from recsys.config import merge
from recsys.errors import ConfigError
from recsys.io import load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("section,key,value,message", [
    ("train", "monitor", "ndcg@50", r"train.monitor = 'ndcg@50' is not among the evaluated metrics \['recall@10'"),
    ("train", "monitor", "recall20", r"train.monitor = 'recall20' is not among .* set train.monitor to one of them"),
    ("eval", "ks", [], r"eval.ks must be a non-empty list of positive integers"),
    ("eval", "ks", [10, 0], r"eval.ks must be a non-empty list of positive integers, got \[10, 0\]"),
    ("eval", "metrics", ["recall", "ndgc"], r"unknown metric 'ndgc' in eval.metrics \(did you mean 'ndcg'\?\)"),
    ("train", "optimizer", "sgd", r"train.optimizer = 'sgd' is not supported; set train.optimizer to one of adam, adamw"),
    ("train", "amp", "fp8", r"train.amp = 'fp8' is not supported; set train.amp to one of null, 'bf16', 'fp16'"),
    ("train", "negatives_exclude", "valid", r"train.negatives_exclude = 'valid' is not supported; .* 'train', 'all'"),
    ("train", "batch_size", 0, r"train.batch_size = 0 must be a positive integer"),
    ("train", "epochs", 2.5, r"train.epochs = 2.5 must be a positive integer"),
    ("train", "patience", True, r"train.patience = True must be a positive integer"),
    ("train", "eval_every", -1, r"train.eval_every = -1 must be a positive integer"),
    ("eval", "batch_size", "4096", r"eval.batch_size = '4096' must be a positive integer"),
    ("train", "lr", 0, r"train.lr = 0 must be a positive number"),
    ("train", "lr", "fast", r"train.lr = 'fast' must be a positive number"),
    ("train", "weight_decay", -1e-4, r"train.weight_decay = -0.0001 must be a number >= 0"),
    ("train", "grad_clip", 0, r"train.grad_clip = 0 must be a positive number .* or null for no clipping"),
    ("train", "progress", "yes", r"train.progress = 'yes' must be true or false"),
])
def test_bad_values_name_the_key_and_the_fix(section, key, value, message):
    base = {"eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]}}
    with pytest.raises(ConfigError, match=message):
        resolve(merge(base, {section: {key: value}}, None))


@pytest.mark.parametrize("key,value,message", [
    ("threads", 0, r"threads = 0 must be a positive integer, or null"),
    ("seed", "x", r"seed = 'x' must be an integer"),
    ("device", "gpu", r"device = 'gpu' is not a device name; use auto, cpu, cuda or cuda:N"),
])
def test_bad_top_level_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        resolve({key: value})


def test_a_section_set_to_a_value_names_its_keys():
    with pytest.raises(ConfigError, match=r"'train' names a section, not a value \(train = 1\); set its keys instead: "
                                          r"train.optimizer, train.lr"):
        resolve({"train": 1})
    with pytest.raises(ConfigError, match=r"'eval' names a section, .*eval.ks"):
        resolve({"eval": None})


def test_good_values_pass_and_device_presence_is_not_checked_here():
    config = resolve({"device": "cuda:1", "threads": 2, "train": {"optimizer": "AdamW", "amp": "bf16", "grad_clip": 5,
                                                                   "negatives_exclude": "all", "monitor": "map@10"}})
    assert config["train"]["monitor"] == "map@10" and config["device"] == "cuda:1"


@pytest.mark.parametrize("path", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")
                                        if p.parent.name not in ("tune", "benchmarks")))  # study and suite files
def test_every_shipped_run_config_resolves(path):
    resolve(load_yaml(CONFIGS / path))


def test_a_bad_monitor_fails_before_any_data_is_loaded(tmp_path, monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("the dataset was loaded: the config was not checked first")

    monkeypatch.setattr(compose, "load_dataset", no_loading)
    out = tmp_path / "runs"
    assert cli.main(["train", "--set", f"output_dir={out}", "train.monitor=recall@7"]) == 2
    assert "train.monitor = 'recall@7' is not among the evaluated metrics" in capsys.readouterr().err
    assert not out.exists()
    config = resolve({"output_dir": str(out)})
    config["train"]["monitor"] = "recall@7"          # changed after resolving (as a tuning trial does)
    with pytest.raises(ConfigError, match="train.monitor = 'recall@7'"):
        runs.train(config)
    assert not out.exists()
