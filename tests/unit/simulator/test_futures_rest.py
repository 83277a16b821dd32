"""The simulator's futures REST endpoints over HTTP: shapes, auth, budget, transfers, money."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import pytest
from yarl import URL

from orchestrator.clock import ManualClock
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.auth import futures_authent
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.futures_accounts import DEFAULT_HAIRCUTS, server_time
from orchestrator.simulator.futures_payloads import OTHER_HAIRCUT
from orchestrator.simulator.futures_rest import BUDGET_KEY, PREFIX, FuturesBudget, parse_amount
from orchestrator.simulator.settings import ALL_PERMISSIONS, AccountSeed, KeySeed, SimSettings
from orchestrator.simulator.venue import Venue
from tests.unit.simulator.test_futures_accounts import SEED

SECRET = base64.b64encode(bytes(range(64))).decode()
ALPHA_FLEX = {"XXBT": Decimal("0.1185308247"), "ZUSD": Decimal(5000), "ZEUR": Decimal("4540.5837")}
MASTER_FLEX = {"ZUSD": Decimal(10_000), "XXBT": Decimal("0.5"), "XETH": Decimal(2)}
PRICES = {"XBT": Decimal(60000), "USD": Decimal(1), "EUR": Decimal("1.1"), "ETH": Decimal(3000)}


def _account(
    name: str, role: Literal["master", "sub"], flex: dict[str, Decimal], *perms: str
) -> AccountSeed:
    key = KeySeed(key=f"{name}-key", secret=SECRET, permissions=perms or ALL_PERMISSIONS)
    return AccountSeed(name=name, role=role, futures_flex=flex, keys=(key,))


def settings() -> SimSettings:
    return SimSettings(
        accounts=(
            _account("master", "master", MASTER_FLEX),
            _account("alpha", "sub", ALPHA_FLEX),
            _account("beta", "sub", {}),
            _account("reader", "sub", {"ZUSD": Decimal(10)}, "query_funds"),
        )
    )


@dataclass
class Futures:
    """Signs futures calls like Kraken's clients (test-only; the venue's own `futures_authent`)."""

    session: aiohttp.ClientSession
    sim: RunningSimulator

    @property
    def venue(self) -> Venue:
        return self.sim.venue

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.sim.venue.clock, ManualClock)
        return self.sim.venue.clock

    async def send(
        self,
        method: str,
        path: str,
        *,
        as_: str = "master",
        query: str = "",
        body: str = "",
        nonce: str | None = None,
        authent: str | None = None,
        raw_body: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        status, _, data = await self.raw(
            method, PREFIX + path, as_=as_, query=query, body=body, nonce=nonce,
            authent=authent, raw_body=raw_body,
        )  # fmt: skip
        reply: dict[str, Any] = json.loads(data)
        return status, reply

    async def raw(
        self,
        method: str,
        full: str,
        *,
        as_: str = "master",
        query: str = "",
        body: str = "",
        nonce: str | None = None,
        authent: str | None = None,
        raw_body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, str, bytes]:
        """Status, content type and body of one signed call to a full path, whatever they are."""
        if authent is None:
            authent = futures_authent(SECRET, body or query, nonce or "", full)
        headers = {"APIKey": f"{as_}-key", "Authent": authent}
        if nonce is not None:
            headers["Nonce"] = nonce
        data = raw_body if raw_body is not None else body.encode()
        if data:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = URL(self.sim.rest_url + full + (f"?{query}" if query else ""), encoded=True)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.request(
            method, url, data=data or None, headers=headers, timeout=timeout
        ) as resp:
            return resp.status, resp.content_type, await resp.read()

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, reply = await self.send(method, path, **kwargs)
        assert status == 200, reply
        assert reply["result"] == "success", reply
        assert reply["serverTime"] == server_time(self.venue.clock.time())
        return reply

    async def error(self, method: str, path: str, status: int = 200, **kwargs: Any) -> str:
        got_status, reply = await self.send(method, path, **kwargs)
        assert got_status == status, reply
        assert reply["result"] == "error", reply
        assert set(reply) == {"result", "serverTime", "error"}, reply
        return str(reply["error"])

    async def transfer_sub(self, as_: str = "master", **params: str) -> dict[str, Any]:
        body = "&".join(f"{k}={v}" for k, v in params.items())
        return (await self.send("POST", "/transfer/subaccount", as_=as_, body=body))[1]


@contextlib.asynccontextmanager
async def open_futures() -> AsyncIterator[Futures]:
    """The futures domain (`settings()`) on a manual clock, and a client session to it."""
    async with (
        open_simulator(settings(), clock=ManualClock()) as sim,
        aiohttp.ClientSession() as session,
    ):
        yield Futures(session, sim)


@pytest.fixture
async def futures() -> AsyncIterator[Futures]:
    async with open_futures() as desk:
        desk.sim.venue.domain.accounts["alpha"].email = "alpha@example.com"
        yield desk


def wallet_totals(venue: Venue) -> dict[str, Decimal]:
    """Every futures wallet of every client account, summed per asset."""
    totals: dict[str, Decimal] = {}
    for account in venue.domain.clients():
        for wallet in account.futures.values():
            for asset, amount in wallet.items():
                totals[asset] = totals.get(asset, Decimal(0)) + amount
    return totals


def flex(venue: Venue, name: str) -> dict[str, Decimal]:
    return venue.domain.accounts[name].futures["flex"]


def cash(venue: Venue, name: str) -> dict[str, Decimal]:
    return venue.domain.accounts[name].futures["cash"]


def uid(venue: Venue, name: str) -> str:
    return venue.domain.accounts[name].futures_uid


# --- GET /accounts ---------------------------------------------------------------------------------
async def test_accounts_has_the_seed_004_shape(futures: Futures) -> None:
    reply = await futures.ok("GET", "/accounts", as_="alpha")
    assert set(reply) == set(SEED)
    ours, seed = reply["accounts"], SEED["accounts"]
    assert set(ours) == set(seed)
    for wallet in ("cash", "flex", "fi_xbtusd"):
        assert set(ours[wallet]) == set(seed[wallet]), wallet
        assert ours[wallet]["type"] == seed[wallet]["type"]
    for sub in ("auxiliary", "marginRequirements", "triggerEstimates"):
        assert set(ours["fi_xbtusd"][sub]) == set(seed["fi_xbtusd"][sub])
        assert all(v == 0 for v in ours["fi_xbtusd"][sub].values())
    assert set(ours["flex"]["currencies"]) == {"XBT", "USD", "EUR"}
    for figures in ours["flex"]["currencies"].values():
        assert set(figures) == set(seed["flex"]["currencies"]["XBT"])


def _expected_flex(quantities: dict[str, Decimal]) -> dict[str, float]:
    """Kraken's formulas: value = q x price; collateral = value x (1 - haircut); summed."""
    value = sum((q * PRICES[a] for a, q in quantities.items()), Decimal(0))
    collateral = sum(
        (
            q * PRICES[a] * (1 - DEFAULT_HAIRCUTS.get(a, OTHER_HAIRCUT))
            for a, q in quantities.items()
        ),
        Decimal(0),
    )
    return {"balanceValue": float(value), "collateralValue": float(collateral)}


