"""What machine a benchmark ran on, for its result line.

The figures of ``benchmarks/`` depend on the CPU as much as on the code: the same ingest
drained 18,100–19,500 facts/s (medians of runs) on one 2-core VM (Intel Xeon) and
21,500–32,900 on another (AMD EPYC). A result line that names its CPU can be compared with
another that names the same.
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name as ``/proc/cpuinfo`` gives it ("unknown" where it does not).

    >>> cpu_model("processor\\t: 0\\nmodel name\\t: AMD EPYC\\nflags\\t: avx2\\n")
    'AMD EPYC'
    >>> cpu_model("processor\\t: 0\\n")
    'unknown'
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def machine() -> dict[str, object]:
    """The CPU's model name and how many CPUs this process may use."""
    return {"cpu": cpu_model(), "cpus": len(os.sched_getaffinity(0))}
