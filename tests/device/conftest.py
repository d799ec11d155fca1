"""The ``device`` fixture of the device tests: every test runs on the CPU and, where CUDA is
present, again on the GPU (those runs are marked ``gpu``: ``pytest -m gpu`` selects them).

A test compares what it computes on ``device`` with a reference computed on the CPU (in
float64, by brute force or by an independent formulation), so on the CPU it checks the
implementation against the reference and on CUDA it also checks CPU–CUDA agreement. Float32
matrix products run at full precision here (no TF32): the tolerances assume it.
"""
from __future__ import annotations

import pytest
import torch

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu,
                                   pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> torch.device:
    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device(request.param)
    torch.set_float32_matmul_precision(saved[0])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]