@pytest.mark.parametrize(
    ("account", "quantities"),
    [
        (
            "alpha",
            {"XBT": ALPHA_FLEX["XXBT"], "USD": ALPHA_FLEX["ZUSD"], "EUR": ALPHA_FLEX["ZEUR"]},
        ),
        ("master", {"USD": MASTER_FLEX["ZUSD"], "XBT": MASTER_FLEX["XXBT"], "ETH": Decimal(2)}),
    ],
)
async def test_flex_figures_follow_the_seed_003_formulas(
    futures: Futures, account: str, quantities: dict[str, Decimal]
) -> None:
    got = (await futures.ok("GET", "/accounts", as_=account))["accounts"]["flex"]
    for name, qty in quantities.items():
        haircut = DEFAULT_HAIRCUTS.get(name, OTHER_HAIRCUT)
        figures = got["currencies"][name]
        assert figures["quantity"] == float(qty)
        assert figures["available"] == float(qty)
        assert figures["value"] == pytest.approx(float(qty * PRICES[name]))
        assert figures["collateral"] == pytest.approx(float(qty * PRICES[name] * (1 - haircut)))
    expected = _expected_flex(quantities)
    assert got["balanceValue"] == pytest.approx(expected["balanceValue"])
    assert got["portfolioValue"] == pytest.approx(expected["balanceValue"])
    for field in ("collateralValue", "marginEquity", "availableMargin"):
        assert got[field] == pytest.approx(expected["collateralValue"]), field
    for field in ("initialMargin", "maintenanceMargin", "pnl", "totalUnrealized"):
        assert got[field] == 0, field


