"""recsys: graph-based multimodal recommendation — data, sparse graphs, models, training,
full-ranking evaluation, top-K export and Optuna tuning."""
__version__ = "0.1.0"

import warnings as _warnings

_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
