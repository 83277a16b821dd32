"""The whole simulated venue in one object, built from `SimSettings`: catalog, domain, keys,
trading engine, funding, counters, synthetic markets and public books. No I/O: the HTTP and WS
servers (`app.py`) are thin shells around it, and tests can drive it directly.
"""

from __future__ import annotations

import base64
import random
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from orchestrator.clock import Clock
from orchestrator.logs import get_logger
from orchestrator.simulator import market as mk
from orchestrator.simulator import withdraw_limits as wl
from orchestrator.simulator.accounts import MARKET, Domain, IdFactory
from orchestrator.simulator.auth import ApiKey, FuturesAuthenticator, Permission, SpotAuthenticator
from orchestrator.simulator.book_feed import AggregatedBook
from orchestrator.simulator.catalog import Catalog, PairSpec
from orchestrator.simulator.engine import Engine
from orchestrator.simulator.errors import KrakenError
from orchestrator.simulator.funding import Funding
from orchestrator.simulator.futures_accounts import FlexRisk
from orchestrator.simulator.limits import VenueLimits
from orchestrator.simulator.settings import AccountSeed, SimSettings

_MARKET_FUNDS = Decimal(10**12)  # the synthetic market never runs dry


log = get_logger(__name__)


@dataclass(slots=True)
class WsToken:
    token: str
    account: str
    key: str
    expires_s: float


@dataclass(slots=True)
class Venue:
    settings: SimSettings
    clock: Clock
    catalog: Catalog
    domain: Domain
    limits: VenueLimits
    engine: Engine
    funding: Funding
    spot_auth: SpotAuthenticator
    futures_auth: FuturesAuthenticator
    keys: dict[str, ApiKey] = field(default_factory=dict)  # by key id
    markets: dict[str, mk.SyntheticMarket] = field(default_factory=dict)  # by pair key
    public_books: dict[str, AggregatedBook] = field(default_factory=dict)  # by pair key
    ws_tokens: dict[str, WsToken] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    request_counts: dict[str, int] = field(default_factory=dict)  # by endpoint
    markets_frozen: bool = False  # tests: hold the synthetic markets still (timers still run)
    # Bugs of the simulator (an exception no Kraken rule explains), as "where: Type: message".
    internal_errors: list[str] = field(default_factory=list)

    # --- time ----------------------------------------------------------------------------------
    def step_markets(self, dt_s: float) -> None:
        """Move every synthetic market by `dt_s`, then run the time-driven duties."""
        for pair_key, market in () if self.markets_frozen else self.markets.items():
            pair = self.catalog.pairs[pair_key]
            for side, price, qty in market.step(dt_s):
                self.engine.set_synthetic_level(pair, side, price, qty)
        self.tick()

    def tick(self) -> None:
        self.engine.tick()
        self.funding.tick()

    # --- keys and tokens -----------------------------------------------------------------------
    def add_key(self, account: str, seed_key: str | None, secret_b64: str | None,
                permissions: tuple[str, ...], nonce_window: int = 0) -> ApiKey:  # fmt: skip
        key_id = seed_key or base64.b64encode(self.rng.randbytes(42)).decode()
        secret = secret_b64 or base64.b64encode(self.rng.randbytes(64)).decode()
        api_key = ApiKey(
            key=key_id,
            secret_b64=secret,
            account=account,
            permissions=frozenset(permissions),  # type: ignore[arg-type]  # checked by seeds
            nonce_window=nonce_window,
        )
        self.spot_auth.add_key(api_key)
        self.futures_auth.add_key(api_key)
        self.keys[key_id] = api_key
        return api_key

    def issue_ws_token(self, key: ApiKey) -> WsToken:
        token = WsToken(
            token=secrets.token_urlsafe(24),
            account=key.account,
            key=key.key,
            expires_s=self.clock.time() + self.settings.ws_token_ttl_s,
        )
        self.ws_tokens[token.token] = token
        return token

    def check_ws_token(self, token: str | None, permission: Permission) -> WsToken:
        """The token's owner, or `EAPI:Invalid token` (also once expired)."""
        found = self.ws_tokens.get(token or "")
        if found is None or found.expires_s < self.clock.time():
            raise KrakenError("EAPI:Invalid token")
        self.spot_auth.require(self.keys[found.key], permission)
        return found

    def record_internal_error(self, where: str, exc: BaseException) -> None:
        """A bug of ours met while serving: logged, answered as Kraken would, and kept, so that
        a test against the simulator fails on it (`open_simulator(strict=True)`)."""
        log.exception("sim.internal_error", where=where)  # called from inside the `except`
        self.internal_errors.append(f"{where}: {type(exc).__name__}: {exc}")

    def count(self, name: str) -> None:
        """One more of `name` in the introspection counters (requests, errors, faults)."""
        self.request_counts[name] = self.request_counts.get(name, 0) + 1

    def keys_of(self, account: str) -> list[ApiKey]:
        return [k for k in self.keys.values() if k.account == account]

    # --- futures flex margin (tests and the admin API) -----------------------------------------
    def set_flex_risk(
        self,
        account: str,
        *,
        initial_margin: Decimal | int | str | None = None,
        maintenance_margin: Decimal | int | str | None = None,
        unrealized_pnl: Decimal | int | str | None = None,
        unrealized_funding: Decimal | int | str | None = None,
        order_margin: Decimal | int | str | None = None,
    ) -> FlexRisk:
        """Set what `account`'s flex positions and orders weigh, in USD, as `GET /accounts`
        will report them; a figure left out keeps its value, all zero means nothing is open.

        KeyError for an unknown account; ValueError for a negative margin or a maintenance
        margin above the initial margin (nothing changes then)."""
        found = self.domain.accounts.get(account)
        if found is None or found.role == "system":
            raise KeyError(account)
        given = {
            "initial_margin": initial_margin,
            "maintenance_margin": maintenance_margin,
            "unrealized_pnl": unrealized_pnl,
            "unrealized_funding": unrealized_funding,
            "order_margin": order_margin,
        }
        figures = msgspec.structs.asdict(found.flex_risk)
        figures.update({k: Decimal(str(v)) for k, v in given.items() if v is not None})
        found.flex_risk = FlexRisk(**figures)
        return found.flex_risk