async def test_cash_balances_are_lowercase_decimal_strings(futures: Futures) -> None:
    assert (await futures.ok("GET", "/accounts"))["accounts"]["cash"]["balances"] == {}
    body = "fromAccount=flex&toAccount=cash&unit=xbt&amount=0.1234567891"
    await futures.ok("POST", "/transfer", body=body)
    balances = (await futures.ok("GET", "/accounts"))["accounts"]["cash"]["balances"]
    assert balances == {"xbt": "0.1234567891"}


async def test_a_broken_wallet_answers_server_error_and_the_server_lives_on(
    futures: Futures,
) -> None:
    flex(futures.venue, "beta")["NOPE"] = Decimal(1)
    assert await futures.error("GET", "/accounts", as_="beta") == "Server Error"
    await futures.ok("GET", "/accounts", as_="alpha")
    # The planted bug is recorded (a test meeting one by accident fails at the simulator's exit).
    assert [e.split(":")[0] for e in futures.venue.internal_errors] == ["futures_failed"]
    futures.venue.internal_errors.clear()


# --- authentication --------------------------------------------------------------------------------
def _unstripped_authent(path: str) -> str:
    inner = hashlib.sha256(path.encode()).digest()
    return base64.b64encode(
        hmac.new(base64.b64decode(SECRET), inner, hashlib.sha512).digest()
    ).decode()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"as_": "nobody"},
        {"authent": base64.b64encode(b"x" * 64).decode()},
        {"authent": ""},
        {"authent": _unstripped_authent(f"{PREFIX}/accounts")},
        # Signed over the decoded query, sent encoded.
        {"query": "greeting=hello%20world", "authent": futures_authent(
            SECRET, "greeting=hello world", "", "/api/v3/accounts")},
    ],
    ids=["unknown-key", "bad-signature", "empty-authent", "path-with-prefix", "decoded-query"],
)  # fmt: skip
async def test_authentication_failures(futures: Futures, kwargs: dict[str, Any]) -> None:
    assert await futures.error("GET", "/accounts", **kwargs) == "authenticationError"
    assert futures.venue.request_counts["error:authenticationError"] == 1


async def test_post_data_is_the_encoded_query_or_body_as_sent(futures: Futures) -> None:
    await futures.ok("GET", "/accounts", query="greeting=hello%20world")
    await futures.ok("POST", "/transfer", body="fromAccount=flex&toAccount=cash&unit=USD&amount=1")
    assert cash(futures.venue, "master") == {"ZUSD": Decimal(1)}


async def test_nonces(futures: Futures) -> None:
    await futures.ok("GET", "/accounts", nonce="1000")
    assert await futures.error("GET", "/accounts", nonce="999") == "nonceBelowThreshold"
    assert await futures.error("GET", "/accounts", nonce="1000") == "nonceDuplicate"
    assert await futures.error("GET", "/accounts", nonce="soon") == "invalidArgument"
    await futures.ok("GET", "/accounts", nonce="1001")
    await futures.ok("GET", "/accounts")  # no Nonce header: no nonce check


