"""`benchmarks/strategies_per_process.py` in miniature: two market makers in one service for a
3 s window, the simulator in its own process, a real redis-server. The loop-lag monitor sampled
the window, the tick-to-order probe saw the first quotes, and both strategies traded at the
venue with no rate-limit rejection and a clean stop."""

from __future__ import annotations

from pathlib import Path

from benchmarks._spp_run import RunSettings, measure

WINDOW_S = 3.0


async def test_two_market_makers_trade_and_the_loop_is_sampled(
    redis_server: str, tmp_path: Path
) -> None:
    run = RunSettings(window_s=WINDOW_S, warmup_s=0.5, step_s=0.25, lag_interval_s=0.05)
    result = await measure(2, run, redis_url=redis_server, workdir=tmp_path)
    assert result.lag_samples >= WINDOW_S / 0.075  # the slowest jittered interval: 75 ms
    assert 0 <= result.lag_p50_s <= result.lag_p99_s <= result.lag_max_s
    assert result.quoting == 2  # both had an acknowledged order when the window opened
    assert result.traded == 2  # both accounts hold orders at the venue
    assert result.tick_samples_all >= 2  # each strategy's first quotes, answering a book
    assert result.rejections == 0
    assert result.exit_code == 0  # every order cancelled at the stop
    assert 0 < result.stats.cpu_per_s < 2
