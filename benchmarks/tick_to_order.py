"""Tick to order: from a `book` frame written to the public socket to the order frame it causes on
the private one, through the product's whole path; uvloop + msgspec against asyncio + stdlib json.

    python -m benchmarks.tick_to_order            # 5 rounds x 1200 ticks per variant, ~2 min
    python -m benchmarks.tick_to_order --quick    # 2 rounds x 200 ticks, ~20 s

The path, all of it product code in one client process (`_tick_client.py`): the websockets
client, `KrakenWs` (frame head), `BookStore` (typed decode, CRC32 checksum), `MarketHub`, the
`StrategyWorker` (inbox, loop, callback guard) and its strategy's `on_book`, the risk checks
(`risk.check_amend`), the `OrderManager`, `WsOrderEntry.amend`, the shared `Limiter`'s permit
(an EVALSHA on a real redis-server started here, on a free loopback port), the request's
encoding and its write. The strategy (`_tick_strategy.py`) follows the best bid with one order:
every tick is one `amend_order`. Limits are generous enough that every permit is granted at once
(the client's report proves it: no refusal, no local fallback), so what is timed is the path,
not a rate limit.

The venue (`_tick_venue.py`) is its own process: the simulator's REST API, and two WebSocket
servers, one sending book frames with Kraken's checksums, one answering orders. It stamps
`time.monotonic_ns()` just before writing a tick's frame and as soon as it reads the order
frame; CLOCK_MONOTONIC is one clock for every process of a Linux host. Ticks go one at a time
(the next 2-4 ms after the previous order arrived), so nothing queues.

The baseline runs the same client with asyncio's default loop and with stdlib `json` at the
socket's two edges: frames in (head and book frame) and requests out. The product reads frames
and writes requests through one codec, `orchestrator.exchange.kraken.ws.codec` (msgspec, its
decoders made once); the baseline's child process installs `_tick_codec.stdlib_codec()` there
before anything is built. A seam in the product rather than subclasses here: the sockets are
built deep inside `MarketHub` and `StrategyUnit`, and subclasses would have to copy the product's
routing and book logic around the decode, measuring a copy instead of the product. The seam
costs the product nothing: each socket and book store reads the codec once, when it is made.

A third client, the floor (`_tick_floor.py`), makes the same three hops with no product code
(websockets, msgspec, one EVALSHA of `return 1`): what the host costs, for context; it is not
graded. Each variant runs in a fresh child process per round; the order alternates (A B F, F B A,
...), and the report takes the median over rounds of each round's p50 and p99 (these machines
are noisy). The goals are graded on the product's numbers as measured, floor or no floor.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from typing import Any, Final

from benchmarks._tick_client import FLOOR, VARIANTS, ClientSpec, Variant, client_main
from benchmarks._tick_report import Round, figure_line, print_header, print_report
from benchmarks._tick_venue import TickPlan, TickResult, VenueAddress, serve_venue
from orchestrator.store.connection import redis_client
from orchestrator.store.embedded import open_embedded_redis

_ROUND_TIMEOUT_S: Final = 120.0


async def _reply(conn: Any, procs: list[Any], timeout_s: float) -> Any:
    """The next object on a Pipe end, without blocking the loop; fails if a process died."""
    deadline_s = time.monotonic() + timeout_s
    while not await asyncio.to_thread(conn.poll, 0.2):
        if any(p.exitcode not in (None, 0) for p in procs):
            raise RuntimeError("a benchmark process died")
        if time.monotonic() > deadline_s:
            raise TimeoutError(f"no reply in {timeout_s:g} s")
    return conn.recv()


async def _round(ctx: Any, venue: tuple[Any, Any], spec: ClientSpec, plan: TickPlan) -> Round:
    control, venue_proc = venue
    stop, results = ctx.Event(), ctx.Queue()
    client = ctx.Process(target=client_main, args=(spec, stop, results), name=spec.variant)
    client.start()
    try:
        control.send(plan)
        outcome = await _reply(control, [venue_proc, client], _ROUND_TIMEOUT_S)
    finally:
        stop.set()
        status, report = await asyncio.to_thread(results.get, True, 60.0)
        await asyncio.to_thread(client.join, 30.0)
        if client.is_alive():
            client.kill()
    if status != "ok":
        raise RuntimeError(f"the {spec.variant} client failed:\n{report}")
    if isinstance(outcome, TickResult):
        return Round(spec.variant, plan.seed, outcome, report)
    raise RuntimeError(f"the venue could not run the ticks: {outcome}")


def _order(index: int, *, floor: bool) -> tuple[Variant, ...]:
    """A B (floor), then (floor) B A, ...: neither variant always runs first."""
    variants: tuple[Variant, ...] = (*VARIANTS, FLOOR) if floor else VARIANTS
    return variants if index % 2 == 0 else variants[::-1]


async def measure(
    *,
    rounds: int,
    samples: int,
    warmup: int,
    gap_ms: tuple[float, float] = (2.0, 4.0),
    floor: bool = True,
    on_start: Any = None,
) -> tuple[list[Round], str]:
    """Every round of every variant, alternating; and the redis-server used. `on_start(redis)`
    is called once it runs."""
    async with open_embedded_redis() as embedded:
        if embedded.backend != "redis-server":
            raise RuntimeError("redis-server not found: the permit must be a real Redis call")
        client = redis_client(embedded.url)
        try:
            server = str((await client.info("server")).get("redis_version", "?"))
        finally:
            await client.aclose()
        redis = f"redis-server {server}, 127.0.0.1:{embedded.port}"
        if on_start is not None:
            on_start(redis)
        ctx = multiprocessing.get_context("spawn")
        control, venue_end = ctx.Pipe()
        venue_proc = ctx.Process(target=serve_venue, args=(venue_end,), name="venue")
        venue_proc.start()
        done: list[Round] = []
        try:
            address: VenueAddress = await _reply(control, [venue_proc], 60.0)
            for index in range(rounds):
                for variant in _order(index, floor=floor):
                    spec = ClientSpec(
                        variant=variant,
                        venue=address,
                        redis_url=embedded.url,
                        namespace=f"tto-{index}-{variant.replace('+', '.')}",
                    )
                    plan = TickPlan(
                        samples=samples,
                        warmup=warmup,
                        seed=index,
                        gap_min_s=gap_ms[0] / 1000,
                        gap_max_s=gap_ms[1] / 1000,
                    )
                    done.append(await _round(ctx, (control, venue_proc), spec, plan))
        finally:
            control.send(None)
            await asyncio.to_thread(venue_proc.join, 30.0)
            if venue_proc.is_alive():
                venue_proc.kill()
    return done, redis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tick_to_order",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds x 200 ticks (smoke)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant")
    parser.add_argument("--samples", type=int, default=None, help="measured ticks per round")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured ticks per round")
    parser.add_argument(
        "--gap-ms",
        type=float,
        nargs=2,
        default=(2.0, 4.0),
        metavar=("MIN", "MAX"),
        help="pause after a tick's order, drawn uniformly (default 2 4)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor runs")
    parser.add_argument("--no-plots", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    samples = args.samples or (200 if args.quick else 1200)
    warmup = args.warmup if args.warmup is not None else (50 if args.quick else 150)
    gap_ms = (args.gap_ms[0], args.gap_ms[1])

    def header(redis: str) -> None:
        print_header(
            redis,
            rounds=rounds,
            samples=samples,
            warmup=warmup,
            gap_ms=f"{gap_ms[0]:g}-{gap_ms[1]:g}",
        )
        print("  running...", flush=True)

    done, redis = asyncio.run(
        measure(
            rounds=rounds,
            samples=samples,
            warmup=warmup,
            gap_ms=gap_ms,
            floor=not args.no_floor,
            on_start=header,
        )
    )
    problems = print_report(done, warmup)
    if not args.no_plots:
        print(figure_line(done, redis))
    return 1 if problems else 0  # a MISS is a measurement; a wrong path is an error


if __name__ == "__main__":
    sys.exit(main())
