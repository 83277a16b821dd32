"""Fuzz of the control plane against the running service: 10,000 hostile stream entries, each
answered with an error, none changing anything, the service still answering afterwards.

The service runs in this process (its `Service` object is at hand) with two market makers
resting wide quotes on two sub-accounts of the simulator. The entries are XADDed straight onto
the commands stream (redis-py, pipelined), drawn from a seeded generator: not JSON, JSON that is
no object, deep nesting, bodies over the 96 KB limit, missing fields, unknown types, wrong wire
versions, bad ids, unknown operators, no signature, wrong signatures, bodies tampered with after
signing, expired and future-dated commands, exact replays of answered read-only commands,
commands beyond the operator's role, well-signed commands with hostile values, entries without a
`wire` field or with extra fields. Most kinds carry one of the desk's most dangerous commands
(halt, cancel_all of everything, set_params, stop_strategy...) with one defect, so a check that
let one through would show up as a changed state. What is checked after: one error reply per entry (no secret in
any), the trading state, every strategy's worker, state and params, the limit shares, the
venue's open orders and CancelAll counts, the audit trail, and a valid `status` answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

import redis.asyncio as aioredis

from orchestrator.control.auth import sign
from orchestrator.control.commands import Status, encode_command
from orchestrator.control.replies import decode_reply
from orchestrator.secrets import Secret
from orchestrator.service import Service
from orchestrator.simulator.app import RunningSimulator, open_simulator
from orchestrator.simulator.settings import SimSettings, domain_accounts
from orchestrator.store.keys import Keys
from tests.service_harness import (
    OPERATORS,
    ServiceSetup,
    StrategySpec,
    operator_client,
    operator_secret,
    running_service,
    write_config,
)

SEED: Final = 20_241_313
ENTRIES: Final = 10_000
BATCH: Final = 500  # XADDs per pipeline
REPLIES_BOUND_S: Final = 120.0
SETTLE_S: Final = 1.0  # after the last reply: a second one would have come by then
FUNDS: Final = {"ZUSD": Decimal(50_000), "XXBT": Decimal(2), "XETH": Decimal(20)}
MAKERS: Final = {  # wide quotes: they rest, far from the synthetic market's moves
    "mm0": StrategySpec("mm0", "s0", "XBT/USD",
                        {"size": "0.01", "spread_bps": 150, "requote_bps": 50}),
    "mm1": StrategySpec("mm1", "s1", "ETH/USD",
                        {"size": "0.2", "spread_bps": 150, "requote_bps": 50}),
}  # fmt: skip
VENUE_CANCEL_ALLS: Final = ("ws:cancel_all", "private:CancelAll")
READS: Final = ("status", "list_strategies", "limits", "list_transfers", "approve_status")
# One body of each command type, well-formed: every check but one passing would run it.
TEMPLATES: Final[Mapping[str, Mapping[str, Any]]] = {
    "status": {}, "list_strategies": {}, "limits": {}, "approve_status": {},
    "list_transfers": {"limit": 10},
    "start_strategy": {"strategy": "mm0"}, "stop_strategy": {"strategy": "mm0"},
    "pause_strategy": {"strategy": "mm1"}, "resume_strategy": {"strategy": "mm1"},
    "set_params": {"strategy": "mm0", "params": {"size": "0.5", "spread_bps": 1}},
    "cancel_all": {}, "rebalance_now": {}, "halt": {"reason": "fuzz"}, "resume_trading": {},
    "set_targets": {"targets": [{"account": "s0", "asset": "ZUSD", "target": "100",
                                 "low": "50", "high": "150"}]},
    "set_limit_shares": {"weights": {"mm0": 5.0}},
}  # fmt: skip
DANGEROUS: Final = ("halt", "cancel_all", "set_params", "stop_strategy", "pause_strategy",
                    "set_limit_shares", "resume_trading")  # fmt: skip
BEYOND_VIEWER: Final = tuple(t for t in TEMPLATES if t not in READS)
BEYOND_TRADER: Final = ("halt", "resume_trading", "set_targets", "set_limit_shares")
# Well-signed by an operator allowed to send them, refused for their values alone.
HOSTILE_VALUES: Final[tuple[tuple[str, str, str], ...]] = (
    # (operator, type, the body's fields as JSON text: numbers json.dumps cannot write)
    ("alice", "set_limit_shares", '{"weights": {"mm0": 1e999}}'),
    ("alice", "set_limit_shares", '{"weights": {"mm0": -1e999}}'),
    ("alice", "set_limit_shares", '{"weights": {"mm0": -2.5}}'),
    ("alice", "set_limit_shares", '{"weights": {"mm0": 0}}'),
    ("alice", "set_limit_shares", '{"weights": {"mm0": 1e7}}'),
    ("alice", "set_limit_shares", '{"weights": {"mm0": "\\u0663"}}'),
    ("alice", "set_limit_shares", '{"weights": {"nope": 1.0}}'),
    ("alice", "set_limit_shares", '{"weights": {"MM0": 1.0}}'),
    ("alice", "set_limit_shares", '{"weights": {}}'),
    ("alice", "set_limit_shares", '{"weights": [1, 2]}'),
    ("vera", "list_transfers", '{"limit": -1}'),
    ("vera", "list_transfers", '{"limit": 0}'),
    ("vera", "list_transfers", '{"limit": 1001}'),
    ("vera", "list_transfers", '{"limit": 1e999}'),
    ("vera", "list_transfers", '{"limit": "\\u0661\\u0660"}'),
    ("vera", "list_transfers", '{"limit": 2.5}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "-1"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "NaN"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "Infinity"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "0"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "\\u0661"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "\\uff11"}}'),
    ("tom", "set_params", '{"strategy": "mm1", "params": {"size": "\\u0660.\\u0665"}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "0.01", "sprad_bps": 3}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": "0.01", "spread_bps": -5}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": {"size": [1]}}'),
    ("tom", "set_params", '{"strategy": "mm0", "params": "size=1"}'),
    ("tom", "set_params", '{"strategy": "nope", "params": {"size": "-1"}}'),
    ("tom", "set_params", '{"strategy": "ghost", "params": {"bogus": true}}'),
    ("tom", "set_params", '{"strategy": "Mm0", "params": {"size": "1"}}'),
    ("tom", "set_params", '{"strategy": "mm0/../x", "params": {"size": "1"}}'),
    ("tom", "cancel_all", '{"account": "nobody"}'),
    ("tom", "cancel_all", '{"strategy": "nope"}'),
    ("tom", "cancel_all", '{"account": "S0"}'),
    ("tom", "start_strategy", '{"strategy": "mm0"}'),
    ("tom", "start_strategy", '{"strategy": "nope"}'),
    ("tom", "resume_strategy", '{"strategy": "mm1"}'),
    ("tom", "pause_strategy", '{"strategy": "nope"}'),
    ("tom", "stop_strategy", '{"strategy": "nope"}'),
    ("tom", "stop_strategy", '{"strategy": 5}'),
    ("tom", "stop_strategy", '{"strategy": null}'),
    ("tom", "rebalance_now", "{}"),
    ("alice", "halt", '{"reason": ""}'),
    ("alice", "halt", '{"reason": 7}'),
    ("alice", "halt", '{"reason": "' + "x" * 501 + '"}'),
    ("alice", "halt", "{}"),
    ("alice", "set_targets", '{"targets": []}'),
    ("alice", "set_targets", '{"targets": [{"account": "s0", "asset": "ZUSD", "target": "NaN",'
                             ' "low": "0", "high": "1"}]}'),
    ("alice", "set_targets", '{"targets": [{"account": "s0", "asset": "ZUSD", "target": "5",'
                             ' "low": "9", "high": "1"}]}'),
    ("alice", "set_targets", '{"targets": [{"account": "s0", "asset": "ZUSD", "target": "-1",'
                             ' "low": "-2", "high": "1"}]}'),
    ("alice", "set_targets", '{"targets": [{"account": "s0", "asset": "ZUSD", "target": '
                             '"\\u0661\\u0660", "low": "1", "high": "\\u0669\\u0669"}]}'),
    ("alice", "status", '{"extra": 1}'),
)  # fmt: skip

# What each kind is refused for (any of these in its error): a fuzzer that built its entries
# wrong would show here rather than pass for the wrong reason.
WINDOW: Final = ("outside the 60 s window", "at `$.time_s`")
SIGNATURE: Final = ("not a signed command", "bad signature")
EXPECTED: Final[Mapping[str, tuple[str, ...]]] = {
    "not_json": ("not a signed command",), "json_not_object": ("not a signed command",),
    "deep_nesting": ("maximum recursion depth", "bytes; at most", "not a signed command",
                     "params.size"),
    "huge": ("bytes; at most",), "missing_field": ("missing required field",),
    "unknown_type": ("at `$.type`",), "wrong_version": ("at `$.v`",), "bad_id": ("at `$.id`",),
    "unknown_operator": ("unknown operator", "at `$.operator`"), "unsigned": SIGNATURE,
    "wrong_signature": ("bad signature",),
    "tampered": ("bad signature", "bad command", "command is not JSON"),
    "expired": WINDOW, "future": WINDOW, "replayed": ("already used",),
    "over_privileged": ("may not",), "no_wire": ("without a `wire` field",),
    "extra_fields": ("may not", *WINDOW, *SIGNATURE, "already used"),
}  # fmt: skip
# A well-signed command with a hostile value must be refused for its value, not its envelope.
NOT_FOR_VALUES: Final = ("may not", "bad signature", "window", "already used", "at `$.id`")

NOT_JSON: Final = (b"{", b"}", b"{'command': 1}", b"NaN", b"halt", b"\xff\xfe", b"\x00" * 9,
                   b'{"command": "x", "signature": }')  # fmt: skip

Fields = dict[str, bytes]


def sign_body(body: bytes, secret: str) -> bytes:
    """The wire of control.md for any body: `{command: <body as text>, signature: <hex>}`."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return json.dumps({"command": body.decode("utf-8", "surrogatepass"), "signature": mac},
                      separators=(",", ":")).encode()  # fmt: skip


