"""What else happened during a `strategies_per_process` window, to read the lag by: this
process's CPU, garbage-collector pauses, involuntary context switches (the OS ran something
else: the machine's other processes compete for its cores), the simulator's CPU, the load.

A lag spike with a GC pause of the same size is the collector; one with many involuntary
switches and a busy machine is the neighbours; one with neither is our own code."""

from __future__ import annotations

import gc
import os
import resource
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WindowStats:
    wall_s: float
    cpu_per_s: float  # user + sys seconds of this process per wall second
    gc_pauses: int
    gc_max_s: float
    gc_total_s: float
    switches_per_s: float  # involuntary context switches of this process
    sim_cpu_per_s: float | None  # the simulator process's, when /proc tells
    load: float  # the machine's 1-minute load average at the end


def _proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class WindowDiagnostics:
    """`start()` then `stop()`: what happened in between."""

    def __init__(self, sim_pid: int | None) -> None:
        self.sim_pid = sim_pid
        self._gc_started_s = 0.0
        self._pauses: list[float] = []

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started_s = time.perf_counter()
        else:
            self._pauses.append(time.perf_counter() - self._gc_started_s)

    def start(self) -> None:
        self._pauses.clear()
        gc.callbacks.append(self._on_gc)
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._sim_s = _proc_cpu_s(self.sim_pid) if self.sim_pid else None
        self._wall_s = time.monotonic()

    def stop(self) -> WindowStats:
        wall_s = time.monotonic() - self._wall_s
        usage = resource.getrusage(resource.RUSAGE_SELF)
        gc.callbacks.remove(self._on_gc)
        sim_s = _proc_cpu_s(self.sim_pid) if self.sim_pid else None
        cpu_s = (usage.ru_utime - self._usage.ru_utime) + (usage.ru_stime - self._usage.ru_stime)
        sim_cpu = None
        if sim_s is not None and self._sim_s is not None:
            sim_cpu = (sim_s - self._sim_s) / wall_s
        return WindowStats(
            wall_s=wall_s,
            cpu_per_s=cpu_s / wall_s,
            gc_pauses=len(self._pauses),
            gc_max_s=max(self._pauses, default=0.0),
            gc_total_s=sum(self._pauses),
            switches_per_s=(usage.ru_nivcsw - self._usage.ru_nivcsw) / wall_s,
            sim_cpu_per_s=sim_cpu,
            load=os.getloadavg()[0],
        )
