"""Datasets: one ``Dataset`` type and readers for each supported layout."""
from recsys.data.dataset import SPLITS, Dataset
from recsys.data.loading import convert, describe, detect_format, load_dataset, write_dataset
from recsys.data.validate import DataWarning
from recsys.errors import DataError

__all__ = ["SPLITS", "DataError", "DataWarning", "Dataset", "convert", "describe", "detect_format",
           "load_dataset", "write_dataset"]
