"""The operator's side of the control plane: build, sign and send a command, wait for its reply.

    client = ControlClient(redis, keys, operator="ada", secret=secret, clock=RealClock())
    reply = await client.request(client.command("halt", reason="desk drill"), timeout_s=10.0)

A command goes out only when some service process is alive (a heartbeat in `keys.processes()`
within `peer_timeout_s`): sent to nobody it would wait in the stream and run whenever a service
next starts, which is never what an operator at a terminal means; `ServiceNotRunning` says so
and nothing is sent. Once sent, its reply is popped from `keys.reply(entry)` in slices shorter
than the connection's socket timeout (a BLPOP longer than that reads as a dead socket), until
`timeout_s`; then `NoReply` names the command id and entry, since the command may still run
(`ctl watch` shows its outcome when it does). Every Redis error leaves as `StoreError` /
`StoreUnavailable`.

The heartbeat is read here with a Struct of its own that takes only `time_s` (and ignores the
rest), so this client keeps working with any service whose heartbeat has that field.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from orchestrator.clock import Clock
from orchestrator.control.audit import AuditEntry, decode_rows
from orchestrator.control.auth import sign
from orchestrator.control.commands import TYPE_NAMES, Command, decode_command
from orchestrator.control.replies import Reply, decode_reply
from orchestrator.errors import CommandError, OrchestratorError
from orchestrator.secrets import Secret
from orchestrator.store.errors import redis_errors
from orchestrator.store.keys import Keys

COMMANDS_MAX_LEN: Final = 10_000
PEER_TIMEOUT_S: Final = 3.0
SLICE_S: Final = 1.0  # one BLPOP / XREAD BLOCK; below the 2 s default socket timeout
_MIN_SLICE_S: Final = 0.01  # Redis reads a BLPOP timeout in ms, and 0 ms as "wait forever"
_ENVELOPE: Final = frozenset({"type", "v", "id", "operator", "time_s"})
_ID_PREFIX_LEN: Final = 40  # operator names run to 63 characters; an id to 64
# Decimals as JSON numbers: the operator's "0.1" reaches the command's Decimal fields exactly.
_encoder: Final = msgspec.json.Encoder(decimal_format="number")


class ServiceNotRunning(OrchestratorError):
    """No service process has a live heartbeat: a command would reach nobody."""


class NoReply(OrchestratorError):
    """A live service did not answer a command within the timeout (it may still run it)."""


class _Beat(msgspec.Struct, frozen=True):
    time_s: float


_beat: Final = msgspec.json.Decoder(_Beat)


def new_command_id(operator: str) -> str:
    """`<operator>-<16 hex>`: says who sent it, unique, within the id pattern."""
    return f"{operator[:_ID_PREFIX_LEN]}-{uuid.uuid4().hex[:16]}"


def make_command(
    type_name: str,
    fields: Mapping[str, Any],
    *,
    operator: str,
    time_s: float,
    command_id: str | None = None,
) -> Command:
    """A command of `type_name` with `fields`, checked as the service will check it;
    `CommandError` naming the type or field that is wrong."""
    if type_name not in TYPE_NAMES:
        raise CommandError(f"unknown command type {type_name!r}; one of {sorted(TYPE_NAMES)}")
    reserved = sorted(_ENVELOPE.intersection(fields))
    if reserved:
        raise CommandError(f"fields {reserved} are set by the client, not given")
    cid = new_command_id(operator) if command_id is None else command_id
    envelope = {"type": type_name, "id": cid, "operator": operator, "time_s": time_s}
    try:
        body = _encoder.encode({**envelope, **fields})
    except TypeError as exc:
        raise CommandError(f"bad command: a field is not JSON data ({exc})") from None
    return decode_command(body)


class ControlClient:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        operator: str,
        secret: Secret,
        clock: Clock,
        peer_timeout_s: float = PEER_TIMEOUT_S,
        slice_s: float = SLICE_S,
    ) -> None:
        """`slice_s`: the longest single blocking read; keep it below the client's socket
        timeout (`redis.socket_timeout_s`)."""
        if not slice_s > 0:
            raise ValueError(f"slice_s must be positive (got {slice_s})")
        self.redis = redis
        self.keys = keys
        self.operator = operator
        self._secret = secret
        self.clock = clock
        self.peer_timeout_s = peer_timeout_s
        self.slice_s = slice_s

    def command(self, type_name: str, **fields: Any) -> Command:
        """A command from this operator, signed now (see `make_command`)."""
        return make_command(type_name, fields, operator=self.operator, time_s=self.clock.time())

    async def live_processes(self) -> list[str]:
        """The service processes whose heartbeat is at most `peer_timeout_s` old, by name."""
        async with redis_errors(self.redis, "ctl.processes"):
            beats = await self.redis.hgetall(self.keys.processes())
        now_s = self.clock.time()
        live = []
        for name, raw in beats.items():
            try:
                beat = _beat.decode(raw)
            except msgspec.DecodeError:
                continue  # not a heartbeat we can read: not proof of life
            if now_s - beat.time_s <= self.peer_timeout_s:
                live.append(name.decode() if isinstance(name, bytes) else str(name))
        return sorted(live)

    async def send(self, command: Command) -> str:
        """XADD the signed command to the commands stream; its entry id (names the reply)."""
        fields: dict[FieldT, EncodableT] = {"wire": sign(command, self._secret)}
        async with redis_errors(self.redis, "ctl.send"):
            entry = await self.redis.xadd(
                self.keys.commands(), fields, maxlen=COMMANDS_MAX_LEN, approximate=True
            )
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    async def request(self, command: Command, *, timeout_s: float = 10.0) -> Reply:
        """Send `command` to a live service and wait for its reply (see the module)."""
        if not await self.live_processes():
            raise ServiceNotRunning(
                f"no service process is running in namespace {self.keys.namespace} "
                f"(no heartbeat in the last {self.peer_timeout_s:g} s)"
            )
        entry = await self.send(command)
        key = self.keys.reply(entry)
        deadline_s = self.clock.monotonic() + timeout_s
        while (left_s := deadline_s - self.clock.monotonic()) > 0:
            wait_s = max(_MIN_SLICE_S, min(self.slice_s, left_s))
            async with redis_errors(self.redis, "ctl.reply"):
                popped = await self.redis.blpop([key], timeout=wait_s)
            if popped is not None:
                return decode_reply(_bytes(popped[1]))
        raise NoReply(
            f"no reply to command {command.id} (entry {entry}) within {timeout_s:g} s; it may "
            "still run: `orchestrator ctl watch` shows its outcome"
        )

    async def watch(self, *, since: str = "$") -> AsyncIterator[AuditEntry]:
        """The audit stream's entries after `since` ("$": from now on; "0": all kept), as they
        come, for as long as the caller iterates."""
        key = self.keys.audit()
        last = since
        if last == "$":  # pinned now: "$" again on the next read would skip what came between
            async with redis_errors(self.redis, "ctl.watch"):
                newest = await self.redis.xrevrange(key, count=1)
            last = _text(newest[0][0]) if newest and newest[0][0] else "0-0"
        block_ms = max(1, int(self.slice_s * 1000))
        while True:
            async with redis_errors(self.redis, "ctl.watch"):
                streams = await self.redis.xread({key: last}, count=100, block=block_ms)
            for _, rows in cast(list[tuple[Any, Any]], streams or []):
                for entry in decode_rows(rows):
                    last = entry.entry
                    yield entry


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
