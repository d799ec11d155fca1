"""Data-parallel helpers: a shutdown that really frees the process group (the multi-process
runs are in test_process_level.py)."""
import pytest
import torch.distributed as dist

from recsys.training import distributed


def test_shutdown_names_what_still_holds_the_process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    def keeps_group(group=dist.group.WORLD):
        return group

    only_holder = r"\(by [\w.]*test_shutdown_names_what_still_holds_the_process_group\.<locals>\.keeps_group\)"
    with pytest.raises(RuntimeError, match="still referenced after destroy_process_group " + only_holder):
        distributed.shutdown()
    assert not dist.is_initialized()

