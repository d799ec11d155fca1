"""recsys: graph-based multimodal recommendation — data, sparse graphs, models, training,
full-ranking evaluation, top-K export and Optuna tuning.

The public entry points, imported lazily so that ``import recsys`` stays light:
``recsys.resolve(config)`` (:func:`recsys.compose.resolve`), ``recsys.train(config)``
(:func:`recsys.runs.train`) and ``recsys.load_run(RUN_DIR)`` (:func:`recsys.runs.load_run`,
a trained run ready to recommend).
"""
from recsys.version import __version__



def __getattr__(name: str):
    if name == "resolve":
        from recsys.compose import resolve

        return resolve
    if name in ("train", "load_run"):
        from recsys import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


__all__ = ["__version__", "load_run", "resolve", "train"]
