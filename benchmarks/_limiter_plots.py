"""The limiter benchmark's figure: pool cost granted over time, per strategy, one panel per
limiter, against the pool's steady-state budget. Binning is pure (and tested); drawing goes
through `benchmarks.plotting`, which loads matplotlib only when called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks import plotting

FIGURE: Final = "limiter_utilization"
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class UtilizationPanel:
    """One limiter's run: what its workers were granted, and what the venue made of it."""

    label: str
    utilization: float  # pool cost the venue admitted / the full budget (the table's 'util')
    rejected: int  # venue rate-limit rejections
    grants: Mapping[str, Sequence[tuple[float, float]]]  # strategy -> (s into the run, cost)


def bin_count(duration_s: float, bin_s: float) -> int:
    """Bins of `bin_s` covering `duration_s`; the last one is shorter when it does not divide."""
    if duration_s <= 0 or bin_s <= 0:
        raise ValueError(f"duration {duration_s:g} s and bin {bin_s:g} s must be positive")
    return max(1, math.ceil(duration_s / bin_s - _EPSILON))


def bin_costs(
    grants: Sequence[tuple[float, float]], *, duration_s: float, bin_s: float
) -> list[float]:
    """Cost granted in each bin `[k bin_s, (k+1) bin_s)` of the run; a grant at exactly
    `duration_s` falls in the last bin, one outside `[0, duration_s]` in none (the budget is
    counted over the run's window only)."""
    totals = [0.0] * bin_count(duration_s, bin_s)
    for at_s, cost in grants:
        if 0 <= at_s <= duration_s:
            totals[min(int(at_s // bin_s), len(totals) - 1)] += cost
    return totals


def bin_widths_s(duration_s: float, bin_s: float) -> list[float]:
    """Each bin's length: `bin_s`, except a shorter last bin."""
    n = bin_count(duration_s, bin_s)
    return [min(bin_s, duration_s - k * bin_s) for k in range(n)]


def draw_utilization(
    panels: Sequence[UtilizationPanel],
    *,
    strategies: Mapping[str, str],  # name -> legend label, bottom of the stack first
    duration_s: float,
    bin_s: float,
    burst: float,
    decay_per_s: float,
    out_dir: Path = plotting.IMAGES_DIR,
) -> Path:
    """One panel per limiter (shared axes): the pool cost per second each strategy was granted,
    stacked, and the pool's decay as a dashed line. The PNG's path."""
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig = plotting.new_figure(
        width_in=12.0,
        height_in=3.4 * rows + 1.0,
        nrows=rows,
        ncols=cols,
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    axes = fig.axes
    widths = bin_widths_s(duration_s, bin_s)
    edges = [0.0, *(min(duration_s, (k + 1) * bin_s) for k in range(len(widths)))]
    colors = [f"C{i}" for i in range(len(strategies))]
    for ax, panel in zip(axes, panels, strict=False):
        rates = []
        for name in strategies:
            costs = bin_costs(panel.grants.get(name, ()), duration_s=duration_s, bin_s=bin_s)
            per_s = [c / w for c, w in zip(costs, widths, strict=True)]
            rates.append([*per_s, per_s[-1]])  # the step's last bin reaches the run's end
        ax.stackplot(
            edges, *rates, labels=list(strategies.values()), colors=colors, step="post", lw=0
        )
        ax.axhline(
            decay_per_s, color="black", ls="--", lw=1.4, label=f"pool decay {decay_per_s:g}/s"
        )
        granted = sum(c for g in panel.grants.values() for _, c in g)
        plural = "" if panel.rejected == 1 else "s"
        refused = f", {panel.rejected} venue rejection{plural}" if panel.rejected else ""
        ax.set_title(
            f"{panel.label}\n{panel.utilization:.1%} of the full budget admitted "
            f"(granted {granted:.0f}{refused})",
            fontsize=10,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(0, duration_s)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols :]:
        ax.set_xlabel("seconds into the run")
    for ax in axes[::cols]:
        ax.set_ylabel(f"pool cost granted per s ({bin_s:g} s bins)")
    # An axes' legend (not the figure's) so that `plotting.save`'s tight layout makes room.
    axes[cols - 1].legend(
        loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False, reverse=True
    )
    fig.suptitle(
        f"Pool cost granted over a {duration_s:g} s run, per strategy: the full budget is a "
        f"{burst:g} burst, then {decay_per_s:g}/s (dashed)",
        fontsize=11,
    )
    return plotting.save(fig, FIGURE, out_dir=out_dir)
