"""Memory of the running process, read from Linux's /proc, for the benchmark scripts.

``reset_peak`` restarts the high-water mark, so that ``peak() - resident()`` taken around a step
is what the step itself needed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def resident() -> int:
    """Bytes resident now (VmRSS)."""
    return _status("VmRSS:")


def peak() -> int:
    """The most bytes resident since the process started or ``reset_peak`` (VmHWM)."""
    return _status("VmHWM:")


def reset_peak() -> None:
    """Restart the high-water mark at the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def timed(step: Callable[[], object]) -> tuple[float, float, object]:
    """Seconds, peak memory rise in MB and result of ``step()``."""
    gc.collect()
    before = resident()
    reset_peak()
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, (peak() - before) / 2**20, result


def best_of(step: Callable[[], object], repeat: int) -> tuple[float, int, object]:
    """The fastest seconds, the largest peak rise in bytes and the last result of ``step()``.

    ``step`` runs ``repeat`` times (at least once); each run's result is dropped before the next
    run starts, so that it does not count in the next run's memory.
    """
    times, peaks, result = [], [], None
    for _ in range(max(1, repeat)):
        result = None
        gc.collect()
        before = resident()
        reset_peak()
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
        peaks.append(peak() - before)
    return min(times), max(peaks), result
