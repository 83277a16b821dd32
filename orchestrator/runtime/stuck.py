"""Where the tasks still running wait: named in the log when a shutdown overruns its bound, so
the next overrun says which await held it instead of leaving a 10 s gap to guess at.

    log.error("service.shutdown_timeout", waiting=where_tasks_wait())
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import CoroutineType, FrameType, GeneratorType
from typing import Any, Final

_MAX_TASKS: Final = 40  # a log line, not a dump: the first ones are enough to find the await
_MAX_DEPTH: Final = 64  # await chains are shallow; a cycle or a freak chain stops here
_PACKAGE: Final = Path(__file__).resolve().parent.parent


def where_tasks_wait(tasks: set[asyncio.Task[Any]] | None = None) -> list[str]:
    """`"<task name>: <file>:<line> in <function>"` for each unfinished task (all of the running
    loop's by default, but the caller's own), at the innermost coroutine it awaits."""
    if tasks is None:
        tasks = asyncio.all_tasks()
    current = asyncio.current_task()
    found = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        if task.done() or task is current:
            continue
        found.append(f"{task.get_name()}: {_innermost(task.get_coro())}")
        if len(found) == _MAX_TASKS:
            break
    return found


def _innermost(coro: object) -> str:
    """The deepest of our own frames in the await chain, with the innermost one when that is a
    library's (`venue_counter.py:73 in run (locks.py:213 in wait)`)."""
    frames: list[FrameType] = []
    for _ in range(_MAX_DEPTH):
        if isinstance(coro, CoroutineType):
            frame, coro = coro.cr_frame, coro.cr_await
        elif isinstance(coro, GeneratorType):
            frame, coro = coro.gi_frame, coro.gi_yieldfrom
        else:
            break  # a future, a C-level awaitable, or the end of the chain
        if frame is not None:
            frames.append(frame)
    if not frames:
        return "finishing"
    ours = [f for f in frames if Path(f.f_code.co_filename).is_relative_to(_PACKAGE)]
    where = _describe(ours[-1] if ours else frames[-1])
    if ours and ours[-1] is not frames[-1]:
        where += f" ({_describe(frames[-1])})"
    return where


def _describe(frame: FrameType) -> str:
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} in {frame.f_code.co_name}"
