"""``CompositionPanel``: stage 4, ``I = I1·M + I2·(1−M)`` you can steer.

Explorers, each usable on its own and shown as tabs of the panel:

- :class:`BlendExplorer`: one image in two windows (or two images) through a
  mask from a threshold, a segmentation, a clicked circle or a painted ROI,
  with opacity and a feathered edge in mm.
- :class:`FusionExplorer`: weighted, colour, checkerboard, difference and
  swipe views of two aligned images.
- :class:`RegistrationExplorer`: nudge sliders (mm, degrees) next to
  automatic registration, with a live difference image and its NCC.
- :class:`StitchExplorer`: tiles stitched into a mosaic, with seams,
  offsets and confidences.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as ipw
import numpy as np
import traitlets

from medimg_lab import composition as C
from medimg_lab import display
from medimg_lab._files import keep_array
from medimg_lab.composition.fusion import difference_caption, difference_window
from medimg_lab.composition.steps import (
    FUSION_MODES,
    blend_step,
    fuse_step,
    soft_mask,
)
from medimg_lab.geometry import brush_pixels, disc_mask
from medimg_lab.image import MedImage
from medimg_lab.metrics import MERITS, describe
from medimg_lab.params import parameters, validate
from medimg_lab.segmentation import threshold_range

from ._panel import NotebookNote, StagePanel
from .controls import control_for, controls_for
from .viewer import ImageViewer

__all__ = [
    "BlendExplorer",
    "CompositionPanel",
    "FusionExplorer",
    "RegistrationExplorer",
    "StitchExplorer",
]

MASK_SOURCES = ("threshold", "segmentation", "circle", "painted")
REGISTRATION_VIEWS = ("difference", "checkerboard", "overlay", "swipe")
#: The controls each registration view uses, besides the motion's.
_REGISTRATION_VIEW_CONTROLS = {
    "difference": (),
    "checkerboard": ("squares",),
    "overlay": ("weight",),
    "swipe": ("position",),
}
_MOTION = ("shift_y_mm", "shift_x_mm", "rotation_deg")
_BLANK = MedImage(np.zeros((8, 8), np.float32), (1.0, 1.0))


def _plane(image: MedImage, name: str) -> MedImage:
    """A 2D grey image: a volume gives its middle axial slice."""
    if not isinstance(image, MedImage):
        raise ValueError(f"{name} must be a MedImage; got {type(image).__name__}")
    if image.is_color:
        raise ValueError(f"{name} must be grey; got an RGB image")
    if not image.is_volume:
        return image
    middle = image.array.shape[0] // 2
    return MedImage(
        image.array[middle],
        image.spacing[1:],
        image.modality,
        image.window,
        {**image.meta, "slice": middle},
        image.source,
    )


def _window(image: MedImage, name: str) -> tuple[float, float]:
    """A preset in HU, or "auto" (robust percentiles), or "default"."""
    if name == "auto":
        return display.auto_window(image.array)
    if name == "default":
        return image.window or display.auto_window(image.array)
    return display.preset(name)


def _presets(image: MedImage) -> tuple[str, ...]:
    ct = tuple(display.PRESETS) if image.unit == "HU" else ()
    return ("default", "auto", *ct)


def _shown(array: np.ndarray, like: MedImage) -> MedImage:
    """A display image (uint8, grey or RGB) on ``like``'s grid, for the viewer."""
    return MedImage(array, like.spacing, "OT", (127.5, 255.0), {"unit": "grey"})


def _unit_sentence(image: MedImage, what: str) -> str:
    """The note ``<i>what in a.u.: MR signal ...</i>``, for a unit other than HU.

    ``""`` for HU.
    """
    if image.unit == "HU" or image.unit_note == image.unit:
        return ""
    return f"<i>{html.escape(what)} in {html.escape(image.unit_note)}</i>"


