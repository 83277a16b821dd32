"""Our Kraken L2 book against python-kraken-sdk's, on one generated WS v2 `book` stream.

    python -m benchmarks.book            # 5 runs of 120k updates at depth 10 and depth 100
    python -m benchmarks.book --quick    # 3 runs of a few thousand, for a smoke run

Each run times both sides on the same frames, one right after the other, and who goes first
alternates run by run; the ratio is taken per run (the host's noise is shared by both sides of a
run) and the report gives every run's ratio and their median, graded against the targets, >= 5x
at depth 10 and >= 12x at depth 100. Never the best run: a median says what a run usually gets.

Both sides do the whole job per frame: decode the raw bytes (we: msgspec; the SDK: `json.loads`,
as its connector does), apply, truncate, checksum. The SDK's `SpotOrderBookClient.on_message` is
called directly with no connection: its book is pre-seeded with the pair's decimals (it would
fetch them over REST) and its resubscribe-on-mismatch is replaced by a counter (it would
unsubscribe and sleep 3 s).

The stream is a seeded random walk of a deeper venue-side book; each message carries the visible
changes Kraken would send (1-3 levels mostly; deletes followed by the refill from below the
window; inserts that push the worst level out unannounced; now and then two updates to one
price) and the checksum of the venue's true top 10, computed here by a string-rendering
reference that shares no code with the book under test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import random
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

from benchmarks._common import verdict, version
from orchestrator.exchange.kraken.ws.book import CHECKSUM_LEVELS, PairPrecision
from orchestrator.exchange.kraken.ws.book_store import BookStore

SYMBOL: Final = "BTC/USD"
PRECISION: Final = PairPrecision(price_decimals=1, qty_decimals=8)
TARGET_RATIO: Final = {10: 5.0, 100: 12.0}
_VENUE_SPARE_LEVELS: Final = 40  # hidden levels below the window, for refills
_START_PRICE: Final = 300_000  # 30000.0 at 1 decimal


@dataclass(frozen=True)
class BookStream:
    symbol: str
    depth: int
    precision: PairPrecision
    snapshot: bytes
    updates: list[bytes]


# -- the generator --------------------------------------------------------------------------


def _fixed(scaled: int, decimals: int) -> str:
    """`1000, 8` -> `"0.00001000"`: the fixed-precision text Kraken's checksum starts from."""
    if decimals == 0:
        return str(scaled)
    digits = str(scaled).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


def _wire(scaled: int, decimals: int) -> str:
    """The JSON number as Kraken prints it: shortest form (`0.001`, `4.0`, `1e-05`)."""
    text = _fixed(scaled, decimals)
    if "." not in text:
        return text
    text = text.rstrip("0")
    if text.endswith("."):
        return text + "0"
    if text.startswith("0.0000"):
        return repr(float(text))  # 1e-05 style, exact for these few digits
    return text


def _checksum_reference(asks: list[tuple[int, int]], bids: list[tuple[int, int]]) -> int:
    """Kraken's algorithm to the letter: fixed render, drop '.', strip leading zeros, CRC32."""
    parts = []
    for price, qty in asks[:CHECKSUM_LEVELS] + bids[:CHECKSUM_LEVELS]:
        for scaled, decimals in ((price, PRECISION.price_decimals), (qty, PRECISION.qty_decimals)):
            parts.append(_fixed(scaled, decimals).replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())


class _VenueSide:
    """The venue's side, deeper than the window. Keys ascend best-first (bids negated)."""

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: dict[int, int] = {}

    def level(self, index: int) -> tuple[int, int]:
        key = self.keys[index]
        return key * self.sign, self.qty[key]

    def top(self, n: int) -> list[tuple[int, int]]:
        return [self.level(i) for i in range(min(n, len(self.keys)))]


