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
from msgspec import Meta

from orchestrator.config_rules import check_relations
from orchestrator.errors import ConfigError

ENV_PREFIX: Final = "ORCH__"

Tier = Literal["starter", "intermediate", "pro"]
Name = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
SecretRef = Annotated[
    str,
    Meta(
        pattern=r"^(env|file):.+$",
        description="Reference to a secret: `env:NAME` or `file:PATH`; never the value itself.",
    ),
]
_SECRET_REF_PATTERN: Final = "^(env|file):.+$"  # noqa: S105 - a pattern, not a secret


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: immutable, keyword-only, unknown fields are errors."""


def _doc(text: str, **constraints: Any) -> Meta:
    return Meta(description=text, **constraints)


class RedisConfig(_Section, frozen=True):
    url: Annotated[
        str,
        _doc(
            "`embedded` (a private redis-server child on a free loopback port, or in-process "
            "fakeredis when no binary exists) or a URL: `redis://`, `rediss://`, `unix://`."
        ),
    ] = "embedded"
    namespace: Annotated[
        str,
        _doc(
            "Prefix of every key, so two desks can share one Redis.",
            pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        ),
    ] = "orch"
    server_binary: Annotated[str, _doc("redis-server binary for `embedded` mode.")] = "redis-server"
    connect_timeout_s: Annotated[float, _doc("TCP connect timeout.", gt=0)] = 2.0
    socket_timeout_s: Annotated[float, _doc("Timeout of one Redis command.", gt=0)] = 2.0


class SimulatorConfig(_Section, frozen=True):
    host: Annotated[str, _doc("Address the embedded simulator listens on.")] = "127.0.0.1"
    port: Annotated[int, _doc("Its port; 0 picks a free one.", ge=0, le=65535)] = 8800
    seed: Annotated[int, _doc("Seed of the synthetic markets (same seed, same prices).")] = 1


class VenueConfig(_Section, frozen=True):
    kind: Annotated[
        Literal["simulator", "kraken"], _doc("Which venue: the built-in simulator or Kraken.")
    ] = "simulator"
    embedded: Annotated[
        bool | None,
        _doc(
            "Start the simulator inside the service (demo and tests). Defaults to true for "
            "`simulator` and must stay false for `kraken`."
        ),
    ] = None
    tier: Annotated[Tier, _doc("Verification tier of the domain; sets every rate limit.")] = (
        "intermediate"
    )
    rest_url: Annotated[str, _doc("Spot REST base (paths `/0/public`, `/0/private`).")] = (
        "https://api.kraken.com"
    )
    ws_public_url: Annotated[str, _doc("WebSocket v2 public endpoint.")] = "wss://ws.kraken.com/v2"
    ws_private_url: Annotated[str, _doc("WebSocket v2 private endpoint.")] = (
        "wss://ws-auth.kraken.com/v2"
    )
    futures_url: Annotated[str, _doc("Futures REST base (`/derivatives/api/v3`).")] = (
        "https://futures.kraken.com"
    )
    request_timeout_s: Annotated[float, _doc("Timeout of one REST request.", gt=0)] = 10.0
    simulator: Annotated[SimulatorConfig, _doc("The embedded simulator.")] = SimulatorConfig()

    @property
    def is_embedded(self) -> bool:
        return self.kind == "simulator" if self.embedded is None else self.embedded


class AccountConfig(_Section, frozen=True):
    name: Annotated[Name, _doc("Our name for the account (lowercase, digits, `-`, `_`).")]
    role: Annotated[Literal["master", "sub"], _doc("`master` (exactly one) or `sub`.")]
    account_id: Annotated[
        str | None, _doc("Kraken's id for transfers (IIBAN or username); defaults to `name`.")
    ] = None
    api_key: Annotated[
        SecretRef | None, _doc("API key reference; required unless the venue is embedded.")
    ] = None
    api_secret: Annotated[
        SecretRef | None, _doc("API secret reference; required unless the venue is embedded.")
    ] = None
    futures_api_key: Annotated[
        SecretRef | None,
        _doc("Derivatives (futures) API key reference; with its secret, futures clients exist."),
    ] = None
    futures_api_secret: Annotated[
        SecretRef | None, _doc("Derivatives (futures) API secret reference.")
    ] = None

    @property
    def venue_id(self) -> str:
        return self.account_id if self.account_id is not None else self.name


class RiskConfig(_Section, frozen=True):
    max_order_notional: Annotated[
        Decimal | None, _doc("Largest order value (volume x price) in the quote currency.")
    ] = None
    max_open_orders: Annotated[int, _doc("Most orders open at once (pending included).", ge=0)] = 20
    max_position: Annotated[
        dict[str, Decimal],
        _doc("Largest absolute position per pair (`XBT/USD` -> base units) after a fill."),
    ] = {}
    price_band_pct: Annotated[
        float, _doc("A limit price farther than this from the mid is refused (percent).", gt=0)
    ] = 5.0
    max_daily_loss: Annotated[
        Decimal | None,
        _doc("Past this loss (realized + unrealized, UTC day) the strategy is paused and its "
             "orders cancelled (quote currency)."),
    ] = None  # fmt: skip


class StrategyConfig(_Section, frozen=True):
    name: Annotated[Name, _doc("Unique strategy name; also its limiter identity.")]
    module: Annotated[
        str,
        _doc(
            "Dotted path of the strategy module (e.g. `strategies.market_maker`).",
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        ),
    ]
    account: Annotated[str, _doc("Sub-account it trades from; one strategy per sub-account.")]
    pairs: Annotated[list[str], _doc("Pairs it trades, in WS form (`XBT/USD`).", min_length=1)]
    weight: Annotated[float, _doc("Fair share of the domain pool under contention.", gt=0)] = 1.0
    enabled: Annotated[
        bool,
        _doc("A disabled strategy is loaded and checked (module, params, pairs) but not started."),
    ] = True
    params: Annotated[
        dict[str, Any], _doc("The strategy's parameters, checked against its `Params` Struct.")
    ] = {}
    risk: Annotated[RiskConfig, _doc("Pre-trade risk limits of this strategy.")] = RiskConfig()
    cancel_on_stop: Annotated[
        bool, _doc("Cancel the strategy's orders when it stops (shutdown included).")
    ] = True
    orphans: Annotated[
        Literal["cancel", "adopt"],
        _doc("Open orders found on the sub-account that no journal knows: cancel or adopt them."),
    ] = "cancel"
    callback_budget_ms: Annotated[
        float, _doc("Time budget of one callback; overrunning it repeatedly stops the strategy.",
                    gt=0)
    ] = 50.0  # fmt: skip


class LimitsConfig(_Section, frozen=True):
    domain_multiplier: Annotated[
        int, _doc("Domain Rate Limit pool = this x the tier's limits.", ge=1)
    ] = 5
    domain_scope: Annotated[
        Literal["pair", "all"], _doc("One domain pool per pair (`pair`) or one for all.")
    ] = "pair"
    per_account_cap: Annotated[
        bool, _doc("Each account's own 1x per-pair counter also applies inside the pool.")
    ] = True
    risk_reserve_fraction: Annotated[
        float,
        _doc("Headroom of every threshold kept for risk-reducing requests.", ge=0, le=0.5),
    ] = 0.1
    transit_allowance_s: Annotated[
        float,
        _doc(
            "Room kept in every counter for the time between booking and the venue counting "
            "the request (network, queues), as decay x this.",
            ge=0,
            le=1,
        ),
    ] = 0.05
    key_idle_ttl_s: Annotated[int, _doc("Limiter keys expire after this idle time.", gt=0)] = 3600


class RampStep(_Section, frozen=True):
    after_s: Annotated[float, _doc("Seconds after the band was first seen by the rebalancer.",
                                   ge=0)]  # fmt: skip
    fraction: Annotated[Decimal, _doc("Share of the full target (and band) from then on, "
                                      "in (0, 1].")]  # fmt: skip


class RebalanceTarget(_Section, frozen=True):
    account: Annotated[str, _doc("Account whose balance is kept in the band.")]
    asset: Annotated[str, _doc("Asset code as the venue names it (`ZUSD`, `XXBT`).", min_length=1)]
    target: Annotated[Decimal | None, _doc("Level a transfer restores (or give `weight`).")] = None
    weight: Annotated[
        Decimal | None,
        _doc("Target as this fraction of the domain's total of the asset; the weights of an "
             "asset sum to 1 over the accounts that have one (or give `target`)."),
    ] = None  # fmt: skip
    low: Annotated[Decimal | None, _doc("Below this, top up to the target (or give `band`).")] = (
        None
    )
    high: Annotated[Decimal | None, _doc("Above this, sweep down to the target.")] = None
    band: Annotated[
        Decimal | None, _doc("Band as a fraction of the target: low = target x (1 - band), "
                             "high = target x (1 + band); in [0, 1].")
    ] = None  # fmt: skip
    floor: Annotated[
        Decimal, _doc("Never sent from below this: the account keeps at least this much.")
    ] = Decimal(0)
    ramp: Annotated[
        list[RampStep],
        _doc("Gradual rollout: the target is the last step's fraction of the full target."),
    ] = []


class AssetTransferLimits(_Section, frozen=True):
    asset: Annotated[str, _doc("Asset code as the venue names it.", min_length=1)]
    min_transfer: Annotated[
        Decimal, _doc("Smaller transfers are not made (not worth a ledger entry).")
    ] = Decimal(0)
    max_per_transfer: Annotated[
        Decimal | None, _doc("Largest single transfer; a bigger need is met over cycles.")
    ] = None
    max_per_day: Annotated[
        Decimal | None, _doc("Most moved in one UTC day, all accounts together.")
    ] = None


class WithdrawalRule(_Section, frozen=True):
    asset: Annotated[str, _doc("Asset withdrawn from the source account.", min_length=1)]
    key: Annotated[str, _doc("Withdrawal destination by its name in the account (allowlisted "
                             "at the venue).", min_length=1)]  # fmt: skip
    keep: Annotated[Decimal, _doc("The source account keeps this much; above it, withdraw.")]
    min_amount: Annotated[Decimal, _doc("Smaller withdrawals are not made.")] = Decimal(0)
    max_per_day: Annotated[
        Decimal | None, _doc("Most withdrawn in one UTC day (also bounded by the tier).")
    ] = None


class MarginTopUp(_Section, frozen=True):
    account: Annotated[str, _doc("Account whose futures `flex` wallet is watched.")]
    asset: Annotated[str, _doc("Collateral sent (futures name, e.g. `USD`).", min_length=1)] = "USD"
    min_margin_level: Annotated[
        Decimal, _doc("Top up when (collateral + unrealized PnL) / margin is below this (> 1).")
    ] = Decimal(2)
    target_margin_level: Annotated[
        Decimal, _doc("The level a top-up restores (above min_margin_level).")
    ] = Decimal(3)
    max_per_transfer: Annotated[Decimal | None, _doc("Largest single top-up.")] = None


class RebalancerConfig(_Section, frozen=True):
    enabled: Annotated[bool, _doc("Move funds between accounts automatically.")] = True
    interval_s: Annotated[float, _doc("How often balances are checked.", gt=0)] = 30.0
    source_account: Annotated[
        str | None, _doc("Account that funds top-ups and receives sweeps; default the master.")
    ] = None
    targets: Annotated[list[RebalanceTarget], _doc("Balance bands per account and asset.")] = []
    limits: Annotated[
        list[AssetTransferLimits], _doc("Minimum size and caps of transfers, per asset.")
    ] = []
    senders: Annotated[
        list[str] | None, _doc("Accounts allowed to send (default: every account).")
    ] = None
    receivers: Annotated[
        list[str] | None, _doc("Accounts allowed to receive (default: every account).")
    ] = None
    withdrawals: Annotated[
        list[WithdrawalRule], _doc("Treasury sweeps out of the source account.")
    ] = []
    margin: Annotated[
        list[MarginTopUp], _doc("Futures flex wallets kept above a margin level.")
    ] = []


class OperatorConfig(_Section, frozen=True):
    name: Annotated[Name, _doc("Operator name, recorded in the audit stream.")]
    secret: Annotated[SecretRef, _doc("Reference to the operator's command-signing secret.")]


class ControlConfig(_Section, frozen=True):
    enabled: Annotated[bool, _doc("Read operator commands from the Redis stream.")] = True
    consumer_group: Annotated[str, _doc("Consumer group shared by the service processes.")] = (
        "orchestrator"
    )
    max_command_age_s: Annotated[
        float, _doc("Commands older than this are refused (replay guard).", gt=0)
    ] = 60.0
    operators: Annotated[
        list[OperatorConfig], _doc("Who may send commands; none means commands are refused.")
    ] = []


class ServiceConfig(_Section, frozen=True):
    shutdown_timeout_s: Annotated[
        float, _doc("SIGTERM/SIGINT: the most time a clean shutdown may take.", gt=0)
    ] = 10.0
    order_entry: Annotated[
        Literal["ws", "rest"], _doc("Order entry over the private WebSocket (REST when it is "
                                    "down) or over REST only.")
    ] = "ws"  # fmt: skip
    book_depth: Annotated[
        Literal[10, 25, 100, 500, 1000], _doc("Depth of the books the market-data hub keeps.")
    ] = 10
    dead_man_timeout_s: Annotated[
        int, _doc("Kraken's cancel-all-after countdown each worker keeps armed.", ge=10, le=86400)
    ] = 60
    dead_man_refresh_s: Annotated[
        float, _doc("How often a healthy worker re-arms it (at most a third of the timeout).",
                    gt=0)
    ] = 20.0  # fmt: skip
    restart_budget: Annotated[
        int, _doc("Restarts of a failed component allowed within `restart_window_s`.", ge=0)
    ] = 5
    restart_window_s: Annotated[float, _doc("Window of the restart budget.", gt=0)] = 300.0
    deliveries_per_turn: Annotated[
        int,
        _doc(
            "Most strategy deliveries in one turn of the event loop (a burst of workers "
            "woken by one frame is spread over turns, keeping the loop's lag low).",
            ge=1,
        ),
    ] = 8
    status_interval_s: Annotated[
        float, _doc("Interval of the status line logged (and printed without a terminal).", gt=0)
    ] = 5.0


class MetricsConfig(_Section, frozen=True):
    enabled: Annotated[bool, _doc("Serve Prometheus `/metrics` and `/healthz`.")] = True
    host: Annotated[str, _doc("Listen address.")] = "127.0.0.1"
    port: Annotated[int, _doc("Listen port; 0 picks a free one.", ge=0, le=65535)] = 9464


class Config(_Section, frozen=True):
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], _doc("Lowest level logged.")
    ] = "info"
    redis: Annotated[RedisConfig, _doc("Redis connection.")] = RedisConfig()
    venue: Annotated[VenueConfig, _doc("The venue.")] = VenueConfig()
    accounts: Annotated[list[AccountConfig], _doc("Master and sub-accounts.")] = []
    strategies: Annotated[list[StrategyConfig], _doc("Strategies and their accounts.")] = []
    limits: Annotated[LimitsConfig, _doc("Rate-limit model settings.")] = LimitsConfig()
    rebalancer: Annotated[RebalancerConfig, _doc("Automatic transfers.")] = RebalancerConfig()
    control: Annotated[ControlConfig, _doc("Operator commands.")] = ControlConfig()
    service: Annotated[ServiceConfig, _doc("The trading service's runtime.")] = ServiceConfig()
    metrics: Annotated[MetricsConfig, _doc("Metrics and health endpoint.")] = MetricsConfig()

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
    if _SECRET_REF_PATTERN in reason:
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
