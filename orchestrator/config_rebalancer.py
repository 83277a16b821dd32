"""The `[rebalancer]` section: bands per account and asset, transfer caps, withdrawal rules and
futures margin top-ups (docs/rebalancing.md). Rules that span fields: config_rules.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from orchestrator.config_base import Section, doc


class RampStep(Section, frozen=True):
    after_s: Annotated[float, doc("Seconds after the band was first seen by the rebalancer.",
                                   ge=0)]  # fmt: skip
    fraction: Annotated[Decimal, doc("Share of the full target (and band) from then on, "
                                      "in (0, 1].")]  # fmt: skip


class RebalanceTarget(Section, frozen=True):
    account: Annotated[str, doc("Account whose balance is kept in the band.")]
    asset: Annotated[str, doc("Asset code as the venue names it (`ZUSD`, `XXBT`).", min_length=1)]
    target: Annotated[Decimal | None, doc("Level a transfer restores (or give `weight`).")] = None
    weight: Annotated[
        Decimal | None,
        doc("Target as this fraction of the domain's total of the asset; the weights of an "
             "asset sum to 1 over the accounts that have one (or give `target`)."),
    ] = None  # fmt: skip
    low: Annotated[Decimal | None, doc("Below this, top up to the target (or give `band`).")] = None
    high: Annotated[Decimal | None, doc("Above this, sweep down to the target.")] = None
    band: Annotated[
        Decimal | None, doc("Band as a fraction of the target: low = target x (1 - band), "
                             "high = target x (1 + band); in [0, 1].")
    ] = None  # fmt: skip
    floor: Annotated[
        Decimal, doc("Never sent from below this: the account keeps at least this much.")
    ] = Decimal(0)
    ramp: Annotated[
        list[RampStep],
        doc("Gradual rollout: the target is the last step's fraction of the full target."),
    ] = []


class AssetTransferLimits(Section, frozen=True):
    asset: Annotated[str, doc("Asset code as the venue names it.", min_length=1)]
    min_transfer: Annotated[
        Decimal, doc("Smaller transfers are not made (not worth a ledger entry).")
    ] = Decimal(0)
    max_per_transfer: Annotated[
        Decimal | None, doc("Largest single transfer; a bigger need is met over cycles.")
    ] = None
    max_per_day: Annotated[
        Decimal | None, doc("Most moved in one UTC day, all accounts together.")
    ] = None


class WithdrawalRule(Section, frozen=True):
    asset: Annotated[str, doc("Asset withdrawn from the source account.", min_length=1)]
    key: Annotated[str, doc("Withdrawal destination by its name in the account (allowlisted "
                             "at the venue).", min_length=1)]  # fmt: skip
    keep: Annotated[Decimal, doc("The source account keeps this much; above it, withdraw.")]
    min_amount: Annotated[Decimal, doc("Smaller withdrawals are not made.")] = Decimal(0)
    max_per_day: Annotated[
        Decimal | None, doc("Most withdrawn in one UTC day (also bounded by the tier).")
    ] = None


class MarginTopUp(Section, frozen=True):
    account: Annotated[str, doc("Account whose futures `flex` wallet is watched.")]
    asset: Annotated[str, doc("Collateral sent (futures name, e.g. `USD`).", min_length=1)] = "USD"
    min_margin_level: Annotated[
        Decimal, doc("Top up when (collateral + unrealized PnL) / margin is below this (> 1).")
    ] = Decimal(2)
    target_margin_level: Annotated[
        Decimal, doc("The level a top-up restores (above min_margin_level).")
    ] = Decimal(3)
    max_per_transfer: Annotated[Decimal | None, doc("Largest single top-up.")] = None


class RebalancerConfig(Section, frozen=True):
    enabled: Annotated[bool, doc("Move funds between accounts automatically.")] = True
    interval_s: Annotated[float, doc("How often balances are checked.", gt=0)] = 30.0
    source_account: Annotated[
        str | None, doc("Account that funds top-ups and receives sweeps; default the master.")
    ] = None
    targets: Annotated[list[RebalanceTarget], doc("Balance bands per account and asset.")] = []
    limits: Annotated[
        list[AssetTransferLimits], doc("Minimum size and caps of transfers, per asset.")
    ] = []
    senders: Annotated[
        list[str] | None, doc("Accounts allowed to send (default: every account).")
    ] = None
    receivers: Annotated[
        list[str] | None, doc("Accounts allowed to receive (default: every account).")
    ] = None
    withdrawals: Annotated[
        list[WithdrawalRule], doc("Treasury sweeps out of the source account.")
    ] = []
    margin: Annotated[
        list[MarginTopUp], doc("Futures flex wallets kept above a margin level.")
    ] = []
