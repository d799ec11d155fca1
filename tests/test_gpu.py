"""CPU vs CUDA parity for every user-item model (marked ``gpu``; skipped without CUDA).

Run on a GPU machine with ``bash bench/gpu_check.sh`` (or ``pytest -m gpu``).
"""
import pytest
import torch

from recsys.compose import resolve
from recsys.models import available_models, get_model_class
from recsys.runs import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

INTERACTION_MODELS = [m for m in available_models() if getattr(get_model_class(m), "task", "interaction") == "interaction"]


def _config(tmp_path, model, device, **train):
    return resolve({
        "run_name": f"{model}-{device}", "output_dir": str(tmp_path), "cache_dir": str(tmp_path / f"cache-{device}"),
        "device": device, "seed": 7,
        "dataset": {"format": "synthetic", "synthetic": {"n_users": 300, "n_items": 150}},
        "model": {"name": model},
        "train": {"epochs": 3, "batch_size": 256, "lr": 0.005, "progress": False, **train},
        "eval": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
    })


@pytest.mark.parametrize("model", INTERACTION_MODELS)
def test_cuda_metrics_match_cpu(tmp_path, model):
    cpu = train(_config(tmp_path, model, "cpu"))
    cuda = train(_config(tmp_path, model, "cuda"))
    assert cuda["device"].startswith("cuda")
    for split in ("valid", "test"):
        for metric, value in cpu[split].items():
            assert cuda[split][metric] == pytest.approx(value, abs=5e-3), (model, split, metric)


@pytest.mark.parametrize("model", ["lightgcn"])
def test_bf16_autocast_stays_close_to_fp32(tmp_path, model):
    fp32 = train(_config(tmp_path / "fp32", model, "cuda"))
    bf16 = train(_config(tmp_path / "bf16", model, "cuda", amp="bf16"))
    assert bf16["valid"]["recall@20"] == pytest.approx(fp32["valid"]["recall@20"], abs=0.02)