async def test_permissions_and_master_only_calls(futures: Futures) -> None:
    await futures.ok("GET", "/accounts", as_="reader")
    body = "fromAccount=flex&toAccount=cash&unit=usd&amount=1"
    assert (
        await futures.error("POST", "/transfer", as_="reader", body=body) == "authenticationError"
    )
    for method, path, query in [
        ("GET", "/subaccounts", ""),
        ("GET", f"/subaccount/{uid(futures.venue, 'beta')}/trading-enabled", ""),
        (
            "PUT",
            f"/subaccount/{uid(futures.venue, 'beta')}/trading-enabled",
            "tradingEnabled=false",
        ),
    ]:
        assert await futures.error(method, path, as_="alpha", query=query) == "authenticationError"
    reply = await futures.transfer_sub(
        as_="alpha", fromUser="alpha", toUser="beta", fromAccount="flex", toAccount="flex",
        unit="usd", amount="1",
    )  # fmt: skip
    assert reply["error"] == "authenticationError"
    assert futures.venue.domain.accounts["beta"].trading_enabled


# --- unknown and malformed -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/accounts"), ("DELETE", "/transfer"), ("GET", "/subaccount/x")],
)
async def test_unknown_endpoints_get_the_not_found_envelope(
    futures: Futures, method: str, path: str
) -> None:
    assert await futures.error(method, path, status=404) == "notFound"


async def test_a_body_that_is_not_utf8_is_an_invalid_argument(futures: Futures) -> None:
    raw = b"fromAccount=\xff\xfe"
    assert await futures.error("POST", "/transfer", raw_body=raw) == "invalidArgument"


# --- GET /subaccounts ------------------------------------------------------------------------------
async def test_subaccounts_lists_every_sub_account(futures: Futures) -> None:
    await futures.ok(
        "POST",
        "/transfer",
        as_="alpha",
        body="fromAccount=flex&toAccount=cash&unit=eur&amount=40.5",
    )
    reply = await futures.ok("GET", "/subaccounts")
    venue = futures.venue
    assert set(reply) == {"result", "serverTime", "masterAccountUid", "subaccounts"}
    assert reply["masterAccountUid"] == uid(venue, "master")
    subs = {s["accountUid"]: s for s in reply["subaccounts"]}
    assert set(subs) == {uid(venue, n) for n in ("alpha", "beta", "reader")}
    alpha = subs[uid(venue, "alpha")]
    assert set(alpha) == {
        "accountUid",
        "email",
        "fullName",
        "holdingAccounts",
        "futuresAccounts",
        "flexAccount",
    }
    assert (alpha["email"], alpha["fullName"]) == ("alpha@example.com", "alpha")
    holdings = {h["currency"]: h["amount"] for h in alpha["holdingAccounts"]}
    assert holdings == {"xbt": 0, "eth": 0, "sol": 0, "usd": 0, "eur": 40.5}
    assert alpha["futuresAccounts"] == [{"name": "f-xbt:usd", "availableMargin": 0}]
    flex_seed = SEED["accounts"]["flex"]
    assert set(alpha["flexAccount"]) == set(flex_seed) - {"type"}
    currencies = {c["currency"]: c for c in alpha["flexAccount"]["currencies"]}
    assert set(currencies) == {"xbt", "usd", "eur"}
    assert set(currencies["eur"]) == {"currency", *flex_seed["currencies"]["EUR"]}
    assert currencies["eur"]["quantity"] == float(ALPHA_FLEX["ZEUR"] - Decimal("40.5"))
    accounts = (await futures.ok("GET", "/accounts", as_="alpha"))["accounts"]["flex"]
    assert alpha["flexAccount"]["collateralValue"] == accounts["collateralValue"]


