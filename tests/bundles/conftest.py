"""Fixtures of the bundle tests."""
from __future__ import annotations

import pytest
import torch

from recsys.data.bundles import BundleDataset

from .synthetic import planted_bundles


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one intra-op thread avoids oversubscription on shared CI cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def bundles() -> BundleDataset:
    return planted_bundles()
