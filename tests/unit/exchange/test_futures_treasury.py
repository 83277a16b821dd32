"""Futures transfers exactly once without sockets: a scripted futures venue behind `MockTransport`
executes a transfer, then loses, garbles or cuts the reply; the treasury reconciles from the
account log before any resend, resends only what the venue never got, and never resends on a
guess."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import AmbiguousOutcome, InvalidRequest
from orchestrator.exchange.kraken.common.key_lock import LocalKeyLock
from orchestrator.exchange.kraken.common.nonce import LocalNonce
from orchestrator.exchange.kraken.common.transport import HttpReply, HttpRequest, MockTransport
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.treasury import FuturesTreasury
from orchestrator.ratelimit.permits import Unlimited
from orchestrator.secrets import ApiCredentials, Secret

Fault = Literal["lost", "reset", "garbled", "never_got"]
ZERO = Decimal(0)
TIME = "2024-05-01T12:00:00.000Z"
ALIASES = {"zusd": "usd"}  # other names the venue accepts for an asset its log calls otherwise


class ScriptedFutures:
    """Just enough of Kraken futures: wallets and an account log per user, transfers, and
    `faults` by endpoint: what the next request suffers (`never_got`: lost before the venue saw
    it; the others after it acted)."""

    def __init__(self) -> None:
        self.wallets: dict[str, dict[str, dict[str, Decimal]]] = {
            "master": {"flex": {"usd": Decimal(1000)}, "cash": {}},
            "sub": {"flex": {}, "cash": {"usd": Decimal(50)}},
        }
        self.logs: dict[str, list[dict[str, Any]]] = {"master": [], "sub": []}
        self.faults: dict[str, list[Fault]] = {}
        self.sent: list[str] = []

    async def __call__(self, request: HttpRequest) -> HttpReply:
        url = urlsplit(request.url)
        endpoint = url.path.split("/v3/", 1)[1]
        params = dict(parse_qsl((request.body or b"").decode() or url.query))
        user = request.headers["APIKey"]
        self.sent.append(endpoint)
        faults = self.faults.get(endpoint)
        fault = faults.pop(0) if faults else None
        if fault == "never_got":
            raise aiohttp.ServerDisconnectedError
        if endpoint == "account-log":
            return self._log(user, params)
        if endpoint == "transfer/subaccount":
            self._move(params["fromUser"], params["fromAccount"], params["toUser"],
                       params["toAccount"], params, "subaccount transfer")  # fmt: skip
        else:
            self._move(user, params["fromAccount"], user, params["toAccount"], params, "transfer")
        if fault == "lost":
            raise TimeoutError
        if fault == "reset":
            raise aiohttp.ClientOSError(104, "Connection reset by peer")
        if fault == "garbled":
            return HttpReply(502, b"<html>502 Bad Gateway</html>")
        return HttpReply(200, json.dumps({"result": "success", "serverTime": TIME}).encode())

    def _move(
        self, source: str, source_wallet: str, target: str, target_wallet: str,
        params: dict[str, str], info: str,
    ) -> None:  # fmt: skip
        asset, amount = (
            ALIASES.get(params["unit"].lower(), params["unit"].lower()),
            Decimal(params["amount"]),
        )
        for user, wallet, change in ((source, source_wallet, -amount),
                                     (target, target_wallet, amount)):  # fmt: skip
            balances = self.wallets[user][wallet]
            old = balances.get(asset, ZERO)
            balances[asset] = old + change
            log = self.logs[user]
            log.append({"id": len(log) + 1, "booking_uid": f"b{len(log)}", "date": TIME,
                        "info": info, "asset": asset, "margin_account": wallet,
                        "old_balance": float(old), "new_balance": float(old + change)})  # fmt: skip

    def _log(self, user: str, params: dict[str, str]) -> HttpReply:
        log = [e for e in self.logs[user] if e["id"] >= int(params.get("from", "0"))]
        if params.get("sort", "desc") == "desc":
            log.reverse()
        body = {"accountUid": user, "logs": log[: int(params["count"])]}
        return HttpReply(200, json.dumps(body).encode())

    def trade(self, user: str) -> None:
        """A futures trade's log entry: not a transfer, so never taken for one."""
        log = self.logs[user]
        log.append({"id": len(log) + 1, "booking_uid": "t", "date": TIME, "info": "futures trade",
                    "asset": "usd", "margin_account": "flex", "old_balance": 1.0,
                    "new_balance": 2.0})  # fmt: skip


def futures_client(venue: ScriptedFutures, user: str) -> KrakenFutures:
    return KrakenFutures(MockTransport(venue), "https://futures.example", account=user,
                         credentials=ApiCredentials(key=Secret(user), secret=Secret("c2VjcmV0")),
                         nonce=LocalNonce(), key_lock=LocalKeyLock(), permits=Unlimited())  # fmt: skip


