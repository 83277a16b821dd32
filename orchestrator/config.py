"""The configuration tree: msgspec Structs loaded from TOML, overridden by the environment.

    config = load_config(Path("orchestrator.toml"))          # raises ConfigError, naming the field

Overrides: `ORCH__SECTION__KEY=value` sets `section.key` (numbers index lists:
`ORCH__ACCOUNTS__1__ACCOUNT_ID=...`). A value is read as a TOML literal when it parses as one
(`5`, `true`, `0.25`, `["XBT/USD"]`) and as a plain string otherwise.

Secrets are never values in the file: an API key or secret is a reference, `env:NAME` or
`file:PATH`, resolved at start by `orchestrator.secrets`. Every field carries a description; the
README's config reference is generated from them (`make docs`), and a test keeps the two equal.
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec

from orchestrator.config_base import SECRET_REF_PATTERN, Name, SecretRef, Section, Tier, doc
from orchestrator.config_control import ControlConfig, OperatorConfig
from orchestrator.config_rebalancer import (
    AssetTransferLimits,
    MarginTopUp,
    RampStep,
    RebalancerConfig,
    RebalanceTarget,
    WithdrawalRule,
)
from orchestrator.config_rules import check_relations
from orchestrator.errors import ConfigError

ENV_PREFIX: Final = "ORCH__"
__all__ = [
    "AssetTransferLimits",
    "Config",
    "ControlConfig",
    "MarginTopUp",
    "Name",
    "OperatorConfig",
    "RampStep",
    "RebalanceTarget",
    "RebalancerConfig",
    "SecretRef",
    "Tier",
    "WithdrawalRule",
    "load_config",
    "parse_config",
]


class RedisConfig(Section, frozen=True):
    url: Annotated[
        str,
        doc(
            "`embedded` (a private redis-server child on a free loopback port, or in-process "
            "fakeredis when no binary exists) or a URL: `redis://`, `rediss://`, `unix://`, "
            "`redis+sentinel://[user:password@]host:port,host:port/<service>[/db]` (the "
            "master its sentinels name, found again after a failover) or "
            "`redis+cluster://[user:password@]host:port,host:port` (a Redis Cluster)."
        ),
    ] = "embedded"
    namespace: Annotated[
        str,
        doc(
            "Prefix of every key, so two desks can share one Redis.",
            pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        ),
    ] = "orch"
    server_binary: Annotated[str, doc("redis-server binary for `embedded` mode.")] = "redis-server"
    connect_timeout_s: Annotated[float, doc("TCP connect timeout.", gt=0)] = 2.0
    socket_timeout_s: Annotated[float, doc("Timeout of one Redis command.", gt=0)] = 2.0


class SimulatorConfig(Section, frozen=True):
    host: Annotated[str, doc("Address the embedded simulator listens on.")] = "127.0.0.1"
    port: Annotated[int, doc("Its port; 0 picks a free one.", ge=0, le=65535)] = 8800
    seed: Annotated[int, doc("Seed of the synthetic markets (same seed, same prices).")] = 1


class VenueConfig(Section, frozen=True):
    kind: Annotated[
        Literal["simulator", "kraken"], doc("Which venue: the built-in simulator or Kraken.")
    ] = "simulator"
    embedded: Annotated[
        bool | None,
        doc(
            "Start the simulator inside the service (demo and tests). Defaults to true for "
            "`simulator` and must stay false for `kraken`."
        ),
    ] = None
    tier: Annotated[Tier, doc("Verification tier of the domain; sets every rate limit.")] = (
        "intermediate"
    )
    rest_url: Annotated[str, doc("Spot REST base (paths `/0/public`, `/0/private`).")] = (
        "https://api.kraken.com"
    )
    ws_public_url: Annotated[str, doc("WebSocket v2 public endpoint.")] = "wss://ws.kraken.com/v2"
    ws_private_url: Annotated[str, doc("WebSocket v2 private endpoint.")] = (
        "wss://ws-auth.kraken.com/v2"
    )
    futures_url: Annotated[str, doc("Futures REST base (`/derivatives/api/v3`).")] = (
        "https://futures.kraken.com"
    )
    request_timeout_s: Annotated[float, doc("Timeout of one REST request.", gt=0)] = 10.0
    simulator: Annotated[SimulatorConfig, doc("The embedded simulator.")] = SimulatorConfig()

    @property
    def is_embedded(self) -> bool:
        return self.kind == "simulator" if self.embedded is None else self.embedded


class AccountConfig(Section, frozen=True):
    name: Annotated[Name, doc("Our name for the account (lowercase, digits, `-`, `_`).")]
    role: Annotated[Literal["master", "sub"], doc("`master` (exactly one) or `sub`.")]
    account_id: Annotated[
        str | None, doc("Kraken's id for transfers (IIBAN or username); defaults to `name`.")
    ] = None
    api_key: Annotated[
        SecretRef | None, doc("API key reference; required unless the venue is embedded.")
    ] = None
    api_secret: Annotated[
        SecretRef | None, doc("API secret reference; required unless the venue is embedded.")
    ] = None
    futures_api_key: Annotated[
        SecretRef | None,
        doc("Derivatives (futures) API key reference; with its secret, futures clients exist."),
    ] = None
    futures_api_secret: Annotated[
        SecretRef | None, doc("Derivatives (futures) API secret reference.")
    ] = None

    @property
    def venue_id(self) -> str:
        return self.account_id if self.account_id is not None else self.name


class RiskConfig(Section, frozen=True):
    max_order_notional: Annotated[
        Decimal | None, doc("Largest order value (volume x price) in the quote currency.")
    ] = None
    max_open_orders: Annotated[int, doc("Most orders open at once (pending included).", ge=0)] = 20
    max_position: Annotated[
        dict[str, Decimal],
        doc("Largest absolute position per pair (`XBT/USD` -> base units) after a fill."),
    ] = {}
    price_band_pct: Annotated[
        float, doc("A limit price farther than this from the mid is refused (percent).", gt=0)
    ] = 5.0
    max_daily_loss: Annotated[
        Decimal | None,
        doc("Past this loss (realized + unrealized, UTC day) the strategy is paused and its "
             "orders cancelled (quote currency)."),
    ] = None  # fmt: skip


Ordinal = Annotated[int, msgspec.Meta(ge=0, le=999)]  # a replica's number: 0, 1, 2...


class StrategyConfig(Section, frozen=True):
    name: Annotated[Name, doc("Unique strategy name; also its limiter identity.")]
    module: Annotated[
        str,
        doc(
            "Dotted path of the strategy module (e.g. `strategies.market_maker`).",
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        ),
    ]
    account: Annotated[str, doc("Sub-account it trades from; one strategy per sub-account.")]
    pairs: Annotated[list[str], doc("Pairs it trades, in WS form (`XBT/USD`).", min_length=1)]
    weight: Annotated[float, doc("Fair share of the domain pool under contention.", gt=0)] = 1.0
    enabled: Annotated[
        bool,
        doc("A disabled strategy is loaded and checked (module, params, pairs) but not started."),
    ] = True
    params: Annotated[
        dict[str, Any], doc("The strategy's parameters, checked against its `Params` Struct.")
    ] = {}
    risk: Annotated[RiskConfig, doc("Pre-trade risk limits of this strategy.")] = RiskConfig()
    cancel_on_stop: Annotated[
        bool, doc("Cancel the strategy's orders when it stops (shutdown included).")
    ] = True
    orphans: Annotated[
        Literal["cancel", "adopt"],
        doc("Open orders found on the sub-account that no journal knows: cancel or adopt them."),
    ] = "cancel"
    callback_budget_ms: Annotated[
        float, doc("Time budget of one callback; overrunning it repeatedly stops the strategy.",
                    gt=0)
    ] = 50.0  # fmt: skip
    replica: Annotated[
        Ordinal | None,
        doc("With `service.replicas` > 1: the ordinal of the process that runs it (default: "
            "chosen by rendezvous hashing of its name)."),
    ] = None  # fmt: skip


class LimitsConfig(Section, frozen=True):
    domain_multiplier: Annotated[
        int, doc("Domain Rate Limit pool = this x the tier's limits.", ge=1)
    ] = 5
    domain_scope: Annotated[
        Literal["pair", "all"], doc("One domain pool per pair (`pair`) or one for all.")
    ] = "pair"
    per_account_cap: Annotated[
        bool, doc("Each account's own 1x per-pair counter also applies inside the pool.")
    ] = True
    risk_reserve_fraction: Annotated[
        float,
        doc("Headroom of every threshold kept for risk-reducing requests.", ge=0, le=0.5),
    ] = 0.1
    transit_allowance_s: Annotated[
        float,
        doc(
            "Room kept in every counter for the time between booking and the venue counting "
            "the request (network, queues), as decay x this.",
            ge=0,
            le=1,
        ),
    ] = 0.05
    venue_counter_sync: Annotated[
        bool, doc("Raise each account's trading scopes to the venue's own counter (private "
                  "`executions` with `ratecounter`): budget spent outside the limiter counts.")
    ] = True  # fmt: skip


InstanceName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ServiceConfig(Section, frozen=True):
    instance: Annotated[
        InstanceName | None,
        doc(
            "This process's name among the service's processes (its consumer name for "
            "commands; keep it stable across restarts); default the host name."
        ),
    ] = None
    replicas: Annotated[
        int,
        doc("How many service processes share this config's strategies; each runs those placed "
            "on its ordinal, the trailing number of its instance name (`orchestrator-2`).",
            ge=1, le=1000),
    ] = 1  # fmt: skip
    shutdown_timeout_s: Annotated[
        float, doc("SIGTERM/SIGINT: the most time a clean shutdown may take.", gt=0)
    ] = 10.0
    order_entry: Annotated[
        Literal["ws", "rest"], doc("Order entry over the private WebSocket (REST when it is "
                                    "down) or over REST only.")
    ] = "ws"  # fmt: skip
    book_depth: Annotated[
        Literal[10, 25, 100, 500, 1000], doc("Depth of the books the market-data hub keeps.")
    ] = 10
    dead_man_timeout_s: Annotated[
        int, doc("Kraken's cancel-all-after countdown each worker keeps armed.", ge=10, le=86400)
    ] = 60
    dead_man_refresh_s: Annotated[
        float, doc("How often a healthy worker re-arms it (at most a third of the timeout).",
                    gt=0)
    ] = 20.0  # fmt: skip
    restart_budget: Annotated[
        int, doc("Restarts of a failed component allowed within `restart_window_s`.", ge=0)
    ] = 5
    restart_window_s: Annotated[float, doc("Window of the restart budget.", gt=0)] = 300.0
    deliveries_per_turn: Annotated[
        int,
        doc(
            "Most strategy deliveries in one turn of the event loop (a burst of workers "
            "woken by one frame is spread over turns, keeping the loop's lag low).",
            ge=1,
        ),
    ] = 8
    status_interval_s: Annotated[
        float, doc("Interval of the status line logged (and printed without a terminal).", gt=0)
    ] = 5.0


class MetricsConfig(Section, frozen=True):
    enabled: Annotated[
        bool,
        doc(
            "Serve Prometheus `/metrics`, the `/healthz` and `/readyz` probes and the status "
            "page `/` (read-only)."
        ),
    ] = True
    host: Annotated[str, doc("Listen address.")] = "127.0.0.1"
    port: Annotated[int, doc("Listen port; 0 picks a free one.", ge=0, le=65535)] = 9464


class Config(Section, frozen=True):
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], doc("Lowest level logged.")
    ] = "info"
    redis: Annotated[RedisConfig, doc("Redis connection.")] = RedisConfig()
    venue: Annotated[VenueConfig, doc("The venue.")] = VenueConfig()
    accounts: Annotated[list[AccountConfig], doc("Master and sub-accounts.")] = []
    strategies: Annotated[list[StrategyConfig], doc("Strategies and their accounts.")] = []
    limits: Annotated[LimitsConfig, doc("Rate-limit model settings.")] = LimitsConfig()
    rebalancer: Annotated[RebalancerConfig, doc("Automatic transfers.")] = RebalancerConfig()
    control: Annotated[ControlConfig, doc("Operator commands.")] = ControlConfig()
    service: Annotated[ServiceConfig, doc("The trading service's runtime.")] = ServiceConfig()
    metrics: Annotated[MetricsConfig, doc("Metrics and health endpoint.")] = MetricsConfig()

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    @property
    def master(self) -> AccountConfig:
        return next(a for a in self.accounts if a.role == "master")


# --- loading -----------------------------------------------------------------------------------


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read `path` (or only defaults when None), apply `ORCH__` overrides, validate everything."""
    env = os.environ if environ is None else environ
    source = str(path) if path is not None else "defaults"
    raw = _read_toml(path) if path is not None else {}
    overrides = _apply_env_overrides(raw, env, source)
    return parse_config(raw, source=source, overrides=overrides)


