"""Datasets: one ``Dataset`` type and readers for each supported layout."""
from recsys.data.dataset import SPLITS, DataError, Dataset

__all__ = ["SPLITS", "DataError", "Dataset"]
