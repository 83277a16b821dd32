"""Child processes of a test (a Prometheus, a browser, a service) stopped the same way."""

from __future__ import annotations

import signal
import subprocess


def stop_child(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 20.0
) -> int:
    """Send `sig`; SIGKILL if it has not exited after `timeout_s`. The exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
