"""Plumbing shared by the stage panels."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as ipw
import numpy as np

from .controls import values_of

__all__ = ["NOTEBOOK_NOTE", "NotebookNote", "StagePanel"]

NOTEBOOK_NOTE = "▶ Run this cell (or Run All) to show the interactive panel."


def brush_pixels(
    points: np.ndarray,
    radius_mm: float,
    spacing: tuple[float, float],
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels under a round brush of ``radius_mm`` at each ``(row, col)`` point.

    Returns ``rows``, ``cols`` inside ``shape`` and, for each, the index of
    the point that painted it.
    """
    ry, rx = (max(radius_mm / s, 0.5) for s in spacing)
    dy, dx = np.mgrid[-int(ry) : int(ry) + 1, -int(rx) : int(rx) + 1]
    inside = (dy / ry) ** 2 + (dx / rx) ** 2 <= 1
    dy, dx = dy[inside], dx[inside]
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    rows = (points[:, 0, None] + dy[None]).ravel()
    cols = (points[:, 1, None] + dx[None]).ravel()
    owner = np.repeat(np.arange(len(points)), dy.size)
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows[keep], cols[keep], owner[keep]


def _bounds(control: ipw.Widget) -> tuple[float, float] | None:
    """The range a slider accepts, or None for other controls."""
    if isinstance(control, ipw.FloatLogSlider):
        return control.base**control.min, control.base**control.max
    if isinstance(control, ipw.FloatSlider | ipw.IntSlider):
        return control.min, control.max
    return None


class NotebookNote:
    """Mixin: a widget's output says to run its cell while it cannot be drawn.

    A notebook saved without widget state holds, for a widget's output, only
    its view (a model id) until a kernel runs the cell again. Front ends that
    cannot draw the view fall back on the output's other MIME types: an
    untrusted notebook in JupyterLab (a fresh clone's) shows only safe types,
    and nbconvert, nbviewer and GitHub skip a view whose state is missing. So
    the bundle's ``text/plain`` and ``text/html`` are :data:`NOTEBOOK_NOTE`
    rather than the widget's ``repr``. Once the cell has run, the front end
    draws the widget from its view, as before.

    Put it before the ipywidgets base: ``class Panel(NotebookNote, ipw.VBox)``.
    """

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is None:  # a widget without a view: nothing to stand in for
            return bundle
        note = html.escape(NOTEBOOK_NOTE)
        return {
            **bundle,
            "text/plain": NOTEBOOK_NOTE,
            "text/html": f'<p class="medimg-notebook-note">{note}</p>',
        }


class StagePanel(NotebookNote, ipw.VBox):
    """A stage panel: generated controls, a message line, batched redraws.

    Subclasses build ``self._controls`` and ``self._message`` and implement
    ``_refresh()``; ``self._ready`` holds redraws until construction is done.
    """

    @property
    def params(self) -> dict[str, Any]:
        """Current values of the panel's controls, by parameter name."""
        return values_of(self._controls)

    def set_params(self, **values: Any) -> None:
        """Set controls by name, as a user would, redrawing once."""
        self._apply(self._known(values))

    def _known(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values``, after checking that each names a control."""
        unknown = sorted(set(values) - set(self._controls))
        if unknown:
            raise ValueError(
                f"unknown parameters {unknown}; set {sorted(self._controls)}"
            )
        return values

    def _start(
        self,
        trait: str,
        value: str,
        on_change: Callable[[dict], None],
        params: dict[str, Any] | None,
    ) -> None:
        """Set the method trait, its controls and parameters, then draw once."""
        setattr(self, trait, value)
        if not self._controls:  # the trait kept its default: no change event
            on_change({"new": value})
        if params:
            self.set_params(**params)
        self._ready = True
        self._refresh()

    def _apply(self, values: dict[str, Any]) -> None:
        """Put checked values into the controls, redrawing once.

        A slider would clamp a value outside its range without a word; here
        it is an error that names the range, and nothing changes.
        """
        for name, value in values.items():
            bounds = _bounds(self._controls[name])
            if bounds and value is not None and not bounds[0] <= value <= bounds[1]:
                label = self._controls[name].description or name
                raise ValueError(
                    f"{label} must lie in [{bounds[0]:.6g}, {bounds[1]:.6g}]; got "
                    f"{value!r}"
                )
        with self._batch():
            for name, value in values.items():
                self._controls[name].value = value

    def _batch(self):
        from .viewer import batched  # not at the top: viewer.py may import this module

        return batched(self, self._refresh)

    def _say(self, text: str, ok: bool = False) -> None:
        """Show a plain sentence (red for a problem, green for a success)."""
        color, text = ("#060" if ok else "#b00"), html.escape(text)
        self._message.value = (
            f'<span style="color:{color}">{text}</span>' if text else ""
        )
