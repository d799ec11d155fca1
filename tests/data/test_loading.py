"""load_dataset dispatch, layout detection, describe, convert round trips, real data."""
from __future__ import annotations

import time

import numpy as np
import pytest
from datafiles import assert_same, write_text

from recsys.cli import main
from recsys.data import DataError, convert, describe, detect_format, load_dataset, write_dataset
from recsys.data.defaults import DATASET_DEFAULTS
from recsys.data.synthetic import generate

FORMATS = ("rearm", "mmrec", "recbole")


def test_default_section_is_the_synthetic_dataset():
    ds = load_dataset({})
    assert ds.fingerprint() == generate(**DATASET_DEFAULTS["synthetic"]).fingerprint()
    assert ds.name == "synthetic"


def test_synthetic_section_overrides_and_modalities():
    ds = load_dataset({"format": "synthetic", "name": "small", "modalities": ["text"], "split_ratios": [2, 1, 1],
                       "synthetic": {"n_users": 30, "n_items": 40, "interactions_per_user": 8}})
    assert (ds.name, ds.n_users, ds.n_items, list(ds.features)) == ("small", 30, 40, ["text"])
    per_user = np.bincount(np.concatenate([ds.train, ds.valid, ds.test], 1)[0], minlength=30)
    assert np.all(np.bincount(ds.valid[0], minlength=30) == np.floor(per_user / 4 + 1e-9).clip(min=1))
    with pytest.raises(DataError, match=r"dataset\.modalities names \['audio'\], but the synthetic dataset has"):
        load_dataset({"modalities": ["audio"]})


@pytest.mark.parametrize("section,message", [
    ({"format": "csv", "path": "x"}, r"dataset\.format = 'csv' is unknown; use one of synthetic, rearm"),
    ({"format": "rearm"}, r"dataset\.format = 'rearm' needs dataset\.path"),
    ({"format": "mmrec", "path": "/nonexistent/folder"}, r"dataset folder /nonexistent/folder does not exist"),
    ({"format": "auto", "path": "/nonexistent/folder"}, r"dataset folder /nonexistent/folder does not exist"),
])
def test_section_errors(section, message):
    with pytest.raises(DataError, match=message):
        load_dataset(section)


@pytest.mark.parametrize("fmt", FORMATS)
def test_auto_detects_each_layout(tmp_path, tiny, fmt):
    write_dataset(tiny, tmp_path, fmt, "tiny")
    assert detect_format(tmp_path) == fmt
    assert_same(tiny, load_dataset({"format": "auto", "path": str(tmp_path)}))


def test_undetectable_folders(tmp_path):
    with pytest.raises(DataError, match=r"no train\.npy \(rearm\) and no \*\.inter file"):
        detect_format(tmp_path)
    write_text(tmp_path / "x.inter", ["user\titem", "1\t2"])
    with pytest.raises(DataError, match=r"x\.inter: its header \['user', 'item'\] has neither typed"):
        detect_format(tmp_path)


@pytest.mark.parametrize("src", FORMATS)
@pytest.mark.parametrize("dst", FORMATS)
def test_convert_round_trips_exactly(tmp_path, tiny, src, dst):
    write_dataset(tiny, tmp_path / "src", src, "tiny")
    convert(tmp_path / "src", "auto", tmp_path / "dst", dst, name="tiny")
    assert detect_format(tmp_path / "dst") == dst
    assert_same(tiny, load_dataset({"format": dst, "path": str(tmp_path / "dst"), "name": "tiny"}))


def test_convert_synthetic_through_all_formats(tmp_path):
    ds = load_dataset({"synthetic": {"n_users": 60, "n_items": 50}})
    folder = tmp_path / "rearm"
    write_dataset(ds, folder, "rearm")
    for step, fmt in enumerate(("recbole", "mmrec", "rearm")):
        convert(folder, "auto", tmp_path / f"{step}-{fmt}", fmt, name="syn")
        folder = tmp_path / f"{step}-{fmt}"
    assert_same(ds, load_dataset({"format": "auto", "path": str(folder)}))


def test_convert_rejects_unknown_target(tmp_path, tiny):
    write_dataset(tiny, tmp_path, "rearm")
    with pytest.raises(DataError, match=r"cannot write format 'parquet'; use one of rearm, mmrec, recbole"):
        convert(tmp_path, "rearm", tmp_path / "out", "parquet")


def test_describe_reports_counts_sparsity_and_features(tiny):
    text = describe(tiny)
    assert "users         5\n" in text and "items         7\n" in text
    assert "interactions  15 (train 8 / valid 4 / test 3)" in text
    assert f"sparsity      {1 - 15 / 35:.6f}" in text
    assert "feature       image: 7 x 3" in text and "feature       text: 7 x 4" in text


def test_cli_data_info_and_convert(tmp_path, tiny, capsys):
    write_dataset(tiny, tmp_path / "a", "mmrec", "tiny")
    assert main(["data", "convert", str(tmp_path / "a"), str(tmp_path / "b"), "--dst-format", "recbole",
                 "--name", "tiny"]) == 0
    assert main(["data", "info", str(tmp_path / "b")]) == 0
    assert "interactions  15 (train 8 / valid 4 / test 3)" in capsys.readouterr().out


@pytest.mark.integration
def test_sports_with_text_features(shared_data):
    ds = load_dataset({"format": "auto", "path": str(shared_data / "amazon" / "sports"), "modalities": ["text"]})
    assert (ds.n_users, ds.n_items) == (35_598, 18_357)
    assert [ds.split(s).shape[1] for s in ("train", "valid", "test")] == [218_409, 37_899, 40_029]
    assert ds.features["text"].shape == (18_357, 384)
    assert ds.item_ids[0] == "1881509818"
    assert np.bincount(ds.train[0], minlength=ds.n_users).min() >= 1


@pytest.mark.integration
def test_clothing_reads_fast(shared_data):
    started = time.perf_counter()
    ds = load_dataset({"format": "rearm", "path": str(shared_data / "amazon" / "clothing")})
    elapsed = time.perf_counter() - started
    assert (ds.n_users, ds.n_items, ds.train.shape[1]) == (39_387, 23_033, 197_338)
    assert elapsed < 3.0, f"reading Clothing took {elapsed:.2f}s"
