"""The rebalancer wired into the service: its journal, executor and each cycle's planner.

    rebalancer = open_rebalancer(config, domain, redis=redis, keys=keys, clock=clock,
                                 registry=registry, events=events, market=hub)

Only this module holds the master's `Treasury` (and the futures one): strategies never see it.
Each cycle's plan is the pure plans of plan.py (bands) and sweeps.py (withdrawals, margin
top-ups) over what the journal and the venue say now:
- what moved today (the daily caps) and when each band was first seen (its ramp), from Redis;
- USD prices from the market-data hub's books (mid of `<asset>/USD`; USD is 1), for the
  tier's daily withdrawal limit and futures collateral: an asset without a book is not
  withdrawn this cycle (logged), the band transfers go on;
- each watched futures flex wallet, one `GET /accounts` per account (through the limiter).
Transfer precision per asset (Decision, Kraken's `Assets` call is not used): the volume
decimals of a pair the asset is the base of, else the price decimals of the pairs it quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Final, Protocol

import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.config import Config
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.account import KrakenDomain
from orchestrator.exchange.kraken.futures.schemas import FlexAccount
from orchestrator.exchange.protocol import Balance
from orchestrator.logs import get_logger
from orchestrator.metrics import Registry
from orchestrator.rebalancer.component import Rebalancer
from orchestrator.rebalancer.executor import FUTURES_WALLET, TransferExecutor
from orchestrator.rebalancer.journal import TransferJournal
from orchestrator.rebalancer.plan import Band, hub_account, plan_cycle
from orchestrator.rebalancer.portfolio import MissingPrice, Portfolio, portfolio_from
from orchestrator.rebalancer.sweeps import plan_top_ups, plan_withdrawals
from orchestrator.rebalancer.transfers import (
    PlannedTransfer,
    TransferRecord,
    tier_withdrawal_limit_usd,
    utc_day,
)
from orchestrator.service_events import ServiceEvents
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys
from orchestrator.strategy import BookView

log = get_logger(__name__)

USD_ASSETS: Final = frozenset({"ZUSD", "USD"})


class Books(Protocol):
    """What the planner needs of the market-data hub."""

    def book(self, pair: str) -> BookView | None: ...


def asset_decimals(instruments: Instruments) -> dict[str, int]:
    base: dict[str, int] = {}
    quote: dict[str, int] = {}
    for instrument in instruments:
        base[instrument.base] = max(base.get(instrument.base, 0), instrument.qty_decimals)
        quote[instrument.quote] = max(quote.get(instrument.quote, 0), instrument.price_decimals)
    return quote | base


def usd_prices(instruments: Instruments, books: Books) -> dict[str, Decimal]:
    """asset -> USD from the mid of each `<asset>/USD` book the hub keeps."""
    prices = dict.fromkeys(USD_ASSETS, Decimal(1))
    for instrument in instruments:
        if instrument.quote != "ZUSD":
            continue
        book = books.book(instrument.wsname)
        mid = None if book is None else book.mid
        if mid is not None:
            prices[instrument.base] = mid
    return prices


class CyclePlanner:
    """`Planner` of the component: reads what the pure plans need, then calls them."""

    def __init__(
        self, config: Config, domain: KrakenDomain, journal: TransferJournal, *,
        redis: aioredis.Redis, keys: Keys, books: Books,
    ) -> None:  # fmt: skip
        self.config = config
        self.domain = domain
        self.journal = journal
        self.redis = redis
        self.ramp_key = keys.rebalancer_ramp()
        self.books = books
        self.hub = hub_account(config)
        self.decimals = asset_decimals(domain.instruments)
        self.bands: list[Band] = []  # as resolved by the last cycle (BandWatch reads them)

    def use_config(self, config: Config) -> None:
        """Plan with new targets (an operator's `set_targets`) from the next cycle on."""
        self.config = config

    async def __call__(
        self, balances: Mapping[str, Mapping[str, Balance]], in_flight: set[tuple[str, str]],
        now_s: float,
    ) -> Sequence[PlannedTransfer]:  # fmt: skip
        rebalancer = self.config.rebalancer
        portfolio = portfolio_from(balances)
        day = utc_day(now_s)
        assets = sorted({t.asset for t in rebalancer.targets})
        moved = {asset: await self.journal.moved_today(asset, day) for asset in assets}
        self.bands, plan = plan_cycle(self.config, portfolio, in_flight=in_flight,
                                      moved_today=moved,
                                      elapsed_s=await self._ramp_elapsed(now_s),
                                      decimals=self.decimals)  # fmt: skip
        # What the hub sends this cycle is gone from it; what it receives may not be there yet.
        after = portfolio.moved(p for p in plan if p.source == self.hub)
        prices = usd_prices(self.domain.instruments, self.books)  # one read of the hub a cycle
        plan += await self._withdrawals(after, in_flight, day, prices)
        plan += await self._top_ups(in_flight, prices)
        return plan

    async def _ramp_elapsed(self, now_s: float) -> dict[tuple[str, str], float]:
        bands = [t for t in self.config.rebalancer.targets if t.ramp]
        if not bands:
            return {}
        fields = {f"{t.account}:{t.asset}": repr(now_s) for t in bands}
        async with redis_errors(self.redis, "rebalancer.ramp"):
            for name, value in fields.items():
                await self.redis.hsetnx(self.ramp_key, name, value)  # first seen: kept
            seen = await self.redis.hgetall(self.ramp_key)
        first = {_text(k): float(_text(v)) for k, v in seen.items()}
        return {(t.account, t.asset): now_s - first.get(f"{t.account}:{t.asset}", now_s)
                for t in bands}  # fmt: skip

    async def _withdrawals(
        self, portfolio: Portfolio, in_flight: set[tuple[str, str]], day: str,
        prices: Mapping[str, Decimal],
    ) -> list[PlannedTransfer]:  # fmt: skip
        rules = self.config.rebalancer.withdrawals
        if not rules:
            return []
        try:
            return plan_withdrawals(
                portfolio, rules, source=self.hub,
                withdrawn_today=await self.journal.withdrawn_today(day),
                usd_prices=prices,
                tier_limit_usd=tier_withdrawal_limit_usd(self.config.venue.tier),
                in_flight=in_flight, decimals=self.decimals,
            )  # fmt: skip
        except MissingPrice as exc:
            log.warning("rebalancer.withdrawals_skipped", reason=str(exc))
            return []

    async def _top_ups(
        self, in_flight: set[tuple[str, str]], prices: Mapping[str, Decimal]
    ) -> list[PlannedTransfer]:
        rules = self.config.rebalancer.margin
        if not rules:
            return []
        if self.domain.futures_treasury is None:
            log.warning("rebalancer.top_ups_skipped", reason="the source has no futures key")
            return []
        wallets: dict[str, FlexAccount] = {}
        for rule in rules:
            client = self.domain.account(rule.account).futures
            if client is None:
                log.warning("rebalancer.top_up_skipped", account=rule.account,
                            reason="no futures key")  # fmt: skip
                continue
            flex = (await client.accounts()).accounts.get(FUTURES_WALLET)
            if isinstance(flex, FlexAccount):
                wallets[rule.account] = flex
        try:
            return plan_top_ups(wallets, rules, source=self.hub,
                                usd_prices=prices, in_flight=in_flight)  # fmt: skip
        except MissingPrice as exc:
            log.warning("rebalancer.top_ups_skipped", reason=str(exc))
            return []


LiveAvailable = Callable[[str, str], Decimal | None]
"""(account, asset) -> what the account's strategy sees available now (its private feed), or
None when no strategy of this process trades from that account."""


class BandWatch:
    """Between cycles: a band whose account's live balance left it asks for a cycle now, at
    most once per `every_s` per band (a move under way takes a cycle or two to show)."""

    def __init__(self, planner: CyclePlanner, live: LiveAvailable, clock: Clock,
                 every_s: float) -> None:  # fmt: skip
        self.planner = planner
        self.live = live
        self.clock = clock
        self.every_s = every_s
        self._asked_s: dict[tuple[str, str], float] = {}

    def __call__(self) -> list[str]:
        now_s = self.clock.monotonic()
        out = []
        for band in self.planner.bands:
            have = self.live(band.account, band.asset)
            if have is None or band.low <= have <= band.high:
                continue
            key = (band.account, band.asset)
            if now_s - self._asked_s.get(key, -self.every_s) < self.every_s:
                continue
            self._asked_s[key] = now_s
            out.append(f"band:{band.account}:{band.asset}")
        return out


def open_rebalancer(
    config: Config, domain: KrakenDomain, *, redis: aioredis.Redis, keys: Keys, clock: Clock,
    registry: Registry, events: ServiceEvents, books: Books, live: LiveAvailable | None = None,
) -> Rebalancer:  # fmt: skip
    """The service's rebalancer; a strategy's `request_rebalance` wakes it, and so does a band
    left, as `live` (the strategies' own balance feeds) shows it."""
    journal = TransferJournal(redis, keys, clock)

    async def publish(record: TransferRecord) -> None:
        p = record.planned
        await events.publish(f"transfer_{record.state}", transfer_id=record.id, move=p.kind,
                             asset=p.asset, amount=str(p.amount), source=p.source,
                             target=p.target, reason=p.reason, trigger=record.trigger,
                             venue_id=record.venue_id, error=record.error)  # fmt: skip

    executor = TransferExecutor(
        journal, domain.treasury, futures_treasury=domain.futures_treasury,
        account_ids={a.name: a.venue_id for a in config.accounts},
        readers={name: account.reader for name, account in domain.accounts.items()},
        clock=clock, registry=registry, on_event=publish,
    )  # fmt: skip

    async def read_balances(account: str) -> Mapping[str, Balance]:
        return await domain.account(account).reader.balances()

    planner = CyclePlanner(config, domain, journal, redis=redis, keys=keys, books=books)
    interval_s = config.rebalancer.interval_s
    watch = None if live is None else BandWatch(planner, live, clock, every_s=interval_s)
    rebalancer = Rebalancer(config, read_balances=read_balances, planner=planner,
                            executor=executor, journal=journal, clock=clock,
                            registry=registry, watch=watch)  # fmt: skip

    def requested(fields: Mapping[str, str]) -> None:
        rebalancer.request(f"request:{fields.get('strategy', '?')}:{fields.get('asset', '?')}")

    events.listen("rebalance_requested", requested)
    rebalancer.config_listeners.append(planner.use_config)
    return rebalancer


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