def _step(op: str, **params: Any) -> dict[str, Any]:
    """One recipe step, in the form every panel uses."""
    return {"op": op, "params": params}


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened to round numbers: a map of 0 to 0.992 gives 0 to 1."""
    if not hi > lo:
        return lo, lo + 1
    step = 10 ** np.floor(np.log10(hi - lo)) / 10
    return float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)


def _dropdown(options, value, description) -> ipw.Dropdown:
    return ipw.Dropdown(
        options=list(options),
        value=value,
        description=description,
        style={"description_width": "110px"},
        layout={"width": "300px"},
    )


class _Explorer(StagePanel):
    """A viewer on the left, controls on the right, a message below."""

    def _layout(self, controls: list[ipw.Widget]) -> None:
        for control in controls:  # one label width, so that the rows line up
            if isinstance(control, ipw.FloatSlider | ipw.IntSlider | ipw.Dropdown):
                control.style.description_width = "110px"
                control.layout.width = "330px"
        self._message = ipw.HTML()
        self.children = [
            ipw.HBox([self._viewer, ipw.VBox(controls)]),
            self._message,
        ]

    def _guarded(self, draw) -> None:
        if not self._ready:
            return
        with self._guard("draw the view"):
            draw()
            self._say("")

    def _on_change(self, _=None) -> None:
        self._refresh()


class BlendExplorer(_Explorer):
    """``I = I1·M + I2·(1−M)`` with a mask you choose and soften.

    Parameters
    ----------
    image : MedImage
        ``I1``'s image; a volume gives its middle slice.
    other : MedImage, optional
        ``I2``'s image, of the same shape; default ``image`` itself, so that
        the two windows compose one picture (bone inside a bone mask, brain
        outside).
    mask : ndarray of bool, optional
        A segmentation, offered as the mask source "segmentation".
    inside, outside : str
        Window presets of ``I1`` and ``I2`` ("default", "auto" or a CT
        preset).

    Notes
    -----
    State with setters: ``source`` ("threshold", "segmentation", "circle",
    "painted"), :meth:`set_params` (``low``, ``high``, ``opacity``,
    ``width_mm``, ``radius_mm``, ``inside``, ``outside``), :meth:`place_circle`,
    :meth:`paint` and :meth:`clear_painting`; results
    :attr:`mask` (soft, in [0, 1]), :attr:`composite` (uint8) and
    :attr:`recipe`.
    """

    source = traitlets.Enum(MASK_SOURCES, "threshold")

    def __init__(
        self,
        image: MedImage,
        *,
        other: MedImage | None = None,
        mask: np.ndarray | None = None,
        inside: str = "default",
        outside: str = "default",
        **kwargs,
    ):
        self._image = _plane(image, "image")
        self._other = self._image if other is None else _plane(other, "other")
        if self._other.array.shape != self._image.array.shape:
            raise ValueError(
                f"other must have the image's shape {self._image.array.shape}; got "
                f"{self._other.array.shape}; register it first"
            )
        self._segmentation = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim == 3 and image.is_volume:
                mask = mask[mask.shape[0] // 2]
            if mask.shape != self._image.array.shape:
                raise ValueError(
                    f"mask must have the image's shape {self._image.array.shape}"
                )
            self._segmentation = mask.astype(bool)
        rows, cols = self._image.array.shape
        self._centre = (rows // 2, cols // 2)
        self._painted = np.zeros((rows, cols), bool)
        self._ready = False
        super().__init__(**kwargs)
        self._build(inside, outside)
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    def set_params(self, **values: Any) -> None:
        """Set controls by name, as a user would, redrawing once.

        Parameters
        ----------
        **values
            ``{name: value}`` of the controls (:attr:`params`); ``inside``
            and ``outside`` take one of their images' names.
        """
        self._known(values)
        for name in ("inside", "outside"):
            if name in values and values[name] not in self._controls[name].options:
                raise ValueError(
                    f"{name} must be one of {list(self._controls[name].options)}; got "
                    f"{values[name]!r}"
                )
        self._apply(values)

    def place_circle(self, index: tuple[int, int]) -> None:
        """Centre the circle mask at ``(row, col)``, as a click would.

        Parameters
        ----------
        index : (int, int)
            ``(row, col)`` inside the image.
        """
        rows, cols = self._image.array.shape
        r, c = (int(v) for v in index)
        if not (0 <= r < rows and 0 <= c < cols):
            raise ValueError(f"index {index} lies outside the image ({rows}, {cols})")
        self._centre = (r, c)
        self.source = "circle"
        self._refresh()

    def paint(self, points, *, erase: bool = False) -> None:
        """Paint (or erase) the ROI along ``(row, col)`` points.

        With a brush of ``radius_mm``, as a drag with the brush would.

        Parameters
        ----------
        points : (n, 2) array_like
            ``(row, col)`` pixel positions of the drag.
        erase : bool
            Erase instead of painting.
        """
        rows, cols, _ = brush_pixels(
            np.asarray(points).reshape(-1, 2),
            self.params["radius_mm"],
            self._image.spacing,
            self._painted.shape,
        )
        self._painted[rows, cols] = not erase
        self.source = "painted"
        self._refresh()

    def clear_painting(self) -> None:
        """Empty the painted ROI."""
        self._painted[:] = False
        self._refresh()

    @property
    def binary_mask(self) -> np.ndarray:
        """``M`` before opacity and feathering, from the chosen source."""
        image = self._image.array
        if self.source == "threshold":
            p = self.params
            return threshold_range(image, low=p["low"], high=p["high"])
        if self.source == "segmentation":
            if self._segmentation is None:
                raise ValueError("no segmentation was given; pass mask= to the panel")
            return self._segmentation
        if self.source == "painted":
            return self._painted.copy()
        return disc_mask(
            image.shape, self._centre, self.params["radius_mm"], self._image.spacing
        )

    @property
    def mask(self) -> np.ndarray:
        """The soft ``M = opacity · feather(mask, width_mm)`` in [0, 1]."""
        p = self.params
        return soft_mask(
            self.binary_mask, p["width_mm"], p["opacity"], spacing=self._image.spacing
        )

    @property
    def composite(self) -> np.ndarray:
        """The composite display image, uint8 (the recipe's ``blend`` step)."""
        return blend_step(
            self._image.array,
            mask=self.binary_mask,
            **self._blend_options(),
            other=self._other.array,
            spacing=self._image.spacing,
        )

    def _blend_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "width_mm": p["width_mm"],
            "opacity": p["opacity"],
            "window": [float(v) for v in _window(self._image, p["inside"])],
            "other_window": [float(v) for v in _window(self._other, p["outside"])],
        }

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The steps that rebuild :attr:`composite` from ``I1``'s image.

        ``threshold`` gives ``threshold_range`` and a ``blend`` through its
        labels; the other sources (a given segmentation, the circle, the
        painting) give one ``blend`` whose mask is a saved file (``.npy``,
        by path and SHA-256). A second image ``I2`` is a saved file too.
        """
        p = self.params
        steps, blend = [], self._blend_options()
        if self.source == "threshold":
            steps.append(_step("threshold_range", low=p["low"], high=p["high"]))
        else:
            blend["mask"] = keep_array(self.binary_mask)
        if self._other is not self._image:
            blend["other"] = keep_array(self._other.array)
        return [*steps, _step("blend", **blend)]

    # ---------------------------------------------------------------- build
    def _build(self, inside: str, outside: str) -> None:
        image = self._image
        lo, hi = float(image.array.min()), float(image.array.max())
        controls = controls_for(threshold_range, value_range=(lo, hi), units=image.unit)
        if image.unit != "HU":  # the HU bone default means nothing here
            low, high = np.percentile(image.array, [75, 100])
            controls["low"].value, controls["high"].value = float(low), float(high)
        controls.update(controls_for(C.feather))
        controls["opacity"] = control_for(parameters(blend_step)["opacity"])
        controls["radius_mm"] = ipw.FloatSlider(
            value=round(min(image.array.shape) * min(image.spacing) / 6, 1),
            min=1.0,
            max=round(max(image.array.shape) * max(image.spacing) / 2, 1),
            step=0.5,
            description="radius (mm)",
        )
        presets = _presets(image)
        controls["inside"] = _dropdown(presets, inside, "inside (I1)")
        controls["outside"] = _dropdown(_presets(self._other), outside, "outside (I2)")
        self._controls = controls
        for control in controls.values():
            control.observe(self._on_change, "value")
        sources = [
            s
            for s in MASK_SOURCES
            if s != "segmentation" or self._segmentation is not None
        ]
        self._source = _dropdown(sources, "threshold", "mask from")
        traitlets.link((self._source, "value"), (self, "source"))
        blank = np.zeros(image.array.shape, np.uint8)
        self._viewer = ImageViewer(
            _shown(blank, image), box_size=480, status_line=False
        )
        self._viewer.observe(self._on_click, "clicked")
        self._viewer.observe(self._on_stroke, "stroke")
        self._unit_note = ipw.HTML(_unit_sentence(image, "low and high"))
        self._clear = ipw.Button(description="clear painting")
        self._clear.on_click(
            self._guarded_callback(
                "clear the painting", lambda _: self.clear_painting()
            )
        )
        self._layout(
            [
                self._source,
                *controls.values(),
                ipw.HTML(
                    "Circle: click in the image to centre it. Painted: drag to "
                    "paint with a brush of the radius."
                ),
                self._unit_note,
                self._clear,
            ]
        )

    # ------------------------------------------------------------ callbacks
    @traitlets.observe("source")
    def _on_source_change(self, change) -> None:
        self._viewer.tool = "brush" if change["new"] == "painted" else "read"
        self._refresh()

    def _on_stroke(self, change) -> None:
        if change["new"] and self.source == "painted":
            self.paint([p[-2:] for p in change["new"]])

    def _on_click(self, change) -> None:
        if change["new"] and self.source == "circle":
            self.place_circle(change["new"][-2:])

    def _refresh(self) -> None:
        self._guarded(
            lambda: setattr(self._viewer, "image", _shown(self.composite, self._image))
        )


class FusionExplorer(_Explorer):
    """Two aligned images in one view.

    Weighted, colour, checkerboard, difference or swipe.

    Parameters
    ----------
    base : MedImage
        ``I1``, the anatomy; a volume gives its middle slice.
    layer : MedImage
        ``I2`` of the same shape: a second image, or a functional or
        probability map for the colour view.

    Notes
    -----
    State with setters: ``mode`` (:data:`FUSION_MODES`), :meth:`set_params`;
    results :attr:`composite` and :attr:`recipe`.
    """

    mode = traitlets.Enum(FUSION_MODES, "weighted")

    def __init__(self, base: MedImage, layer: MedImage, *, mode="weighted", **kwargs):
        self._base = _plane(base, "base")
        self._layer = _plane(layer, "layer")
        if self._layer.array.shape != self._base.array.shape:
            raise ValueError(
                f"layer must have the base's shape {self._base.array.shape}; got "
                f"{self._layer.array.shape}; register or resample it first"
            )
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.mode = mode
        self._on_mode_change({"new": self.mode})  # also when mode is the default
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    @property
    def composite(self) -> np.ndarray:
        """The view of the current mode, uint8 (RGB for colour).

        What the recipe's ``fuse`` step gives.
        """
        return fuse_step(
            self._base.array,
            other=self._layer.array,
            **self._fuse_options(),
            spacing=self._base.spacing,
        )

    def _fuse_options(self) -> dict[str, Any]:
        p, mode = self.params, self.mode
        options: dict[str, Any] = {"mode": mode}
        if mode == "colour":
            options.update(
                cmap=p["cmap"],
                opacity=p["opacity"],
                layer_range=[p["layer_low"], p["layer_high"]],
            )
        elif mode in ("weighted", "checkerboard", "swipe"):
            key = {"weighted": "weight", "checkerboard": "squares"}.get(
                mode, "position"
            )
            options[key] = p[key]
        return options

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The current view as one ``fuse`` step on the base image.

        The layer is a saved file (``.npy``, by path and SHA-256).
        """
        return [
            _step("fuse", other=keep_array(self._layer.array), **self._fuse_options())
        ]

    # ---------------------------------------------------------------- build
    @property
    def caption(self) -> str:
        """The sentence under the difference view: its window and unit."""
        base, layer = self._base, self._layer
        text = difference_caption(
            self._diff_window, base.unit, note=base.unit_note, names=("I1", "I2")
        )
        if layer.unit != base.unit:
            text += (
                f"; I2 is in {layer.unit_note}, not {base.unit}: the difference "
                "mixes units"
            )
        return text

    def _build(self) -> None:
        base = self._base
        self._diff_window = difference_window(
            base.array, self._layer.array, spacing=base.spacing
        )
        layer = self._layer.array
        lo, hi = _nice_range(float(np.nanmin(layer)), float(np.nanmax(layer)))
        start_lo, start_hi = np.percentile(layer, [1, 99])
        controls = controls_for(C.fuse)
        controls.update(controls_for(C.color_fuse))
        controls.update(controls_for(C.checkerboard))
        controls["position"] = controls_for(C.swipe)["position"]
        step = (hi - lo) / 200
        for name, value in (("layer_low", start_lo), ("layer_high", start_hi)):
            controls[name] = ipw.FloatSlider(
                value=float(value),
                min=lo,
                max=hi,
                step=step,
                description=f"{name.replace('_', ' ')} ({self._layer.unit})",
                style={"description_width": "110px"},
                readout_format=".3g",
            )
        self._controls = controls
        for control in controls.values():
            control.observe(self._on_change, "value")
        self._mode = _dropdown(FUSION_MODES, "weighted", "view")
        traitlets.link((self._mode, "value"), (self, "mode"))
        self._legend = ipw.Image(format="png", layout={"width": "256px"})
        self._legend_text = ipw.HTML()
        self._viewer = ImageViewer(
            _shown(np.zeros(self._base.array.shape, np.uint8), self._base),
            box_size=480,
            status_line=False,
        )
        self._layout([self._mode, *controls.values(), self._legend, self._legend_text])

    # ------------------------------------------------------------ callbacks
    @traitlets.observe("mode")
    def _on_mode_change(self, change) -> None:
        used = {
            "weighted": {"weight"},
            "colour": {"cmap", "opacity", "layer_low", "layer_high"},
            "checkerboard": {"squares"},
            "difference": set(),
            "swipe": {"position"},
        }[change["new"]]
        for name, control in self._controls.items():
            control.layout.display = "" if name in used else "none"
        colour = change["new"] == "colour"
        self._legend.layout.display = "" if colour else "none"
        shown = change["new"] in ("colour", "difference")
        self._legend_text.layout.display = "" if shown else "none"
        self._refresh()

    def _refresh(self) -> None:
        def draw():
            self._viewer.image = _shown(self.composite, self._base)
            if self.mode == "colour":
                p = self.params
                self._legend.value = display.encode_png(C.legend(p["cmap"]))
                self._legend_text.value = (
                    f"{p['layer_low']:.3g} to {p['layer_high']:.3g} "
                    f"{self._layer.unit}; "
                    f"drawn at and above {p['layer_low']:.3g}"
                )
                if self._layer.unit not in ("HU", "probability"):
                    self._legend_text.value += f" ({self._layer.unit_note})"
            elif self.mode == "difference":
                self._legend_text.value = html.escape(self.caption)

        self._guarded(draw)