def parse_config(
    raw: dict[str, Any], *, source: str = "config", overrides: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed tree; `overrides` maps field paths to the env vars that set them."""
    try:
        config = msgspec.convert(raw, Config, strict=True)
        check_relations(config, source)
    except msgspec.ValidationError as exc:
        path, reason = _translate_validation_error(str(exc))
        raise _config_error(path, reason, source, overrides) from None
    except ConfigError as exc:
        raise _config_error(exc.path, exc.reason, source, overrides) from None
    return config


def _config_error(
    path: str, reason: str, source: str, overrides: Mapping[str, str] | None
) -> ConfigError:
    """The error, naming the `ORCH__` variable that set the field when one did."""
    setter = _override_for(path, overrides or {})
    if setter:
        reason = f"{reason} (set by {setter})"
    return ConfigError(path, reason, source=source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f, parse_float=Decimal)
    except FileNotFoundError:
        raise ConfigError("", "file not found", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}", source=str(path)) from None


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}", parse_float=Decimal)["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env_overrides(
    raw: dict[str, Any], env: Mapping[str, str], source: str
) -> dict[str, str]:
    """Apply every `ORCH__A__B=v` to `raw` in place; return {field path: env var name}."""
    applied: dict[str, str] = {}
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        if not parts or any(not p for p in parts):
            raise ConfigError("", f"malformed override variable {var}", source=source)
        node: Any = raw
        trail: list[str] = []
        for part, is_last in zip(parts, [False] * (len(parts) - 1) + [True], strict=True):
            key: str | int = part
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    where = _join_path(trail)
                    raise ConfigError(
                        where,
                        f"{var}: index {part} is not one of the {len(node)} entries",
                        source=source,
                    )
                key = int(part)
                trail.append(f"[{part}]")
            else:
                trail.append(part)
            if is_last:
                node[key] = _parse_env_value(env[var])
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
                if not isinstance(node, dict | list):
                    raise ConfigError(
                        _join_path(trail), f"{var}: not a section or list", source=source
                    )
        applied[_join_path(trail)] = var
    return applied


def _join_path(parts: list[str]) -> str:
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else f".{part}"
    return out


def _override_for(path: str, overrides: Mapping[str, str]) -> str | None:
    for field, var in overrides.items():
        if path == field or path.startswith((f"{field}.", f"{field}[")):
            return var
        if field.startswith((f"{path}.", f"{path}[")):  # e.g. unknown field inside a section
            return var
    return None


_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _translate_validation_error(message: str) -> tuple[str, str]:
    """Turn msgspec's "reason - at `$.a.b`" into ("a.b", "clear reason")."""
    match = _AT.match(message)
    reason = match["reason"] if match else message
    path = (match["path"] or "").lstrip(".") if match else ""
    unknown = _UNKNOWN.match(reason)
    if unknown:
        field = unknown["field"]
        path = f"{path}.{field}" if path else field
        return path, "unknown field"
    missing = _MISSING.match(reason)
    if missing:
        field = missing["field"]
        return (f"{path}.{field}" if path else field), "required field is missing"
    if SECRET_REF_PATTERN in reason:
        return path, (
            "must be a secret reference `env:NAME` or `file:PATH`; secrets are never values "
            "in the file"
        )
    if reason.startswith("Invalid enum value"):
        allowed = _literal_values_at(path)
        if allowed:
            reason = f"{reason}; expected one of {', '.join(repr(v) for v in allowed)}"
    return path, reason


def _literal_values_at(path: str) -> tuple[Any, ...]:
    """The allowed values of the Literal field at `path`, or () when it is not a Literal."""
    tp: Any = Config
    for segment in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if segment.startswith("["):
            tp = _strip(tp)
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
            continue
        tp = _strip(tp)
        if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
            return ()
        tp = typing.get_type_hints(tp, include_extras=True).get(segment)
        if tp is None:
            return ()
    tp = _strip(tp)
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else ()


def _strip(tp: Any) -> Any:
    """Remove Annotated and Optional wrappers."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = typing.get_args(tp)
        if type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
            continue
        return tp
