"""`benchmarks/book.py` in miniature: its generated stream replays with no mismatch, both sides."""

from __future__ import annotations

import pytest

from benchmarks.book import generate_stream, main, peer_available, run_ours, run_peer
from orchestrator.exchange.kraken.ws.book_store import BookStore


@pytest.mark.parametrize("depth", [10, 100])
def test_generated_stream_replays_through_our_book(depth: int) -> None:
    stream = generate_stream(300, depth, seed=7)
    assert len(stream.updates) == 300
    _, bad = run_ours(stream)
    assert bad == 0
    # Every frame verifies, and the stream is deterministic by seed.
    store = BookStore()
    store.add_book(stream.symbol, depth, stream.precision)
    events = [store.on_message(frame) for frame in [stream.snapshot, *stream.updates]]
    assert all(event.ok for frame_events in events for event in frame_events)
    assert generate_stream(300, depth, seed=7) == stream


def test_generated_stream_replays_through_the_peer() -> None:
    if not peer_available():
        pytest.skip("python-kraken-sdk is not installed (the bench extra)")
    _, mismatches = run_peer(generate_stream(200, 10, seed=3))
    assert mismatches == 0


def test_main_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--updates", "200", "--depths", "10"]) == 0
    out = capsys.readouterr().out
    assert "ours upd/s" in out
    assert "per-run ratios" in out