class _Generator:
    def __init__(self, depth: int, seed: int) -> None:
        self.depth = depth
        self.rng = random.Random(seed)
        self.asks = _VenueSide(1)
        self.bids = _VenueSide(-1)
        for side in (self.asks, self.bids):
            key = side.sign * _START_PRICE + self.rng.randint(1, 3)
            for _ in range(depth + _VENUE_SPARE_LEVELS):
                side.keys.append(key)
                side.qty[key] = self._qty()
                key += self.rng.randint(1, 4)

    def _qty(self) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.randint(1, 50_000)  # dust, < 0.0005
        if roll < 0.75:
            return rng.randint(1, 2_000_000_000)  # up to 20
        return rng.randint(1, 40) * 10_000_000  # round lots: 0.1 .. 4.0

    def _index(self, side: _VenueSide) -> int:
        window = min(self.depth, len(side.keys))
        if self.rng.random() < 0.5:
            return min(int(self.rng.expovariate(0.35)), window - 1)
        return self.rng.randrange(window)

    def _top_up(self, side: _VenueSide) -> None:
        while len(side.keys) < self.depth + _VENUE_SPARE_LEVELS:
            key = side.keys[-1] + self.rng.randint(1, 4)
            side.keys.append(key)
            side.qty[key] = self._qty()

    def _change(self, side: _VenueSide, other: _VenueSide, out: list[tuple[int, int]]) -> None:
        rng = self.rng
        keys = side.keys
        i = self._index(side)
        action = rng.random()
        low = -other.keys[0] if i == 0 else keys[i - 1]
        if action < 0.2 and keys[i] - low > 1:  # a new level before i (in the spread if i == 0)
            key = rng.randint(low + 1, keys[i] - 1)
            keys.insert(i, key)
            side.qty[key] = self._qty()
            out.append(side.level(i))
            return
        if 0.2 <= action < 0.4:  # delete, then the refill from below the window
            key = keys.pop(i)
            del side.qty[key]
            out.append((key * side.sign, 0))
            out.append(side.level(self.depth - 1))
            self._top_up(side)
            return
        key = keys[i]
        if rng.random() < 0.03:  # an intermediate value first: two updates, one price
            out.append((key * side.sign, self._qty()))
        side.qty[key] = self._qty()
        out.append(side.level(i))

    def _levels_json(self, levels: list[tuple[int, int]]) -> str:
        price_decimals = PRECISION.price_decimals
        qty_decimals = PRECISION.qty_decimals
        return ",".join(
            f'{{"price":{_wire(p, price_decimals)},"qty":{_wire(q, qty_decimals)}}}'
            for p, q in levels
        )

    def _frame(
        self, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]], n: int
    ) -> bytes:
        checksum = _checksum_reference(
            self.asks.top(CHECKSUM_LEVELS), self.bids.top(CHECKSUM_LEVELS)
        )
        seconds, micros = divmod(n * 137_113, 1_000_000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        stamp = f"2023-07-30T{hours % 24:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{SYMBOL}",'
            f'"bids":[{self._levels_json(bids)}],"asks":[{self._levels_json(asks)}],'
            f'"checksum":{checksum},"timestamp":"{stamp}"}}]}}'
        ).encode()

    def snapshot(self) -> bytes:
        return self._frame("snapshot", self.bids.top(self.depth), self.asks.top(self.depth), 0)

    def update(self, n: int) -> bytes:
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        for _ in range(self.rng.choice((1, 1, 1, 1, 2, 2, 3))):
            if self.rng.random() < 0.5:
                self._change(self.bids, self.asks, bids)
            else:
                self._change(self.asks, self.bids, asks)
        return self._frame("update", bids, asks, n)


def generate_stream(updates: int, depth: int, seed: int = 1) -> BookStream:
    """A snapshot and `updates` update frames for one symbol at `depth`, deterministic by seed."""
    generator = _Generator(depth, seed)
    snapshot = generator.snapshot()
    frames = [generator.update(n) for n in range(1, updates + 1)]
    return BookStream(SYMBOL, depth, PRECISION, snapshot, frames)


# -- the two contestants --------------------------------------------------------------------


def run_ours(stream: BookStream) -> tuple[float, int]:
    """Seconds for the whole stream, and checksum mismatches plus refused entries."""
    store = BookStore()
    store.add_book(stream.symbol, stream.depth, stream.precision)
    on_message = store.on_message
    gc.collect()
    start = time.perf_counter()
    on_message(stream.snapshot)
    for frame in stream.updates:
        on_message(frame)
    elapsed = time.perf_counter() - start
    return elapsed, store.mismatches + store.malformed + store.ignored_stale


class _PeerResync(Exception):
    """Raised where the SDK would unsubscribe, sleep 3 s and resubscribe."""


def peer_available() -> bool:
    try:
        importlib.import_module("kraken.spot.orderbook")
    except ImportError:
        return False
    return True


async def _peer_replay(stream: BookStream) -> tuple[float, int]:
    module: Any = importlib.import_module("kraken.spot.orderbook")

    async def on_book_update(self: Any, pair: str, message: dict[str, Any]) -> None:
        return None

    async def remove_book(self: Any, pairs: list[str]) -> None:
        raise _PeerResync

    peer_class: Any = type(
        "PeerBook",
        (module.SpotOrderBookClient,),
        {"on_book_update": on_book_update, "remove_book": remove_book},
    )
    client = peer_class(depth=stream.depth)
    try:
        # Its book registry (name-mangled private), seeded as its REST lookup would.
        client._SpotOrderBookClient__book[stream.symbol] = {
            "bid": {},
            "ask": {},
            "valid": True,
            "price_decimals": stream.precision.price_decimals,
            "qty_decimals": stream.precision.qty_decimals,
        }
        on_message = client.on_message
        loads = json.loads
        mismatches = 0
        gc.collect()
        start = time.perf_counter()
        await on_message(loads(stream.snapshot))
        for frame in stream.updates:
            try:
                await on_message(loads(frame))
            except _PeerResync:
                mismatches += 1
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return elapsed, mismatches


