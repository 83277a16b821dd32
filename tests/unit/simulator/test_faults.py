"""Fault injection: refusals that executed nothing, lost replies after the venue acted, bad input."""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.simulator.app import RunningSimulator

from .conftest import SimClient

ORDER = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "volume": "0.01",
    "price": "50000.0",
}


async def test_unavailable_executes_nothing(trader: SimClient) -> None:
    await trader.admin("faults", {"unavailable_rate": 1.0})
    assert await trader.error("AddOrder", **ORDER) == "EService:Unavailable"
    await trader.admin("faults", {"unavailable_rate": 0.0, "busy_rate": 1.0})
    assert await trader.error("AddOrder", **ORDER) == "EService:Busy"
    await trader.admin("faults", {"busy_rate": 0.0})
    assert (await trader.ok("OpenOrders"))["open"] == {}


async def test_lost_reply_after_the_venue_acted(trader: SimClient) -> None:
    await trader.admin("faults", {"lost_reply_next": 1})
    with pytest.raises(aiohttp.ClientError):
        await trader.call("AddOrder", {"cl_ord_id": "lost-1", **ORDER})
    opened = (await trader.ok("OpenOrders", cl_ord_id="lost-1"))["open"]
    assert len(opened) == 1  # the order exists: the client must reconcile, not resend
    state = await trader.admin("state")
    assert state["requests"]["fault:lost_reply"] == 1


async def test_latency_fault(trader: SimClient, sim: RunningSimulator) -> None:
    await trader.admin("faults", {"latency_s": 0.05})
    loop = __import__("asyncio").get_running_loop()
    start = loop.time()
    await trader.ok("Balance")
    assert loop.time() - start >= 0.05


async def test_bad_fault_settings_are_refused(trader: SimClient) -> None:
    reply = await trader.admin("faults", {"latency_s": "slow"})
    assert "error" in reply


async def test_malformed_bodies(
    trader: SimClient, session: aiohttp.ClientSession, sim: RunningSimulator
) -> None:
    url = sim.rest_url + "/0/private/AddOrder"
    headers = {"API-Key": trader.key.key, "API-Sign": "x", "Content-Type": "application/json"}
    async with session.post(url, data=b"{not json", headers=headers) as resp:
        assert (await resp.json())["error"][0].startswith("EGeneral:Invalid arguments")
    async with session.post(url, data=b"[1, 2]", headers=headers) as resp:
        assert (await resp.json())["error"][0].startswith("EGeneral:Invalid arguments")
    async with session.post(url, data=b"x" * (1024 * 1024), headers=headers) as resp:
        assert resp.status == 413
    async with session.post(
        url, data=b"\xff\xfe", headers={**headers, "Content-Type": "text/plain"}
    ) as resp:
        assert (await resp.json())["error"]


_KNOWN_PREFIXES = ("EGeneral:", "EOrder:", "EQuery:", "EAPI:", "EService:")
_text = st.one_of(
    st.none(), st.text(max_size=30), st.sampled_from(["0", "-1", "1e400", "NaN", "0.01", "50000.0"])
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.one_of(st.sampled_from(["XBTUSD", "ETH/USD", "BTC/USD", "SOLUSD"]), st.text(max_size=12)),
    side=st.sampled_from(["buy", "sell", "", "BUY"]),
    ordertype=st.sampled_from(["limit", "market", "iceberg", ""]),
    volume=_text,
    price=_text,
    extra=st.dictionaries(st.sampled_from(["userref", "cl_ord_id", "oflags", "timeinforce", "expiretm", "stptype"]),
                          st.text(max_size=20), max_size=3),
)  # fmt: skip
async def test_fuzz_add_order_never_breaks_the_venue(
    trader: SimClient, pair: str, side: str, ordertype: str, volume: str | None, price: str | None,
    extra: dict[str, str],
) -> None:  # fmt: skip
    params = {"pair": pair, "type": side, "ordertype": ordertype, **extra}
    if volume is not None:
        params["volume"] = volume
    if price is not None:
        params["price"] = price
    reply = await trader.call("AddOrder", params)
    if reply["error"]:
        assert reply["error"][0].startswith(_KNOWN_PREFIXES), reply
        assert reply["error"][0] != "EGeneral:Internal error"
    else:
        assert len(reply["result"]["txid"]) == 1
    await trader.sim.advance(10)  # keep the counters clear for the next example
    await trader.ok("CancelAll")
    await trader.sim.advance(60)


async def test_admin_fund_validates_its_input(trader: SimClient) -> None:
    assert "error" in await trader.admin(
        "fund", {"account": "mm-xbt", "asset": "NOPE", "amount": "1"}
    )
    assert "error" in await trader.admin(
        "fund", {"account": "mm-xbt", "asset": "USD", "amount": "lots"}
    )
    assert "error" in await trader.admin(
        "fund", {"account": "_market", "asset": "USD", "amount": "1"}
    )
    funded = await trader.admin("fund", {"account": "mm-xbt", "asset": "USD", "amount": "5"})
    assert funded["balance"] == "10005"
