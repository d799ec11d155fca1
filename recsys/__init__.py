"""recsys: graph-based multimodal recommendation — data, sparse graphs, models, training,
full-ranking evaluation, top-K export and Optuna tuning."""
__version__ = "0.1.0"

import warnings as _warnings

_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def __getattr__(name: str):
    """``recsys.load_run(RUN_DIR)``: a trained run ready to recommend (imports torch lazily)."""
    if name == "load_run":
        from recsys.export import load_run

        return load_run
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")
