"""Plumbing shared by the stage panels, the viewer and the dashboards.

- :class:`Messages`: the one message line (a sentence in red, green or grey)
  and the one guard that turns any exception of a widget callback into a
  sentence there, never a traceback (in Voila too).
- :func:`batched`: hold a widget's redraws for a block, then redraw once.
- :class:`NotebookNote` and :class:`StagePanel`.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
from collections.abc import Callable
from typing import Any

import ipywidgets as ipw

from medimg_lab.errors import MedImgError

from .controls import values_of

__all__ = ["NOTEBOOK_NOTE", "Messages", "NotebookNote", "StagePanel", "batched"]

NOTEBOOK_NOTE = "▶ Run this cell (or Run All) to show the interactive panel."

#: Colours of the message line: a problem, a success, an instruction.
RED, GREEN, GREY = "#b00020", "#060", "#555"


@contextlib.contextmanager
def batched(widget, redraw):
    """Hold ``widget``'s redraws (its ``_ready`` flag) for a block, then redraw once."""
    ready, widget._ready = widget._ready, False
    try:
        yield
    finally:
        widget._ready = ready
    redraw()


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without its full stop."""
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def failure(action: str, exc: BaseException) -> str:
    """One sentence for an exception.

    A MedImgError's own, or "Could not <action>: <its first line>.".
    """
    if isinstance(exc, MedImgError):
        return f"{exc.source}: {exc.problem} {exc.fix}"
    return f"Could not {action}: {first_line(exc)}."


def line_html(text: str, color: str) -> str:
    """The message line's HTML: ``text`` escaped, in ``color`` ("" for none)."""
    return f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""


class Messages:
    """Mixin: the message line (``self._message``, an ``ipw.HTML``) and the guard.

    :meth:`_say` shows a sentence (red for a problem, green for a success),
    :meth:`_tell` an instruction in grey; :meth:`_guard` wraps a widget
    callback so that any exception, not only a ``ValueError``, shows there as
    one sentence (:func:`failure`) and none reaches the kernel's log;
    :meth:`_fail` shows a sentence and raises, for a setter called from code.
    """

    _message_text = ""

    @property
    def message(self) -> str:
        """The sentence in the message line ("" when there is none)."""
        return self._message_text

    def _say(self, text: str, ok: bool = False) -> None:
        """Show a plain sentence (red for a problem, green for a success)."""
        self._message_text = text
        self._message.value = line_html(text, GREEN if ok else RED)

    def _tell(self, text: str) -> None:
        """A plain instruction in the message line (grey: nothing is wrong)."""
        self._message_text = text
        self._message.value = line_html(text, GREY)

    def _say_failure(self, action: str, exc: BaseException) -> None:
        self._say(failure(action, exc))

    def _fail(self, exc: Exception, text: str | None = None):
        """Show ``exc`` as a sentence in the message line, then raise it."""
        self._say(text or str(exc))
        exc.shown_in_page = True  # the callbacks' guard keeps this sentence
        raise exc

    @contextlib.contextmanager
    def _guard(self, action: str):
        """Show any exception of a callback as one sentence; raise nothing."""
        try:
            yield
        except Exception as exc:  # a callback must never take the page down
            if not getattr(exc, "shown_in_page", False):
                self._say_failure(action, exc)

    def _guarded_callback(self, action: str, callback: Callable) -> Callable:
        """``callback`` for a widget's ``observe`` or ``on_click``, guarded."""

        def run(*args, **kwargs):
            with self._guard(action):
                callback(*args, **kwargs)

        return run


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


def _guarded_method(name: str, method: Callable) -> Callable:
    """``method`` run inside its panel's guard (once, however often wrapped)."""
    if getattr(method, "_guarded", False):
        return method
    what = name.removeprefix("_on_").removesuffix("_change").removesuffix("_click")
    action = "draw the result" if name == "_refresh" else f"handle the {what}"
    action = action.replace("_", " ")

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self._guard(action):
            return method(self, *args, **kwargs)

    guarded._guarded = True
    return guarded


class StagePanel(Messages, NotebookNote, ipw.VBox):
    """A stage panel: generated controls, a message line, batched redraws.

    Subclasses build ``self._controls`` and ``self._message`` and implement
    ``_refresh()``; ``self._ready`` holds redraws until construction is done.
    A subclass's ``_refresh`` and its callbacks, the plain methods named
    ``_on_<what>`` (the house convention; ``@traitlets.observe`` handlers of
    the panel's own traits raise for a setter called from code), run inside
    the guard (:class:`Messages`): an exception of any kind shows as a
    sentence in the message line, and no control's callback raises into the
    kernel.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, method in list(cls.__dict__.items()):
            if name == "_refresh" or (
                name.startswith("_on_") and inspect.isfunction(method)
            ):
                setattr(cls, name, _guarded_method(name, method))

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
        return batched(self, self._refresh)
