"""Figures for `make bench`: PNGs under `docs/images/` that the README shows.

matplotlib is a `bench` extra; it is imported here only, with the headless Agg backend, so a
benchmark that draws runs on a machine without a display. `--no-plots` (or matplotlib absent)
skips the figures and keeps the printed tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGES_DIR: Final = Path(__file__).resolve().parent.parent / "docs" / "images"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415 - an optional extra
    except ImportError:
        return False
    return True


def new_figure(*, width_in: float = 8.0, height_in: float = 4.5, **subplots: Any) -> Figure:
    """A figure with `plt.subplots(**subplots)` axes, on the Agg backend."""
    import matplotlib  # noqa: PLC0415 - an optional extra, loaded when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the backend

    fig: Figure = plt.subplots(figsize=(width_in, height_in), **subplots)[0]
    return fig


def save(fig: Figure, name: str, *, out_dir: Path = IMAGES_DIR) -> Path:
    """Write `fig` as `<out_dir>/<name>.png` and close it; the path written."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - an optional extra

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
