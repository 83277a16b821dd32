"""Every Redis key name of orchestrator, in one place, under the configured namespace.

Two desks share one Redis by using two namespaces. Keys that one Lua script touches together
(the limiter's state and the pools' active sets) carry the same hash tag, `{<namespace>:domain}`,
so that the same scripts run unchanged on Redis Cluster, where a script may only touch keys of one
slot.
"""

from __future__ import annotations

import re
from typing import Final

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_PART = re.compile(r"^[A-Za-z0-9_./:-]{1,200}$")


def _part(value: str, what: str) -> str:
    """Refuse key parts that could forge another key (braces change the hash slot)."""
    if not _PART.match(value):
        raise ValueError(f"{what} {value!r} is not a valid key part")
    return value


class Keys:
    """Key names for one namespace."""

    __slots__ = ("control_tag", "domain_tag", "namespace")

    def __init__(self, namespace: str) -> None:
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"namespace {namespace!r} must match {_NAMESPACE.pattern}")
        self.namespace: Final = namespace
        self.domain_tag: Final = f"{{{namespace}:domain}}"
        self.control_tag: Final = f"{{{namespace}:ctl}}"

    # --- rate limiter: all in one hash slot ---------------------------------------------------
    def limiter_state(self) -> str:
        """Hash of the limiter's whole shared state, so that one HMGET reads and one HSET
        writes everything a permit touches: the epoch (`id`, `lost_s`, `seq`: which incarnation
        of the state Redis holds), each counter (`limiter_scope_field`: its tat and cooldown
        end as two packed doubles, `ratelimit/wire.py`), and each pool's fair shares
        (`s|<pool>|<strategy>`, `s|<pool>|~W` the weight active on the pool). Losing the hash
        loses all of it at once: a loss the epoch tells every process of. The name carries the
        format's version (`v2`: packed doubles; the text of v1 is never misread as numbers)."""
        return f"{self.domain_tag}:limiter:v2"

    @staticmethod
    def limiter_scope_field(scope: str) -> str:
        """The field of one counter in `limiter_state`, e.g. scope `domain:XBT/USD`."""
        return f"r|{_part(scope, 'scope')}"

    def limiter_active(self, pool: str) -> str:
        """Sorted set of the strategies active on one pool, scored by when each stops being
        active (so expiry is a range read, not a walk of every strategy)."""
        return f"{self.domain_tag}:active:{_part(pool, 'scope')}"

    # --- venue edge ---------------------------------------------------------------------------
    def nonce(self, key_id: str) -> str:
        """Last nonce issued for one API key (by its non-secret id), shared by every process."""
        return f"{self.namespace}:nonce:{_part(key_id, 'key id')}"

    def key_mutex(self, key_id: str) -> str:
        """Mutex letting one process at a time send with an API key (nonce order)."""
        return f"{{{self.namespace}:keylock:{_part(key_id, 'key id')}}}"

    def key_mutex_queue(self, key_id: str) -> str:
        """The mutex's waiters in arrival order (and `<this>:lapse`); the mutex's hash tag, so
        the one script that leases it touches one Cluster slot."""
        return f"{self.key_mutex(key_id)}:queue"

    # --- orders --------------------------------------------------------------------------------
    def order_journal(self, account: str) -> str:
        """Hash cl_ord_id -> journal entry of every order intent of one account whose outcome
        is not settled yet; written before the order is sent, reconciled at start."""
        return f"{self._orders_tag(account)}:pending"

    def order_outcomes(self, account: str) -> str:
        """Capped stream of settled journal entries of one account (what became of each)."""
        return f"{self._orders_tag(account)}:settled"

    def _orders_tag(self, account: str) -> str:
        """One hash slot per account's journal: its settle script touches both keys."""
        return f"{{{self.namespace}:orders:{_part(account, 'account')}}}"

    def strategy_status(self) -> str:
        """Hash strategy -> its latest status (JSON: state, orders, fills, positions, PnL),
        written by the process that runs it: what `ctl status` and the status page read."""
        return f"{self.namespace}:status:strategies"

    def service_events(self) -> str:
        """Capped stream of service events the control plane reads (strategy failures, ...)."""
        return f"{self.namespace}:events"

    # --- transfers ----------------------------------------------------------------------------
    # --- rebalancer journal: one hash slot (its write script touches all four) ---------------
    def rebalancer_transfers(self) -> str:
        """Hash record id -> rebalancing record (JSON), open and recently finished ones."""
        return f"{self._rebalancer_tag()}:transfers"

    def rebalancer_open(self) -> str:
        """Hash record id -> state of every record not final yet; reconciled before a cycle."""
        return f"{self._rebalancer_tag()}:open"

    def rebalancer_finished(self) -> str:
        """Sorted set of finished record ids by finish time; capped, the oldest dropped."""
        return f"{self._rebalancer_tag()}:finished"

    def rebalancer_ramp(self) -> str:
        """Hash `account:asset` -> when the rebalancer first saw that band (wall clock): where
        a ramp (gradual rollout) counts from, kept across restarts."""
        return f"{self._rebalancer_tag()}:ramp"

    def rebalancer_day(self, day: str) -> str:
        """Hash record id -> (kind, asset, amount) of the moves of one UTC day that did not
        fail, for the daily caps; expires days later."""
        return f"{self._rebalancer_tag()}:day:{_part(day, 'day')}"

    def _rebalancer_tag(self) -> str:
        return f"{{{self.namespace}:rebalancer}}"

    # --- operator control: one hash slot (the handling scripts touch several at once) --------
    def commands(self) -> str:
        """Stream of signed operator commands, read by the services' consumer group."""
        return f"{self.control_tag}:commands"

    def inbox(self, process: str) -> str:
        """Stream of commands routed to one service process (it runs what they name)."""
        return f"{self.control_tag}:inbox:{_part(process, 'process')}"

    def command_record(self, command_id: str) -> str:
        """Hash of what became of one command id (taken, routed, done): exactly-once handling
        and the refusal of replays; expires."""
        return f"{self.control_tag}:cmd:{_part(command_id, 'command id')}"

    def reply(self, entry_id: str) -> str:
        """List holding the reply to one stream entry (its sender pops it); expires."""
        return f"{self.control_tag}:reply:{_part(entry_id, 'entry id')}"

    def acks(self, entry_id: str) -> str:
        """List of the processes' answers to one command broadcast to all of them; expires."""
        return f"{self.control_tag}:ack:{_part(entry_id, 'entry id')}"

    def audit(self) -> str:
        """Capped stream of every command and its outcome, halts, strategy failures, transfers."""
        return f"{self.control_tag}:audit"

    def processes(self) -> str:
        """Hash process -> its heartbeat (JSON: strategies, accounts, rebalancer, time)."""
        return f"{self.control_tag}:procs"

    def trading_state(self) -> str:
        """Hash {state, reason, operator, since_s}: the domain's trading state (HALTED by the
        kill switch), read by every process at start and kept in step while it runs."""
        return f"{self.control_tag}:trading"

    def limit_shares(self) -> str:
        """Hash strategy -> weight set by `set_limit_shares`, over the configured weights."""
        return f"{self.control_tag}:shares"

    # --- placement ----------------------------------------------------------------------------
    def lease(self, strategy: str) -> str:
        """Lease (with fencing token) saying which process runs a strategy."""
        return f"{self.namespace}:lease:{_part(strategy, 'strategy')}"

    def fencing_counter(self) -> str:
        return f"{self.namespace}:lease:fence"

    def heartbeat(self, process_id: str) -> str:
        return f"{self.namespace}:proc:{_part(process_id, 'process id')}"