class RegistrationExplorer(_Explorer):
    """Align a moving image on a fixed one, by hand or automatically.

    The sliders hold the motion of the moving image's content, ``shift``
    (mm) and ``rotation`` (degrees, counter-clockwise on screen), as
    :func:`~medimg_lab.composition.register` reports it; the view undoes it
    (:func:`~medimg_lab.composition.rigid_transform` with ``inverse=True``)
    and compares the result with the fixed image, live, with its NCC and
    mutual information on the overlap.

    Views (``view``): ``"difference"`` ``I1 − I2`` (mid-grey where equal),
    ``"checkerboard"`` (``squares`` along the longer side), ``"overlay"``
    ``w·I1 + (1 − w)·I2`` (``weight`` w of the fixed image, 0.5 by default)
    and ``"swipe"`` (``position``: the fixed image left of it, the moving
    one right).

    Parameters
    ----------
    fixed, moving : MedImage
        Grey 2D images of one shape and spacing (a volume gives its middle
        slice).

    Notes
    -----
    State with setters: :meth:`set_params` (``shift_y_mm``, ``shift_x_mm``,
    ``rotation_deg``, ``method``, ``view``, ``weight``, ``squares``,
    ``position``), :meth:`nudge`, :meth:`register`, :meth:`set_images`,
    :meth:`set_windows`; results :attr:`aligned`, :attr:`ncc`, :attr:`mi`,
    :attr:`result` (the last automatic registration), :attr:`composite`
    and :attr:`recipe`. ``revision`` counts the views drawn (observe it to
    follow every change); :attr:`parts` gives the widgets, for a page that
    lays them out itself.
    """

    revision = traitlets.Int(0, read_only=True)

    def __init__(self, fixed: MedImage, moving: MedImage, **kwargs):
        self._fixed, self._moving = self._checked(fixed, moving)
        self._result: C.Registration | None = None
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self._ready = True
        self._refresh()

    @staticmethod
    def _checked(fixed: MedImage, moving: MedImage) -> tuple[MedImage, MedImage]:
        fixed, moving = _plane(fixed, "fixed"), _plane(moving, "moving")
        if moving.array.shape != fixed.array.shape:
            raise ValueError(
                f"moving must have the fixed image's shape {fixed.array.shape}; "
                f"got {moving.array.shape}"
            )
        return fixed, moving

    # ------------------------------------------------------------------ API
    def register(self) -> C.Registration:
        """Register automatically with the chosen method; the sliders follow."""
        p = self.params
        result = C.register(
            self._fixed, self._moving, method=p["method"], transform="rigid"
        )
        self._result = result
        dy, dx = result.shift_mm
        self.set_params(shift_y_mm=dy, shift_x_mm=dx, rotation_deg=result.rotation_deg)
        self._found.value = html.escape(
            f"{p['method']}: shift ({dy:.2f}, {dx:.2f}) mm (rows, columns), "
            f"rotation {result.rotation_deg:.2f}°; {describe('ncc', result.ncc)}; "
            f"{describe('mi', result.mi)}"
        ).replace(p["method"], f"<b>{p['method']}</b>", 1)
        return result

    @property
    def result(self) -> C.Registration | None:
        """The last automatic registration."""
        return self._result

    def set_images(
        self, fixed: MedImage, moving: MedImage, *, keep_motion: bool = True
    ) -> None:
        """Compare other images (another slice, another study), redrawing once.

        Parameters
        ----------
        fixed, moving : MedImage
            Grey 2D images of one shape and spacing.
        keep_motion : bool
            Keep the sliders and the last registration (another slice of the
            same pair); False sets the motion to zero and forgets the
            registration (a new pair). The windows go back to the fixed
            image's robust range unless kept.
        """
        fixed, moving = self._checked(fixed, moving)
        with self._batch():
            self._fixed, self._moving = fixed, moving
            self._undone_key = None
            reach = self._reach()
            for name in ("shift_y_mm", "shift_x_mm"):
                control = self._controls[name]
                value = control.value if keep_motion else 0.0
                if reach > control.max:  # widen first, then narrow: min <= max
                    control.max, control.min = reach, -reach
                else:
                    control.min, control.max = -reach, reach
                control.value = min(max(value, -reach), reach)
            if not keep_motion:
                self._controls["rotation_deg"].value = 0.0
                self._result = None
                self._found.value = ""
                self._windows = (display.auto_window(fixed.array),) * 2
            self._diff_window = self._difference_window()

    def set_windows(
        self,
        fixed: tuple[float, float] | None = None,
        moving: tuple[float, float] | None = None,
    ) -> None:
        """Windows ``(center, width)`` of the fixed and moving images.

        In their units; None keeps the window. The difference view keeps its
        own window, chosen from the pair (:attr:`difference_window`).

        Parameters
        ----------
        fixed, moving : (float, float), optional
            ``(center, width)`` in the image's units, width > 0.
        """
        windows = list(self._windows)
        for k, (name, window) in enumerate((("fixed", fixed), ("moving", moving))):
            if window is None:
                continue
            center, width = (float(v) for v in window)
            if not (np.isfinite(center) and np.isfinite(width) and width > 0):
                raise ValueError(
                    f"{name} window must be (center, width) with width > 0; "
                    f"got {window!r}"
                )
            windows[k] = (center, width)
        self._windows = tuple(windows)
        self._refresh()

    def nudge(self, name: str, step: float) -> None:
        """Move the motion slider ``name`` by ``step`` (mm or degrees).

        Parameters
        ----------
        name : str
            A motion slider: ``shift_y_mm``, ``shift_x_mm`` or
            ``rotation_deg``.
        step : float
            mm for a shift, degrees for the rotation.

        Raises
        ------
        ValueError
            ``name`` is not a motion slider, or the slider would leave its
            range (nothing changes).
        """
        if name not in _MOTION:
            raise ValueError(f"name must be one of {', '.join(_MOTION)}; got {name!r}")
        self.set_params(**{name: round(self.params[name] + float(step), 6)})

    @property
    def composite(self) -> np.ndarray:
        """The view of the current ``view``, uint8."""
        aligned, fixed, p = self._undone("cubic"), self._fixed.array, self.params
        (fixed_window, moving_window), view = self._windows, p["view"]
        if view == "difference":
            diff = C.difference(fixed, aligned)
            return display.apply_window(diff, *self._diff_window)
        i1 = display.apply_window(fixed, *fixed_window)
        i2 = display.apply_window(aligned, *moving_window)
        if view == "checkerboard":
            return C.checkerboard(i1, i2, squares=p["squares"])
        if view == "swipe":
            return C.swipe(i1, i2, position=p["position"], axis=1)
        return C.fuse(i1, i2, p["weight"])

    @property
    def parts(self) -> dict[str, ipw.Widget]:
        """The widgets by role.

        ``viewer``, ``register`` (the button), ``found``, ``quality``,
        ``message`` and each control by its name.
        """
        return {
            "viewer": self._viewer,
            "register": self._button,
            "found": self._found,
            "quality": self._quality,
            "message": self._message,
            **self._controls,
        }

    @property
    def difference_window(self) -> tuple[float, float]:
        """``(0, width)``: the difference view's window, in the fixed image's unit.

        Chosen from the pair by
        :func:`~medimg_lab.composition.fusion.difference_window` (a 1 mm
        misregistration saturates the strong edges).
        """
        return self._diff_window

    @property
    def caption(self) -> str:
        """The sentence under the difference view: its window and unit."""
        fixed, moving = self._fixed, self._moving
        text = difference_caption(
            self._diff_window, fixed.unit, note=fixed.unit_note, names=("A", "B")
        )
        text = text.replace("A − B,", "A − B (fixed − moving, motion undone),", 1)
        if moving.unit != fixed.unit:
            text += (
                f"; B is in {moving.unit_note}, not {fixed.unit}: the difference "
                "mixes units"
            )
        return text

    @property
    def aligned(self) -> np.ndarray:
        """The moving image with the sliders' motion undone, float32.

        What the views show.

        Resampled with cubic interpolation: the smoothing of a linear one
        leaves rims along every sharp edge (bone) in the difference view of
        a perfect registration. The figures (:attr:`ncc`, :attr:`mi`) are
        those of a linear resampling, as :func:`~medimg_lab.composition.register`
        scores the motion it finds.
        """
        return self._undone("cubic").copy()

    def _undone(self, interpolation: str) -> np.ndarray:
        """The moving image undone by the sliders' motion, or the overlap.

        Resampled ``"linear"`` (the figures) or ``"cubic"`` (the views), or
        the ``"overlap"``; kept until the motion or the images change.
        """
        p = self.params
        key = (id(self._moving), p["shift_y_mm"], p["shift_x_mm"], p["rotation_deg"])
        if getattr(self, "_undone_key", None) != key:
            self._undone_cache: dict[str, np.ndarray] = {}
            self._undone_key = key
        cache = self._undone_cache
        if interpolation not in cache:
            if interpolation == "overlap":
                cache[interpolation] = self._overlap()
            else:
                cache[interpolation] = C.rigid_transform(
                    self._moving,
                    shift_mm=(p["shift_y_mm"], p["shift_x_mm"]),
                    rotation_deg=p["rotation_deg"],
                    inverse=True,
                    interpolation=interpolation,
                )
        return cache[interpolation]

    def _scored(self) -> tuple[np.ndarray, np.ndarray]:
        """The linear resampling and the overlap, which the figures score."""
        return self._undone("linear"), self._undone("overlap")

    def _difference_window(self) -> tuple[float, float]:
        fixed = self._fixed
        return difference_window(fixed.array, self._moving.array, spacing=fixed.spacing)

    def _overlap(self) -> np.ndarray:
        p = self.params
        ones = np.ones(self._moving.array.shape, np.float32)
        inside = C.rigid_transform(
            ones,
            shift_mm=(p["shift_y_mm"], p["shift_x_mm"]),
            rotation_deg=p["rotation_deg"],
            spacing=self._moving.spacing,
            inverse=True,
            fill=0.0,
        )
        return inside > 0.999

    @property
    def ncc(self) -> float:
        """NCC of the fixed and the moving image undone, on the overlap.

        Resampled linearly, as :func:`~medimg_lab.composition.register`
        scores.
        """
        aligned, overlap = self._scored()
        return C.ncc(self._fixed.array, aligned, mask=overlap)

    @property
    def mi(self) -> float:
        """Mutual information (nats) of fixed and moving undone, on the overlap.

        The moving image is resampled linearly.
        """
        aligned, overlap = self._scored()
        return C.mutual_information(self._fixed.array, aligned, mask=overlap)

    @property
    def mi_top(self) -> float:
        """The largest MI this pair can reach on the overlap (nats).

        The smaller of the two images' entropies, on the same pixels and bins.
        """
        return self._mi_top(*self._scored())

    def _mi_top(self, aligned: np.ndarray, overlap: np.ndarray) -> float:
        fixed = self._fixed.array
        return min(
            C.mutual_information(fixed, fixed, mask=overlap),
            C.mutual_information(aligned, aligned, mask=overlap),
        )

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The steps that give :attr:`aligned` from the moving image.

        After :meth:`register`, with the sliders where it left them: a
        ``register`` step onto the fixed image (a saved file, by path and
        SHA-256), which finds the motion again on each study. Otherwise
        (the motion set or nudged by hand): the ``rigid_transform`` that
        undoes the sliders' motion.
        """
        p, found = self.params, self._result
        motion = (p["shift_y_mm"], p["shift_x_mm"], p["rotation_deg"])
        if found is not None and np.allclose(
            motion, (*found.shift_mm, found.rotation_deg), rtol=0, atol=1e-9
        ):
            return [
                _step(
                    "register",
                    reference=keep_array(self._fixed.array),
                    method=found.method,
                    transform=found.transform,
                    interpolation="cubic",
                )
            ]
        return [
            _step(
                "rigid_transform",
                shift_mm=[p["shift_y_mm"], p["shift_x_mm"]],
                rotation_deg=p["rotation_deg"],
                inverse=True,
                interpolation="cubic",
            )
        ]

    # ---------------------------------------------------------------- build
    def _reach(self) -> float:
        """The shift sliders' range, ± mm: a quarter of the field of view."""
        rows, cols = self._fixed.array.shape
        dy, dx = self._fixed.spacing
        return round(max(rows * dy, cols * dx) / 4, 1)

    def _build(self) -> None:
        reach = self._reach()
        controls = {}
        for name, label in (
            ("shift_y_mm", "shift down (mm)"),
            ("shift_x_mm", "shift right (mm)"),
        ):
            controls[name] = ipw.FloatSlider(
                value=0.0, min=-reach, max=reach, step=0.05, description=label
            )
        controls["rotation_deg"] = ipw.FloatSlider(
            value=0.0, min=-30.0, max=30.0, step=0.05, description="rotation (°)"
        )
        for control in controls.values():
            control.style = {"description_width": "110px"}
            control.readout_format = ".2f"
        method = parameters(C.register)["method"]  # its choices and default
        controls["method"] = _dropdown(method.param.choices, method.default, "method")
        controls["view"] = _dropdown(REGISTRATION_VIEWS, "difference", "view")
        controls["weight"] = controls_for(C.fuse)["weight"]
        controls["weight"].description = "weight of fixed"
        controls["squares"] = controls_for(C.checkerboard)["squares"]
        controls["position"] = controls_for(C.swipe)["position"]
        self._controls = controls
        for name, control in controls.items():
            if name != "method":
                control.observe(self._on_change, "value")
        self._button = ipw.Button(description="Register", icon="")
        self._button.on_click(self._on_register_click)
        self._found = ipw.HTML()
        self._quality = ipw.HTML()
        blank = np.zeros(self._fixed.array.shape, np.uint8)
        self._viewer = ImageViewer(
            _shown(blank, self._fixed), box_size=480, status_line=False
        )
        self._windows = (display.auto_window(self._fixed.array),) * 2
        self._diff_window = self._difference_window()
        self._layout([*controls.values(), self._button, self._found, self._quality])
        controls["view"].observe(self._on_view_change, "value")
        self._on_view_change({"new": controls["view"].value})

    def _on_view_change(self, change) -> None:
        used = _REGISTRATION_VIEW_CONTROLS.get(change["new"], ())
        for name in ("weight", "squares", "position"):
            self._controls[name].layout.display = "" if name in used else "none"

    def _quality_html(self) -> str:
        """The figures of merit on the overlap, and the difference's caption."""
        (aligned, overlap), fixed = self._scored(), self._fixed.array
        ncc = C.ncc(fixed, aligned, mask=overlap)
        mi = C.mutual_information(fixed, aligned, mask=overlap)
        ncc_text = html.escape(describe("ncc", ncc))
        ncc_text = ncc_text.replace(f"{ncc:.3f}", f"<b>{ncc:.3f}</b>", 1)
        mi_text = html.escape(describe("mi", mi, best=self._mi_top(aligned, overlap)))
        text = f"On the overlap: {ncc_text}; {mi_text}"
        if self.params["view"] == "difference":
            text += f"<br><i>{html.escape(self.caption)}</i>"
        return text

    def _on_register_click(self, _) -> None:
        self._say("Registering...", ok=True)
        with self._guard("register"):
            self.register()
            self._say("")

    def _refresh(self) -> None:
        def draw():
            self._viewer.image = _shown(self.composite, self._fixed)
            self._quality.value = self._quality_html()
            self.set_trait("revision", self.revision + 1)

        self._guarded(draw)


