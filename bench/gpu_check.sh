#!/usr/bin/env bash
# GPU check in one command, at most 8 minutes on one GPU: the gpu-marked tests and the speed figures
# (LightGCN Clothing epoch, REARM parity-size epoch, full evaluation, export) on CUDA, written to
# bench/results/gpu_check.json (see bench/gpu_check.py). Options go to bench/gpu_check.py:
#   bash bench/gpu_check.sh                         # on a GPU machine
#   bash bench/gpu_check.sh --device cpu --smoke    # check the script itself on a CPU (not figures)
# Uses this checkout's code (PYTHONPATH), so nothing needs installing beyond the dependencies.
# Under the device tool ($OUT set), the JSON is also copied to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python bench/gpu_check.py "$@"
status=$?
if [ -n "${OUT:-}" ]; then
  cp bench/results/gpu_check*.json "$OUT"/ 2>/dev/null
fi
exit $status