# --- trading-enabled -------------------------------------------------------------------------------
async def test_trading_enabled_read_and_switch(futures: Futures) -> None:
    path = f"/subaccount/{uid(futures.venue, 'beta')}/trading-enabled"
    reply = await futures.ok("GET", path)
    assert reply["tradingEnabled"] is True
    reply = await futures.ok("PUT", path, query="tradingEnabled=false")
    assert reply["tradingEnabled"] is False
    assert not futures.venue.domain.accounts["beta"].trading_enabled
    assert (await futures.ok("GET", path))["tradingEnabled"] is False
    assert (await futures.ok("PUT", path, query="tradingEnabled=TRUE"))["tradingEnabled"] is True
    assert futures.venue.domain.accounts["beta"].trading_enabled


async def test_trading_enabled_errors(futures: Futures) -> None:
    master_path = f"/subaccount/{uid(futures.venue, 'master')}/trading-enabled"
    for path in ("/subaccount/00000000-0000-4000-a000-000000000000/trading-enabled", master_path):
        assert await futures.error("GET", path, status=404) == "notFound"
        assert (
            await futures.error("PUT", path, status=404, query="tradingEnabled=true") == "notFound"
        )
    path = f"/subaccount/{uid(futures.venue, 'beta')}/trading-enabled"
    assert await futures.error("PUT", path) == "requiredArgumentMissing"
    assert await futures.error("PUT", path, query="tradingEnabled=") == "requiredArgumentMissing"
    assert await futures.error("PUT", path, query="tradingEnabled=maybe") == "invalidArgument"
    assert futures.venue.domain.accounts["beta"].trading_enabled


# --- transfers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("by_uid", [False, True])
async def test_transfer_subaccount_master_to_sub(futures: Futures, by_uid: bool) -> None:
    venue = futures.venue
    name = uid(venue, "beta") if by_uid else "beta"
    reply = await futures.transfer_sub(
        fromUser="master", toUser=name, fromAccount="flex", toAccount="cash", unit="xbt",
        amount="0.125",
    )  # fmt: skip
    assert reply["result"] == "success", reply
    assert flex(venue, "master")["XXBT"] == Decimal("0.375")
    assert cash(venue, "beta") == {"XXBT": Decimal("0.125")}


async def test_transfer_subaccount_between_subs_by_email_and_uid(futures: Futures) -> None:
    venue = futures.venue
    reply = await futures.transfer_sub(
        fromUser="alpha@example.com", toUser=uid(venue, "beta"), fromAccount="flex",
        toAccount="flex", unit="USD", amount="4999.9999",
    )  # fmt: skip
    assert reply["result"] == "success", reply
    assert flex(venue, "alpha")["ZUSD"] == Decimal("0.0001")
    assert flex(venue, "beta")["ZUSD"] == Decimal("4999.9999")
    balances = (await futures.ok("GET", "/accounts", as_="beta"))["accounts"]["flex"]
    assert balances["currencies"]["USD"]["quantity"] == 4999.9999


