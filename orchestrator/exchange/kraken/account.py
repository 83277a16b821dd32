"""The one wiring function: every Kraken client of the desk's domain, built the same way.

`open_kraken` builds, once per process, what the accounts share (one HTTP session, the shared
limiter, the instrument registry) and then each account's clients: a signed REST client with its
key's shared nonce and lock and the limiter as its permit source, the trading venue and account
reader over it, and for the master alone the treasury. Product code and tests use it, so the
guarantees (a permit before every request, nonces in order across processes, cancels without
Redis) hold wherever a client exists. A strategy's worker is handed `account.trading` and
`account.reader` of its own sub-account; the treasury goes to the rebalancer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import redis.asyncio as aioredis

from orchestrator.clock import Clock
from orchestrator.config import Config
from orchestrator.errors import ConfigError
from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common.auth import key_fingerprint
from orchestrator.exchange.kraken.common.key_lock import SharedKeyLock
from orchestrator.exchange.kraken.common.nonce import SharedNonce
from orchestrator.exchange.kraken.common.transport import AiohttpTransport, Transport
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.treasury import FuturesTreasury
from orchestrator.exchange.kraken.spot.instruments import load_instruments
from orchestrator.exchange.kraken.spot.reader import KrakenAccountReader
from orchestrator.exchange.kraken.spot.rest import KrakenPublic, KrakenRest
from orchestrator.exchange.kraken.spot.trading import KrakenTrading
from orchestrator.exchange.kraken.spot.treasury import KrakenTreasury
from orchestrator.metrics import Registry
from orchestrator.ratelimit.policy import Policy
from orchestrator.ratelimit.redis import Limiter
from orchestrator.secrets import ApiCredentials
from orchestrator.store.health import RedisHealth
from orchestrator.store.keys import Keys

# The key lock's lease outlives the longest request it guards by this much (nonce, signing).
LEASE_MARGIN_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class KrakenAccount:
    """The clients of one account (its own API keys)."""

    name: str
    venue_id: str  # what AccountTransfer's `from` / `to` (and futures' fromUser/toUser) name
    rest: KrakenRest
    trading: KrakenTrading
    reader: KrakenAccountReader
    futures: KrakenFutures | None  # with the account's Derivatives key, when it has one


@dataclass(frozen=True, slots=True)
class KrakenDomain:
    """Every client of the master and its sub-accounts, and what they share."""

    limiter: Limiter
    instruments: Instruments
    accounts: Mapping[str, KrakenAccount]
    treasury: KrakenTreasury
    futures_treasury: FuturesTreasury | None  # when the master has a Derivatives key

    def account(self, name: str) -> KrakenAccount:
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts))
            raise ConfigError(
                "accounts", f"no account {name!r} with credentials ({known})"
            ) from None


@contextlib.asynccontextmanager
async def open_kraken(
    config: Config,
    credentials: Mapping[str, ApiCredentials],
    *,
    redis: aioredis.Redis,
    clock: Clock,
    registry: Registry,
    futures_credentials: Mapping[str, ApiCredentials] | None = None,
    transport: Transport | None = None,
    script_time: Callable[[], float] | None = None,
) -> AsyncIterator[KrakenDomain]:
    """The domain's clients for the life of the block. `credentials` by account name (resolved
    secrets, or the embedded simulator's keys); `futures_credentials` the Derivatives keys of
    the accounts that trade futures. For tests only: `transport` replaces HTTP, and
    `script_time` makes the limiter read a manual clock instead of Redis TIME."""
    keys = Keys(config.redis.namespace)
    weights = {s.name: s.weight for s in config.strategies if s.enabled}
    pairs = {s.name: s.pairs for s in config.strategies if s.enabled}
    strategy_of = {s.account: s.name for s in config.strategies if s.enabled}
    health = RedisHealth(clock, registry)  # one verdict on Redis for limiter, nonces, locks
    limiter = Limiter(redis, keys, Policy(config.venue.tier, config.limits), clock,
                      limits=config.limits, weights=weights, pairs=pairs, registry=registry,
                      script_time=script_time, health=health)  # fmt: skip
    timeout_s = config.venue.request_timeout_s
    async with contextlib.AsyncExitStack() as stack:
        limiter.start()  # its epoch watcher: a Redis that lost its state gets our floors back
        stack.push_async_callback(limiter.stop)
        if transport is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            transport = AiohttpTransport(session, timeout_s=timeout_s)
        base_url = config.venue.rest_url
        instruments = await load_instruments(KrakenPublic(transport, base_url))
        accounts: dict[str, KrakenAccount] = {}
        lease_s = timeout_s + LEASE_MARGIN_S

        def ordering(creds: ApiCredentials, api: str = "") -> tuple[SharedNonce, SharedKeyLock]:
            """Nonces and the key lock of one API key, shared by every process using it (spot
            and futures count nonces apart, so a key used on both gets two of each)."""
            key_id = api + key_fingerprint(creds.key.reveal())
            return (SharedNonce(redis, keys, key_id, health),
                    SharedKeyLock(redis, keys, key_id, lease_s=lease_s, health=health))  # fmt: skip

        for account in config.accounts:
            creds = credentials.get(account.name)
            if creds is None:
                continue
            nonce, key_lock = ordering(creds)
            strategy = strategy_of.get(account.name)
            rest = KrakenRest(transport, base_url, account=account.name, credentials=creds,
                              nonce=nonce, key_lock=key_lock, permits=limiter,
                              strategy=strategy)  # fmt: skip
            futures = None
            futures_creds = (futures_credentials or {}).get(account.name)
            if futures_creds is not None:
                nonce, key_lock = ordering(futures_creds, "futures-")
                futures = KrakenFutures(transport, config.venue.futures_url, account=account.name,
                                        credentials=futures_creds, nonce=nonce, key_lock=key_lock,
                                        permits=limiter, strategy=strategy)  # fmt: skip
            accounts[account.name] = KrakenAccount(
                name=account.name,
                venue_id=account.venue_id,
                rest=rest,
                trading=KrakenTrading(rest, clock, instruments),
                reader=KrakenAccountReader(rest, instruments),
                futures=futures,
            )
        master = config.master
        if master.name not in accounts:
            raise ConfigError("accounts", f"the master account {master.name!r} has no credentials")
        readers = {a.venue_id: a.reader for a in accounts.values()}
        treasury = KrakenTreasury(accounts[master.name].rest, clock, readers)
        logs = {a.venue_id: a.futures for a in accounts.values() if a.futures is not None}
        master_futures = accounts[master.name].futures
        futures_treasury = (
            None if master_futures is None else FuturesTreasury(master_futures, clock, logs)
        )
        yield KrakenDomain(limiter=limiter, instruments=instruments, accounts=accounts,
                           treasury=treasury, futures_treasury=futures_treasury)  # fmt: skip
