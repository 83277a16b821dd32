"""`orchestrator run | sim | ctl | bench`: the command line.

Exit codes: 0 done, 1 failed at run time, 2 usage error, bad config or a feature not built yet.
Human-facing output goes to stdout; logs (JSON lines) go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import uvloop

from orchestrator.config import Config, load_config
from orchestrator.control.ctl import CtlArgs, run_ctl
from orchestrator.errors import ConfigError, FeatureNotBuilt, OrchestratorError, StoreUnavailable
from orchestrator.logs import configure_logging, get_logger
from orchestrator.secrets import resolve_credentials, resolve_operator_secrets
from orchestrator.service import run_service
from orchestrator.simulator.demo_keys import ensure_demo_keys
from orchestrator.simulator.settings import SimSettings, settings_from_config
from orchestrator.simulator.standalone import run_standalone
from orchestrator.store.connection import open_redis, safe_url

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
DEFAULT_CONFIG: Final = Path("orchestrator.toml")

T = TypeVar("T")
log = get_logger("orchestrator.cli")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop where available (the design's one loop per process)."""
    return uvloop.run(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Rate-limit-aware order and transfer orchestrator for Kraken.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the service (strategies, limiter, rebalancer, operator commands)",
        description="Run the service from a config file. --check validates the config, resolves "
        "secrets and connects to Redis, then exits.",
    )
    run.add_argument(
        "--config", type=Path, default=None, help=f"TOML config file (default: {DEFAULT_CONFIG})"
    )
    run.add_argument(
        "--check", action="store_true", help="validate config, secrets and Redis, then exit"
    )
    run.add_argument(
        "--duration", type=float, default=None, metavar="S",
        help="stop cleanly after S seconds (demos, tests)",
    )  # fmt: skip
    run.add_argument(
        "--plain", action="store_true",
        help="status lines instead of the live screen (the default when stdout is no terminal)",
    )  # fmt: skip

    sim = sub.add_parser(
        "sim",
        help="run the Kraken-compatible venue simulator standalone",
        description="Serve Kraken's REST and WebSocket v2 wire formats from a simulated domain.",
    )
    sim.add_argument(
        "--config",
        type=Path,
        default=None,
        help="serve the accounts, tier, seed and rate-limit Decisions of this service config "
        "(default: the built-in demo domain)",
    )
    sim.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=None, help="listen port (default 8800)")
    sim.add_argument("--seed", type=int, default=None, help="seed of the synthetic markets")
    sim.add_argument(
        "--tier",
        choices=["starter", "intermediate", "pro"],
        default=None,
        help="verification tier: sets every rate limit (default intermediate)",
    )
    sim.add_argument(
        "--keys-file",
        type=Path,
        default=Path(".run/sim-keys.json"),
        help="where the demo domain's API keys are written (demo only)",
    )
    sim.add_argument(
        "--demo-keys",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --config: write random API keys (<account>.key, <account>.secret, mode 0400) "
        "for the config's accounts that lack them into DIR, for its references to point at",
    )
    sim.add_argument(
        "--report-every", type=float, default=5.0, metavar="S", help="live counters every S seconds"
    )
    sim.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )

    ctl = sub.add_parser(
        "ctl",
        help="send an operator command to a running service through Redis",
        description="Send a signed operator command and print its reply (`ctl help` lists "
        "the commands; `ctl watch` follows the audit stream). Exit 0 done, 1 refused, no "
        "reply, no service or no Redis, 2 usage or bad config.",
    )
    ctl.add_argument(
        "--config", type=Path, default=None, help=f"TOML config file (default: {DEFAULT_CONFIG})"
    )
    ctl.add_argument(
        "--operator", default=None, metavar="NAME",
        help="who signs (default: $ORCH_OPERATOR, else the only configured operator)",
    )  # fmt: skip
    ctl.add_argument("--json", action="store_true", help="print the reply (or entries) as JSON")
    ctl.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="wait S seconds for the reply"
    )
    ctl.add_argument("words", nargs=argparse.REMAINDER, help="the command and its arguments")

    bench = sub.add_parser(
        "bench",
        help="run the side-by-side benchmarks and print their ratios",
        description="Run benchmarks/ (simulator throughput, limiter, book, tick-to-order, "
        "strategies per process), each printing its side-by-side table; full runs also draw "
        "their figures into docs/images/.",
    )
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.add_argument(
        "--no-plots", action="store_true", help="draw no figures (a --quick run never draws)"
    )
    bench.add_argument("--quick", action="store_true", help="short runs")
    return parser


