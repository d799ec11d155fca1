#!/usr/bin/env bash
# GPU check (issue 9): CUDA-marked tests and the speed benchmarks on CUDA, sized for a
# 10-minute session on the lent GPU machine. Output goes to $OUT (device tool) or bench/results.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 RECSYS_DEVICE=cuda
python -m pip install -q -e ".[dev]" >/dev/null 2>&1 || pip install -q -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu_check.log"
timeout 300 python -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee -a "$out/gpu_check.log"
timeout 120 python bench/eval_speed.py --device cuda --out "$out/eval_speed_cuda.json" 2>&1 | tee -a "$out/gpu_check.log"
timeout 150 python bench/export_speed.py --device cuda --out "$out/export_cuda.json" 2>&1 | tee -a "$out/gpu_check.log"
