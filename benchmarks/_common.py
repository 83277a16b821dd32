"""Helpers shared by the benchmarks: percentiles, versions, and worker processes that start
together at one moment chosen by the parent."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

_POLL_S: Final = 0.2


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclass(frozen=True, slots=True)
class StartLine:
    """Handed to each worker: `wait()` says "ready" and returns the common start time."""

    ready: Any  # multiprocessing Queue
    go: Any  # multiprocessing Event
    start_s: Any  # multiprocessing Value("d"): wall-clock start, set before `go`

    def wait(self) -> float:
        self.ready.put(True)
        self.go.wait()
        return float(self.start_s.value)


def _child(fn: Callable[[Any, StartLine], Any], spec: Any, line: StartLine, results: Any) -> None:
    try:
        results.put(("ok", fn(spec, line)))
    except BaseException:
        line.ready.put(False)  # never leave the parent waiting for a dead worker
        results.put(("error", traceback.format_exc()))


async def _get(source: Any, procs: Sequence[Any], timeout_s: float) -> Any:
    """The next item of a multiprocessing queue, without blocking the event loop."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        try:
            return await asyncio.to_thread(source.get, True, _POLL_S)
        except queue.Empty:
            if all(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("every worker process died") from None
    raise TimeoutError(f"no word from the workers in {timeout_s:g} s")


async def run_workers(
    fn: Callable[[Any, StartLine], Any],
    specs: Sequence[Any],
    *,
    on_start: Callable[[float], None],
    timeout_s: float,
    lead_s: float = 0.2,
) -> list[Any]:
    """Run `fn(spec, line)` in one spawned process per spec; once all are ready, call
    `on_start(start_s)` and release them to start at `start_s`. Their return values, in order
    of completion; a worker's exception is raised here with its traceback."""
    ctx = multiprocessing.get_context("spawn")
    line = StartLine(ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0))
    results = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(fn, spec, line, results)) for spec in specs]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            if not await _get(line.ready, procs, 120.0):
                break  # a worker failed: its traceback is in `results`
        start_s = time.time() + lead_s
        line.start_s.value = start_s
        on_start(start_s)
        line.go.set()
        replies = [await _get(results, procs, timeout_s) for _ in procs]
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()
    for status, body in replies:
        if status != "ok":
            raise RuntimeError(f"a worker process failed:\n{body}")
    return [body for _, body in replies]