def _config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


async def _check(config: Config, base_dir: Path) -> None:
    credentials = resolve_credentials(config, base_dir=base_dir)
    futures = resolve_credentials(config, base_dir=base_dir, futures=True)
    operators = resolve_operator_secrets(config, base_dir=base_dir)
    async with open_redis(config.redis) as redis:
        info = await redis.info("server")
    print(f"config ok: {len(config.accounts)} accounts, {len(config.strategies)} strategies")
    venue = config.venue
    print(f"venue: {venue.kind} (tier {venue.tier}, embedded: {venue.is_embedded})")
    print(f"secrets resolved: {len(credentials)} accounts ({len(futures)} with futures keys), "
          f"{len(operators)} operators")  # fmt: skip
    server = info.get("redis_version", "?")
    print(f"redis ok: {safe_url(config.redis.url)} (server {server})")


def _cmd_run(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    config = load_config(path)
    configure_logging(config.log_level)
    base_dir = path.parent if path is not None else Path.cwd()
    if args.check:
        run_async(_check(config, base_dir))
        return EXIT_OK
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(
            "--duration", f"must be a positive number of seconds, got {args.duration}"
        )
    screen = False if args.plain else None
    return run_async(run_service(config, base_dir=base_dir, duration_s=args.duration,
                                 screen=screen))  # fmt: skip


def _cmd_sim(args: argparse.Namespace) -> int:
    configure_logging("warning")
    host, port = "127.0.0.1", 8800
    if args.demo_keys is not None and args.config is None:
        raise ConfigError("--demo-keys", "needs --config: the accounts to make keys for")
    if args.config is not None:
        config = load_config(args.config)
        if args.demo_keys is not None:
            ensure_demo_keys(config, args.demo_keys)
        # The keys the service's config references, so that the service can trade here.
        credentials = resolve_credentials(config, base_dir=args.config.parent)
        keys = {name: (c.key.reveal(), c.secret.reveal()) for name, c in credentials.items()}
        settings = settings_from_config(config, keys=keys)
        host, port = config.venue.simulator.host, config.venue.simulator.port
    else:
        settings = SimSettings()
    if args.seed is not None:
        settings.seed = args.seed
    if args.tier is not None:
        settings.tier = args.tier
    run_async(
        run_standalone(
            settings,
            host=args.host or host,
            port=port if args.port is None else args.port,
            keys_file=args.keys_file,
            report_every_s=args.report_every,
            duration_s=args.duration,
        )
    )
    return EXIT_OK


def _cmd_ctl(args: argparse.Namespace) -> int:
    ctl_args = CtlArgs(
        words=list(args.words), config_path=_config_path(args.config), operator=args.operator,
        as_json=args.json, timeout_s=args.timeout,
    )  # fmt: skip
    return run_async(run_ctl(ctl_args, out=sys.stdout, err=sys.stderr, environ=os.environ))


BENCHMARKS: Final = (
    "simulator",
    "limiter",
    "book",
    "tick_to_order",
    "strategies_per_process",
    "rebalance",
    "kill_switch",
)
# The benchmarks that draw figures (and take `--no-plots`). A quick run's figures would replace
# the README's with ones from a few seconds of data, so quick runs draw none.
DRAWING: Final = frozenset({"limiter", "tick_to_order", "strategies_per_process"})


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run each benchmark module's `main`; they print their own side-by-side tables."""
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"orchestrator bench: unknown {unknown}; choose from {list(BENCHMARKS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    rc = EXIT_OK
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as exc:
            raise FeatureNotBuilt(f"benchmark {name!r} ({exc})") from None
        print(f"== benchmarks.{name}", flush=True)
        argv = ["--quick"] if args.quick else []
        if name in DRAWING and (args.quick or args.no_plots):
            argv.append("--no-plots")
        rc = max(rc, int(module.main(argv)))
    return rc


_COMMANDS: Final = {"run": _cmd_run, "sim": _cmd_sim, "ctl": _cmd_ctl, "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except FeatureNotBuilt as exc:
        print(f"orchestrator {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"orchestrator: bad config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OrchestratorError as exc:
        print(f"orchestrator: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