class Hostile:
    """Seeded hostile stream entries, one kind each (`entry()` -> (kind, fields))."""

    def __init__(self, rng: random.Random, now_s: float, replays: list[bytes]) -> None:
        self.rng = rng
        self.now_s = now_s
        self.replays = replays
        self.serial = 0
        self.kinds: dict[str, tuple[float, Callable[[], Fields]]] = {  # kind -> (weight, make)
            "not_json": (1, self.not_json), "json_not_object": (1, self.json_not_object),
            "deep_nesting": (1, self.deep_nesting), "huge": (0.25, self.huge),
            "missing_field": (1, self.missing_field), "unknown_type": (1, self.unknown_type),
            "wrong_version": (1, self.wrong_version), "bad_id": (1, self.bad_id),
            "unknown_operator": (1, self.unknown_operator), "unsigned": (1, self.unsigned),
            "wrong_signature": (1, self.wrong_signature), "tampered": (1, self.tampered),
            "expired": (1, self.expired), "future": (1, self.future),
            "replayed": (1, self.replayed), "over_privileged": (1, self.over_privileged),
            "hostile_value": (1.5, self.hostile_value), "no_wire": (0.5, self.no_wire),
            "extra_fields": (0.5, self.extra_fields),
        }  # fmt: skip
        self._names = list(self.kinds)
        self._weights = [w for w, _ in self.kinds.values()]

    def entry(self) -> tuple[str, Fields]:
        kind = self.rng.choices(self._names, self._weights)[0]
        return kind, self.kinds[kind][1]()

    # --- building blocks -------------------------------------------------------------------------
    def new_id(self) -> str:
        self.serial += 1
        return f"fz-{self.serial:06d}-{self.rng.getrandbits(32):08x}"

    def body(self, type_name: str, operator: str = "alice", **fields: Any) -> dict[str, Any]:
        envelope = {"type": type_name, "id": self.new_id(), "operator": operator,
                    "time_s": self.now_s + self.rng.uniform(-5, 1)}  # fmt: skip
        if self.rng.random() < 0.3:
            envelope["v"] = 1
        return {**envelope, **TEMPLATES.get(type_name, {}), **fields}

    def dangerous(self, operator: str = "alice", **fields: Any) -> dict[str, Any]:
        return self.body(self.rng.choice(DANGEROUS), operator, **fields)

    @staticmethod
    def encode(body: Mapping[str, Any]) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode()

    def signed(self, body: Mapping[str, Any] | bytes, operator: str = "alice") -> Fields:
        raw = body if isinstance(body, bytes) else self.encode(body)
        return {"wire": sign_body(raw, operator_secret(operator))}

    # --- the kinds -------------------------------------------------------------------------------
    def not_json(self) -> Fields:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:
            return {"wire": rng.randbytes(rng.randint(1, 300))}
        if choice == 1:  # a signed command cut short
            return {"wire": self.signed(self.dangerous())["wire"][: rng.randint(1, 60)]}
        if choice == 2:
            return {"wire": rng.choice(NOT_JSON)}
        return {"wire": b'{"command": "' + rng.choice([b"a", b"halt", b"\\"])}

    def json_not_object(self) -> Fields:
        signed = json.dumps([self.signed(self.dangerous())["wire"].decode()])
        value = self.rng.choice(["[1, 2]", '"status"', "42", "null", "true", "[]", '""', signed])
        return {"wire": value.encode()}

    def deep_nesting(self) -> Fields:
        rng = self.rng
        depth = rng.choice([64, 600, 1_200, 5_000, 20_000, 40_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        nest = opener * depth + "1" + closer * depth
        if rng.random() < 0.5:  # the wire itself
            return {"wire": ('{"command":' + nest + ',"signature":"00"}').encode()}
        # inside a body signed by an operator allowed to send it
        body = self.encode(self.body("set_params", "tom", params={"size": "PLACEHOLDER"}))
        return self.signed(body.replace(b'"PLACEHOLDER"', nest.encode()), "tom")

    def huge(self) -> Fields:
        rng = self.rng
        if rng.random() < 0.5:  # over the wire's 96 KB
            size = rng.randint(96 * 1024 + 1, 140 * 1024)
            pad = "x" * size
            return {"wire": sign_body(self.encode(self.body("halt", reason=pad)),
                                      operator_secret("alice"))}  # fmt: skip
        # under 96 KB on the wire, over the command's 64 KB
        pad = "p" * rng.randint(64 * 1024, 90 * 1024)
        return self.signed(self.body("set_params", "tom", params={"size": "1", "pad": pad}),
                           "tom")  # fmt: skip

    def missing_field(self) -> Fields:
        body = self.dangerous()
        for name in self.rng.sample(["type", "id", "operator", "time_s"], self.rng.randint(1, 2)):
            body.pop(name, None)
        return self.signed(body)

    def unknown_type(self) -> Fields:
        kind = self.rng.choice(
            [
                "reboot",
                "STATUS",
                "status ",
                "",
                "__class__",
                "shutdown",
                "halt\u200b",
                "set-params",
                "Halt",
                "exec",
                7,
                None,
            ]
        )
        return self.signed(self.body("halt", type=kind))

    def wrong_version(self) -> Fields:
        version = self.rng.choice([0, 2, -1, "1", 1.5, None, 99, True])
        return self.signed(self.dangerous(v=version))

    def bad_id(self) -> Fields:
        bad = self.rng.choice(
            [
                "short",
                "",
                "a" * 65,
                "has space 123",
                "ünïcødé-id-1",
                "id/with/slash",
                "id\nnewline",
                12345678,
                None,
                "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
                "x" * 500,
            ]
        )
        return self.signed(self.dangerous(id=bad))

    def unknown_operator(self) -> Fields:
        name = self.rng.choice(
            ["mallory", "root", "Alice", "alice ", "", "al1ce", "a" * 70, "admin", 1, None]
        )
        return self.signed(self.dangerous() | {"operator": name})  # with alice's secret

    def unsigned(self) -> Fields:
        raw = self.encode(self.dangerous()).decode()
        wire = self.rng.choice(
            [
                {"command": raw},
                {"command": raw, "signature": ""},
                {"command": raw, "signature": None},
                {"command": raw, "signature": 0},
                json.loads(raw),
            ]
        )
        return {"wire": json.dumps(wire).encode()}

    def wrong_signature(self) -> Fields:
        rng = self.rng
        body = self.encode(self.dangerous())
        choice = rng.randrange(5)
        if choice == 0:  # signed with another operator's secret
            return {"wire": sign_body(body, operator_secret(rng.choice(["tom", "vera"])))}
        if choice == 1:  # a secret nobody has
            return {"wire": sign_body(body, "guessed-secret-" + str(rng.getrandbits(64)))}
        wire = json.loads(sign_body(body, operator_secret("alice")))
        mac: str = wire["signature"]
        if choice == 2:  # one hex digit flipped
            i = rng.randrange(len(mac))
            mac = mac[:i] + ("0" if mac[i] != "0" else "1") + mac[i + 1 :]
        elif choice == 3:  # cut
            mac = mac[: rng.randrange(len(mac))]
        else:  # random, or not hex at all
            mac = rng.choice([f"{rng.getrandbits(256):064x}", "zz" * 32, mac + "00"])
        wire["signature"] = mac
        return {"wire": json.dumps(wire).encode()}

    def tampered(self) -> Fields:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:  # vera's read turned into a halt
            body = self.body("status", "vera")
            wire = json.loads(sign_body(self.encode(body), operator_secret("vera")))
            wire["command"] = wire["command"].replace('"status"', '"halt","reason":"t"')
        elif choice == 1:  # tom's params, another size
            body = self.body("set_params", "tom", params={"size": "0.5"})
            wire = json.loads(sign_body(self.encode(body), operator_secret("tom")))
            wire["command"] = wire["command"].replace('"0.5"', '"5"')
        elif choice == 2:  # a read by vera, now in alice's name
            body = self.body("status", "vera")
            wire = json.loads(sign_body(self.encode(body), operator_secret("vera")))
            wire["command"] = wire["command"].replace('"vera"', '"alice"')
        else:  # one byte of the body changed or added (whitespace counts too)
            body = self.dangerous()
            wire = json.loads(sign_body(self.encode(body), operator_secret("alice")))
            text: str = wire["command"]
            i = rng.randrange(1, len(text) - 1)
            wire["command"] = text[:i] + rng.choice([" ", "\n", text[i].swapcase() * 2]) + text[i:]
        return {"wire": json.dumps(wire).encode()}

    def expired(self) -> Fields:
        # the window is checked against the time Redis took the entry: a few seconds later
        age = self.rng.choice([90.0, 120.0, 3_600.0, 86_400.0, 1e6, self.now_s])
        return self.signed(self.dangerous(time_s=self.now_s - age))

    def future(self) -> Fields:
        ahead = self.rng.choice([120.0, 300.0, 86_400.0, 1e7])  # the XADD takes seconds off
        body = self.dangerous(time_s=self.now_s + ahead)
        if self.rng.random() < 0.1:
            raw = self.encode({**body, "time_s": 0}).replace(b'"time_s":0', b'"time_s":1e999')
            return self.signed(raw)
        return self.signed(body)

    def replayed(self) -> Fields:
        return {"wire": self.rng.choice(self.replays)}

    def over_privileged(self) -> Fields:
        if self.rng.random() < 0.6:
            return self.signed(self.body(self.rng.choice(BEYOND_VIEWER), "vera"), "vera")
        return self.signed(self.body(self.rng.choice(BEYOND_TRADER), "tom"), "tom")

    def hostile_value(self) -> Fields:
        operator, type_name, fields = self.rng.choice(HOSTILE_VALUES)
        body = self.encode(self.body("status", operator))  # the envelope, then the fields
        raw = body[:-1] + b"," + fields[1:].encode() if fields != "{}" else body
        raw = raw.replace(b'"type":"status"', f'"type":"{type_name}"'.encode())
        return self.signed(raw, operator)

    def no_wire(self) -> Fields:
        rng = self.rng
        name = rng.choice(["cmd", "Wire", "wire ", "WIRE", "data", "command"])
        if rng.random() < 0.2:
            return {"wire": b""}
        return {name: self.signed(self.dangerous())["wire"]}

    def extra_fields(self) -> Fields:
        kind = self.rng.choice(["over_privileged", "expired", "wrong_signature", "replayed"])
        fields = self.kinds[kind][1]()
        # fields a routed or broadcast copy carries, here on the main stream
        return {**fields, "entry": b"1-0", "from": b"proc-x", "broadcast": b"1", "x": b"y"}


async def xadd_all(redis: aioredis.Redis, stream: str, entries: list[Fields]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(entries), BATCH):
        pipe = redis.pipeline(transaction=False)
        for fields in entries[start : start + BATCH]:
            pipe.xadd(stream, cast(Any, fields))
        ids += [_text(i) for i in await pipe.execute()]
    return ids


async def reply_lists(redis: aioredis.Redis, keys: Keys, ids: list[str]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for start in range(0, len(ids), 2_000):
        chunk = ids[start : start + 2_000]
        pipe = redis.pipeline(transaction=False)
        for entry in chunk:
            pipe.lrange(keys.reply(entry), 0, -1)
        out.update(zip(chunk, await pipe.execute(), strict=True))
    return out


async def wait_replies(
    redis: aioredis.Redis, keys: Keys, ids: list[str], bound_s: float
) -> tuple[float, dict[str, list[bytes]]]:
    """Seconds until every entry had a reply (or the bound), then every reply list."""
    started = time.monotonic()
    waiting = list(ids)
    while waiting and time.monotonic() - started < bound_s:
        got = await reply_lists(redis, keys, waiting)
        waiting = [e for e in waiting if not got[e]]
        if waiting:
            await asyncio.sleep(0.2)
    took_s = time.monotonic() - started
    await asyncio.sleep(SETTLE_S)
    return took_s, await reply_lists(redis, keys, ids)


def snapshot(service: Service, sim: RunningSimulator) -> dict[str, Any]:
    units = service.units
    return {
        "trading_state": service.trading_state.state,
        "workers": {name: id(units[name].worker) for name in MAKERS},
        "states": {name: units[name].worker.state for name in MAKERS},
        "params": {name: units[name].worker.context.params for name in MAKERS},
        "weights": dict(service.domain.limiter.weights),
        "rebalancer": service.rebalancer,
        "cancel_alls": {c: sim.venue.request_counts.get(c, 0) for c in VENUE_CANCEL_ALLS},
    }


async def wait_resting(sim: RunningSimulator, bound_s: float = 30.0) -> None:
    deadline = time.monotonic() + bound_s
    accounts = [spec.account for spec in MAKERS.values()]
    while time.monotonic() < deadline:
        if all(len(sim.venue.engine.open_orders(a)) >= 2 for a in accounts):
            return
        await asyncio.sleep(0.1)
    raise AssertionError({a: len(sim.venue.engine.open_orders(a)) for a in accounts})


async def test_ten_thousand_hostile_commands_are_refused_and_change_nothing(
    tmp_path: Path, redis_server: str, keys: Keys
) -> None:
    settings = SimSettings(accounts=domain_accounts(len(MAKERS), FUNDS))
    async with open_simulator(settings) as sim:
        setup = ServiceSetup(tmp=tmp_path, sim=sim, redis_url=redis_server,
                             namespace=keys.namespace, strategies=list(MAKERS.values()))  # fmt: skip
        config = write_config(setup)
        redis = aioredis.Redis.from_url(redis_server)
        try:
            async with running_service(config) as service:
                await wait_resting(sim)
                await fuzz(service, sim, redis, keys, redis_server)
        finally:
            await redis.aclose()


async def fuzz(
    service: Service, sim: RunningSimulator, redis: aioredis.Redis, keys: Keys, redis_url: str
) -> None:
    now_s = time.time()
    probe = Status(id="fz-probe-0001", operator="vera", time_s=now_s)
    assert json.loads(sign_body(encode_command(probe), "k")) == json.loads(sign(probe, Secret("k")))
    originals = await answered_reads(redis, keys, now_s)
    before = snapshot(service, sim)
    newest = cast(list[tuple[bytes, Any]], await redis.xrevrange(keys.audit(), count=1))
    audit_after = _text(newest[0][0]) if newest else "0-0"

    hostile = Hostile(random.Random(SEED), now_s, originals)
    made = [hostile.entry() for _ in range(ENTRIES)]
    started = time.monotonic()
    ids = await xadd_all(redis, keys.commands(), [fields for _, fields in made])
    sent_s = time.monotonic() - started
    took_s, replies = await wait_replies(redis, keys, ids, REPLIES_BOUND_S)
    took_s += sent_s
    kinds = Counter(kind for kind, _ in made)
    print(f"\nfuzz: {ENTRIES} hostile entries ({dict(kinds)}) XADDed in {sent_s:.2f} s, all "
          f"answered in {took_s:.2f} s: {ENTRIES / took_s:.0f} entries/s")  # fmt: skip

    check_replies(service, sim, ids, made, replies)
    after = snapshot(service, sim)
    assert after == before, (before, after)
    assert after["trading_state"] == "ACTIVE"
    assert set(after["states"].values()) == {"running"}
    assert await redis.hgetall(keys.trading_state()) == {}
    assert await redis.hgetall(keys.limit_shares()) == {}
    for spec in MAKERS.values():
        assert sim.venue.engine.open_orders(spec.account), f"{spec.account} lost its orders"
    # The audit trail: one record per entry, none a success; nothing left pending.
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]],
                await redis.xrange(keys.audit(), min=f"({audit_after}", max="+"))  # fmt: skip
    records = [json.loads(f[b"record"]) for _, f in rows if f[b"kind"] == b"command"]
    assert len(records) == ENTRIES
    assert not [r for r in records if r["ok"]]
    group = service.config.control.consumer_group
    assert (await redis.xpending(keys.commands(), group))["pending"] == 0

    async with operator_client(redis_url, keys.namespace, "vera") as client:
        status = await client.request(client.command("status"), timeout_s=10.0)
    assert status.ok, status
    assert status.result["trading_state"] == "ACTIVE"


