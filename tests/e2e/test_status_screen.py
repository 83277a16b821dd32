"""`make run`'s screen as a person sees it: `orchestrator run` on the default config in a
pseudo-terminal, its output read through a VT100 emulator (pyte) into the screen it draws.

Checked on the screen alone: within 30 s every example strategy shows orders placed and fills;
the screen is redrawn at least once a second (its uptime moves); Ctrl-C typed on the terminal
stops the service with exit 0, and the summary left on the screen says 0 open orders and 0
rate-limit rejections at the venue.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pyte

from orchestrator.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "orchestrator.example.toml"
COLUMNS, ROWS = 180, 50
SHOWN_WITHIN_S = 30.0
STOP_BOUND_S = 20.0
_UPTIME = re.compile(r"\bup (\d[\d,]*) s\b")


class Terminal:
    """A child process on a pseudo-terminal of COLUMNS x ROWS, and the screen it draws."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal, as in a shell
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            # The window size says how big the screen is, as in a terminal (an inherited
            # COLUMNS/LINES would override it; a library in the test process may set them in
            # the C environment behind os.environ, so the child gets an explicit one).
            env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
            env["TERM"] = "xterm-256color"
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.exit_code: int | None = None

    def pump(self, timeout_s: float) -> None:
        """Feed what the child wrote in the next `timeout_s` to the screen."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:  # the child closed the terminal
            data = b""
        if data:
            self.stream.feed(data)

    def lines(self) -> list[str]:
        return list(self.screen.display)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout_s: float) -> int | None:
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            self.pump(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                for _ in range(20):  # what it wrote before exiting
                    self.pump(0.05)
                self.exit_code = os.waitstatus_to_exitcode(status)
                return self.exit_code
        return None

    def kill(self) -> None:
        if self.exit_code is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def strategy_rows(lines: list[str], names: list[str]) -> dict[str, list[str]]:
    """The cells of each strategy's row of the screen's table."""
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] in names:
            rows[cells[1]] = cells[1:-1]
    return rows


def test_the_demo_screen_shows_every_strategy_trading_and_stops_cleanly_on_ctrl_c() -> None:
    config = load_config(CONFIG)
    names = [s.name for s in config.strategies if s.enabled]
    assert len(names) == 3, "the demo runs the three example strategies"
    term = Terminal([str(ROOT / ".venv" / "bin" / "orchestrator"), "run", "--config", str(CONFIG),
                     "--duration", "120"])  # fmt: skip
    try:
        started_s = time.monotonic()
        uptimes: dict[int, float] = {}  # uptime on screen -> when it first showed
        header = columns = None
        trading: dict[str, list[str]] = {}
        while time.monotonic() - started_s < SHOWN_WITHIN_S:
            term.pump(0.05)
            lines = term.lines()
            for line in lines:
                if (found := _UPTIME.search(line)) and line.startswith("orchestrator"):
                    uptimes.setdefault(int(found[1].replace(",", "")), time.monotonic())
                    header = line
                if "strategy" in line and "fills" in line and "│" not in line:
                    columns = [c.strip() for c in line.split("┃")[1:-1]]
            if columns is None:
                continue
            rows = strategy_rows(lines, names)
            placed, fills = columns.index("placed"), columns.index("fills")
            trading = {n: r for n, r in rows.items() if int(r[placed]) > 0 and int(r[fills]) > 0}
            if len(trading) == len(names) and len(uptimes) >= 4:
                break
        shown = "\n".join(term.lines())
        assert header is not None, f"no header on the screen:\n{shown}"
        assert sorted(trading) == sorted(names), f"not every strategy placed and filled:\n{shown}"
        assert "venue 0," in header, header  # the simulator refused nothing for rate
        # Redrawn in place at least once a second: consecutive uptimes appear <= ~1 s apart.
        seen = sorted(uptimes.items())
        gaps_s = [b[1] - a[1] for a, b in itertools.pairwise(seen) if b[0] == a[0] + 1]
        assert gaps_s, seen
        assert max(gaps_s) < 1.6, f"uptime on screen moved in steps of {gaps_s} s"

        term.type(b"\x03")  # Ctrl-C, typed on the terminal
        assert term.wait(STOP_BOUND_S) == 0, "\n".join(term.lines())
        after = "\n".join(term.lines())
        assert "stopped: 0 open orders left at the venue" in after, after
        assert "rate-limit rejections: venue 0, answered us 0" in after, after
        assert "summary" in after, after
    finally:
        term.kill()


def test_the_demo_run_for_60_s_ends_clean_and_says_so_in_its_summary() -> None:
    """`orchestrator run --duration 60` on the default config, stdout not a terminal: status
    lines, then the summary: every strategy traded, 0 open orders, 0 rate-limit rejections."""
    config = load_config(CONFIG)
    names = [s.name for s in config.strategies if s.enabled]
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "orchestrator"), "run", "--config", str(CONFIG),
         "--duration", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "stopped: 0 open orders left at the venue", lines[-12:]
    assert lines[-2] == "rate-limit rejections: venue 0, answered us 0", lines[-12:]
    moves = lines[-3]
    assert moves.startswith("rebalancer moves: "), lines[-12:]
    assert "complete" in moves, moves  # the TWAP's account topped up, the master's XBT swept
    assert "failed" not in moves, moves
    last_report = max(i for i, line in enumerate(lines) if line.startswith("pool "))
    summary = lines[last_report + 1 : -3]  # the summary's line per strategy
    assert [line.split()[0] for line in summary] == names, lines[-12:]
    for line in summary:
        cells = line.split()
        assert cells[1] == "stopped", line
        assert int(cells[cells.index("fills") + 1]) > 0, line
        assert int(cells[cells.index("placed") + 1]) > 0, line
        assert int(cells[cells.index("open") + 1]) == 0, line
