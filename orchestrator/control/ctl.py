"""`orchestrator ctl`: read the operator's words, send the signed command, print the reply.

    orchestrator ctl [--config F] [--operator NAME] [--json] [--timeout S] <command words>
    orchestrator ctl status
    orchestrator ctl --json halt --reason "feed is stale"
    orchestrator ctl watch                      # the audit stream, live, one line per entry

Exit codes: 0 the service did it; 1 it refused (an error reply), did not answer, is not running,
or Redis is unreachable; 2 the words or the config are wrong (nothing was sent). Each error is
one line on stderr that never holds a secret: config and secret errors name fields and
references only, Redis URLs are shown without passwords, and every line also goes through the
log redactor, which knows the operator's secret once it is resolved.

The operator is `--operator`, else `$ORCH_OPERATOR`, else the only one in `control.operators`.
Only that operator's secret is resolved: an operator's host holds its own secret, not the
others'. `watch` signs nothing and needs no operator. On the demo (`redis.url = "embedded"`)
ctl reaches the Redis the running demo service published, as the demo operator `demo` when
`control.demo_operator` is on (control/demo.py).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

import msgspec

from orchestrator.clock import RealClock
from orchestrator.config import Config, load_config
from orchestrator.control.client import SLICE_S, ControlClient, NoReply, ServiceNotRunning
from orchestrator.control.commands import Command
from orchestrator.control.demo import (
    DEMO_OPERATOR,
    demo_secret,
    demo_secret_file,
    embedded_redis_url,
    redis_url_file,
)
from orchestrator.control.render import audit_line, render_reply
from orchestrator.control.replies import encode
from orchestrator.control.words import (
    USAGE,
    CommandWords,
    HelpWords,
    UsageError,
    WatchWords,
    parse_words,
)
from orchestrator.errors import CommandError, ConfigError, StoreError
from orchestrator.logs import configure_logging, redact_text
from orchestrator.secrets import Secret, resolve_secret
from orchestrator.store.connection import connect
from orchestrator.store.keys import Keys

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
OPERATOR_ENV: Final = "ORCH_OPERATOR"
_json: Final = msgspec.json.Encoder(decimal_format="string")


@dataclass(frozen=True, slots=True)
class CtlArgs:
    words: list[str]
    config_path: Path | None = None
    operator: str | None = None
    as_json: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class _Output:
    out: TextIO
    err: TextIO

    def fail(self, code: int, text: str) -> int:
        print(f"orchestrator ctl: {redact_text(' '.join(text.split()))}", file=self.err)
        return code


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the words and the config ask for, checked before Redis is touched."""

    config: Config
    url: str  # the Redis to reach (the demo's published one for `embedded`)
    words: CommandWords | WatchWords
    operator: str  # "" for watch
    secret: Secret


_UNSIGNED: Final = Secret("")  # watch signs nothing; an empty secret signs no command