async def answered_reads(redis: aioredis.Redis, keys: Keys, now_s: float) -> list[bytes]:
    """Valid reads by the viewer, answered: their exact wires are the replays."""
    wires = [sign_body(Hostile.encode({"type": READS[i % len(READS)], "id": f"fz-read-{i:04d}",
                                       "operator": "vera", "time_s": now_s}),
                       operator_secret("vera")) for i in range(20)]  # fmt: skip
    ids = await xadd_all(redis, keys.commands(), [{"wire": w} for w in wires])
    _, answered = await wait_replies(redis, keys, ids, 30.0)
    for entry in ids:
        [raw] = answered[entry]
        reply = decode_reply(raw)
        assert reply.ok, reply
    return wires


def check_replies(
    service: Service,
    sim: RunningSimulator,
    ids: list[str],
    made: list[tuple[str, Fields]],
    replies: Mapping[str, list[bytes]],
) -> None:
    """One error reply per entry, for the reason its kind expects, naming no secret."""
    secrets = [operator_secret(name) for name in OPERATORS]
    secrets += [k.secret_b64 for a in sim.venue.settings.accounts
                for k in sim.venue.keys_of(a.name)]  # fmt: skip
    unanswered = [(k, e, f) for e, (k, f) in zip(ids, made, strict=True) if not replies[e]]
    assert not unanswered, (f"{len(unanswered)} unanswered within {REPLIES_BOUND_S:g} s",
                            Counter(k for k, _, _ in unanswered), unanswered[:3])  # fmt: skip
    for entry, (kind, fields) in zip(ids, made, strict=True):
        what = (kind, entry, {k: v[:300] for k, v in fields.items()})
        assert len(replies[entry]) == 1, (*what, replies[entry])
        reply = decode_reply(replies[entry][0])
        assert reply.entry == entry
        assert reply.ok is False, (*what, reply)
        assert reply.error, (*what, reply)
        assert reply.process == service.process
        assert not any(s in reply.error for s in secrets), (*what, reply.error)
        assert "internal error" not in reply.error, (*what, reply.error)
        if kind == "hostile_value":
            assert not any(e in reply.error for e in NOT_FOR_VALUES), (*what, reply)
        else:
            assert any(e in reply.error for e in EXPECTED[kind]), (*what, reply)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
