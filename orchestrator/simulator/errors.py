"""The simulator's one exception: a Kraken error string, as the venue would put in `error`.

Everything inside the simulator that refuses a request raises `KrakenError("EOrder:...")`; the
REST and WebSocket layers turn it into Kraken's envelope. The codes are Kraken's exact strings
(`docs/kraken/rest.md` section 4), collected here so that a typo cannot invent a new one.
"""

from __future__ import annotations

from typing import Final

# Authentication and API.
INVALID_KEY: Final = "EAPI:Invalid key"
INVALID_SIGNATURE: Final = "EAPI:Invalid signature"
INVALID_NONCE: Final = "EAPI:Invalid nonce"
PERMISSION_DENIED: Final = "EGeneral:Permission denied"
TEMPORARY_LOCKOUT: Final = "EGeneral:Temporary lockout"
INVALID_ARGUMENTS: Final = "EGeneral:Invalid arguments"
UNKNOWN_METHOD: Final = "EGeneral:Unknown method"
INTERNAL_ERROR: Final = "EGeneral:Internal error"
# Rate limits.
REST_RATE_LIMIT: Final = "EAPI:Rate limit exceeded"
TRADING_RATE_LIMIT: Final = "EOrder:Rate limit exceeded"
DOMAIN_RATE_LIMIT: Final = "EOrder:Domain rate limit exceeded"
ORDERS_LIMIT: Final = "EOrder:Orders limit exceeded"
# Orders.
INSUFFICIENT_FUNDS: Final = "EOrder:Insufficient funds"
ORDER_MINIMUM: Final = "EOrder:Order minimum not met"
COST_MINIMUM: Final = "EOrder:Cost minimum not met"
TICK_SIZE: Final = "EOrder:Tick size check failed"
INVALID_PRICE: Final = "EOrder:Invalid price"
UNKNOWN_ORDER: Final = "EOrder:Unknown order"
POST_ONLY_WOULD_TAKE: Final = "EOrder:Post only order"
REDUCE_ONLY_NO_POSITION: Final = "EOrder:Reduce only:No position exists"
DUPLICATE_CL_ORD_ID: Final = "EOrder:Duplicate cl_ord_id"
# Queries and funding.
UNKNOWN_ASSET_PAIR: Final = "EQuery:Unknown asset pair"
UNKNOWN_ASSET: Final = "EQuery:Unknown asset"
FUNDING_UNKNOWN_ASSET: Final = "EFunding:Unknown asset"
FUNDING_INVALID_AMOUNT: Final = "EFunding:Invalid amount"
FUNDING_UNKNOWN_KEY: Final = "EFunding:Unknown withdraw key"
FUNDING_INSUFFICIENT: Final = "EFunding:Insufficient funds"
# Not in Kraken's lists: a Decision (docs/kraken/accounts-and-transfers.md section 3).
FUNDING_DAILY_LIMIT: Final = "EFunding:Daily limit exceeded"
# Service.
SERVICE_UNAVAILABLE: Final = "EService:Unavailable"
SERVICE_BUSY: Final = "EService:Busy"
DEADLINE_ELAPSED: Final = "EService:Deadline elapsed"


class KrakenError(Exception):
    """A refusal, carrying Kraken's error string (`EOrder:Insufficient funds`) as `code`."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail
        super().__init__(code if detail is None else f"{code} ({detail})")


class SimulatorBug(RuntimeError):
    """The simulator met bugs of its own while serving (see `open_simulator(strict=True)`)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        shown = "; ".join(self.errors[:5]) + (" ..." if len(self.errors) > 5 else "")
        super().__init__(f"the simulator failed {len(self.errors)} time(s): {shown}")
