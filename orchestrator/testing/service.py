"""The service as tests and benchmarks of the control plane run it: a TOML config written for a
simulator and a private redis-server, operators with file secrets, and the service either in
this process (`running_service`: the live `Service` object is at hand) or as `orchestrator run`
children (`spawn_service`: a process can be killed; `stop_service` ends one with SIGTERM).

    path = write_config(ServiceSetup(tmp=tmp, sim=sim, redis_url=url, namespace=ns,
                                     strategies=[StrategySpec("mm0", "s0", "XBT/USD", {...})]))
    proc = await spawn_service(path, tmp / "proc-a.log")
    async with operator_client(url, ns, "alice") as client:
        reply = await client.request(client.command("status"))
    code = await stop_service(proc)

Strategy modules are imported by the children from the repository root (`ROOT` on their
`PYTHONPATH`), so `tests.fixtures.strategies.*` and `strategies.*` both load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.clock import RealClock
from orchestrator.config import RedisConfig, load_config
from orchestrator.control.client import ControlClient
from orchestrator.secrets import Secret
from orchestrator.service import Service, run_service
from orchestrator.simulator.app import RunningSimulator
from orchestrator.store.connection import open_redis
from orchestrator.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]  # the repository
OPERATORS: Mapping[str, str] = {"alice": "admin", "tom": "trader", "vera": "viewer"}


class ServiceTrouble(AssertionError):
    """The service under test did not start, or did not stop cleanly (a test failure)."""


async def until(check: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "") -> None:
    """Wait (polling every 20 ms) until `check()` holds; `ServiceTrouble` after `timeout_s`."""
    deadline_s = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline_s:
            raise ServiceTrouble(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


def open_orders(sim: RunningSimulator, account: str) -> int:
    """How many orders of `account` rest at the simulator now."""
    return len(sim.venue.engine.open_orders(account))


def operator_secret(name: str) -> str:
    return f"{name}-signing-secret-0123456789abcdef"


@dataclass(frozen=True)
class StrategySpec:
    name: str
    account: str
    pair: str
    params: Mapping[str, Any]
    module: str = "strategies.market_maker"
    enabled: bool = True
    weight: float = 1.0


@dataclass
class ServiceSetup:
    tmp: Path
    sim: RunningSimulator
    redis_url: str
    namespace: str
    strategies: Sequence[StrategySpec]
    instance: str = "proc-a"
    rebalancer: bool = False
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # section -> fields


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_config(setup: ServiceSetup) -> Path:
    """The config of one service process; secrets in 0600 files next to it."""
    tmp, sim = setup.tmp, setup.sim
    sections: dict[str, dict[str, Any]] = {
        "redis": {"url": setup.redis_url, "namespace": setup.namespace},
        "venue": {"kind": "simulator", "embedded": False, "rest_url": sim.rest_url,
                  "ws_public_url": sim.ws_public_url, "ws_private_url": sim.ws_private_url,
                  "futures_url": sim.futures_url},
        "service": {"status_interval_s": 0.5, "instance": setup.instance},
        "rebalancer": {"enabled": setup.rebalancer},
        "control": {"max_command_age_s": 60.0},
        "metrics": {"port": 0},  # a free port: several services run side by side in tests
    }  # fmt: skip
    for section, fields in setup.extra.items():
        sections.setdefault(section, {}).update(fields)
    lines = ['log_level = "info"\n']
    for section, fields in sections.items():
        body = "".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items())
        lines.append(f"[{section}]\n{body}")
    for account in sim.venue.settings.accounts:
        key = sim.venue.keys_of(account.name)[0]
        for what, value in (("key", key.key), ("secret", key.secret_b64)):
            _secret_file(tmp / f"{account.name}.{what}", value)
        lines.append(f'[[accounts]]\nname = "{account.name}"\nrole = "{account.role}"\n'
                     f'api_key = "file:{tmp}/{account.name}.key"\n'
                     f'api_secret = "file:{tmp}/{account.name}.secret"\n')  # fmt: skip
    for name, role in OPERATORS.items():
        _secret_file(tmp / f"op-{name}.secret", operator_secret(name))
        lines.append(f'[[control.operators]]\nname = "{name}"\nrole = "{role}"\n'
                     f'secret = "file:{tmp}/op-{name}.secret"\n')  # fmt: skip
    lines.extend(
        f'[[strategies]]\nname = "{s.name}"\nmodule = "{s.module}"\naccount = "{s.account}"\n'
        f'pairs = ["{s.pair}"]\nenabled = {toml_value(s.enabled)}\nweight = {s.weight!r}\n'
        f"params = {toml_value(dict(s.params))}\n"
        for s in setup.strategies
    )
    path = tmp / f"{setup.instance}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _secret_file(path: Path, value: str) -> None:
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)


@contextlib.asynccontextmanager
async def running_service(config_path: Path) -> AsyncIterator[Service]:
    """`run_service` in this process until the block ends; `ServiceTrouble` when it does not
    start, or does not stop cleanly (exit code 0) once the block ends."""
    config = load_config(config_path)
    stop = asyncio.Event()
    ready: asyncio.Future[Service] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_service(config, base_dir=config_path.parent, stop=stop,
                                           on_ready=ready.set_result, handle_signals=False,
                                           screen=False))  # fmt: skip
    try:
        waiting: set[asyncio.Future[Any]] = {task, ready}
        done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            raise ServiceTrouble(f"the service did not start: "
                                 f"{task.result() if task.done() else '?'}")  # fmt: skip
        yield ready.result()
    finally:
        stop.set()
        code = await asyncio.wait_for(task, timeout=30)
    if code != 0:
        raise ServiceTrouble(f"the service stopped with exit code {code}")


async def spawn_service(config_path: Path, log_path: Path) -> asyncio.subprocess.Process:
    """`orchestrator run` as a child process (stderr logs to `log_path`)."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log:  # the child holds its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "run", "--config", str(config_path),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip


async def stop_service(proc: asyncio.subprocess.Process, *, timeout_s: float = 20.0) -> int:
    """SIGTERM, as an operator stops the service, and its exit code; killed (and the code
    negative) if it has not exited within `timeout_s`."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -signal.SIGKILL


@contextlib.asynccontextmanager
async def operator_client(
    redis_url: str, namespace: str, operator: str = "alice"
) -> AsyncIterator[ControlClient]:
    async with open_redis(RedisConfig(url=redis_url)) as redis:
        secret = Secret(operator_secret(operator))
        yield ControlClient(redis, Keys(namespace), operator=operator, secret=secret,
                            clock=RealClock())  # fmt: skip
