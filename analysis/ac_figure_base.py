"""What every ac-susceptibility figure shares: the alpha of the spectra a fit discarded, a new
or checked Axes, and the finish (title, PNG written when a path is given).

Figures are ``matplotlib.figure.Figure`` objects on Agg, never registered with pyplot (see
:mod:`.ac_figures` for the conventions).
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .figures import _save

FADED_ALPHA = 0.3


def _finish(ax: Axes, path, title: str | None) -> Figure:
    if title:
        ax.set_title(title)
    if path is not None:
        _save(ax.figure, path)
    return ax.figure


def _new_axes(ax, figsize=(6.0, 4.5)) -> Axes:
    if ax is None:
        return Figure(figsize=figsize, layout="constrained").add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax={ax!r}; allowed: a matplotlib Axes or None")
    return ax
