"""Kraken's futures (derivatives) REST methods in one table: verb, path, whether they act, cost.

Every futures request names a `FuturesMethod` from this table, never a string, so the client
(acting or not: may a lost reply be sent again?) and the limiter (which budget, what cost) read
the same row. Costs and budgets: docs/kraken/rest.md section 5.4.

- `budget`: each Derivatives API key has two budgets at Kraken: `derivatives` (500 cost units
  per 10 s, every `/derivatives` endpoint) and `history` (100 tokens refilled at 100 per
  10 minutes, the `/api/history` endpoints). `ratelimit/policy.py` models both.
- `cost`: units the call takes from its budget. `GET /subaccounts` is not in Kraken's table; we
  charge it 2 like every other read (the Decision the simulator makes too). The account log
  costs by `count`; the client never asks for more than `ACCOUNT_LOG_MAX_COUNT` entries, the
  most that cost 1.
- `acting`: the call changes state at the venue; a lost or unreadable reply is ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from orchestrator.exchange.kraken.common.methods import Lane

Budget = Literal["derivatives", "history"]
Verb = Literal["GET", "POST", "PUT"]

DERIVATIVES_PREFIX: Final = "/derivatives/api/v3"
HISTORY_PREFIX: Final = "/api/history/v3"
ACCOUNT_LOG_MAX_COUNT: Final = 25


@dataclass(frozen=True, slots=True)
class FuturesMethod:
    """One Kraken futures endpoint."""

    name: str  # as Kraken's cost table names it (`transfer/subaccount`)
    verb: Verb
    path: str  # from the host; `{uid}` where the path names a sub-account
    acting: bool
    cost: int
    budget: Budget = "derivatives"
    lane: Lane = "new_risk"

    def __str__(self) -> str:
        return f"{self.verb} {self.name}"


def _derivatives(
    name: str, verb: Verb, *, acting: bool, cost: int, path: str = ""
) -> FuturesMethod:
    return FuturesMethod(name, verb, f"{DERIVATIVES_PREFIX}/{path or name}", acting, cost)


ACCOUNTS: Final = _derivatives("accounts", "GET", acting=False, cost=2)
SUBACCOUNTS: Final = _derivatives("subaccounts", "GET", acting=False, cost=2)
TRADING_ENABLED: Final = _derivatives(
    "trading-enabled", "GET", acting=False, cost=2, path="subaccount/{uid}/trading-enabled"
)
SET_TRADING_ENABLED: Final = _derivatives(
    "trading-enabled", "PUT", acting=True, cost=2, path="subaccount/{uid}/trading-enabled"
)
TRANSFER: Final = _derivatives("transfer", "POST", acting=True, cost=10)
TRANSFER_SUBACCOUNT: Final = _derivatives("transfer/subaccount", "POST", acting=True, cost=10)
ACCOUNT_LOG: Final = FuturesMethod(
    "account-log", "GET", f"{HISTORY_PREFIX}/account-log", acting=False, cost=1, budget="history"
)

METHODS: Final[Mapping[str, FuturesMethod]] = MappingProxyType(
    {
        str(m): m
        for m in (
            ACCOUNTS, SUBACCOUNTS, TRADING_ENABLED, SET_TRADING_ENABLED, TRANSFER,
            TRANSFER_SUBACCOUNT, ACCOUNT_LOG,
        )
    }
)  # fmt: skip
"""Every futures method by `VERB name`."""
