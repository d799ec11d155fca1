"""Helpers for the data tests: a tiny hand-made dataset, exact comparison, folder writers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data import Dataset


def tiny_dataset() -> Dataset:
    """5 users, 7 items (item 6 has no interactions), two modalities, raw string ids."""
    train = np.array([[0, 0, 1, 1, 2, 3, 4, 4], [0, 1, 1, 2, 3, 4, 5, 0]], dtype=np.int64)
    valid = np.array([[0, 1, 2, 3], [2, 3, 4, 5]], dtype=np.int64)
    test = np.array([[0, 2, 4], [3, 0, 1]], dtype=np.int64)
    rng = np.random.default_rng(0)
    features = {"text": rng.standard_normal((7, 4)).astype(np.float32),
                "image": rng.standard_normal((7, 3)).astype(np.float32)}
    return Dataset("tiny", 5, 7, train, valid, test, features,
                   np.array(["ann", "bob", "cy", "dee", "eve"]),
                   np.array([f"B00{i}X" for i in range(7)]))


def assert_same(a: Dataset, b: Dataset, features: bool = True) -> None:
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(a.split(split), b.split(split), err_msg=split)
        assert b.split(split).dtype == np.int64
    np.testing.assert_array_equal(a.user_ids.astype(str), b.user_ids.astype(str))
    np.testing.assert_array_equal(a.item_ids.astype(str), b.item_ids.astype(str))
    if features:
        assert sorted(a.features) == sorted(b.features)
        for modality in a.features:
            assert b.features[modality].dtype == np.float32
            np.testing.assert_array_equal(a.features[modality], b.features[modality], err_msg=modality)


def write_splits(folder: Path, train, valid, test) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("train", train), ("valid", valid), ("test", test)):
        np.save(folder / f"{name}.npy", np.asarray(array))
    return folder


def write_text(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path

