"""The service as a desk runs it: `orchestrator run` in its own process, a real redis-server, the
simulator as the venue, SIGTERM to stop it.

Four market makers trade for 60 s on four sub-accounts over the private WebSocket; a fifth
strategy raises in `on_book` after 10 s; three more cannot start (an unknown module, a bad
parameter, a pair the venue does not list). What is checked is read from the venue (the
simulator in this process) and from Redis, never from the service's own claims alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from orchestrator.testing.service import toml_value

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 60.0
STOP_BOUND_S = 10.0
FUNDS = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20), "SOL": Decimal(500)}
MAKERS = {  # strategy -> (account, pair, params)
    "mm0": ("s0", "XBT/USD", {"size": "0.01", "spread_bps": 1, "requote_bps": 1}),
    "mm1": ("s1", "ETH/USD", {"size": "0.2", "spread_bps": 1, "requote_bps": 1}),
    "mm2": ("s2", "SOL/USD", {"size": "2", "spread_bps": 2, "requote_bps": 1}),
    "mm3": ("s3", "XBT/USD", {"size": "0.02", "spread_bps": 2, "requote_bps": 1}),
}


def strategy_block(name: str, module: str, account: str, pair: str, params: dict[str, Any]) -> str:
    return (f"[[strategies]]\nname = \"{name}\"\nmodule = \"{module}\"\naccount = \"{account}\"\n"
            f"pairs = [\"{pair}\"]\nparams = {toml_value(params)}\n\n")  # fmt: skip


def write_config(tmp: Path, sim: RunningSimulator, redis_url: str, namespace: str) -> Path:
    lines = [
        'log_level = "info"\n',
        f'[redis]\nurl = "{redis_url}"\nnamespace = "{namespace}"\n',
        f'[venue]\nkind = "simulator"\nembedded = false\nrest_url = "{sim.rest_url}"\n'
        f'ws_public_url = "{sim.ws_public_url}"\nws_private_url = "{sim.ws_private_url}"\n'
        f'futures_url = "{sim.futures_url}"\n',
        "[service]\nstatus_interval_s = 1.0\n",
        "[metrics]\nport = 0\n",
        "[rebalancer]\nenabled = false\n",
    ]
    for account in sim.venue.settings.accounts:
        key = sim.venue.keys_of(account.name)[0]
        for what, value in (("key", key.key), ("secret", key.secret_b64)):
            path = tmp / f"{account.name}.{what}"
            path.write_text(value, encoding="utf-8")
            path.chmod(0o600)
        lines.append(f'[[accounts]]\nname = "{account.name}"\nrole = "{account.role}"\n'
                     f'api_key = "file:{tmp}/{account.name}.key"\n'
                     f'api_secret = "file:{tmp}/{account.name}.secret"\n')  # fmt: skip
    blocks = [strategy_block(n, "strategies.market_maker", a, p, params)
              for n, (a, p, params) in MAKERS.items()]  # fmt: skip
    blocks.append(strategy_block("bad-apple", "tests.fixtures.strategies.raises_later", "s4",
                                 "XBT/USD", {"fail_after_s": 10}))  # fmt: skip
    blocks.append(strategy_block("no-module", "strategies.not_a_module", "s5", "XBT/USD", {}))
    blocks.append(strategy_block("bad-param", "strategies.market_maker", "s6", "XBT/USD",
                                 {"size": "0.01", "sprad_bps": 3}))  # fmt: skip
    blocks.append(strategy_block("no-pair", "strategies.market_maker", "s7", "DOGE/EUR",
                                 {"size": "1"}))  # fmt: skip
    path = tmp / "service.toml"
    path.write_text("\n".join(lines) + "\n" + "".join(blocks), encoding="utf-8")
    return path


def account_trades(sim: RunningSimulator, account: str) -> dict[str, Decimal]:
    """Per asset, the net change the account's trade ledger entries made (fees included)."""
    net: dict[str, Decimal] = {}
    for entry in sim.venue.domain.accounts[account].ledger:
        if entry.type == "trade":
            net[entry.asset] = net.get(entry.asset, Decimal(0)) + entry.amount - entry.fee
    return net


