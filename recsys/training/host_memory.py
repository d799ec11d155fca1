"""Keep the resident memory of a CPU training process close to its live memory.

glibc's ``malloc`` serves blocks below its mmap threshold from the heap and larger ones with
``mmap``. The threshold starts at 128 KiB but rises to the size of any mmap-ed block that is
freed, up to 32 MiB, after which every block up to that size comes from the heap. A training
step allocates and frees many tensors of a few to a few tens of MiB (REARM on Clothing: rows of
62,420 nodes × 192 floats), the heap fragments, and the resident size grows well past what is
live (REARM on Clothing with trained user interest: 7.4 GiB peak against 6.3 with the threshold
fixed). Setting the threshold explicitly turns the adjustment off: blocks of at least
:data:`MMAP_THRESHOLD` go back to the system when freed. The cost is a page fault per 4 KiB the
first time such a block is touched, small beside the arithmetic done on blocks of that size;
smaller blocks (the whole working set of small models) stay on the heap as before.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("recsys.train")

MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; False (and nothing
    changed) where the C library is not glibc or refuses the value."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) was refused; the allocator keeps its defaults", threshold)
    return done
