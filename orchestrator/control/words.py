"""What an operator types after `orchestrator ctl`, read into a command type and its fields.

    parse_words(["set-params", "mm1", "size=0.1", "spread_bps=3"])
    # CommandWords(type_name="set_params", fields={"strategy": "mm1",
    #                                              "params": {"size": "0.1", "spread_bps": "3"}})

Pure: no Redis, no clock; a file named by `@file.json` is read through `read_file`. A mistake is
a `UsageError` naming the word that is wrong. The fields are checked again, fully, when the
command is made (`client.make_command`); here only what the words themselves say.

Verbs are the short names below or the command type names (`start_strategy`); `-` and `_` are
the same in a verb. `k=v` params stay text: the service converts them with the strategy's own
params Struct, which knows their types.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from orchestrator.errors import CommandError

USAGE: Final = """\
commands:
  status | list-strategies | limits | approvals | transfers [--limit N]
  start NAME | stop NAME | pause NAME | resume NAME
  set-params NAME '{"size": "0.1"}' | set-params NAME size=0.1 spread_bps=3
  cancel-all [--strategy NAME | --account NAME]
  rebalance-now
  halt --reason TEXT | resume-trading
  set-targets '[{"account": ..., "asset": ..., "target": ..., "low": ..., "high": ...}]'
  set-targets @targets.json
  set-shares NAME=WEIGHT ... | watch [--since ENTRY_ID]"""

_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PARAM: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENTRY_ID: Final = re.compile(r"^(\$|\d{1,20}(-\d{1,20})?)$")
_CTL_OPTIONS: Final = frozenset({"--json", "--timeout", "--operator", "--config"})
_ALIASES: Final = {
    "start": "start_strategy", "stop": "stop_strategy", "pause": "pause_strategy",
    "resume": "resume_strategy", "strategies": "list_strategies", "transfers": "list_transfers",
    "approvals": "approve_status", "set_shares": "set_limit_shares",
}  # fmt: skip


class UsageError(CommandError):
    """The words do not make a command; nothing was sent."""


@dataclass(frozen=True, slots=True)
class CommandWords:
    type_name: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WatchWords:
    since: str = "$"


@dataclass(frozen=True, slots=True)
class HelpWords:
    pass


Words = CommandWords | WatchWords | HelpWords
ReadFile = Callable[[str], str]


def read_text_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read @{path}: {reason}") from None


def parse_words(words: Sequence[str], *, read_file: ReadFile = read_text_file) -> Words:
    if not words:
        raise UsageError(f"no command given\n{USAGE}")
    verb, args = words[0], list(words[1:])
    name = verb.replace("-", "_")
    if name in ("help", "__help", "_h"):
        return HelpWords()
    if name == "watch":
        options = _options(verb, args, {"--since"}, positional=0)
        since = options.get("--since", "$")
        if not _ENTRY_ID.match(since):
            raise UsageError(f"watch --since: {since!r} is not a stream entry id (or $)")
        return WatchWords(since=since)
    type_name = _ALIASES.get(name, name)
    reader = _READERS.get(type_name)
    if reader is None:
        raise UsageError(f"unknown command {verb!r}\n{USAGE}")
    return CommandWords(type_name, reader(verb, args, read_file))


# --- one reader per command type: (verb, args, read_file) -> fields ---------------------------
def _no_args(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    _options(verb, args, set(), positional=0)
    return {}


def _strategy(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    if len(args) != 1:
        raise UsageError(f"{verb} takes one strategy name, got {len(args)} words")
    return {"strategy": _name(verb, args[0], "strategy")}


def _set_params(verb: str, args: list[str], read_file: ReadFile) -> dict[str, Any]:
    if not args:
        raise UsageError(f"{verb} needs a strategy name and its params")
    strategy, rest = _name(verb, args[0], "strategy"), args[1:]
    if not rest:
        raise UsageError(f"{verb} {strategy}: give the params as JSON or as key=value words")
    if len(rest) == 1 and rest[0].lstrip()[:1] in ("{", "@"):
        params = _json(verb, rest[0], read_file)
        if not isinstance(params, dict):
            raise UsageError(f"{verb} {strategy}: the params must be a JSON object, got "
                             f"{_json_kind(params)}")  # fmt: skip
        return {"strategy": strategy, "params": params}
    pairs = _pairs(verb, rest, _PARAM, "param")
    return {"strategy": strategy, "params": pairs}


def _cancel_all(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    options = _options(verb, args, {"--strategy", "--account"}, positional=0)
    if len(options) > 1:
        raise UsageError(f"{verb}: give --strategy or --account, not both")
    return {flag[2:]: _name(verb, value, flag[2:]) for flag, value in options.items()}


def _halt(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    if any(word == "--reason" or word.startswith("--reason=") for word in args):
        reason = _options(verb, args, {"--reason"}, positional=0)["--reason"]
    else:  # `halt the feed is stale`: the words are the reason (a stray option is refused)
        _options(verb, args, set(), positional=len(args))
        reason = " ".join(args)
    if not reason.strip():
        raise UsageError(f'{verb} needs a reason: {verb} --reason "what happened"')
    return {"reason": reason}


def _set_targets(verb: str, args: list[str], read_file: ReadFile) -> dict[str, Any]:
    if len(args) != 1:
        raise UsageError(f"{verb} takes one word: a JSON list of targets or @file.json")
    targets = _json(verb, args[0], read_file)
    if not isinstance(targets, list):
        raise UsageError(f"{verb}: expected a JSON list of {{account, asset, target, low, "
                         f"high}}, got {_json_kind(targets)}")  # fmt: skip
    return {"targets": targets}


def _list_transfers(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    options = _options(verb, args, {"--limit"}, positional=0)
    if "--limit" not in options:
        return {}
    text = options["--limit"]
    if not re.fullmatch(r"\d{1,9}", text):
        raise UsageError(f"{verb} --limit: {text!r} is not a whole number")
    return {"limit": int(text)}


def _set_shares(verb: str, args: list[str], _: ReadFile) -> dict[str, Any]:
    if not args:
        raise UsageError(f"{verb} needs NAME=WEIGHT words, e.g. {verb} mm1=2 mm2=1")
    weights: dict[str, float] = {}
    for word, text in _pairs(verb, args, _NAME, "strategy").items():
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise UsageError(f"{verb}: weight of {word} must be a positive number, got {text!r}")
        weights[word] = weight
    return {"weights": weights}


_READERS: Final[dict[str, Callable[[str, list[str], ReadFile], dict[str, Any]]]] = {
    "status": _no_args, "list_strategies": _no_args, "approve_status": _no_args,
    "limits": _no_args, "rebalance_now": _no_args, "resume_trading": _no_args,
    "list_transfers": _list_transfers, "start_strategy": _strategy, "stop_strategy": _strategy,
    "pause_strategy": _strategy, "resume_strategy": _strategy, "set_params": _set_params,
    "cancel_all": _cancel_all, "halt": _halt, "set_targets": _set_targets,
    "set_limit_shares": _set_shares,
}  # fmt: skip


# --- shared pieces ----------------------------------------------------------------------------
def _options(verb: str, args: list[str], allowed: set[str], *, positional: int) -> dict[str, str]:
    """`--flag value` / `--flag=value` words among `allowed`; exactly `positional` others."""
    options: dict[str, str] = {}
    others = 0
    i = 0
    while i < len(args):
        word = args[i]
        flag, eq, value = word.partition("=")
        if not word.startswith("--") or word == "--":
            others += 1
        elif flag not in allowed:
            hint = ""
            if flag in _CTL_OPTIONS:
                hint = f"; ctl's own {flag} goes before the command: ctl {flag} ... {verb}"
            raise UsageError(f"{verb}: unknown option {word!r}{hint}")
        elif flag in options:
            raise UsageError(f"{verb}: {flag} given twice")
        elif eq:
            options[flag] = value
        elif i + 1 < len(args):
            i += 1
            options[flag] = args[i]
        else:
            raise UsageError(f"{verb}: {flag} needs a value")
        i += 1
    if others > positional:
        raise UsageError(f"{verb}: unexpected word {_first_other(args)!r}")
    return options


def _first_other(args: list[str]) -> str:
    return next((a for a in args if not a.startswith("--") or a == "--"), "")


def _name(verb: str, word: str, what: str) -> str:
    if not _NAME.match(word):
        raise UsageError(f"{verb}: {what} name {word!r} must be 1-63 lower-case letters, "
                         "digits, '-' or '_', starting with a letter or digit")  # fmt: skip
    return word


def _pairs(verb: str, words: list[str], key: re.Pattern[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise UsageError(f"{verb}: {word!r} is not {what}=value")
        if not key.match(name):
            raise UsageError(f"{verb}: {name!r} in {word!r} is not a valid {what} name")
        if not value:
            raise UsageError(f"{verb}: no value in {word!r}")
        if name in pairs:
            raise UsageError(f"{verb}: {name} given twice")
        pairs[name] = value
    return pairs


def _json(verb: str, word: str, read_file: ReadFile) -> Any:
    """The JSON in `word` (or in the file `@path` names), numbers kept exact as Decimals."""
    source, text = (repr(word if len(word) <= 40 else f"{word[:37]}..."), word)
    if word.startswith("@"):
        source, text = (f"@{word[1:]}", read_file(word[1:]))
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:  # json.JSONDecodeError, or the constant refused
        raise UsageError(f"{verb}: {source} is not valid JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{verb}: {source} is nested too deeply") from None


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
