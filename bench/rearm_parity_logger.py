"""Per-epoch JSON log of the REARM reference code, for ``rearm_parity.py``.

``rearm_parity.py`` copies this file into its temporary copy of the reference code as
``parity_log.py``; its compatibility edits of the reference's ``main.py`` call
:func:`initial_state` (which saves the initial parameters when ``PARITY_INIT`` names a file),
:func:`train_started`, :func:`train_finished` and :func:`validated`, and every validation
appends one JSON line to the file named by the ``PARITY_LOG`` environment variable:
the 1-based epoch, the mean training losses, the training wall and CPU seconds (this
process's user + system time), the valid metrics and the evaluation seconds. The first line
also holds the setup seconds (process start to first training epoch: data loading and graph
construction) and the torch thread count. It runs under the reference's interpreter, so it
uses nothing newer than Python 3.6.
"""
import json
import os
import resource
import time

_STARTED = time.perf_counter()
_state = {"first": True}


def initial_state(model):
    """Save the model's initial parameters to ``PARITY_INIT`` when that variable is set."""
    path = os.environ.get("PARITY_INIT")
    if path:
        import torch

        torch.save(model.state_dict(), path)


def train_started():
    _state["wall"] = time.perf_counter()
    _state["cpu"] = time.process_time()
    if _state["first"]:
        _state["setup_seconds"] = _state["wall"] - _STARTED


def train_finished(losses):
    """``losses``: the reference's [total, bpr, reg, contrast, orthogonality] epoch means."""
    _state["train_seconds"] = time.perf_counter() - _state["wall"]
    _state["train_cpu_seconds"] = time.process_time() - _state["cpu"]
    total, bpr, _, contrast, orthogonality = (float(v.detach() if hasattr(v, "detach") else v) for v in losses)
    _state["losses"] = {"loss": total, "bpr": bpr, "contrast": contrast, "orthogonality": orthogonality}


def validated(epoch_index, metrics, eval_seconds):
    """Append the record of epoch ``epoch_index + 1`` (``metrics``: e.g. {"Recall@20": ...})."""
    import torch

    record = {"epoch": int(epoch_index) + 1, "train_seconds": _state["train_seconds"],
              "train_cpu_seconds": _state["train_cpu_seconds"], **_state["losses"],
              "valid": {key.lower(): float(value) for key, value in metrics.items()},
              "eval_seconds": float(eval_seconds),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if _state["first"]:
        record.update(setup_seconds=_state["setup_seconds"], torch_threads=torch.get_num_threads())
        _state["first"] = False
    with open(os.environ["PARITY_LOG"], "a") as handle:
        handle.write(json.dumps(record) + "\n")
