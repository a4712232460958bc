"""Process memory settings for CPU training: keep freed memory instead of giving it back.

Why: a training step frees and re-allocates the same large buffers every step (weight
gradients of 16–34 MB for the U-Net's widest layers, activations of several MB). glibc's
malloc serves allocations above its mmap threshold (at most 32 MiB in its own steady state)
with fresh ``mmap`` pages and returns heap memory above its trim threshold (64 MiB) to the
system, so every step faults those pages in again and the kernel zeroes them, often
costing more than the arithmetic that fills them (``benchmarks/run.py`` times the step
with and without). Raising both thresholds keeps the process's peak memory mapped, which
a training loop reaches every step anyway. The arithmetic is untouched: losses are
bit-identical (``tests/test_memory.py``).

glibc only (Linux wheels of torch use it); elsewhere the functions return ``False`` and
change nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["retain_freed_memory", "page_faults"]

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Retained: only allocations above 1 GiB are mmapped, and the heap is never trimmed.
_RETAIN = (1 << 30, (1 << 31) - 1)
# glibc's own steady state once large blocks have been freed (its dynamic thresholds stop
# at DEFAULT_MMAP_THRESHOLD_MAX = 32 MiB on 64-bit, trimming at twice that).
_GLIBC_STEADY = (32 << 20, 64 << 20)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist only in glibc
        libc.gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def retain_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory mapped in this process (``enabled``), or go back to glibc's own
    steady-state thresholds and return free memory to the system now (``False``; what a
    process that never called this converges to, used by the benchmark's plain step).

    Process-wide; call it once at the start of a training run. Returns whether the
    setting took effect (``False`` where the C library is not glibc).
    """
    libc = _libc()
    if libc is None:
        return False
    mmap_threshold, trim_threshold = _RETAIN if enabled else _GLIBC_STEADY
    ok = (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
          and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1)
    if not enabled:
        libc.malloc_trim(0)
    return ok


def page_faults() -> int:
    """Minor page faults of this process so far (what :func:`retain_freed_memory` removes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
