"""Config rules the field types cannot say: rules that span fields (an unknown account in a
strategy, two strategies on one sub-account, a band out of order ...) and the shape of the Redis
URL. Each names the first offending field path."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Final
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.exceptions import RedisError

from orchestrator.errors import ConfigError
from orchestrator.store.cluster import parse_cluster_url
from orchestrator.store.sentinel import parse_sentinel_url

if TYPE_CHECKING:
    from orchestrator.config import Config, RebalanceTarget


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
    "use `embedded`, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://..., "
    "unix://[[USER]:PASSWORD@]/PATH, redis+sentinel://[[USER]:PASSWORD@]HOST:PORT,.../SERVICE "
    "or redis+cluster://[[USER]:PASSWORD@]HOST:PORT,..."
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
    if scheme == "redis+sentinel":
        return _parsed_problem(parse_sentinel_url, url)
    if scheme == "redis+cluster":
        return _parsed_problem(parse_cluster_url, url)
    if scheme not in _REDIS_SCHEMES:
        return (
            f"scheme `{scheme}` is not one of redis://, rediss://, unix://, redis+sentinel://, "
            f"redis+cluster://; {_REDIS_FORMS}"
        )
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


def _parsed_problem(parse: Callable[[str], object], url: str) -> str | None:
    """A Sentinel or Cluster URL's problem, by the parser its client uses (whose reasons never
    quote the password)."""
    try:
        parse(url)
    except ConfigError as exc:
        return exc.reason
    return None


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
        replicas = config.service.replicas
        if strategy.replica is not None and strategy.replica >= replicas:
            raise _Invalid(f"{where}.replica", f"must be below service.replicas ({replicas}), "
                                               f"got {strategy.replica}")  # fmt: skip
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

    def known(path: str, account: str) -> None:
        if account not in accounts:
            raise _Invalid(path, f"unknown account {account!r} (the domain: "
                                 f"{', '.join(sorted(accounts))})")  # fmt: skip

    if rebalancer.source_account is not None:
        known("rebalancer.source_account", rebalancer.source_account)
    for field in ("senders", "receivers"):
        for i, name in enumerate(getattr(rebalancer, field) or ()):
            known(f"rebalancer.{field}[{i}]", name)
    seen_bands: set[tuple[str, str]] = set()
    weights: dict[str, Decimal] = {}
    for i, band in enumerate(rebalancer.targets):
        where = f"rebalancer.targets[{i}]"
        known(f"{where}.account", band.account)
        _check_band(band, where)
        if band.weight is not None:
            weights[band.asset] = weights.get(band.asset, Decimal(0)) + band.weight
        if (band.account, band.asset) in seen_bands:
            raise _Invalid(where, f"a second band for {band.account}/{band.asset}")
        seen_bands.add((band.account, band.asset))
    for asset, total in sorted(weights.items()):
        if abs(total - 1) > Decimal("1e-9"):
            i = next(i for i, t in enumerate(rebalancer.targets) if t.asset == asset and t.weight)
            raise _Invalid(f"rebalancer.targets[{i}].weight",
                           f"the weights of {asset} sum to {total}, not 1")  # fmt: skip
    _check_transfer_limits(config)
    for i, top_up in enumerate(rebalancer.margin):
        where = f"rebalancer.margin[{i}]"
        known(f"{where}.account", top_up.account)
        if not top_up.min_margin_level > 1:
            raise _Invalid(f"{where}.min_margin_level",
                           f"must be above 1, got {top_up.min_margin_level}")  # fmt: skip
        if top_up.target_margin_level <= top_up.min_margin_level:
            raise _Invalid(f"{where}.target_margin_level",
                           f"{top_up.target_margin_level} must be above min_margin_level "
                           f"{top_up.min_margin_level}")  # fmt: skip
        _positive(f"{where}.max_per_transfer", top_up.max_per_transfer)


def _positive(path: str, value: Decimal | None, *, zero_ok: bool = False) -> None:
    """A finite amount above 0 (or at least 0); None passes (not set)."""
    if value is None:
        return
    if not value.is_finite() or value < 0 or (value == 0 and not zero_ok):
        raise _Invalid(path, f"must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def _check_transfer_limits(config: Config) -> None:
    rebalancer = config.rebalancer
    seen_assets: set[str] = set()
    for i, limit in enumerate(rebalancer.limits):
        where = f"rebalancer.limits[{i}]"
        if limit.asset in seen_assets:
            raise _Invalid(f"{where}.asset", f"a second limits entry for {limit.asset}")
        seen_assets.add(limit.asset)
        _positive(f"{where}.min_transfer", limit.min_transfer, zero_ok=True)
        _positive(f"{where}.max_per_transfer", limit.max_per_transfer)
        _positive(f"{where}.max_per_day", limit.max_per_day)
        if limit.max_per_transfer is not None and limit.max_per_transfer < limit.min_transfer:
            raise _Invalid(f"{where}.max_per_transfer",
                           f"{limit.max_per_transfer} is below min_transfer "
                           f"{limit.min_transfer}")  # fmt: skip
    for i, rule in enumerate(rebalancer.withdrawals):
        where = f"rebalancer.withdrawals[{i}]"
        _positive(f"{where}.keep", rule.keep, zero_ok=True)
        _positive(f"{where}.min_amount", rule.min_amount, zero_ok=True)
        _positive(f"{where}.max_per_day", rule.max_per_day)


def _check_band_numbers(band: RebalanceTarget, where: str) -> None:
    for name in ("target", "low", "high", "floor"):
        _positive(f"{where}.{name}", getattr(band, name), zero_ok=True)
    if band.band is not None and not (band.band.is_finite() and 0 <= band.band <= 1):
        raise _Invalid(f"{where}.band", f"must be in [0, 1], got {band.band}")
    for j, step in enumerate(band.ramp):
        if not (step.fraction.is_finite() and 0 < step.fraction <= 1):
            raise _Invalid(f"{where}.ramp[{j}].fraction", f"must be in (0, 1], got {step.fraction}")


def _check_band(band: RebalanceTarget, where: str) -> None:
    """One of `target` / `weight`, one of `low`+`high` / `band`, and a target inside its band."""
    if (band.target is None) == (band.weight is None):
        raise _Invalid(where, "give exactly one of target (an amount) or weight (a fraction)")
    if band.weight is not None and not (band.weight.is_finite() and 0 < band.weight <= 1):
        raise _Invalid(f"{where}.weight", f"must be in (0, 1], got {band.weight}")
    _check_band_numbers(band, where)
    absolute = band.low is not None or band.high is not None
    if absolute == (band.band is not None):
        raise _Invalid(where, "give either low and high (amounts) or band (a fraction)")
    if absolute:
        if band.weight is not None:
            raise _Invalid(where, "a weight's band moves with the domain total: give band, "
                                  "not low and high")  # fmt: skip
        if band.low is None or band.high is None or band.target is None:
            raise _Invalid(where, "low and high go together")
        if not Decimal(0) <= band.low <= band.target <= band.high:
            raise _Invalid(where, f"needs 0 <= low <= target <= high, got "
                                  f"{band.low} / {band.target} / {band.high}")  # fmt: skip
    if band.target is not None and band.floor > band.target:
        raise _Invalid(f"{where}.floor", f"{band.floor} is above the target {band.target}")
    after_s = [step.after_s for step in band.ramp]
    if after_s and (after_s[0] != 0 or any(b <= a for a, b in itertools.pairwise(after_s))):
        raise _Invalid(f"{where}.ramp", "steps start at after_s = 0 and go up strictly, "
                                        f"got {after_s}")  # fmt: skip


def _check_operators(config: Config) -> None:
    seen: set[str] = set()
    for i, operator in enumerate(config.control.operators):
        if operator.name in seen:
            raise _Invalid(f"control.operators[{i}].name", f"duplicate operator {operator.name!r}")
        seen.add(operator.name)
    if config.control.demo_operator:
        if not config.venue.is_embedded:
            raise _Invalid("control.demo_operator", "only with the embedded simulator "
                           "(venue.embedded): a real desk names its operators")  # fmt: skip
        if "demo" in seen:
            raise _Invalid("control.demo_operator", "an operator named 'demo' is configured")


def _check_service(config: Config) -> None:
    service = config.service
    if service.dead_man_refresh_s * 3 > service.dead_man_timeout_s:
        raise _Invalid(
            "service.dead_man_refresh_s",
            f"{service.dead_man_refresh_s} s is more than a third of dead_man_timeout_s "
            f"({service.dead_man_timeout_s} s): one late refresh would let the venue cancel",
        )
