"""The transfers of one rebalancing cycle, as a pure function of balances, bands and caps.

    bands = resolve_bands(config.rebalancer.targets, portfolio, elapsed_s=seen_for_s)
    moves = plan_transfers(portfolio, bands, hub="master", limits=limits_by_asset(...),
                           senders=None, receivers=None, in_flight=set(), moved_today={})

Decisions:
- **Through the hub.** Kraken's `AccountTransfer` moves funds between the master and a
  sub-account, either way; sub-to-sub goes through the master. So every planned transfer has the
  hub (`source_account`, the master by default) on one side, and the fewest transfers is one per
  out-of-band account: a deficit is topped up from the hub, a surplus swept to it. Routing a
  surplus straight to a deficit would cost two transfers anyway, and chain them.
- **The hub is the residual.** Its own band, if configured, triggers nothing: it holds whatever
  the sub-accounts do not. Its `floor` is kept: deficits are funded from the hub's available minus
  its floor *as of now*, never counting a sweep of the same cycle (that sweep may fail). When the
  hub cannot fund every deficit, the largest are funded first, the last one partially.
- **What is measured is `available`** (total - held): an account below `low` is topped up to
  `target`, one above `high` sends down to `target`, never below its `floor` and never from held
  funds. A weight's target is the weight x the domain *total* (held included), so that holds and
  money in flight, which move between `total` and `held`, do not shift every account's target.
- **Order and caps.** Assets in name order; in each, deficits before surpluses (an account under
  its band may be unable to trade; a surplus is only idle), each largest first (ties by account).
  A transfer is cut to `max_per_transfer`, to what is left of the day's cap for the asset
  (`moved_today` plus this plan's earlier transfers of it, all accounts together), then rounded
  down to the asset's decimals; below `min_transfer` (or 0) it is not made. A need bigger than a
  cap is met over the next cycles.
- **In flight.** A sub-account with a transfer of the asset not yet final gets no new one for it.
  The hub is exempt, as it is one side of every transfer: the caller passes balances net of what
  is in flight (an outgoing amount the venue has not debited yet is added to the sender's `held`),
  so the hub's available already leaves it out.

The output is in the order above, which is deterministic and the order to send in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Final

import msgspec

from orchestrator.config import AssetTransferLimits, Config, RampStep, RebalanceTarget
from orchestrator.rebalancer.portfolio import Portfolio
from orchestrator.rebalancer.transfers import PlannedTransfer

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)


class Band(msgspec.Struct, frozen=True, kw_only=True):
    """One account's band for one asset, in amounts of the asset (ramp applied). A Struct,
    not a dataclass: a cycle makes one per (account, asset), and a frozen dataclass costs
    several times as much to build."""

    account: str
    asset: str
    target: Decimal
    low: Decimal
    high: Decimal
    floor: Decimal = ZERO
    ramp_fraction: Decimal = ONE

    def __post_init__(self) -> None:
        if not ZERO <= self.low <= self.target <= self.high:
            raise ValueError(f"{self.account}/{self.asset}: needs 0 <= low <= target <= high, "
                             f"got {self.low} / {self.target} / {self.high}")  # fmt: skip
        if self.floor < 0:
            raise ValueError(f"{self.account}/{self.asset}: floor {self.floor} is below 0")


def hub_account(config: Config) -> str:
    """The account that funds deficits and receives surpluses: `source_account`, else the master."""
    return config.rebalancer.source_account or config.master.name


def ramp_fraction(steps: Sequence[RampStep], elapsed_s: float) -> Decimal:
    """The fraction of the last step whose `after_s` <= `elapsed_s` (1 without a ramp; the
    first step before it has started, as the config makes that step start at 0)."""
    if not steps:
        return ONE
    fraction = steps[0].fraction
    for step in steps:
        if step.after_s > elapsed_s:
            break
        fraction = step.fraction
    return fraction


def resolve_bands(
    targets: Sequence[RebalanceTarget],
    portfolio: Portfolio,
    *,
    elapsed_s: Mapping[tuple[str, str], float],
) -> list[Band]:
    """The configured bands as amounts. `elapsed_s[(account, asset)]` is how long the rebalancer
    has known the band (the ramp's clock); a band absent from it has just been seen (0 s).
    The ramp's fraction scales target, low and high; the floor is an amount and stays."""
    bands: list[Band] = []
    for spec in targets:
        full = spec.target
        if full is None:
            if spec.weight is None:
                raise ValueError(f"{spec.account}/{spec.asset}: neither target nor weight")
            full = spec.weight * portfolio.total(spec.asset)
        if spec.band is not None:
            low, high = full * (ONE - spec.band), full * (ONE + spec.band)
        elif spec.low is not None and spec.high is not None:
            low, high = spec.low, spec.high
        else:
            raise ValueError(f"{spec.account}/{spec.asset}: neither band nor low and high")
        fraction = ONE
        if spec.ramp:
            fraction = ramp_fraction(spec.ramp, elapsed_s.get((spec.account, spec.asset), 0.0))
            full, low, high = full * fraction, low * fraction, high * fraction
        band = Band(account=spec.account, asset=spec.asset, target=full, low=low, high=high,
                    floor=spec.floor, ramp_fraction=fraction)  # fmt: skip
        bands.append(band)
    return bands


def limits_by_asset(limits: Sequence[AssetTransferLimits]) -> dict[str, AssetTransferLimits]:
    return {limit.asset: limit for limit in limits}


@dataclass(frozen=True, slots=True)
class _Caps:
    min_transfer: Decimal
    max_per_transfer: Decimal | None
    quantum: Decimal | None

    def cut(self, need: Decimal, budget: Decimal | None, day_left: Decimal | None) -> Decimal:
        """`need` within the per-transfer cap, the budget and the day's cap, on the asset's grid;
        0 when the result is under `min_transfer`."""
        amount = need
        cap = self.max_per_transfer
        if cap is not None and cap < amount:
            amount = cap
        if budget is not None and budget < amount:
            amount = budget
        if day_left is not None and day_left < amount:
            amount = day_left
        if self.quantum is not None:
            amount = amount.quantize(self.quantum, rounding=ROUND_FLOOR)
        if amount <= 0 or amount < self.min_transfer:
            return ZERO
        return amount


def _caps(asset: str, limits: Mapping[str, AssetTransferLimits], decimals: int | None) -> _Caps:
    limit = limits.get(asset)
    quantum = None if decimals is None else ONE.scaleb(-decimals)
    if limit is None:
        return _Caps(ZERO, None, quantum)
    return _Caps(limit.min_transfer, limit.max_per_transfer, quantum)


def plan_transfers(
    portfolio: Portfolio,
    bands: Sequence[Band],
    *,
    hub: str,
    limits: Mapping[str, AssetTransferLimits],
    senders: Collection[str] | None,
    receivers: Collection[str] | None,
    in_flight: Collection[tuple[str, str]],
    moved_today: Mapping[str, Decimal],
    decimals: Mapping[str, int] | None = None,
) -> list[PlannedTransfer]:
    """The transfers that bring out-of-band accounts back to their targets (module docstring).

    `limits` by asset (`limits_by_asset`); `senders` / `receivers`: the accounts allowed to send
    or receive (None: any); `in_flight`: (account, asset) pairs with a transfer not final;
    `moved_today`: asset -> amount already moved this UTC day; `decimals`: asset -> transfer
    precision (an asset absent from it is not rounded). Bands of accounts without balances in
    `portfolio` raise KeyError: the caller reads every account before it plans."""
    portfolio.funds(hub)
    by_asset: dict[str, list[Band]] = {}
    for band in bands:
        by_asset.setdefault(band.asset, []).append(band)
    may_send = None if senders is None else frozenset(senders)
    may_receive = None if receivers is None else frozenset(receivers)
    flying = frozenset(in_flight)
    plan: list[PlannedTransfer] = []
    for asset in sorted(by_asset):
        limit = limits.get(asset)
        day_cap = None if limit is None else limit.max_per_day
        plan += _plan_asset(
            portfolio,
            by_asset[asset],
            asset=asset,
            hub=hub,
            caps=_caps(asset, limits, None if decimals is None else decimals.get(asset)),
            day_left=None if day_cap is None else day_cap - moved_today.get(asset, ZERO),
            may_send=may_send,
            may_receive=may_receive,
            flying=flying,
        )
    return plan


def _plan_asset(
    portfolio: Portfolio,
    bands: Sequence[Band],
    *,
    asset: str,
    hub: str,
    caps: _Caps,
    day_left: Decimal | None,
    may_send: frozenset[str] | None,
    may_receive: frozenset[str] | None,
    flying: frozenset[tuple[str, str]],
) -> list[PlannedTransfer]:
    hub_floor = ZERO
    # (-need, account): sorted, the largest need first, ties by account name
    deficits: list[tuple[Decimal, str]] = []
    surpluses: list[tuple[Decimal, str]] = []
    hub_sends = may_send is None or hub in may_send
    hub_receives = may_receive is None or hub in may_receive
    seen: set[str] = set()
    for band in bands:
        account = band.account
        if account in seen:
            raise ValueError(f"a second band for {account}/{asset}")
        seen.add(account)
        if account == hub:
            hub_floor = band.floor
            continue
        if flying and (account, asset) in flying:
            continue
        available = portfolio.available_in(account).get(asset, ZERO)
        if available < band.low:
            if hub_sends and (may_receive is None or account in may_receive):
                deficits.append((available - band.target, account))
        elif available > band.high:
            keep = band.target if band.target > band.floor else band.floor
            if available > keep and hub_receives and (may_send is None or account in may_send):
                surpluses.append((keep - available, account))
    budget = portfolio.available(hub, asset) - hub_floor
    plan: list[PlannedTransfer] = []
    deficits.sort()
    surpluses.sort()
    for minus_need, account in deficits:
        amount = caps.cut(-minus_need, budget, day_left)
        if amount:
            budget -= amount
            day_left = None if day_left is None else day_left - amount
            plan.append(PlannedTransfer(asset=asset, amount=amount, source=hub, target=account,
                                        reason="band_low"))  # fmt: skip
    for minus_need, account in surpluses:
        amount = caps.cut(-minus_need, None, day_left)
        if amount:
            day_left = None if day_left is None else day_left - amount
            plan.append(PlannedTransfer(asset=asset, amount=amount, source=account, target=hub,
                                        reason="band_high"))  # fmt: skip
    return plan


def plan_cycle(
    config: Config,
    portfolio: Portfolio,
    *,
    in_flight: Collection[tuple[str, str]],
    moved_today: Mapping[str, Decimal],
    elapsed_s: Mapping[tuple[str, str], float],
    decimals: Mapping[str, int] | None = None,
) -> tuple[list[Band], list[PlannedTransfer]]:
    """One cycle's bands (as amounts) and band transfers straight from the config."""
    rebalancer = config.rebalancer
    bands = resolve_bands(rebalancer.targets, portfolio, elapsed_s=elapsed_s)
    return bands, plan_transfers(
        portfolio,
        bands,
        hub=hub_account(config),
        limits=limits_by_asset(rebalancer.limits),
        senders=rebalancer.senders,
        receivers=rebalancer.receivers,
        in_flight=in_flight,
        moved_today=moved_today,
        decimals=decimals,
    )
