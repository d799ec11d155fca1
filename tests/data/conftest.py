"""Fixtures for the data tests (helpers live in ``datafiles.py``)."""
from __future__ import annotations

import pytest

from datafiles import tiny_dataset
from recsys.data import Dataset


@pytest.fixture
def tiny() -> Dataset:
    return tiny_dataset()
