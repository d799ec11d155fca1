"""recsys.training.host_memory: with the mmap threshold fixed, a block of at least the threshold
is mapped on its own (and so returned to the system when freed) even after glibc's dynamic
threshold would have risen past it; without the fix it comes from the heap."""
import platform
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from recsys.training.host_memory import MMAP_THRESHOLD, fix_mmap_threshold

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    warm = torch.ones(4 * MMAP_THRESHOLD // 4)     # mmap-ed, then freed: the dynamic threshold rises to it
    del warm
    block = torch.ones(MMAP_THRESHOLD // 4 + 1024)  # just above the fixed threshold
    with open("/proc/self/maps") as maps:
        heap = next(line.split()[0] for line in maps if line.rstrip().endswith("[heap]"))
    start, end = (int(x, 16) for x in heap.split("-"))
    print(start <= block.data_ptr() < end)
""")


def on_heap(mode: str) -> bool:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt is needed")
def test_fixed_threshold_maps_large_blocks_on_their_own():
    assert not on_heap("fixed"), "a block above the fixed threshold must be mapped on its own"
    assert on_heap("default"), "control: after a large free, glibc's dynamic threshold puts it on the heap"
