"""The data-parallel helpers: device and backend per rank, wrapping, and a shutdown that
really frees the process group (the multi-process runs are in test_process_level.py)."""
import pytest
import torch
import torch.distributed as dist

from recsys.errors import ConfigError
from recsys.training import distributed


@pytest.fixture
def torchrun_rank(monkeypatch):
    """The environment torchrun gives local rank 1 of 2."""
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)


def test_cuda_rank_joins_nccl_on_its_local_gpu(monkeypatch, torchrun_rank):
    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    distributed.init(torch.device("cuda"))
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl")]
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


def test_more_processes_than_gpus_is_a_config_error(monkeypatch, torchrun_rank):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"2 processes .* only 1 CUDA device.*--nproc 1 or fewer, or device=cpu"):
        distributed.local_device(torch.device("cuda"))


class _OnDevice(torch.nn.Linear):
    def __init__(self, device: torch.device):
        super().__init__(2, 2)
        self._device = device
        self.register_buffer("graph", torch.eye(2).to_sparse())

    @property
    def device(self) -> torch.device:
        return self._device


@pytest.mark.parametrize(("device", "device_ids"), [(torch.device("cuda", 1), [1]), (torch.device("cpu"), None)])
def test_wrap_pins_ddp_to_the_rank_gpu_and_skips_sparse_buffers(monkeypatch, device, device_ids):
    made = {}

    class RecordingDDP:
        def __init__(self, module, **kwargs):
            made.update(kwargs)

        @staticmethod
        def _set_params_and_buffers_to_ignore_for_model(module, names):
            made["ignored"] = names

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "DistributedDataParallel", RecordingDDP)
    distributed.wrap(_OnDevice(device))
    assert made == {"ignored": ["graph"], "device_ids": device_ids, "forward_sync_buffers": False}


def test_shutdown_names_what_still_holds_the_process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    def keeps_group(group=dist.group.WORLD):
        return group

    only_holder = r"\(by [\w.]*test_shutdown_names_what_still_holds_the_process_group\.<locals>\.keeps_group\)"
    with pytest.raises(RuntimeError, match="still referenced after destroy_process_group " + only_holder):
        distributed.shutdown()
    assert not dist.is_initialized()

