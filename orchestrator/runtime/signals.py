"""SIGTERM / SIGINT: a clean shutdown on the first, a forced one on the second.

    stop, force = asyncio.Event(), asyncio.Event()
    uninstall = install_stop_signals(stop, force=force)
    try:
        why = await run_until_stopped(stop, duration_s=args.duration, clock=clock)
        ...  # clean shutdown, bounded by shutdown_timeout_s, abandoned early if `force` is set
    finally:
        uninstall()

The first signal sets `stop`: the runtime stops its strategies, cancels their orders, disarms the
dead man's switches and flushes its journals. A second signal (an impatient operator, a second
Ctrl-C) sets `force`: the runtime gives up the steps still running and exits. We chose an event
over raising `KeyboardInterrupt` from the handler: an exception out of a loop callback tears
the loop down from outside every task (no `finally` of ours runs in order, and asyncio then
cancels and awaits whatever is left, unbounded), where an event is awaited by the one place that
owns the shutdown, which stays bounded and testable. When the loop itself is hung, neither
would run; that is what the shutdown timeout and Kraken's dead man's switch are for.

Handlers go through `loop.add_signal_handler` (they run as loop callbacks, never in the middle
of one), so this works from the main thread only, as asyncio's signal handling does.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Final, Literal

from orchestrator.clock import Clock
from orchestrator.logs import get_logger

log = get_logger(__name__)

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
StopReason = Literal["signal", "duration"]


def install_stop_signals(
    stop: asyncio.Event, *, force: asyncio.Event | None = None
) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `stop` (then `force`) on the running loop.

    Returns the uninstaller, which puts the signals back to their defaults (SIGINT raises
    `KeyboardInterrupt` again, SIGTERM ends the process). Without `force`, a second signal is
    only logged: the clean shutdown's own timeout still bounds it.
    """
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.info("service.stop_requested", signal=signum.name)
            stop.set()
        elif force is not None and not force.is_set():
            log.warning("service.force_requested", signal=signum.name)
            force.set()
        else:
            log.info("service.already_stopping", signal=signum.name)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)

    def uninstall() -> None:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)

    return uninstall


async def run_until_stopped(
    stop: asyncio.Event, *, duration_s: float | None, clock: Clock
) -> StopReason:
    """Wait until `stop` is set ("signal") or `duration_s` of the clock has passed ("duration");
    `None` waits for `stop` alone. `stop` already set wins over a zero duration."""
    if stop.is_set():
        return "signal"
    if duration_s is None:
        await stop.wait()
        return "signal"
    try:
        async with clock.timeout(duration_s):
            await stop.wait()
    except TimeoutError:
        return "duration"
    return "signal"
