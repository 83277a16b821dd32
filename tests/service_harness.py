"""The service as tests of the control plane run it (see `orchestrator.testing.service`, where
the harness lives so the benchmarks use it too)."""

from __future__ import annotations

from orchestrator.testing.service import (
    OPERATORS,
    ROOT,
    ServiceSetup,
    ServiceTrouble,
    StrategySpec,
    operator_client,
    operator_secret,
    running_service,
    spawn_service,
    stop_service,
    write_config,
)

__all__ = [
    "OPERATORS",
    "ROOT",
    "ServiceSetup",
    "ServiceTrouble",
    "StrategySpec",
    "operator_client",
    "operator_secret",
    "running_service",
    "spawn_service",
    "stop_service",
    "write_config",
]