def run_peer(stream: BookStream) -> tuple[float, int]:
    """Seconds for the whole stream through python-kraken-sdk, and its checksum mismatches."""
    return asyncio.run(_peer_replay(stream))


# -- the report -----------------------------------------------------------------------------


@dataclass
class DepthResult:
    """One depth's runs: each run timed both sides on the same frames, one right after the other."""

    depth: int
    updates: int
    ours_s: list[float] = field(default_factory=list)
    peer_s: list[float] = field(default_factory=list)
    ours_bad: int = 0  # over all runs
    peer_bad: int = 0

    @property
    def ratios(self) -> list[float]:
        """Per run: our updates per second over the SDK's (its time over ours)."""
        return [peer / ours for ours, peer in zip(self.ours_s, self.peer_s, strict=True)]


def measure(stream: BookStream, runs: int, *, with_peer: bool) -> DepthResult:
    """`runs` runs, each both sides back to back, who goes first alternating run by run."""
    result = DepthResult(stream.depth, len(stream.updates))
    for run in range(runs):
        order = (run_ours, run_peer) if run % 2 == 0 else (run_peer, run_ours)
        for runner in order:
            if runner is run_peer and not with_peer:
                continue
            elapsed_s, bad = runner(stream)
            if runner is run_ours:
                result.ours_s.append(elapsed_s)
                result.ours_bad += bad
            else:
                result.peer_s.append(elapsed_s)
                result.peer_bad += bad
    return result


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


def _report(result: DepthResult, *, with_peer: bool) -> bool:
    """Print one depth's row and its runs; True when its median ratio meets the target."""
    updates = result.updates
    ours_rate = updates / statistics.median(result.ours_s)
    target = TARGET_RATIO.get(result.depth)
    if not with_peer:
        print(f"{result.depth:5d} {updates:8d} {ours_rate:11,.0f} {'-':>10} {'-':>7} "
              f"{'-':>7} {'-':>4} {result.ours_bad:9d} {'-':>8}")  # fmt: skip
        return True
    peer_rate = updates / statistics.median(result.peer_s)
    ratio = statistics.median(result.ratios)
    met = target is None or ratio >= target
    target_text = f">={target:g}x" if target else "-"
    grade = verdict(met) if target else "-"
    print(f"{result.depth:5d} {updates:8d} {ours_rate:11,.0f} {peer_rate:10,.0f} {ratio:6.1f}x "
          f"{target_text:>7} {grade:>4} {result.ours_bad:9d} {result.peer_bad:8d}   "
          + " ".join(f"{r:.1f}x" for r in result.ratios))  # fmt: skip
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.book",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="3 runs of 3,000 updates (smoke)")
    parser.add_argument("--updates", type=int, default=None, help="update frames per depth")
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--runs", type=int, default=None, help="runs per depth (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-plots", action="store_true", help="accepted; draws nothing anyway")
    args = parser.parse_args(argv)
    updates = args.updates or (3_000 if args.quick else 120_000)
    runs = args.runs or (3 if args.quick else 5)
    with_peer = peer_available()
    print(f"book: our L2 book against python-kraken-sdk's on the same frames, {updates:,} "
          f"updates a depth")  # fmt: skip
    print(f"  {runs} runs a depth, both sides in each, who goes first alternating; python "
          f"{sys.version.split()[0]}, msgspec {version('msgspec')}, python-kraken-sdk "
          f"{version('python-kraken-sdk')}; {_load()} at the start", flush=True)  # fmt: skip
    if not with_peer:
        print("  python-kraken-sdk not installed (pip install -e '.[bench]'): ours only")
    header = (
        f"{'depth':>5} {'updates':>8} {'ours upd/s':>11} {'sdk upd/s':>10} {'ratio':>7} "
        f"{'target':>7} {'':>4} {'ours mism':>9} {'sdk mism':>8}   per-run ratios"
    )
    print(header)
    print("-" * len(header))
    problems: list[str] = []
    for depth in args.depths:
        result = measure(generate_stream(updates, depth, seed=args.seed), runs, with_peer=with_peer)
        _report(result, with_peer=with_peer)
        if result.ours_bad:
            problems.append(f"depth {depth}: our book refused or mismatched {result.ours_bad}")
        if result.peer_bad:
            problems.append(f"depth {depth}: the SDK mismatched {result.peer_bad} (the stream?)")
    print("  upd/s: median over the runs; ratio: median of the per-run ratios (ours / the SDK's")
    print(f"  updates per second, timed back to back on the same frames); {_load()} at the end")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    return 1 if problems else 0  # a MISS is a measurement; a mismatch is an error


if __name__ == "__main__":
    sys.exit(main())