_GOOD = {"fromUser": "master", "toUser": "alpha", "fromAccount": "flex", "toAccount": "flex",
         "unit": "usd", "amount": "5"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"unit": "doge"}, "invalidUnit"),
        ({"amount": "0"}, "invalidAmount"),
        ({"amount": "-1"}, "invalidAmount"),
        ({"amount": "abc"}, "invalidAmount"),
        ({"amount": "NaN"}, "invalidAmount"),
        ({"amount": "Infinity"}, "invalidAmount"),
        ({"amount": "1e400"}, "invalidAmount"),
        ({"amount": "0.00001"}, "invalidAmount"),  # USD holds 4 decimals
        ({"amount": "1" * 80}, "invalidAmount"),
        ({"amount": "10000.0001"}, "insufficientFunds"),
        ({"unit": "sol", "amount": "1"}, "insufficientFunds"),
        ({"toUser": "nobody"}, "invalidAccount"),
        ({"toUser": "_market"}, "invalidAccount"),
        ({"fromAccount": "fi_xbtusd"}, "invalidAccount"),
        ({"toAccount": "spot"}, "invalidAccount"),
        ({"toUser": "master"}, "invalidAccount"),  # the same wallet
        ({"amount": ""}, "requiredArgumentMissing"),
        ({"fromUser": None}, "requiredArgumentMissing"),
        ({"unit": None}, "requiredArgumentMissing"),
    ],
)
async def test_transfer_subaccount_errors_move_nothing(
    futures: Futures, change: dict[str, str | None], code: str
) -> None:
    before = {
        n: (dict(flex(futures.venue, n)), dict(cash(futures.venue, n))) for n in ("master", "alpha")
    }
    params = {k: v for k, v in {**_GOOD, **change}.items() if v is not None}
    reply = await futures.transfer_sub(**params)
    assert reply == {"result": "error", "serverTime": reply["serverTime"], "error": code}
    after = {
        n: (dict(flex(futures.venue, n)), dict(cash(futures.venue, n))) for n in ("master", "alpha")
    }
    assert after == before


async def test_transfer_between_own_wallets_and_its_errors(futures: Futures) -> None:
    venue = futures.venue

    async def transfer(**params: str) -> dict[str, Any]:
        body = "&".join(f"{k}={v}" for k, v in params.items())
        return (await futures.send("POST", "/transfer", as_="alpha", body=body))[1]

    good = {"fromAccount": "flex", "toAccount": "cash", "unit": "xbt", "amount": "0.1"}
    assert (await transfer(**good))["result"] == "success"
    assert (
        await transfer(**{**good, "fromAccount": "cash", "toAccount": "flex", "amount": "0.05"})
    )["result"] == "success"
    assert flex(venue, "alpha")["XXBT"] == Decimal("0.0685308247")
    assert cash(venue, "alpha")["XXBT"] == Decimal("0.05")
    for change, code in [
        ({"amount": "0.0685308248"}, "insufficientFunds"),
        ({"toAccount": "flex"}, "invalidAccount"),
        ({"toAccount": "fi_xbtusd"}, "invalidAccount"),
        ({"unit": "xrp"}, "invalidUnit"),
        ({"amount": "-0.1"}, "invalidAmount"),
        ({"amount": "0.00000000001"}, "invalidAmount"),  # XBT holds 10 decimals
    ]:
        assert (await transfer(**{**good, **change}))["error"] == code, change
    assert (await transfer(fromAccount="flex", toAccount="cash", unit="xbt"))[
        "error"
    ] == "requiredArgumentMissing"
    assert flex(venue, "alpha")["XXBT"] == Decimal("0.0685308247")


async def test_money_is_conserved_across_random_transfers(futures: Futures) -> None:
    venue = futures.venue
    rng = random.Random(7)
    totals = wallet_totals(venue)
    users = [
        "master",
        "alpha",
        "beta",
        "alpha@example.com",
        uid(venue, "beta"),
        uid(venue, "master"),
    ]
    outcomes: dict[str, int] = {}
    for _ in range(120):
        reply = await futures.transfer_sub(
            fromUser=rng.choice(users), toUser=rng.choice(users),
            fromAccount=rng.choice(["cash", "flex"]), toAccount=rng.choice(["cash", "flex"]),
            unit=rng.choice(["xbt", "usd", "eur", "eth"]),
            amount=rng.choice(["0.0001", "0.01", "1", "37.5", "1000", "-1"]),
        )  # fmt: skip
        outcome = reply.get("error", "success")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert wallet_totals(venue) == totals
        await futures.clock.advance(1.0)  # keep clear of the rate budget
    assert outcomes["success"] >= 10
    assert {"insufficientFunds", "invalidAmount"} <= set(outcomes)
    for account in venue.domain.clients():
        for wallet in account.futures.values():
            assert all(amount >= 0 for amount in wallet.values())


