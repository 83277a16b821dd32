"""The limiter's Lua scripts as Redis runs them: each file behind the shared prelude
(`lua/prelude.lua`: number formatting, the script's clock, reading a scope) and `lua/struct.lua`
(Redis's `struct` library where the server lacks it: fakeredis), and the time argument every
script takes first."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Final

_LUA: Final = resources.files("orchestrator.ratelimit").joinpath("lua")
_SHARED: Final = ("struct.lua", "prelude.lua")  # before every script, in this order
_PRELUDE: Final = "".join(_LUA.joinpath(name).read_text("utf-8") for name in _SHARED)


def script(name: str) -> str:
    """`lua/<name>` with the shared parts before it: the text to load (and hash) for Redis."""
    return with_prelude(_LUA.joinpath(name).read_text("utf-8"))


def with_prelude(body: str) -> str:
    """A script's `body` behind the shared parts every limiter script starts with."""
    return _PRELUDE + body


def now_arg(script_time: Callable[[], float] | None) -> str:
    """A script's time argument: "" (Redis TIME) in production, the test clock's time in tests."""
    return "" if script_time is None else repr(script_time())