def treasury(
    venue: ScriptedFutures, *, logs: tuple[str, ...] = ("master", "sub")
) -> FuturesTreasury:
    master = futures_client(venue, "master")
    clients = {"master": master, "sub": futures_client(venue, "sub")}
    return FuturesTreasury(master, ManualClock(), {u: clients[u] for u in logs},
                           confirm_delay_s=0.0)  # fmt: skip


async def to_sub(t: FuturesTreasury, amount: str = "250.0001") -> None:
    await t.transfer_subaccount(from_user="master", to_user="sub", from_account="flex",
                                to_account="flex", unit="USD", amount=Decimal(amount))  # fmt: skip


@pytest.mark.parametrize("fault", ["lost", "reset", "garbled"])
async def test_a_transfer_whose_reply_is_lost_executes_once(fault: Fault) -> None:
    venue = ScriptedFutures()
    venue.faults = {"transfer/subaccount": [fault], "transfer": [fault]}
    t = treasury(venue)
    await to_sub(t)
    await t.transfer(from_account="flex", to_account="cash", unit="usd", amount=Decimal(10))
    assert venue.sent.count("transfer/subaccount") == 1
    assert venue.sent.count("transfer") == 1
    assert venue.wallets["master"] == {"flex": {"usd": Decimal("739.9999")},
                                       "cash": {"usd": Decimal(10)}}  # fmt: skip
    assert venue.wallets["sub"]["flex"] == {"usd": Decimal("250.0001")}


async def test_a_transfer_the_log_does_not_show_is_ambiguous_and_never_resent() -> None:
    """The venue never got it, but an empty log cannot prove that (it may lag): one send, then
    `AmbiguousOutcome` for the journal to settle later; nothing moved."""
    venue = ScriptedFutures()
    venue.faults = {"transfer/subaccount": ["never_got"]}
    t = treasury(venue)
    venue.trade("master")  # other entries in the log are not transfers
    with pytest.raises(AmbiguousOutcome, match="no transfer in the log yet"):
        await to_sub(t)
    assert venue.sent.count("transfer/subaccount") == 1
    assert venue.wallets["master"]["flex"] == {"usd": Decimal(1000)}


async def test_the_target_log_witnesses_when_the_source_has_none() -> None:
    """Sub to master with only the master's log: the credit on the master's side is the proof."""
    venue = ScriptedFutures()
    venue.faults = {"transfer/subaccount": ["lost"]}
    t = treasury(venue, logs=("master",))
    await t.transfer_subaccount(from_user="sub", to_user="master", from_account="cash",
                                to_account="flex", unit="usd", amount=Decimal(20))  # fmt: skip
    assert venue.sent.count("transfer/subaccount") == 1
    assert venue.wallets["sub"]["cash"] == {"usd": Decimal(30)}


async def test_a_stranger_transfer_in_the_log_is_never_guessed_at() -> None:
    """A new transfer entry that is not this one (here: ours never arrived, someone else moved
    money meanwhile) cannot tell us what happened, so nothing is resent."""
    venue = ScriptedFutures()
    venue.faults = {"transfer/subaccount": ["never_got"]}
    t = treasury(venue)
    real = venue.__call__

    async def with_stranger(request: HttpRequest) -> HttpReply:
        if request.url.endswith("/transfer/subaccount"):
            venue._move("master", "flex", "master", "cash", {"unit": "usd", "amount": "1"},
                        "transfer")  # fmt: skip
        return await real(request)

    t.master.transport = MockTransport(with_stranger)
    with pytest.raises(AmbiguousOutcome, match="other transfers"):
        await to_sub(t)
    assert venue.sent.count("transfer/subaccount") == 1


async def test_an_asset_named_otherwise_than_the_log_does_is_ambiguous_not_resent() -> None:
    """`ZUSD` is a name the venue may accept, but its log says `usd`: the entry is not provably
    ours, and resending could move the money twice."""
    venue = ScriptedFutures()
    venue.faults = {"transfer/subaccount": ["lost"]}
    t = treasury(venue)
    with pytest.raises(AmbiguousOutcome):
        await t.transfer_subaccount(from_user="master", to_user="sub", from_account="flex",
                                    to_account="flex", unit="ZUSD", amount=Decimal(5))  # fmt: skip
    assert venue.sent.count("transfer/subaccount") == 1


async def test_no_log_to_reconcile_with_refuses_before_sending() -> None:
    venue = ScriptedFutures()
    t = treasury(venue, logs=("master",))
    with pytest.raises(InvalidRequest, match="no account log"):
        await t.transfer_subaccount(from_user="sub", to_user="other", from_account="flex",
                                    to_account="flex", unit="usd", amount=Decimal(1))  # fmt: skip
    assert venue.sent == []
