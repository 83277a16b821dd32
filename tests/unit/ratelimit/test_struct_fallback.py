"""The scripts' numbers are packed doubles (`struct.pack("<d")`): Redis's own `struct`, or, on
fakeredis, the plain-Lua packing in `lua/struct.lua`. Both must give Python's bytes exactly, for
every double, so the property test on fakeredis proves what Redis runs."""

from __future__ import annotations

import math
import struct
import sys

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.ratelimit.scripts import with_prelude

HOSTILE = [
    0.0, -0.0, 1.0, -1.0, 0.5, 1 / 3, 1796409489.540689, 1e12, 1e-12, 2.0**52, 2.0**53 + 2,
    sys.float_info.max, -sys.float_info.max, sys.float_info.min, 5e-324, -5e-324,
    2.2250738585072009e-308, 1e-310, math.inf, -math.inf,
]  # fmt: skip

# Packs its arguments (read from their repr), then unpacks what it packed and answers both.
_ROUND_TRIP = """
local values = {}
for i = 1, #ARGV do values[i] = tonumber(ARGV[i]) end
local packed = struct.pack('<' .. string.rep('d', #ARGV), unpack(values))
local back = {struct.unpack('<' .. string.rep('d', #ARGV), packed)}
local texts = {}
for i = 1, #ARGV do texts[i] = fmt(back[i]) end
return {packed, table.concat(texts, ' '), back[#ARGV + 1]}
"""
# Unpacks what Python packed, from the given offset, and answers each value as text.
_DECODE = """
local n = tonumber(ARGV[2])
local back = {struct.unpack('<' .. string.rep('d', n), ARGV[1], tonumber(ARGV[3]))}
local texts = {}
for i = 1, n do texts[i] = fmt(back[i]) end
return table.concat(texts, ' ')
"""


def _lua(text: str, *, forced: bool) -> str:
    """The script with the shared parts; `forced`: the plain-Lua packing even on Redis."""
    full = with_prelude(text)
    if forced:
        full = full.replace("local struct = struct ", "local struct = nil ", 1)
    return full


def _text(value: float) -> str:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)


def _same(a: float, b: float) -> bool:
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize("forced", [False, True], ids=["as-served", "plain-lua"])
async def test_packing_is_pythons_byte_for_byte(any_redis: aioredis.Redis, forced: bool) -> None:
    packed, texts, next_at = await any_redis.eval(
        _lua(_ROUND_TRIP, forced=forced), 0, *map(_text, HOSTILE)
    )
    assert packed == struct.pack(f"<{len(HOSTILE)}d", *HOSTILE)
    back = [float(t) for t in texts.decode().split()]
    assert all(_same(a, b) for a, b in zip(back, HOSTILE, strict=True)), back
    assert next_at == 8 * len(HOSTILE) + 1  # the position after the last value, as Redis's


@pytest.mark.parametrize("forced", [False, True], ids=["as-served", "plain-lua"])
async def test_unpacking_reads_pythons_bytes_from_an_offset(
    any_redis: aioredis.Redis, forced: bool
) -> None:
    packed = b"\x07" * 3 + struct.pack(f"<{len(HOSTILE)}d", *HOSTILE)
    texts = await any_redis.eval(_lua(_DECODE, forced=forced), 0, packed, len(HOSTILE), 4)
    back = [float(t) for t in texts.decode().split()]
    assert all(_same(a, b) for a, b in zip(back, HOSTILE, strict=True)), back


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False), min_size=1, max_size=12))
def test_plain_lua_packing_matches_python_on_any_double(values: list[float]) -> None:
    import fakeredis  # noqa: PLC0415 - the plain-Lua packing runs on fakeredis

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    packed, _, _ = client.eval(_lua(_ROUND_TRIP, forced=True), 0, *map(_text, values))
    assert packed == struct.pack(f"<{len(values)}d", *values)


async def test_a_short_value_is_an_error_not_a_guess(any_redis: aioredis.Redis) -> None:
    with pytest.raises(Exception, match="too short"):
        await any_redis.eval(_lua(_DECODE, forced=True), 0, b"\x00" * 12, 2, 1)
