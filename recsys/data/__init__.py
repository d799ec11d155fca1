"""Datasets: one ``Dataset`` type and readers for each supported layout."""
from recsys.data.dataset import SPLITS, DataError, Dataset
from recsys.data.loading import convert, describe, detect_format, load_dataset, write_dataset
from recsys.data.validate import DataWarning

__all__ = ["SPLITS", "DataError", "DataWarning", "Dataset", "convert", "describe", "detect_format",
           "load_dataset", "write_dataset"]
