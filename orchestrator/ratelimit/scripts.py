"""The limiter's Lua scripts as Redis runs them: each file behind the shared prelude
(`lua/prelude.lua`: number formatting, the script's clock, reading a scope), and the time
argument every script takes first."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Final

_LUA: Final = resources.files("orchestrator.ratelimit").joinpath("lua")
_PRELUDE: Final = _LUA.joinpath("prelude.lua").read_text("utf-8")


def script(name: str) -> str:
    """`lua/<name>` with the prelude before it: the text to load (and hash) for Redis."""
    return _PRELUDE + _LUA.joinpath(name).read_text("utf-8")


def now_arg(script_time: Callable[[], float] | None) -> str:
    """A script's time argument: "" (Redis TIME) in production, the test clock's time in tests."""
    return "" if script_time is None else repr(script_time())
