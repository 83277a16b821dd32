"""The `[control]` section: operator commands, who may send them, how they are handled."""

from __future__ import annotations

from typing import Annotated, Literal

from orchestrator.config_base import Name, SecretRef, Section, doc


class OperatorConfig(Section, frozen=True):
    name: Annotated[Name, doc("Operator name, recorded in the audit stream.")]
    secret: Annotated[SecretRef, doc("Reference to the operator's command-signing secret.")]
    role: Annotated[
        Literal["viewer", "trader", "admin"],
        doc(
            "What the operator may send: viewer (reads), trader (strategies, cancels), admin "
            "(halt, targets, limit shares)."
        ),
    ] = "viewer"


class ControlConfig(Section, frozen=True):
    enabled: Annotated[bool, doc("Read operator commands from the Redis stream.")] = True
    consumer_group: Annotated[str, doc("Consumer group shared by the service processes.")] = (
        "orchestrator"
    )
    max_command_age_s: Annotated[
        float, doc("Commands older than this are refused (replay guard).", gt=0)
    ] = 60.0
    operators: Annotated[
        list[OperatorConfig], doc("Who may send commands; none means commands are refused.")
    ] = []
    max_pending_s: Annotated[
        float,
        doc(
            "A command that waited this long in the stream (the service was down) is refused "
            "instead of run late.",
            gt=0,
        ),
    ] = 3600.0
    claim_idle_s: Annotated[
        float,
        doc("A command another process took and left unanswered this long is claimed.", gt=0),
    ] = 5.0
    reply_ttl_s: Annotated[float, doc("How long a reply waits for its sender.", gt=0)] = 300.0
    broadcast_timeout_s: Annotated[
        float,
        doc("How long a command for every process (halt, ...) waits for the others.", gt=0),
    ] = 2.0
    audit_max_len: Annotated[int, doc("Entries kept in the audit stream.", ge=100)] = 100_000
    demo_operator: Annotated[
        bool,
        doc(
            "Embedded simulator only: an admin operator `demo` whose secret the service writes "
            "to `.run/demo-operator.secret`, so `orchestrator ctl` works on the demo."
        ),
    ] = False
    audit_file: Annotated[
        str | None, doc("Also append every audit entry to this JSON-lines file.")
    ] = None