async def run_ctl(args: CtlArgs, *, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Run one `ctl` invocation; the exit code (see the module)."""
    io = _Output(out, err)
    configure_logging("warning", err)
    try:
        plan = _plan(args, environ)
    except (CommandError, ConfigError) as exc:
        prefix = "bad config: " if isinstance(exc, ConfigError) else ""
        return io.fail(EXIT_USAGE, f"{prefix}{exc}")
    if plan is None:
        print(USAGE, file=out)
        return EXIT_OK
    redis_config = plan.config.redis
    try:
        redis = await connect(plan.url, redis_config)
    except StoreError as exc:
        return io.fail(EXIT_FAILED, str(exc))
    try:
        client = ControlClient(
            redis, Keys(redis_config.namespace), operator=plan.operator, secret=plan.secret,
            clock=RealClock(), slice_s=min(SLICE_S, redis_config.socket_timeout_s / 2),
        )  # fmt: skip
        if isinstance(plan.words, WatchWords):
            return await _watch(client, plan.words.since, args.as_json, io)
        try:
            command = client.command(plan.words.type_name, **plan.words.fields)
        except CommandError as exc:
            return io.fail(EXIT_USAGE, str(exc))
        return await _request(client, command, args, io)
    finally:
        await redis.aclose()


def _plan(args: CtlArgs, environ: Mapping[str, str]) -> _Plan | None:
    """The checked plan (None: print the usage); `UsageError` / `ConfigError` otherwise."""
    words = parse_words(args.words)
    if isinstance(words, HelpWords):
        return None
    if not (math.isfinite(args.timeout_s) and args.timeout_s > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout_s}")
    config = load_config(args.config_path, environ)
    base_dir = args.config_path.parent if args.config_path is not None else Path.cwd()
    url = config.redis.url
    if url == "embedded":  # the demo: its service publishes where its private Redis listens
        url = embedded_redis_url(base_dir) or ""
        if not url:
            raise ConfigError("redis.url", "is `embedded` and no demo service runs from "
                              f"{base_dir} (no {redis_url_file(base_dir)}); ctl needs the "
                              "URL of the service's Redis")  # fmt: skip
    if isinstance(words, WatchWords):
        return _Plan(config, url, words, "", _UNSIGNED)
    operators = config.control.operators
    names = [op.name for op in operators]
    if config.control.demo_operator:
        names.append(DEMO_OPERATOR)
    name = pick_operator(names, args.operator, environ)
    if name != DEMO_OPERATOR or not config.control.demo_operator:
        index = names.index(name)
        secret = resolve_secret(operators[index].secret, f"control.operators[{index}].secret",
                                environ=environ, base_dir=base_dir)  # fmt: skip
    else:
        demo = demo_secret(base_dir, create=False)
        if demo is None:
            raise UsageError(f"the demo operator's secret ({demo_secret_file(base_dir)}) is "
                             "not there yet: start the demo service first")  # fmt: skip
        secret = demo
    return _Plan(config, url, words, name, secret)


def pick_operator(names: Sequence[str], chosen: str | None, environ: Mapping[str, str]) -> str:
    """The operator who signs: `chosen`, else $ORCH_OPERATOR, else the only one configured."""
    if not names:
        raise UsageError("no operators in the config (control.operators): nobody can sign")
    name = chosen or environ.get(OPERATOR_ENV) or None
    if name is None:
        if len(names) == 1:
            return names[0]
        raise UsageError(f"{len(names)} operators configured ({', '.join(names)}): choose "
                         f"one with --operator or ${OPERATOR_ENV}")  # fmt: skip
    if name not in names:
        raise UsageError(f"unknown operator {name!r}; configured: {', '.join(names)}")
    return name


async def _request(client: ControlClient, command: Command, args: CtlArgs, io: _Output) -> int:
    try:
        reply = await client.request(command, timeout_s=args.timeout_s)
    except (ServiceNotRunning, NoReply, StoreError, CommandError) as exc:
        return io.fail(EXIT_FAILED, str(exc))
    if args.as_json:
        print(encode(reply).decode(), file=io.out, flush=True)
    elif reply.ok:
        width = shutil.get_terminal_size(fallback=(100, 24)).columns
        print(render_reply(reply, width=width, color=io.out.isatty()), file=io.out, flush=True)
    else:
        print(redact_text(render_reply(reply)), file=io.err)
    return EXIT_OK if reply.ok else EXIT_FAILED


async def _watch(client: ControlClient, since: str, as_json: bool, io: _Output) -> int:
    """Print audit entries as they come until interrupted (Ctrl-C) or Redis fails."""
    try:
        async for entry in client.watch(since=since):
            line = _json.encode(entry).decode() if as_json else audit_line(entry)
            print(line, file=io.out, flush=True)
    except StoreError as exc:
        return io.fail(EXIT_FAILED, str(exc))
    return EXIT_OK  # pragma: no cover - the stream never ends by itself
