"""Config rules the field types cannot say: rules that span fields (an unknown account in a
strategy, two strategies on one sub-account, a band out of order ...) and the shape of the Redis
URL. Each names the first offending field path."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Final
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.exceptions import RedisError

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.config import Config


def check_relations(config: Config, source: str) -> None:
    """Rules beyond the types (the Redis URL, rules that span fields); each raises `ConfigError`
    naming the first offending field."""
    try:
        _check_redis(config)
        _check_accounts(config)
        _check_strategies(config)
        _check_rebalancer(config)
        _check_operators(config)
        _check_service(config)
    except _Invalid as exc:
        raise ConfigError(exc.path, exc.reason, source=source) from None


class _Invalid(Exception):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason


_REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
_REDIS_FORMS: Final = (
    "use `embedded`, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... "
    "or unix://[[USER]:PASSWORD@]/PATH"
)
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNEXPECTED_KWARG: Final = re.compile(r"unexpected keyword argument '([A-Za-z_][A-Za-z0-9_]*)'")


def _check_redis(config: Config) -> None:
    problem = redis_url_problem(config.redis.url)
    if problem is not None:
        raise _Invalid("redis.url", problem)


def redis_url_problem(url: str) -> str | None:
    """Why the Redis client could not use `url`, or None when it can.

    Checked at load so that a bad URL is a config error naming `redis.url`, not a traceback from
    redis-py at connect. The reasons never quote the URL, its port or a library's message about
    it: with an unencoded `/`, `?` or `#` in a password, any of those may hold a piece of it.
    Only a scheme and query parameter names are quoted.
    """
    if url == "embedded":
        return None
    if not url.strip():
        return f"is empty; {_REDIS_FORMS}"
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return f"is not `embedded` nor a URL; {_REDIS_FORMS}"
    if scheme not in _REDIS_SCHEMES:
        return f"scheme `{scheme}` is not one of redis://, rediss://, unix://; {_REDIS_FORMS}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"is not a valid URL; {_REDIS_FORMS}"
    if "@" in parts.path + parts.query + parts.fragment:
        return (
            "has an `@` past the host, so the user part holds a raw `/`, `?` or `#`; "
            "percent-encode them in the user name and password (`%2F`, `%3F`, `%23`, `%40`)"
        )
    return _place_problem(scheme, parts) or _query_problem(url, parts.query)


def _place_problem(scheme: str, parts: SplitResult) -> str | None:
    """Where the URL points: a port in range, then a host and database, or a socket path."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "port must be a number from 1 to 65535"
    if scheme == "unix":
        return None if parts.path.startswith("/") else "needs a socket path: unix:///PATH"
    if not parts.hostname:
        return f"needs a host: {scheme}://HOST[:PORT][/DB]"
    if parts.path not in ("", "/") and not re.fullmatch(r"/\d+/?", unquote(parts.path)):
        return "path must be a database number (`/0`)"
    return None


def _query_problem(url: str, query: str) -> str | None:
    """Query parameters the Redis client would refuse, found by building (not connecting) one."""
    for name, value in parse_qsl(query):
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        if parser is None:
            continue
        try:
            parser(value)
        except (TypeError, ValueError):
            return f"query parameter `{name}` has an invalid value"
    try:
        pool = aioredis.ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        names = {name for name, _ in parse_qsl(query) if _IDENTIFIER.fullmatch(name)}
        unexpected = _UNEXPECTED_KWARG.search(str(exc))
        if unexpected and unexpected[1] in names:
            return f"query parameter `{unexpected[1]}` is not accepted by the Redis client"
        return "a query parameter is not accepted by the Redis client"
    except (ValueError, RedisError):
        return "a query parameter has a value the Redis client refuses"
    return None


