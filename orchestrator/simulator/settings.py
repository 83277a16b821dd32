"""Settings of the simulated venue: its domain, tier, Decisions, funding behaviour and faults.

All of them can be given at start (`SimSettings`) and the faults, the system status, the
funding modes and the daily withdrawal limit can be changed at run time through the admin
endpoint. The demo domains have futures funds: the master's futures cash and flex wallets, and
some USD in every sub-account's flex wallet.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

import msgspec

from orchestrator.config import Config
from orchestrator.simulator.funding import FundingSettings
from orchestrator.simulator.futures_accounts import NO_RISK, FlexRisk
from orchestrator.simulator.limits import DomainSettings, Tier

ALL_PERMISSIONS: tuple[str, ...] = (
    "query_funds",
    "query_open",
    "query_closed",
    "trade",
    "cancel",
    "withdraw",
    "websocket",
    "query_ledger",
)
SystemStatus = Literal["online", "maintenance", "cancel_only", "post_only"]


class KeySeed(msgspec.Struct, frozen=True, kw_only=True):
    """An API key to create. Without `key`/`secret`, they are generated from the seed."""

    key: str | None = None
    secret: str | None = None
    permissions: tuple[str, ...] = ALL_PERMISSIONS
    nonce_window: int = 0


class AccountSeed(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: Literal["master", "sub"] = "sub"
    account_id: str | None = None
    balances: dict[str, Decimal] = {}
    futures_cash: dict[str, Decimal] = {}  # the futures holding wallet
    futures_flex: dict[str, Decimal] = {}  # the multi-collateral wallet
    flex_risk: FlexRisk = NO_RISK  # what the flex wallet's positions weigh (USD)
    keys: tuple[KeySeed, ...] = (KeySeed(),)


GarbledBody = Literal["truncated", "html_502"]


class FaultSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Trouble on demand. Rates are probabilities per request, drawn from the seeded RNG.

    Reply faults strike after the venue acted (the state change is kept), on one request each:
    the first of lost, garbled, reset whose count (or rate) and method filter match. A filter
    names REST methods (`AccountTransfer`), futures endpoints (`transfer/subaccount`) or WS
    methods (`add_order`); empty means every acting request (orders, cancels, transfers,
    withdrawals), and a named query (`OpenOrders`, `accounts`) is struck too. A request the
    venue refused is answered as usual and consumes nothing.
    """

    latency_s: float = 0.0  # added before every REST reply
    unavailable_rate: float = 0.0  # `EService:Unavailable`, nothing executed
    unavailable_next: int = 0  # the next N requests get `EService:Unavailable` (deterministic)
    busy_rate: float = 0.0  # `EService:Busy`, nothing executed
    # Lost: no reply. HTTP: the connection is closed without a response (the client sees
    # `ServerDisconnectedError`), or with `lost_reply_hold_s` > 0 held silent that long (real
    # seconds, or until the simulator stops) so that the client times out. WS: no reply frame.
    lost_reply_rate: float = 0.0
    lost_reply_next: int = 0
    lost_reply_methods: tuple[str, ...] = ()
    lost_reply_hold_s: float = 0.0
    # Garbled: a reply that is not the envelope. `truncated`: HTTP 200, the JSON cut in half;
    # `html_502`: HTTP 502 with a proxy's HTML page. WS: the reply frame cut in half.
    garbled_reply_next: int = 0
    garbled_reply_methods: tuple[str, ...] = ()
    garbled_reply_body: GarbledBody = "truncated"
    # Reset: the TCP connection is reset (RST) without a response (`ClientOSError`, errno 104);
    # over WS, without a close frame (1006).
    reset_reply_next: int = 0
    reset_reply_methods: tuple[str, ...] = ()
    # Venue seconds an order request waits between receipt and the engine: a `deadline` that
    # passed the receipt check but is earlier than receipt + this is `EService:Deadline elapsed`.
    engine_delay_s: float = 0.0
    ws_disconnect_after_s: float | None = None  # close every WS connection this long after open
    corrupt_checksum_rate: float = 0.0  # book updates sent with a wrong checksum


# Futures funds of the demo domains: the master can fund its sub-accounts' flex wallets (margin
# top-ups), and each sub-account's flex wallet holds some collateral of its own.
_DEMO_MASTER_FUTURES_CASH: dict[str, Decimal] = {"ZUSD": Decimal(50_000)}
_DEMO_MASTER_FLEX: dict[str, Decimal] = {"ZUSD": Decimal(250_000), "XXBT": Decimal(1)}
_DEMO_SUB_FLEX: dict[str, Decimal] = {"ZUSD": Decimal(10_000)}


