"""What every plot of the package shares: the Axes to draw on, and the colours."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

ACTUAL, MODEL, SIMULATED = "#1f4e79", "#e07b39", "#8fb98b"
SIZE = (7.0, 4.0)


def axes_for(ax: Axes | None, title: str) -> Axes:
    """``ax`` itself, or the Axes of a new Figure made without pyplot; titled ``title``."""
    if ax is None:
        ax = Figure(figsize=SIZE, layout="constrained").add_subplot()
    ax.set_title(title)
    return ax
