"""Memory of the running process, read from Linux's /proc, for the benchmark scripts.

``reset_peak`` restarts the high-water mark, so that ``peak() - resident()`` taken around a step
is what the step itself needed. Run as a script, it runs a module (``-m``) and records that
process's own peak, for benchmarks that time a command in a separate process; ``tree_resident``
adds up a process and its children (a Dask cluster's workers).
"""

from __future__ import annotations

import gc
import runpy
import sys
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


def _run_module(peak_file: str, module: str, *arguments: str) -> None:
    """Run ``module`` as ``python -m`` would, then write this process's peak bytes to a file.

    ``python benchmarks/_memory.py PEAK_FILE -m MODULE [ARGUMENTS...]``: the benchmark that starts
    it reads the job's own peak resident memory (VmHWM) from ``PEAK_FILE``, even when the module
    ends by ``SystemExit``.
    """
    sys.argv = [module, *arguments]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(peak_file).write_text(str(peak()))


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it, read from the parent ids in /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name (field 2) may hold spaces: the parent id follows its ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while the folder was read
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, waiting = [], [root]
    while waiting:
        pid = waiting.pop()
        tree.append(pid)
        waiting.extend(parents.get(pid, []))
    return tree


def tree_resident(root: int) -> int:
    """Bytes resident now in process ``root`` and all its descendants (summed VmRSS)."""
    total = 0
    for pid in _process_tree(root):
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # the process ended since the tree was read
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: python _memory.py PEAK_FILE -m MODULE [ARGUMENTS...]")
    _run_module(sys.argv[1], *sys.argv[3:])