def _demo_accounts() -> tuple[AccountSeed, ...]:
    def funded(usd: int, xbt: str, eth: str, sol: str) -> dict[str, Decimal]:
        return {
            "ZUSD": Decimal(usd),
            "XXBT": Decimal(xbt),
            "XETH": Decimal(eth),
            "SOL": Decimal(sol),
        }

    return (
        AccountSeed(name="master", role="master", balances=funded(1_000_000, "20", "300", "5000"),
                    futures_cash=_DEMO_MASTER_FUTURES_CASH, futures_flex=_DEMO_MASTER_FLEX),
        AccountSeed(name="mm-xbt", balances=funded(10_000, "0.5", "0", "0"),
                    futures_flex=_DEMO_SUB_FLEX),
        AccountSeed(name="twap-eth", balances=funded(5_000, "0", "5", "0"),
                    futures_flex=_DEMO_SUB_FLEX),
        AccountSeed(name="mm-sol", balances=funded(5_000, "0", "0", "100"),
                    futures_flex=_DEMO_SUB_FLEX),
    )  # fmt: skip


def domain_accounts(
    subs: int, balances: dict[str, Decimal], *, prefix: str = "s"
) -> tuple[AccountSeed, ...]:
    """A master and `subs` sub-accounts (`s0`, `s1`, ...), all funded with `balances`."""
    master = AccountSeed(name="master", role="master", balances=balances)
    return (master, *(AccountSeed(name=f"{prefix}{i}", balances=balances) for i in range(subs)))


class SimSettings(msgspec.Struct, kw_only=True):
    seed: int = 1
    tier: Tier = "intermediate"
    domain: DomainSettings = DomainSettings()
    funding: FundingSettings = msgspec.field(default_factory=FundingSettings)
    faults: FaultSettings = msgspec.field(default_factory=FaultSettings)
    accounts: tuple[AccountSeed, ...] = msgspec.field(default_factory=_demo_accounts)
    status: SystemStatus = "online"
    market_step_s: float = 0.25  # how often the synthetic markets move (real-clock mode)
    ws_token_ttl_s: float = 900.0
    max_body_bytes: int = 64 * 1024
    lockout_after: int = 10


_DEMO_MASTER_FUNDS: dict[str, Decimal] = {
    "ZUSD": Decimal(1_000_000), "XXBT": Decimal(20), "XETH": Decimal(300), "SOL": Decimal(5000),
}  # fmt: skip
_DEMO_SUB_FUNDS: dict[str, Decimal] = {
    "ZUSD": Decimal(10_000), "XXBT": Decimal("0.5"), "XETH": Decimal(5), "SOL": Decimal(100),
}  # fmt: skip


def settings_from_config(
    config: Config, *, keys: Mapping[str, tuple[str, str]] | None = None
) -> SimSettings:
    """A simulated domain for the service's own config: its accounts (funded for a demo), its
    tier, its seed, and the same rate-limit Decisions the limiter uses, so the two agree.
    `keys`: account -> (API key, base64 secret) to serve for it, the ones the service's config
    references (others get keys generated from the seed)."""
    limits = config.limits
    keys = keys or {}
    accounts = tuple(
        AccountSeed(
            name=account.name,
            role=account.role,
            account_id=account.venue_id,
            keys=(KeySeed(key=keys[account.name][0], secret=keys[account.name][1]),)
            if account.name in keys
            else (KeySeed(),),
            balances=_DEMO_MASTER_FUNDS if account.role == "master" else _DEMO_SUB_FUNDS,
            futures_cash=_DEMO_MASTER_FUTURES_CASH if account.role == "master" else {},
            futures_flex=_DEMO_MASTER_FLEX if account.role == "master" else _DEMO_SUB_FLEX,
        )
        for account in config.accounts
    )
    return SimSettings(
        seed=config.venue.simulator.seed,
        tier=config.venue.tier,
        domain=DomainSettings(
            multiplier=limits.domain_multiplier,
            scope=limits.domain_scope,
            per_account_cap=limits.per_account_cap,
        ),
        accounts=accounts or _demo_accounts(),
    )
