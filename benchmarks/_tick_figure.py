"""The tick-to-order figure: both variants' latency distributions, log x, with the goals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from benchmarks import plotting

FIGURE: Final = "tick_to_order"
_BINS: Final = 60


def draw_latencies(
    latencies_us: Mapping[str, Sequence[float]],
    *,
    goals_us: Mapping[str, float],  # label -> a vertical line
    title: str,
    out_dir: Path = plotting.IMAGES_DIR,
) -> Path:
    """A histogram (log-spaced bins) and a CDF of each variant's samples; the PNG's path."""
    fig = plotting.new_figure(width_in=12.0, height_in=4.6, ncols=2)
    hist_ax, cdf_ax = fig.axes
    every = [v for values in latencies_us.values() for v in values]
    low, high = math.log10(max(1.0, min(every))), math.log10(max(every))
    edges = [10 ** (low + (high - low) * k / _BINS) for k in range(_BINS + 1)]
    for i, (label, values) in enumerate(latencies_us.items()):
        color = f"C{i}"
        hist_ax.hist(values, bins=edges, histtype="step", lw=1.6, color=color, label=label)
        ordered = sorted(values)
        n = len(ordered)
        cdf_ax.step(
            ordered, [(k + 1) / n for k in range(n)], where="post", lw=1.6, color=color, label=label
        )
    for ax in (hist_ax, cdf_ax):
        ax.set_xscale("log")
        ax.set_xlabel("tick-to-order latency (us, log scale)")
        ax.grid(alpha=0.3, which="both")
        for k, (label, value) in enumerate(goals_us.items()):
            ax.axvline(value, color="black", ls=("--", ":")[k % 2], lw=1.0, label=label)
    hist_ax.set_ylabel("ticks per bin")
    cdf_ax.set_ylabel("fraction of ticks at or below")
    cdf_ax.set_ylim(0, 1.0)
    cdf_ax.legend(loc="center right", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return plotting.save(fig, FIGURE, out_dir=out_dir)