def _check_accounts(config: Config) -> None:
    venue = config.venue
    if venue.kind == "kraken" and venue.embedded:
        raise _Invalid(
            "venue.embedded", "only the simulator can be embedded; set it false for kraken"
        )
    seen: set[str] = set()
    for i, account in enumerate(config.accounts):
        if account.name in seen:
            raise _Invalid(f"accounts[{i}].name", f"duplicate account name {account.name!r}")
        seen.add(account.name)
        if (account.futures_api_key is None) != (account.futures_api_secret is None):
            missing = (
                "futures_api_secret" if account.futures_api_secret is None else "futures_api_key"
            )
            raise _Invalid(f"accounts[{i}].{missing}", "futures keys come as a key and a secret")
        if not venue.is_embedded:
            for field in ("api_key", "api_secret"):
                if getattr(account, field) is None:
                    raise _Invalid(
                        f"accounts[{i}].{field}",
                        "required when the venue is not the embedded simulator",
                    )
    masters = [i for i, a in enumerate(config.accounts) if a.role == "master"]
    if config.accounts and len(masters) != 1:
        where = f"accounts[{masters[1]}].role" if masters else "accounts"
        raise _Invalid(where, f"exactly one account must have role 'master', found {len(masters)}")
    if config.strategies and not config.accounts:
        raise _Invalid("accounts", "strategies are configured but no accounts are")


def _check_strategies(config: Config) -> None:
    roles = {a.name: a.role for a in config.accounts}
    names: set[str] = set()
    owner_of_account: dict[str, str] = {}
    for i, strategy in enumerate(config.strategies):
        where = f"strategies[{i}]"
        if strategy.name in names:
            raise _Invalid(f"{where}.name", f"duplicate strategy name {strategy.name!r}")
        names.add(strategy.name)
        account = strategy.account
        if account not in roles:
            known = ", ".join(roles) or "none"
            raise _Invalid(f"{where}.account", f"unknown account {account!r}; known: {known}")
        if roles[account] == "master":
            raise _Invalid(
                f"{where}.account",
                f"{account!r} is the master account; strategies trade from sub-accounts",
            )
        if account in owner_of_account:
            raise _Invalid(
                f"{where}.account",
                f"sub-account {account!r} is already used by strategy "
                f"{owner_of_account[account]!r}; one strategy per sub-account",
            )
        owner_of_account[account] = strategy.name
        if len(set(strategy.pairs)) != len(strategy.pairs):
            raise _Invalid(f"{where}.pairs", "a pair is listed twice")


def _check_rebalancer(config: Config) -> None:
    accounts = {a.name for a in config.accounts}
    rebalancer = config.rebalancer
    if rebalancer.source_account is not None and rebalancer.source_account not in accounts:
        raise _Invalid(
            "rebalancer.source_account", f"unknown account {rebalancer.source_account!r}"
        )
    seen_bands: set[tuple[str, str]] = set()
    for i, band in enumerate(rebalancer.targets):
        where = f"rebalancer.targets[{i}]"
        if band.account not in accounts:
            raise _Invalid(f"{where}.account", f"unknown account {band.account!r}")
        if not Decimal(0) <= band.low <= band.target <= band.high:
            raise _Invalid(
                where,
                f"needs 0 <= low <= target <= high, got {band.low} / {band.target} / {band.high}",
            )
        if (band.account, band.asset) in seen_bands:
            raise _Invalid(where, f"a second band for {band.account}/{band.asset}")
        seen_bands.add((band.account, band.asset))


def _check_operators(config: Config) -> None:
    seen: set[str] = set()
    for i, operator in enumerate(config.control.operators):
        if operator.name in seen:
            raise _Invalid(f"control.operators[{i}].name", f"duplicate operator {operator.name!r}")
        seen.add(operator.name)


def _check_service(config: Config) -> None:
    service = config.service
    if service.dead_man_refresh_s * 3 > service.dead_man_timeout_s:
        raise _Invalid(
            "service.dead_man_refresh_s",
            f"{service.dead_man_refresh_s} s is more than a third of dead_man_timeout_s "
            f"({service.dead_man_timeout_s} s): one late refresh would let the venue cancel",
        )