# --- the /derivatives budget -----------------------------------------------------------------------
async def test_budget_refuses_over_500_per_10_s(futures: Futures) -> None:
    body = "fromAccount=flex&toAccount=cash&unit=usd&amount=1"
    for _ in range(50):  # 50 x 10 = 500: the whole budget
        await futures.ok("POST", "/transfer", body=body)
    budget = futures.sim.app[BUDGET_KEY]
    assert budget.level("master-key", futures.clock.time()) == 500
    assert await futures.error("POST", "/transfer", body=body) == "apiLimitExceeded"
    assert await futures.error("GET", "/accounts") == "apiLimitExceeded"
    assert cash(futures.venue, "master") == {"ZUSD": Decimal(50)}  # the refused one moved nothing
    await futures.ok("GET", "/accounts", as_="alpha")  # per key
    await futures.clock.advance(0.2)  # 50/s x 0.2 s = room for one transfer
    await futures.ok("POST", "/transfer", body=body)
    assert await futures.error("GET", "/accounts") == "apiLimitExceeded"
    await futures.clock.advance(10.0)
    await futures.ok("GET", "/accounts")
    assert budget.refusals == 3
    assert futures.venue.request_counts["error:apiLimitExceeded"] == 3


async def test_failed_auth_costs_nothing_and_invalid_calls_cost_their_price(
    futures: Futures,
) -> None:
    budget = futures.sim.app[BUDGET_KEY]
    await futures.error("GET", "/accounts", authent="bad")
    assert budget.level("master-key", futures.clock.time()) == 0
    await futures.error("POST", "/transfer", body="unit=usd")
    await futures.ok("GET", "/subaccounts")
    await futures.ok("GET", f"/subaccount/{uid(futures.venue, 'beta')}/trading-enabled")
    assert budget.level("master-key", futures.clock.time()) == 10 + 2 + 2


def test_budget_counter_is_500_decaying_50_per_s() -> None:
    budget = FuturesBudget()
    for _ in range(250):
        budget.charge("k", 2, 100.0)
    with pytest.raises(KrakenError, match="apiLimitExceeded"):
        budget.charge("k", 2, 100.0)
    budget.charge("k", 2, 100.04)
    assert budget.level("k", 110.04) == 0
    assert budget.level("other", 100.0) == 0


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [("1", 4, Decimal(1)), ("0.0001", 4, Decimal("0.0001")), ("1e2", 4, Decimal(100)),
     (".5", 1, Decimal("0.5")), ("1.50", 1, Decimal("1.5"))],
)  # fmt: skip
def test_parse_amount(text: str, decimals: int, expected: Decimal) -> None:
    assert parse_amount(text, decimals) == expected


async def test_parameters_in_both_query_and_body_are_refused(futures: Futures) -> None:
    """Only the body is signed then: a query parameter beside it could be forged."""
    body = "fromAccount=flex&toAccount=cash&unit=USD&amount=1"
    assert (
        await futures.error("POST", "/transfer", body=body, query="amount=1000")
        == "invalidArgument"
    )
    assert cash(futures.venue, "master") == {}


async def test_faults_apply_to_futures_too(futures: Futures) -> None:
    body = "fromAccount=flex&toAccount=cash&unit=USD&amount=1"
    futures.venue.settings.faults.unavailable_rate = 1.0
    assert await futures.error("POST", "/transfer", body=body) == "Unavailable"
    assert cash(futures.venue, "master") == {}  # refused before acting
    futures.venue.settings.faults.unavailable_rate = 0.0
    futures.venue.settings.faults.lost_reply_next = 1
    with pytest.raises(aiohttp.ClientError):
        await futures.send("POST", "/transfer", body=body)
    assert cash(futures.venue, "master") == {"ZUSD": Decimal(1)}  # acted, reply lost
