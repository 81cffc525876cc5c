"""The control factory: one ipywidgets control per declared parameter.

Ranges, steps, units, defaults and descriptions come from the ``Param``
declarations next to each algorithm (:mod:`medimg_lab.params`); nothing here
repeats them. A slider spans the declared slider range (``Param.slider``)
where one is declared, else the valid range; it never offers a value the
function refuses (an excluded minimum is one step inside).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
import numpy as np
import traitlets

from medimg_lab.params import ParamSpec, parameters

__all__ = ["OptionalNumber", "control_for", "controls_for", "label_for", "values_of"]

_STYLE = {"description_width": "150px"}
_LAYOUT = {"width": "420px"}


def label_for(spec: ParamSpec, units: str | None = None) -> str:
    """A readable label with the unit: ``sigma_mm`` → ``"sigma (mm)"``.

    ``units`` names the image's unit ("HU") for values in image units.

    Parameters
    ----------
    spec : ParamSpec
        From :func:`medimg_lab.params.parameters`.
    units : str, optional
        The image's unit, shown for parameters in image units.

    Returns
    -------
    str
    """
    unit = spec.param.unit
    if unit == "image units" and units:
        unit = units
    name = spec.name
    for suffix in ("_mm2", "_mm", "_ml"):
        name = name.removesuffix(suffix)
    name = name.replace("_", " ")
    return f"{name} ({unit})" if unit else name


class OptionalNumber(w.HBox):
    """A slider with an "auto" box: ``value`` is ``None`` while auto is ticked.

    For parameters whose default is computed from the image (``None``).

    Parameters
    ----------
    slider : ipywidgets.FloatSlider
        The number's slider, disabled while auto is ticked.
    **kwargs
        Passed to :class:`ipywidgets.HBox` (``layout`` ...).
    """

    value = traitlets.Any(None, allow_none=True)

    def __init__(self, slider: w.FloatSlider, **kwargs):
        self._slider = slider
        self._auto = w.Checkbox(
            value=True, description="auto", indent=False, layout={"width": "70px"}
        )
        super().__init__([self._slider, self._auto], **kwargs)
        self._slider.disabled = True
        self._auto.observe(self._on_auto_change, "value")
        self._slider.observe(self._on_slider_change, "value")

    def _on_auto_change(self, change) -> None:
        self._slider.disabled = change["new"]
        self.value = None if change["new"] else self._slider.value

    def _on_slider_change(self, change) -> None:
        if not self._auto.value:
            self.value = change["new"]

    @traitlets.observe("value")
    def _on_value_change(self, change) -> None:
        new = change["new"]
        self._auto.value = new is None
        if new is not None:
            self._slider.value = new


def _bounds(
    spec: ParamSpec, value_range: tuple[float, float] | None
) -> tuple[float, float]:
    """Slider bounds: declared, or from the image's value range for its units."""
    p = spec.param
    low, high = p.slider or (p.min, p.max)
    if p.scale == "log":
        return low, high
    lo, hi = value_range or (0.0, 1.0)
    if p.scale == "span":
        lo, hi = 0.0, hi - lo
    if low is not None:
        lo = low if not p.scale else max(lo, low)
    if high is not None:
        hi = high if not p.scale else min(hi, high)
    return lo, max(hi, lo)


def _number_slider(
    spec: ParamSpec, value_range: tuple[float, float] | None
) -> w.Widget:
    p = spec.param
    lo, hi = _bounds(spec, value_range)
    default = spec.default
    if spec.type is int:
        step = int(p.step or 1)
        if p.exclusive_min and lo <= p.min:
            lo = int(np.floor(p.min)) + 1
            hi = max(hi, lo)
        value = int(default if default is not None else lo)
        return w.IntSlider(
            value=value, min=int(lo), max=int(hi), step=step, continuous_update=True
        )
    if p.scale == "log":
        return w.FloatLogSlider(
            value=float(default if default is not None else np.sqrt(lo * hi)),
            base=10,
            min=float(np.log10(lo)),
            max=float(np.log10(hi)),
            step=0.1,
            continuous_update=True,
            readout_format=".3g",
        )
    step = p.step
    if not step:
        # A round step (1 HU on a CT), with the bounds on its grid: values
        # typed or set from Python (a preset's 15 HU) are on the grid, so the
        # browser never snaps them to neighbours and sends those back.
        span = hi - lo
        step = 10.0 ** np.floor(np.log10(span / 1000)) if span > 0 else 0.01
        lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step
        step = float(step)
    if p.exclusive_min and lo <= p.min:
        lo = p.min + step  # the minimum itself is refused
        hi = max(hi, lo)
    value = float(default) if default is not None else (lo + hi) / 2
    value = min(max(value, lo), hi)
    return w.FloatSlider(
        value=value,
        min=float(lo),
        max=float(hi),
        step=float(step),
        continuous_update=True,
        readout_format=".3g",
    )


def control_for(
    spec: ParamSpec,
    *,
    value_range: tuple[float, float] | None = None,
    units: str | None = None,
) -> w.Widget:
    """A control for one declared parameter.

    Parameters
    ----------
    spec : ParamSpec
        From :func:`medimg_lab.params.parameters`.
    value_range : (float, float), optional
        The image's value range, for parameters in image units (a window
        center ranges over it, a window width or noise SD over its span).
    units : str, optional
        The image's unit ("HU"), shown in place of "image units".

    Returns
    -------
    ipywidgets.Widget
        With a ``value`` trait holding the parameter's value.
    """
    p = spec.param
    common = {
        "description": label_for(spec, units),
        "tooltip": p.doc,
        "style": _STYLE,
    }
    if p.choices is not None:
        control = w.Dropdown(options=list(p.choices), value=spec.default)
    elif spec.type is bool:
        control = w.Checkbox(value=bool(spec.default), indent=True)
    elif spec.type in (int, float):
        control = _number_slider(spec, value_range)
        if spec.optional and spec.default is None:
            for key, val in common.items():
                setattr(control, key, val)
            control.layout = _LAYOUT
            return OptionalNumber(control)
    else:
        control = w.Text(value=str(spec.default))
    for key, val in common.items():
        setattr(control, key, val)
    control.layout = _LAYOUT
    return control


def controls_for(
    fn: Callable,
    *,
    value_range: tuple[float, float] | None = None,
    units: str | None = None,
) -> dict[str, w.Widget]:
    """One control per declared parameter of ``fn``, in signature order.

    Parameters
    ----------
    fn : callable
        A declared function or operation.
    value_range, units
        As :func:`control_for` takes them.

    Returns
    -------
    dict of str to ipywidgets.Widget
    """
    return {
        name: control_for(spec, value_range=value_range, units=units)
        for name, spec in parameters(fn).items()
    }


def values_of(controls: dict[str, w.Widget]) -> dict[str, Any]:
    """The current ``{name: value}`` of a set of controls.

    Parameters
    ----------
    controls : dict of str to ipywidgets.Widget
        As :func:`controls_for` gives them.

    Returns
    -------
    dict
    """
    return {name: control.value for name, control in controls.items()}