async def test_the_service_trades_contains_a_failure_and_stops_cleanly(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    settings = SimSettings(accounts=domain_accounts(8, FUNDS))
    async with open_simulator(settings) as sim:
        config = write_config(tmp_path, sim, redis_server, keys.namespace)
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "run", "--config", str(config),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await asyncio.sleep(RUN_S)
            assert proc.returncode is None, (await proc.stderr.read()).decode()[-3000:]  # type: ignore[union-attr]
            proc.send_signal(signal.SIGTERM)
            asked_s = time.monotonic()
            out, err = await asyncio.wait_for(proc.communicate(), timeout=STOP_BOUND_S + 5)
            stopped_in_s = time.monotonic() - asked_s
            exit_code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        log_tail = err.decode()[-4000:]
        assert exit_code == 0, log_tail
        assert stopped_in_s <= STOP_BOUND_S

        engine = sim.venue.engine
        counts = sim.venue.request_counts
        # Orders went over the WebSocket: placed, amended, some filled.
        assert counts.get("ws:add_order", 0) > 20, counts
        assert counts.get("ws:amend_order", 0) > 5, counts
        assert not [c for c in counts if "Rate limit" in c], counts
        assert sim.venue.limits.rejections() == {}
        for account in [a for a, _, _ in MAKERS.values()] + ["s4"]:
            assert engine.open_orders(account) == {}, f"{account} left orders open"

        redis = aioredis.Redis.from_url(redis_server, decode_responses=True)
        try:
            raw = cast(dict[str, str], await redis.hgetall(keys.strategy_status()))
            events = cast(list[tuple[str, dict[str, str]]],
                          await redis.xrange(keys.service_events()))  # fmt: skip
        finally:
            await redis.aclose()
        status = {name: json.loads(doc) for name, doc in raw.items()}
        fills = 0
        for name, (account, pair, _) in MAKERS.items():
            record = status[name]
            assert record["state"] == "stopped", record
            fills += record["fills"]
            net = account_trades(sim, account)
            instrument_base, instrument_quote = {"XBT/USD": ("XXBT", "ZUSD"),
                                                 "ETH/USD": ("XETH", "ZUSD"),
                                                 "SOL/USD": ("SOL", "ZUSD")}[pair]  # fmt: skip
            position = record["positions"].get(pair)
            base = net.get(instrument_base, Decimal(0))
            quote = net.get(instrument_quote, Decimal(0))
            if position is None:
                assert base == quote == 0, (name, net)
                continue
            assert Decimal(position["qty"]) == base, (name, position, net)
            mark = Decimal(position["mark"]) if position["mark"] is not None else None
            if mark is not None:  # PnL = cash the ledger moved + the position at the mark
                pnl = (Decimal(position["realized_pnl"]) + Decimal(position["unrealized_pnl"])
                       - Decimal(position["fees"]))  # fmt: skip
                assert pnl == quote + base * mark, (name, position, net)
        assert fills > 0, status

        # Containment: the failing strategy alone stopped, its orders gone within 1 s.
        assert status["bad-apple"]["state"] == "failed"
        failed = [fields for _, fields in events]
        [failure] = [e for e in failed if e["kind"] == "strategy_failed"]
        assert failure["strategy"] == "bad-apple"
        failed_s = float(failure["failed_s"])
        closing = [o.closed_s for o in engine.orders.values() if o.account == "s4"]
        closed = [c for c in closing if c is not None]
        assert closed, "the failing strategy had orders"
        assert len(closed) == len(closing), "every one of them is closed"
        assert all(c - failed_s <= 1.0 for c in closed), (failed_s, closed)
        # The others' order flow went on: orders placed, amended or filled after the failure.
        later = Counter(o.account for o in engine.orders.values()
                        if o.account in ("s0", "s1", "s2", "s3") and o.changed_s > failed_s + 1)  # fmt: skip
        assert all(later[a] > 0 for a in ("s0", "s1", "s2", "s3")), (later, status)

        # Three strategies could not start, each naming what is wrong; the rest ran.
        assert status["no-module"]["state"] == "not_started"
        assert "strategies[5].module" in status["no-module"]["failure"]
        assert "strategies[6].params.sprad_bps" in status["bad-param"]["failure"]
        assert "strategies[7].pairs[0]" in status["no-pair"]["failure"]
        assert "stopped: 0 open orders left" in out.decode()
        print(f"service e2e: {counts.get('ws:add_order')} WS adds and "
              f"{counts.get('ws:batch_add', 0)} batch_adds, "
              f"{counts.get('ws:amend_order')} WS amends, {fills} fills, stopped in "
              f"{stopped_in_s:.2f} s, failing strategy's orders closed "
              f"{max(closed) - failed_s:.3f} s after its failure")  # fmt: skip
