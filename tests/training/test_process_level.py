"""Process-level behaviour: SIGKILL then --resume, and 2-process data-parallel training
(gloo on CPU; NCCL on two GPUs where a machine has them)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

# The rank and CLI subprocesses must import this checkout, not whichever recsys is installed.
REPO = Path(__file__).resolve().parents[2]
SMALL = ["dataset.synthetic.n_users=300", "dataset.synthetic.n_items=150", "train.batch_size=256",
         "train.lr=0.01", "train.progress=false", "model.n_layers=2", "eval.metrics=[recall,ndcg]"]


def _recsys(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-m", "recsys", *args], env


def _run(tmp_path, *args):
    command, env = _recsys(*args, cwd=tmp_path)
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    settings = [*SMALL, "train.epochs=12", "train.patience=50", f"cache_dir={tmp_path / 'cache'}"]
    _run(tmp_path, "train", "--set", *settings, "run_name=full")
    full = json.loads((tmp_path / "runs" / "full" / "results.json").read_text())

    command, env = _recsys("train", "--set", *settings, "run_name=killed", cwd=tmp_path)
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "runs" / "killed" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before_kill = len(metrics.read_text().splitlines())
    assert 4 <= done_before_kill < 12, "the run must be killed mid-way"
    assert not (tmp_path / "runs" / "killed" / "results.json").exists()

    _run(tmp_path, "train", "--resume", str(tmp_path / "runs" / "killed"))
    resumed = json.loads((tmp_path / "runs" / "killed" / "results.json").read_text())
    assert resumed["best_epoch"] == full["best_epoch"]
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == list(range(1, 13))


TWO_GPUS = torch.cuda.device_count() >= 2 and dist.is_nccl_available()
BACKENDS = [
    pytest.param("gloo", "cpu", 2e-3, id="gloo"),
    pytest.param("nccl", "cuda", 5e-3, id="nccl", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not TWO_GPUS, reason="DDP over NCCL needs 2 CUDA GPUs (one per process) and a torch build with NCCL; "
                             f"this machine has {torch.cuda.device_count()} GPU(s)")]),
]


@pytest.mark.parametrize(("backend", "device", "tolerance"), BACKENDS)
def test_two_processes_match_single_process(tmp_path, backend, device, tolerance):
    """Rank processes exit 0: a process group that outlived shutdown() (and could abort a rank
    at exit) makes shutdown() raise, so this also guards the exit path deterministically."""
    settings = [*SMALL, "train.epochs=6", "train.patience=50", f"cache_dir={tmp_path / 'cache'}", f"device={device}"]
    _run(tmp_path, "train", "--set", *settings, "run_name=single")
    proc = _run(tmp_path, "train", "--nproc", "2", "--set", *settings, "run_name=ddp")
    single = json.loads((tmp_path / "runs" / "single" / "results.json").read_text())
    ddp = json.loads((tmp_path / "runs" / "ddp" / "results.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["device"] == ("cuda:0" if backend == "nccl" else "cpu")
    assert "run folder" in proc.stdout
    for split in ("valid", "test"):
        for metric, value in single[split].items():
            assert ddp[split][metric] == pytest.approx(value, abs=tolerance), (split, metric)