class StitchExplorer(_Explorer):
    """Stitch overlapping tiles into one image, showing seams and offsets.

    Parameters
    ----------
    tiles : list of ndarray or MedImage
        Grey 2D tiles in any order; ``MedImage`` tiles give their spacing.
    spacing : (float, float), optional
        mm per pixel of the tiles, for offsets in mm.

    Notes
    -----
    State with setters: :meth:`set_tiles`, :meth:`set_params` (``blend``,
    ``min_ncc``), ``show_seams``; results :attr:`result`
    (:class:`~medimg_lab.composition.Stitched`) and :attr:`recipe`. Tiles
    may also be uploaded (DICOM, NIfTI, PNG ...), which replaces them.
    """

    show_seams = traitlets.Bool(True)

    def __init__(self, tiles, *, spacing=None, **kwargs):
        self._tiles: list[np.ndarray] = []
        self._spacing = spacing
        self._result: C.Stitched | None = None
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.set_tiles(tiles, spacing=spacing, refresh=False)
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    def set_tiles(self, tiles, *, spacing=None, refresh: bool = True) -> None:
        """Replace the tiles (arrays or MedImages) and stitch them.

        Parameters
        ----------
        tiles : sequence of (M, N) ndarray or MedImage
            At least 2 grey 2D tiles.
        spacing : (float, float), optional
            mm per pixel; default a MedImage tile's, else 1 mm.
        refresh : bool
            Stitch now (False defers it to the next change).
        """
        arrays = []
        for k, tile in enumerate(tiles):
            if isinstance(tile, MedImage):
                if tile.is_volume or tile.is_color:
                    raise ValueError(f"tile {k} must be a grey 2D image")
                if tile.meta.get("spacing_known", True):
                    spacing = spacing or tile.spacing
                tile = tile.array
            arrays.append(np.asarray(tile))
        if len(arrays) < 2:
            raise ValueError(f"give at least 2 tiles; got {len(arrays)}")
        self._tiles, self._spacing = arrays, spacing
        self._count.value = (
            f"{len(arrays)} tiles, sizes "
            + ", ".join(f"{a.shape[0]}×{a.shape[1]}" for a in arrays[:6])
            + (" ..." if len(arrays) > 6 else "")
        )
        if refresh:
            self._refresh()

    def set_params(self, **values: Any) -> None:
        """Set ``blend`` or ``min_ncc``, as the controls would.

        Parameters
        ----------
        **values
            ``blend`` and ``min_ncc``, checked against
            :func:`~medimg_lab.composition.stitch`'s declarations.
        """
        self._apply(validate(C.stitch, values))

    @property
    def result(self) -> C.Stitched | None:
        """The last mosaic (None after an error)."""
        return self._result

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The stitch as one step, applied to the first tile.

        The other tiles are saved files (``.npy``, by path and SHA-256).
        """
        others = [keep_array(tile) for tile in self._tiles[1:]]
        return [_step("stitch", tiles=others, **self.params)]

    # ---------------------------------------------------------------- build
    def _build(self) -> None:
        every = controls_for(C.stitch)
        self._controls = {k: every[k] for k in ("blend", "min_ncc")}
        for control in self._controls.values():
            control.continuous_update = False
            control.observe(self._on_change, "value")
        self._seams_box = ipw.Checkbox(
            value=True, description="show seams", indent=False
        )
        traitlets.link((self._seams_box, "value"), (self, "show_seams"))
        self._upload = ipw.FileUpload(
            accept=".dcm,.nii,.nii.gz,.png,.jpg,.jpeg,.tif,.tiff",
            multiple=True,
            description="Load tiles",
        )
        self._upload.observe(self._on_upload_change, "value")
        self._count = ipw.HTML()
        self._table = ipw.HTML()
        self._viewer = ImageViewer(
            _shown(np.zeros((8, 8), np.uint8), _BLANK), box_size=480, status_line=False
        )
        self._layout(
            [
                self._upload,
                self._count,
                *self._controls.values(),
                self._seams_box,
                self._table,
            ]
        )

    # ------------------------------------------------------------ callbacks
    @traitlets.observe("show_seams")
    def _on_show_seams_change(self, _) -> None:
        self._refresh()

    def _on_upload_change(self, change) -> None:
        from medimg_lab.io import load

        with self._guard("open the tiles"):
            self.set_tiles([load(bytes(f["content"])) for f in change["new"]])

    def _refresh(self) -> None:
        def draw():
            self._result = None
            p = self.params
            result = C.stitch(
                self._tiles,
                blend=p["blend"],
                min_ncc=p["min_ncc"],
                spacing=self._spacing,
            )
            self._result = result
            like = MedImage(result.image, tuple(self._spacing or (1.0, 1.0)))
            shown = display.apply_window(
                result.image, *display.auto_window(result.image)
            )
            self._viewer.image = _shown(shown, like)
            self._viewer.overlay = (
                display.seam_lines(result.seams) if self.show_seams else None
            )
            unit = "mm" if self._spacing is not None else "px (spacing unknown)"
            offsets = result.offsets_mm if self._spacing is not None else result.offsets
            rows = "".join(
                f"<tr><td>{k}</td><td>{o[0]:.1f}</td><td>{o[1]:.1f}</td>"
                f"<td>{c:.3f}</td></tr>"
                for k, (o, c) in enumerate(zip(offsets, result.confidence, strict=True))
            )
            self._table.value = (
                f"<table><tr><th>tile</th><th>row ({unit})</th>"
                f"<th>column ({unit})</th><th>confidence</th></tr>{rows}</table>"
                f"Overlapping pairs accepted: {len(result.pairs)}<br><i>"
                + html.escape(
                    "confidence: the NCC of the tile's best overlap, lowered "
                    "where it disagrees with the placement; " + MERITS["ncc"].good
                )
                + "</i>"
            )

        self._guarded(draw)


class CompositionPanel(NotebookNote, ipw.VBox):
    """Stage 4 in one panel: blend, fusion, registration and stitching tabs.

    Parameters
    ----------
    image : MedImage
        The base image of every tab (a volume gives its middle slice).
    other : MedImage, optional
        A second image on the same grid: the fusion layer. Default the
        registration tab's moving image, so that the comparison views show
        its misalignment.
    mask : ndarray of bool, optional
        A segmentation for the blend tab.
    moving : MedImage, optional
        The image to register onto ``image``. Default: ``image`` moved by a
        known rigid motion (4 mm down, 6 mm left, 8°) with noise, to recover.
    tiles : list of ndarray, optional
        Tiles to stitch. Default: ``image`` cut into 2 × 2 overlapping,
        jittered tiles in shuffled order.
    inside, outside : str
        Window presets of the blend tab.

    The explorers are public: :attr:`blend`, :attr:`fusion`,
    :attr:`registration`, :attr:`stitching`; :attr:`recipe` is the recipe of
    the tab shown.
    """

    def __init__(
        self,
        image: MedImage,
        *,
        other: MedImage | None = None,
        mask: np.ndarray | None = None,
        moving: MedImage | None = None,
        tiles=None,
        inside: str = "default",
        outside: str = "default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        base = _plane(image, "image")
        if moving is None:
            moved = C.rigid_transform(base, shift_mm=(4.0, -6.0), rotation_deg=8.0)
            lo, hi = np.percentile(base.array, [1, 99])
            noise = np.random.default_rng(0).normal(0, 0.02 * (hi - lo), moved.shape)
            moving = MedImage(
                (moved + noise).astype(np.float32), base.spacing, base.modality
            )
        if tiles is None:
            tiles, _ = C.cut_tiles(
                base.array, grid=(2, 2), overlap=0.35, jitter_px=4, seed=0
            )
        self.blend = BlendExplorer(image, mask=mask, inside=inside, outside=outside)
        self.fusion = FusionExplorer(base, other if other is not None else moving)
        self.registration = RegistrationExplorer(base, moving)
        self.stitching = StitchExplorer(tiles, spacing=base.spacing)
        self._tabs = ipw.Tab(
            children=[self.blend, self.fusion, self.registration, self.stitching]
        )
        for k, title in enumerate(("Blend", "Fusion", "Registration", "Stitching")):
            self._tabs.set_title(k, title)
        self.children = [self._tabs]

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The recipe of the explorer in the tab shown."""
        return self._tabs.children[self._tabs.selected_index or 0].recipe