def _market_spec(pair: PairSpec) -> mk.PairSpec:
    return mk.PairSpec(
        symbol=pair.symbol,
        price_decimals=pair.pair_decimals,
        qty_decimals=pair.lot_decimals,
        start_price=pair.start_price,
        typical_qty=pair.typical_qty,
        tick=pair.tick_int,
    )


def build_venue(settings: SimSettings, clock: Clock) -> Venue:
    """A funded domain with keys, live synthetic markets and empty counters."""
    catalog = Catalog()
    ids = IdFactory(settings.seed)
    domain = Domain(catalog, ids)
    limits = VenueLimits(settings.tier, settings.domain)
    engine = Engine(domain=domain, limits=limits, clock=clock, tier=settings.tier)
    venue = Venue(
        settings=settings,
        clock=clock,
        catalog=catalog,
        domain=domain,
        limits=limits,
        engine=engine,
        funding=Funding(
            domain,
            clock,
            settings.funding,
            engine.emit_ledger,
            tier=settings.tier,
            price_usd=wl.usd_pricer(catalog, engine.books),
        ),
        spot_auth=SpotAuthenticator(lockout_after=settings.lockout_after),
        futures_auth=FuturesAuthenticator(),
        rng=random.Random(settings.seed),  # noqa: S311 - simulation, not security
    )
    market_account = domain.accounts[MARKET]
    for asset in catalog.assets:
        market_account.balances[asset] = market_account.balance(asset) + _MARKET_FUNDS
        domain.accounts["_external"].balances[asset] = -_MARKET_FUNDS  # keeps totals at zero
    for seed in settings.accounts:
        _add_account(venue, seed)
    for i, pair in enumerate(catalog.pairs.values()):
        book = AggregatedBook(pair.pair_decimals, pair.lot_decimals, symbol=pair.symbol)
        venue.public_books[pair.key] = book
        market = mk.SyntheticMarket(_market_spec(pair), seed=settings.seed * 1000 + i)
        venue.markets[pair.key] = market
    engine.level_listeners.append(
        lambda pair_key, side, price, qty: venue.public_books[pair_key].set_level(side, price, qty)
    )
    for pair_key, market in venue.markets.items():
        for side, price, qty in market.initial_levels():
            engine.set_synthetic_level(catalog.pairs[pair_key], side, price, qty)
    return venue


def _add_account(venue: Venue, seed: AccountSeed) -> None:
    domain = venue.domain
    account = domain.add_account(seed.name, seed.role, account_id=seed.account_id or seed.name)
    external = domain.accounts["_external"]
    now_s = venue.clock.time()
    for asset_name, amount in seed.balances.items():
        asset = venue.catalog.asset(asset_name).id
        domain.move(
            external,
            account,
            asset,
            amount,
            type_="deposit",
            refid=domain.ids.make("Q"),
            now_s=now_s,
        )
    for wallet, holdings in (("cash", seed.futures_cash), ("flex", seed.futures_flex)):
        for asset_name, amount in holdings.items():
            account.futures[wallet][venue.catalog.asset(asset_name).id] = amount
    account.flex_risk = seed.flex_risk
    for key in seed.keys:
        venue.add_key(account.name, key.key, key.secret, key.permissions, key.nonce_window)


def demo_key_file(venue: Venue) -> dict[str, Any]:
    """Every account's keys (demo only: the simulator's keys are not secrets of anyone)."""
    return {
        name: [{"key": k.key, "secret": k.secret_b64, "permissions": sorted(k.permissions)}
               for k in venue.keys_of(name)]
        for name in (a.name for a in venue.domain.clients())
    }  # fmt: skip
