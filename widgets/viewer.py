"""The shared image viewer that every stage panel and dashboard reuses.

:class:`ImageViewer` shows a 2D image, or one plane of a volume, as a PNG in an
``ipywidgets.Image``, with window/level, a pixel readout, a mask or label
overlay and zoom. Windowing, overlays and encoding go through
:mod:`medimg_lab.display`; the viewer only picks the plane, resamples it to
the display size and maps the pointer back to voxels.

Rendering: the plane's physical values are resampled once to the encoded size
(square physical pixels, never finer than that grid) and cached, so that a
window or overlay change only re-windows and re-encodes. Zoom beyond the
grid's resolution is left to the browser (the CSS size of the image).

Pointer: ipyevents 2 sends, with each mouse event on an ``Image`` widget,
``relativeX/Y`` (CSS px from the image's corner), ``boundingRectWidth/Height``
(its rendered size) and ``dataX/Y``, the pointer in the PNG's own (natural)
pixels, ``round(relativeX / rendered_width * natural_width)``. The viewer maps
the centre of the CSS pixel, ``(relativeX + 0.5) / boundingRectWidth``, onto
the shown plane, ``col = floor(fraction * cols)``, exact at any zoom; without
those fields it takes ``dataX`` as a displayed pixel and maps its centre,
``col = floor((dataX + 0.5) * cols / displayed_cols)``, which can be one
source pixel off where the browser enlarges the image (ipyevents rounds).
"""

from __future__ import annotations

import functools
import html
import math

import ipywidgets as ipw
import numpy as np
import traitlets
from ipyevents import Event

from medimg_lab import display
from medimg_lab.display import PLANES
from medimg_lab.image import MedImage

from ._panel import RED, Messages, NotebookNote, batched, line_html
from ._sync import SyncedFloatSlider, SyncedIntSlider, SyncedMixin
from .canvas import WindowCanvas

__all__ = ["PLANES", "RENDERS", "TOOLS", "ImageViewer"]

#: Where the image is drawn: "kernel" (a PNG in an ``ipywidgets.Image``) or
#: "browser" (grey values windowed in the page: :mod:`medimg_lab.widgets.canvas`).
RENDERS = ("kernel", "browser")

#: Pointer tools: "read" reads values and clicks; "brush" reports strokes.
TOOLS = ("read", "brush")
_ZOOM_STEP, _ZOOM_LIMITS = 1.25, (1 / 64, 64.0)
#: A window drag this long moves the center, or the width, by the image's value range.
_DRAG_RANGE_PX = 1024
#: One slice per wheel notch (an event of at least _WHEEL_NOTCH_MIN_PX) or per
#: this many px of smaller wheel deltas added up (trackpads).
_WHEEL_NOTCH_PX, _WHEEL_NOTCH_MIN_PX = 100.0, 50.0
_EVENTS = ["click", "mousemove", "mousedown", "mouseup", "contextmenu"]
_IMAGE_LAYOUT = {
    "max_width": "none",
    "max_height": "none",
    "flex": "0 0 auto",
    "margin": "auto",
}
_ZOOM_BUTTONS = (
    ("fit", "fit the display box"),
    ("1:1", "1 image px per screen px"),
    ("+", "zoom in ×1.25"),
    ("−", "zoom out ÷1.25"),
)


def _index(fraction: float, n: int) -> int:
    """The pixel of ``n`` at ``fraction`` of the way along an axis, clipped."""
    return int(min(max(fraction * n, 0), n - 1))


def _kind(image: MedImage) -> tuple:
    """What a processed version of an image keeps: shape, spacing, modality."""
    return image.array.shape, image.spacing, image.modality


def _slider(kind: type, description: str, **options) -> ipw.Widget:
    style = {"description_width": "initial"}
    return kind(description=description, continuous_update=True, style=style, **options)


def _row(children: list[ipw.Widget]) -> ipw.HBox:
    """A row of controls that wraps instead of widening the viewer."""
    return ipw.HBox(children, layout={"flex_flow": "row wrap", "align_items": "center"})


def _number(value: float) -> str:
    """A window figure as a person reads it: 40, -38, 0.5, 20056.2."""
    return f"{value:.6g}"


#: Where an image's default window comes from (``meta["window_source"]``).
_WINDOW_SOURCES = {
    "header": "from the header",
    "header VOI LUT": "from the header's VOI LUT",
    "auto": "auto, from the value percentiles",
}


NO_SPACING = "Pixel spacing unknown: lengths and areas in mm assume 1 mm per pixel."


def _opened_sentence(viewer: ImageViewer, *, reset: bool = True) -> str:
    """The sentence on opening an image, and the view it was reset to.

    ``"Opened: CT 512 × 512, values in HU (...); reset to window 40/100 HU
    (...)."``

    Without ``reset``, the sentence leaves out the view it was reset to.
    """
    image = viewer.image
    if viewer.status_line == "view":  # a dashboard's own line says the rest
        return f"Shown at {viewer.view_summary}." if reset else ""
    shape = " × ".join(str(n) for n in image.array.shape[: len(image.spacing)])
    kind = f"{image.modality} {shape}{' RGB' if image.is_color else ''}"
    parts = [f"Opened: {kind}, values in {image.unit_note}"]
    if reset:
        parts.append("reset to " + viewer.view_summary)
    if str(image.meta.get("spacing_source", "")).startswith("unknown"):
        parts.append(NO_SPACING[0].lower() + NO_SPACING[1:-1])
    return "; ".join(parts) + "."


def _status_mode(value) -> bool | str:
    if value not in (True, False, "view"):
        raise ValueError(f'status_line must be True, False or "view"; got {value!r}')
    return value if value == "view" else bool(value)


def _view_summary(viewer: ImageViewer) -> str:
    """The view as a sentence.

    ``"window 40/100 HU (from the header), axial slice 65 of 130"``.
    """
    image = viewer.image
    c, w = viewer.window
    if viewer.preset == "default":
        source = _WINDOW_SOURCES.get(
            image.meta.get("window_source"), "the image's own default"
        )
    elif viewer.preset == "custom":
        source = "as set"
    else:
        source = f"{viewer.preset} preset"
    if image.is_color and viewer.preset == "default":
        view = ["colours as stored"]
    else:
        view = [f"window {_number(c)}/{_number(w)} {viewer.unit} ({source})"]
    if image.is_volume:
        view.append(
            f"{viewer.plane} slice {viewer.slice_index + 1} of {viewer.n_slices}"
        )
    return ", ".join(view)


def _screen_xy(event: dict) -> tuple[float, float] | None:
    """Pointer position in screen pixels, for drags (None if the event has none)."""
    for prefix in ("client", "relative", "data"):
        if event.get(f"{prefix}X") is not None:
            return float(event[f"{prefix}X"]), float(event[f"{prefix}Y"])
    return None


class ImageViewer(Messages, NotebookNote, ipw.VBox):
    """Interactive viewer of a 2D image or a volume: window/level, readout, overlay.

    Parameters
    ----------
    image : MedImage
        A 2D image (grey or RGB) or a volume ``(S, M, N)`` in axial layout:
        slices inferior→superior, rows anterior→posterior, cols right→left.
    overlay : ([S,] M, N) bool or integer ndarray, optional
        A mask or labels (0 = background) with the image's spatial shape.
    overlay_opacity : float
        Overlay opacity in ``[0, 1]``.
    plane : {"axial", "coronal", "sagittal"}
        Plane shown for a volume; 2D images are always "axial". Coronal and
        sagittal planes show superior up and are stretched to square mm.
    slice_index : int, optional
        Index along the plane's normal; the middle slice by default.
    preset : str
        "default" (the image's own window), "auto" (:func:`display.auto_window`),
        a CT preset of :data:`display.PRESETS` (images in HU only) or "custom".
    window : (float, float), optional
        ``(center, width)`` in the image's units; overrides ``preset``.
    zoom : "fit", "1:1" or float
        "fit" fills the display box; a number is screen pixels per image pixel
        (of the square-pixel grid), 1.0 being 1:1.
    box_size : int
        Side of the square display box, in screen pixels.
    render : {"kernel", "browser"}
        "kernel" windows and overlays in Python and sends a PNG. "browser"
        sends a grey plane's values once and windows them in the page
        (:class:`~medimg_lab.widgets.canvas.WindowCanvas`, bit for bit the same grey
        levels): a window slider repaints without waiting for the kernel.
        Colour images are composed in Python either way.
    status_line : bool or "view"
        What the message area says when an image is opened: True what was
        opened and what the view was reset to (:attr:`status`); "view" the
        view only (:attr:`view_summary`), where a dashboard names the file
        and its unit in its own line; False nothing, where the image is a
        composite made by a panel. Errors are shown in every case.

    Notes
    -----
    All state is public traits (``image``, ``plane``, ``slice_index``,
    ``window``, ``preset``, ``overlay``, ``overlay_opacity``, ``zoom``,
    ``box_size``) that notebooks set and other widgets ``traitlets.link``;
    ``readout``, ``clicked`` (array index of the last click; each click
    notifies, one on the same pixel too, by way of ``()``) and ``stroke``
    (array indices under a brush stroke, when ``tool`` is "brush") are
    read-only traits to observe. A new image of the same shape, spacing and modality
    (a processed version) keeps plane, slice and custom window.

    Errors: a setter given a bad value raises ``ValueError`` naming the value
    and what is allowed, leaves the viewer unchanged and shows the sentence in
    the message area. Failures in widget callbacks (controls, pointer, drawing)
    never propagate: they show as a plain sentence there, in Voila too.

    Pointer: move to read, click to read and set ``clicked``. Right-drag,
    shift-drag, or left-drag with "drag: window" on, sets the window: right
    widens it, up raises the center, each by the image's value range (its
    maximum less its minimum) per 1024 px, so that a drag moves a CT window
    by about 4 HU per pixel and a 16-bit film's by its own range's share.
    One wheel notch moves one slice; a trackpad's small wheel deltas add
    up, one slice per 100 px; the ◀ and ▶ buttons beside the slice slider
    move one slice each. With ``tool = "brush"`` a left-button drag
    is a stroke: on release, ``stroke`` holds the array indices it crossed.

    Examples
    --------
    >>> from medimg_lab import data
    >>> viewer = ImageViewer(data.sample("head_ct"), preset="brain")
    >>> viewer.window
    (40.0, 80.0)
    >>> viewer.click(256, 256)  # doctest: +ELLIPSIS
    'x 122.5 mm, y 122.5 mm (row 256, col 256): ... HU'
    """

    image = traitlets.Instance(MedImage)
    plane = traitlets.Unicode("axial")
    slice_index = traitlets.Int(0)
    window = traitlets.Tuple(
        traitlets.CFloat(), traitlets.CFloat(), default_value=(0.5, 1)
    )
    preset = traitlets.Unicode("default")
    overlay = traitlets.Any(None, allow_none=True)
    overlay_opacity = traitlets.CFloat(0.4)
    zoom = traitlets.Any("fit")
    box_size = traitlets.Int(512)
    readout = traitlets.Unicode("", read_only=True)
    clicked = traitlets.Tuple((), read_only=True)
    tool = traitlets.Unicode("read")
    stroke = traitlets.Tuple((), read_only=True)
    #: Show the window controls (preset, drag, center, width); off for a
    #: view that is already an 8-bit composite.
    window_controls = traitlets.Bool(True)

    def __init__(
        self,
        image: MedImage,
        *,
        overlay=None,
        overlay_opacity=0.4,
        plane="axial",
        slice_index=None,
        preset="default",
        window=None,
        zoom="fit",
        box_size=512,
        render="kernel",
        status_line=True,
        **kwargs,
    ):
        if render not in RENDERS:
            raise ValueError(
                f"render must be one of {', '.join(RENDERS)}; got {render!r}"
            )
        self._render = render
        self._status_line = _status_mode(status_line)  # read by _say from the start
        self._ready = self._quiet = self._dragged = self._linked = False
        self._painted: dict[str, object] = {}  # what the browser canvas holds
        self._values = self._labels = self._displayed = self._auto = self._drag = None
        self._pointer = None  # the shown plane's (row, col) last read
        self._stroke: list | None = None  # array indices of the stroke in progress
        self._range, self._message_text, self._status_text = (0.0, 1.0), "", ""
        self._opened_view = None  # the view the status line says was opened
        self._wheel_px = 0.0  # small wheel deltas (trackpads) not yet a slice
        super().__init__(children=self._build_controls(), **kwargs)
        self.image, self.box_size, self.plane = image, box_size, plane
        if slice_index is not None:
            self.slice_index = slice_index
        self.preset = preset
        if window is not None:
            self.window = window
        self.overlay_opacity, self.overlay, self.zoom = overlay_opacity, overlay, zoom
        self._ready = True
        self._show()
        self._say_opened()

    # ------------------------------------------------------------------ API
    @property
    def png(self) -> bytes:
        """The view as a PNG: the one sent, or (``render="browser"``) encoded now."""
        if self._render == "kernel":
            return bytes(self._img.value)
        shown = self.displayed
        return b"" if shown is None else display.encode_png(shown)

    @property
    def displayed(self) -> np.ndarray | None:
        """The ``(H, W[, 3])`` uint8 image shown (as the browser shows it)."""
        if self._displayed is None and self._values is not None and self._ready:
            self._displayed = self._compose()
        return self._displayed

    @property
    def status(self) -> str:
        """The status line: the last error or refusal, else what opening reset.

        Opening an image of another kind (shape, spacing or modality) says
        what the view was reset to, in one sentence with units, as in
        "Opened: CT 128 × 128, values in HU (Hounsfield units); reset to
        window -38/1646 HU (auto, from the value percentiles)." (for a volume
        also the slice, and where the file gives no pixel spacing, that
        lengths assume 1 mm per pixel). Once the window, preset, plane or
        slice changes, it keeps only what was opened and its unit ("Opened:
        CT 128 × 128, values in HU (Hounsfield units).") and the controls
        show the view in force. An error replaces it while it holds.
        """
        return self._message_text or self._status_text

    @property
    def view_summary(self) -> str:
        """The view in force, for a status line.

        Its window with the unit and where it comes from, and the slice of a
        volume ("window 40/100 HU (from the header), axial slice 65 of 130").
        """
        return _view_summary(self)

    @property
    def status_line(self) -> bool | str:
        """What the message area says on opening.

        True all of :attr:`status`, "view" the view it was reset to only,
        False nothing (errors always).
        """
        return self._status_line

    @status_line.setter
    def status_line(self, value: bool | str) -> None:
        self._status_line = _status_mode(value)
        if self._status_text:
            self._say_opened()

    @property
    def unit(self) -> str:
        """Unit of the values: "HU" for CT, ``meta["unit"]``, else "a.u."."""
        return self.image.unit

    @property
    def presets(self) -> tuple[str, ...]:
        """Preset names valid for this image (the CT presets need values in HU)."""
        ct = tuple(display.PRESETS) if self.unit == "HU" else ()
        return ("default", "auto", *ct, "custom")

    @property
    def n_slices(self) -> int:
        """Number of slices along the current plane's normal (1 for 2D)."""
        if not self.image.is_volume:
            return 1
        return self.image.array.shape[PLANES.index(self.plane)]

    @property
    def scale(self) -> float:
        """Screen pixels per image pixel (of the square-pixel grid) now shown."""
        if self.zoom != "fit":
            return self.zoom
        gh, gw = self._grid()
        return min(self.box_size / gw, self.box_size / gh)

    def value_at(self, row: int, col: int, slice: int | None = None):
        """The array value at ``(row, col)`` or ``(slice, row, col)``.

        Parameters
        ----------
        row, col : int
            Array indices (not display pixels).
        slice : int, optional
            For a volume; defaults to ``slice_index`` when the plane is axial.

        Returns
        -------
        int, float or tuple of int (RGB)
        """
        index = (row, col)
        if self.image.is_volume:
            if slice is None and self.plane != "axial":
                raise ValueError(f"give slice= for a volume shown {self.plane}")
            index = (self.slice_index if slice is None else slice, row, col)
        shape = self.image.array.shape[: len(index)]
        if not all(0 <= int(i) < n for i, n in zip(index, shape, strict=True)):
            raise ValueError(f"index {index} lies outside the image of shape {shape}")
        value = self.image.array[tuple(int(i) for i in index)]
        return tuple(int(v) for v in value) if self.image.is_color else value.item()

    def click(self, row: int, col: int) -> str:
        """Do what a click on the shown plane's pixel ``(row, col)`` does.

        Parameters
        ----------
        row, col : int
            Pixel of the shown plane at its native resolution, row 0 at the top
            (for 2D images and the axial plane: the array's row and col).

        Returns
        -------
        str
            The readout, also in ``readout``; ``clicked`` gets the array index.
        """
        h, w = self._plane_values()[0].shape[:2]
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(
                f"(row, col) = ({row}, {col}) is outside the {h} x {w} plane"
            )
        index = self._read(int(row), int(col))
        self.set_trait("clicked", ())  # a click on the same pixel again is news too
        self.set_trait("clicked", index)
        return self.readout

    # ------------------------------------------------------------- controls
    def _build_controls(self) -> list[ipw.Widget]:
        self._preset = ipw.Dropdown(description="preset", layout={"width": "200px"})
        self._center = _slider(SyncedFloatSlider, "center")
        self._width = _slider(SyncedFloatSlider, "width")
        self._plane = ipw.Dropdown(
            description="plane", options=PLANES, layout={"width": "200px"}
        )
        self._slice_index = _slider(SyncedIntSlider, "slice (index)")
        self._slice_mm = ipw.Label()
        self._overlay_opacity = _slider(
            SyncedFloatSlider, "overlay opacity", max=1, step=0.01, readout_format=".0%"
        )
        self._overlay_opacity.layout.visibility = "hidden"
        for name in ("preset", "plane", "slice_index", "overlay_opacity"):
            control = getattr(self, f"_{name}")
            control.observe(functools.partial(self._on_control_change, name), "value")
        self._center.observe(self._on_window_control_change, "value")
        self._width.observe(self._on_window_control_change, "value")

        if self._render == "browser":
            self._img = WindowCanvas(layout=_IMAGE_LAYOUT)
            # In the page: a slider's move repaints before the kernel hears of it.
            self._links = [
                ipw.jsdlink((self._center, "value"), (self._img, "center")),
                ipw.jsdlink((self._width, "value"), (self._img, "width")),
            ]
        else:
            self._img = ipw.Image(format="png", layout=_IMAGE_LAYOUT)
        self._view = ipw.Box([self._img], layout={"overflow": "auto"})
        self._events = Event(
            source=self._img,
            watched_events=_EVENTS,
            wait=40,
            throttle_or_debounce="throttle",
            prevent_default_action=True,
        )
        self._events.on_dom_event(self._on_pointer_event)
        # The wheel has a listener of its own, neither throttled nor debounced:
        # a throttle drops the notches between two sends, and a trackpad's
        # small deltas must all be added up (see _on_wheel).
        self._wheel = Event(
            source=self._img, watched_events=[], wait=0, prevent_default_action=True
        )
        self._wheel.on_dom_event(self._on_pointer_event)
        self._slice_steps = [
            ipw.Button(
                description=text,
                tooltip=tip,
                layout={"width": "auto", "min_width": "36px", "flex": "0 0 auto"},
            )
            for text, tip in (("◀", "previous slice"), ("▶", "next slice"))
        ]
        for button in self._slice_steps:
            button.on_click(self._on_slice_step_click)

        self._zoom_buttons = [
            ipw.Button(
                description=text,
                tooltip=tip,
                layout={"width": "auto", "min_width": "44px", "flex": "0 0 auto"},
            )
            for text, tip in _ZOOM_BUTTONS
        ]
        for button in self._zoom_buttons:
            button.on_click(self._on_zoom_click)
        self._zoom_label, self._readout, self._message = (
            ipw.Label(),
            ipw.Label(),
            ipw.HTML(),
        )
        self._wl_drag = ipw.ToggleButton(
            description="drag: window",
            tooltip="left-drag sets the window (right-drag always does)",
        )
        # Rows wrap inside the display box's width (see _on_geometry_change):
        # the viewer is no wider than its image, on a 1366 px screen too.
        for control in (self._center, self._width):
            control.layout.width = "250px"
        # The slice slider takes a row of its own, the viewer's width (that of
        # the display box): in a 512 px box the brain MRI's 189 slices get
        # 1.4 px of track each, and the step buttons move exactly one.
        self._slice_index.layout.flex = "1 1 auto"
        self._overlay_opacity.layout.width = "250px"
        self._slice_row = ipw.VBox(
            [
                _row([self._plane, self._slice_mm]),
                ipw.HBox(
                    [self._slice_steps[0], self._slice_index, self._slice_steps[1]],
                    layout={"align_items": "center", "width": "100%"},
                ),
            ],
            layout={"width": "100%"},
        )
        zoom_row = [*self._zoom_buttons, self._zoom_label, self._overlay_opacity]
        self._window_rows = [
            _row([self._preset, self._wl_drag]),
            _row([self._center, self._width]),
        ]
        return [
            *self._window_rows,
            self._slice_row,
            self._view,
            _row(zoom_row),
            self._readout,
            self._message,
        ]

    def _batch(self):
        """Apply several trait changes, then draw once."""
        return batched(self, self._show)

    def _set_control(self, control: ipw.Widget, **values) -> None:
        """Set a control from the traits without its callback writing back."""
        quiet, self._quiet = self._quiet, True
        try:
            if isinstance(control, SyncedMixin):
                control.set_from_kernel(**values)
            else:
                with control.hold_trait_notifications():
                    for name, value in values.items():
                        setattr(control, name, value)
        finally:
            self._quiet = quiet

    def _absorb_echo(self, control: ipw.Widget, value, current) -> bool:
        """Whether a slider's new value is the page's echo of one the kernel set.

        While the slider's barrier is out (:mod:`medimg_lab.widgets._sync`), every value
        from the page answers a change the kernel made: snapped, with float
        error, or clamped to an old range. It is ignored, and the slider is
        set back to ``current`` if it differs. A value within half a step of
        ``current`` changes nothing either: a user's moves are whole steps.
        """
        if not isinstance(control, SyncedMixin):
            return False
        if abs(value - current) <= 0.51 * control.step:
            return True
        if not control.pending:
            return False
        self._set_control(control, value=current)
        return True

    def _say(self, text: str) -> None:
        """Show an error sentence in the status line ("" clears it).

        The viewer's own :meth:`Messages._say`: between errors the line
        holds what opening reset (:attr:`status`).
        """
        self._message_text = text
        if text:
            self._message.value = line_html(text, RED)
        elif self._status_text and self._status_line:  # (False: errors only)
            if self._opened_view not in (None, self._view_state()):
                # The view moved on: the controls show it; the line keeps
                # what was opened and its unit only.
                self._status_text = _opened_sentence(self, reset=False)
                self._opened_view = None
            line = html.escape(self._status_text)
            self._message.value = (
                f'<span class="medimg-status">{line}</span>' if line else ""
            )
        else:
            self._message.value = ""

    def _say_opened(self) -> None:
        """Say in the status line what the view was reset to (see :attr:`status`)."""
        self._status_text = _opened_sentence(self)
        self._opened_view = self._view_state()
        self._say("")

    def _view_state(self) -> tuple:
        return self.window, self.preset, self.plane, self.slice_index

    def _require(self, ok: bool, text: str) -> None:
        """Raise ``ValueError(text)``, shown in the message area too, unless ``ok``."""
        if not ok:
            self._say(text)
            raise ValueError(text)

    # ------------------------------------------------------------ validation
    @traitlets.validate("plane")
    def _valid_plane(self, proposal):
        plane, got = str(proposal["value"]).lower(), proposal["value"]
        self._require(
            plane in PLANES, f"plane must be one of {', '.join(PLANES)}; got {got!r}"
        )
        flat = not self.image.is_volume
        self._require(
            plane == "axial" or not flat,
            f"plane must be 'axial' for a 2D image; got {got!r}",
        )
        return plane

    @traitlets.validate("slice_index")
    def _valid_slice_index(self, proposal):
        k, n = proposal["value"], self.n_slices
        self._require(
            0 <= k < n, f"slice_index must lie in 0..{n - 1} ({self.plane}); got {k}"
        )
        return k

    @traitlets.validate("window")
    def _valid_window(self, proposal):
        c, w = proposal["value"]
        ok = math.isfinite(c) and math.isfinite(w) and w > 0
        self._require(
            ok, f"window must be (center, width), finite, width > 0; got {(c, w)}"
        )
        return c, w

    @traitlets.validate("preset")
    def _valid_preset(self, proposal):
        name, allowed = str(proposal["value"]).strip().lower(), self.presets
        self._require(
            name in allowed,
            f"preset must be one of {', '.join(allowed)} "
            f"for an image in {self.unit}; got {proposal['value']!r}",
        )
        return name

    @traitlets.validate("overlay")
    def _valid_overlay(self, proposal):
        value = proposal["value"]
        if value is None:
            return None
        labels = value.array if isinstance(value, MedImage) else np.asarray(value)
        shape = self.image.array.shape[: len(self.image.spacing)]
        self._require(
            labels.shape == shape,
            f"overlay must have the image's shape {shape}; got {labels.shape}",
        )
        self._require(
            labels.dtype.kind in "biu",
            "overlay must be a boolean mask or integer "
            f"labels; got {labels.dtype} (threshold a probability map first)",
        )
        self._require(
            labels.dtype.kind != "i" or labels.min() >= 0,
            "overlay labels must be >= 0 (0 is background)",
        )
        return labels

    @traitlets.validate("overlay_opacity")
    def _valid_overlay_opacity(self, proposal):
        alpha = proposal["value"]
        self._require(
            0 <= alpha <= 1, f"overlay_opacity must lie in [0, 1]; got {alpha}"
        )
        return alpha

    @traitlets.validate("zoom")
    def _valid_zoom(self, proposal):
        zoom, (low, high) = proposal["value"], _ZOOM_LIMITS
        if zoom in ("fit", "1:1"):
            return "fit" if zoom == "fit" else 1.0
        number = isinstance(zoom, int | float) and not isinstance(zoom, bool)
        self._require(
            number and low <= zoom <= high,
            f"zoom must be 'fit', '1:1' or "
            f"in [{low:g}, {high:g}] screen px per image px; got {zoom!r}",
        )
        return float(zoom)

    @traitlets.validate("box_size")
    def _valid_box_size(self, proposal):
        size = proposal["value"]
        self._require(size >= 16, f"box_size must be at least 16 px; got {size}")
        return size

    # -------------------------------------------------------- trait observers
    @traitlets.observe("image")
    def _on_image_change(self, change):
        old, image = change["old"], change["new"]
        same_kind = isinstance(old, MedImage) and _kind(old) == _kind(image)
        if not same_kind:  # another image: nothing read from the old one stays
            self._pointer = None
            self.set_trait("readout", "")
            self._readout.value = ""
        self._range = (float(np.min(image.array)), float(np.max(image.array)))
        self._auto = self._values = self._labels = None
        dropped = None if self.overlay is None else self.overlay.shape
        with self._batch():
            if dropped == image.array.shape[: len(image.spacing)]:
                dropped = None
            elif dropped:
                self.overlay = None
            self._center.description = f"center ({self.unit})"
            self._width.description = f"width ({self.unit})"
            self._set_control(self._preset, options=self.presets)
            if not same_kind:
                self.plane = "axial"
                self.slice_index = self.n_slices // 2
            if not same_kind or self.preset not in self.presets:
                self.preset = "default"
            self._apply_preset()
            self._set_control(self._preset, value=self.preset)
            self._sync_window_controls()
            self._sync_slice_controls()
            self._slice_row.layout.display = None if image.is_volume else "none"
            self._wheel.watched_events = ["wheel"] * image.is_volume
            self._wheel_px = 0.0
        if self._pointer is not None:  # a processed image: the value under it now
            self._read(*self._pointer)
        if not same_kind and self._ready:  # (the constructor says it when done)
            self._say_opened()
        if dropped:
            self._say(
                f"The overlay was removed: its shape {dropped} does not match "
                f"the new image's {image.array.shape}."
            )

    @traitlets.observe("plane")
    def _on_plane_change(self, change):
        with self._batch():
            self._values = self._pointer = None
            self.slice_index = self.n_slices // 2
            self._sync_slice_controls()

    @traitlets.observe("slice_index", "zoom", "box_size")
    def _on_geometry_change(self, change):
        if change["name"] == "box_size":
            self.layout.width = f"{max(change['new'], 400)}px"
        self._values = None
        self._sync_slice_controls()
        self._show()
        if change["name"] == "slice_index" and self._pointer is not None:
            self._read(*self._pointer)  # the value under the pointer, on the new slice

    @traitlets.observe("window_controls")
    def _on_window_controls_change(self, change):
        for row in self._window_rows:
            row.layout.display = "" if change["new"] else "none"

    @traitlets.observe("window")
    def _on_window_change(self, change):
        self._sync_window_controls()
        if self.preset != "custom" and self.window != self._preset_window(self.preset):
            self.preset = "custom"
        self._show()

    @traitlets.observe("preset")
    def _on_preset_change(self, change):
        self._set_control(self._preset, value=self.preset)
        self._apply_preset()

    @traitlets.observe("overlay", "overlay_opacity")
    def _on_overlay_change(self, change):
        self._labels = None
        self._overlay_opacity.layout.visibility = (
            "hidden" if self.overlay is None else "visible"
        )
        self._set_control(self._overlay_opacity, value=self.overlay_opacity)
        self._show()

    # ------------------------------------------------------ control callbacks
    def _on_control_change(self, name: str, change: dict) -> None:
        control, current = change["owner"], getattr(self, name)
        if self._quiet or self._absorb_echo(control, change["new"], current):
            return
        with self._guard(f"set the {name.replace('_', ' ')}"):
            setattr(self, name, change["new"])
        if getattr(self, name) != change["new"]:  # refused: show the value in force
            self._set_control(change["owner"], value=getattr(self, name))

    def _on_window_control_change(self, change):
        window, axis = list(self.window), int(change["owner"] is self._width)
        if self._quiet:
            return
        if self._absorb_echo(change["owner"], change["new"], window[axis]):
            if self._render == "browser":
                # The page's link painted the slider's value, snapped to its
                # step: paint the window in force again, after it.
                self._img.show_window(*self.window)
            return
        window[axis] = change["new"]
        # The browser's canvas has this window already (jsdlink): not sent again,
        # which could repaint a value older than the slider's latest.
        self._linked = True
        try:
            with self._guard("set the window"):
                self.window = tuple(window)
        finally:
            self._linked = False

    def _on_zoom_click(self, button):
        with self._guard("zoom"):
            steps = {"+": self.scale * _ZOOM_STEP, "−": self.scale / _ZOOM_STEP}
            zoom = steps.get(button.description, button.description)
            if isinstance(zoom, float):
                zoom = min(max(zoom, _ZOOM_LIMITS[0]), _ZOOM_LIMITS[1])
            self.zoom = zoom

    @traitlets.validate("tool")
    def _valid_tool(self, proposal):
        self._require(
            proposal["value"] in TOOLS,
            f"tool must be one of {', '.join(TOOLS)}; got {proposal['value']!r}",
        )
        return proposal["value"]

    def _on_brush_event(self, kind: str, event: dict) -> bool:
        """Collect a left-button stroke in brush mode; True when handled."""
        if kind == "mousedown" and event.get("button", 0) == 0:
            pixel = self._event_pixel(event)
            self._stroke = [self._read(*pixel)] if pixel is not None else []
            return True
        if self._stroke is None:
            return kind == "click"
        if kind == "mousemove" and event.get("buttons", 1):
            pixel = self._event_pixel(event)
            if pixel is not None:
                self._stroke.append(self._read(*pixel))
            return True
        if kind == "mouseup":
            pixel = self._event_pixel(event)  # the last move may come after this
            if pixel is not None:
                self._stroke.append(self._read(*pixel))
            points, self._stroke = tuple(dict.fromkeys(self._stroke)), None
            if points:
                self.set_trait("stroke", points)
            return True
        return kind == "click"

    def _drag_window(self, event: dict) -> None:
        """Set the window from the drag's start and the pointer now."""
        (x0, y0), (c0, w0) = self._drag
        here = _screen_xy(event)
        if here is None:
            return
        x, y = here
        lo, hi = self._range
        per_px = max(hi - lo, self._center.step) / _DRAG_RANGE_PX
        narrowest = self._width.step
        self.window = (c0 - (y - y0) * per_px, max(w0 + (x - x0) * per_px, narrowest))

    def _on_pointer_event(self, event: dict) -> None:
        """Handle an ipyevents mouse event (coordinates: see the module docstring)."""
        with self._guard("handle the pointer"):
            kind, button = event.get("type"), event.get("button", 0)
            if (
                self.tool == "brush"
                and not event.get("shiftKey")
                and button != 2
                and self._on_brush_event(kind, event)
            ):
                return
            if kind == "mousedown":
                self._dragged = False
                if (
                    button == 2
                    or event.get("shiftKey")
                    or (self._wl_drag.value and button == 0)
                ):
                    start = _screen_xy(event)
                    self._drag = (start, self.window) if start else None
            elif kind == "mouseup":
                if self._drag and self._dragged:
                    # ipyevents throttles each event type on its own: the last
                    # move may arrive after the release, so the release moves too.
                    self._drag_window(event)
                self._drag = None
                self._dragged &= button == 0  # only a left-button drag ends in a click
            elif kind == "mousemove" and self._drag and event.get("buttons", 1):
                self._dragged = True
                self._drag_window(event)
            elif kind in ("mousemove", "click"):
                self._drag, pixel = None, self._event_pixel(event)
                if pixel is not None and kind == "mousemove":
                    self._read(*pixel)
                elif pixel is not None and not self._dragged:
                    self.click(*pixel)
                self._dragged = False
            elif kind == "wheel" and self.image.is_volume:
                self._on_wheel(event)

    def _on_wheel(self, event: dict) -> None:
        """Step slices by a wheel event: one notch, one slice.

        A mouse wheel's notch comes as one event of about 100 px (Chromium:
        ``deltaY`` 100 or 120 px, older GTK builds 53 px; Firefox:
        ``deltaMode`` 1, 3 lines) and moves one slice; an event of several
        notches (the browser merges events when the page is busy) moves one
        slice per 100 px, rounded, at least one. Smaller deltas, a
        trackpad's or a smooth wheel's, add up: each 100 px of them moves one
        slice. Down (positive ``deltaY``) moves to the next slice.
        """
        mode, dy = event.get("deltaMode", 0), float(event.get("deltaY") or 0)
        px = dy * {0: 1.0, 1: _WHEEL_NOTCH_PX / 3}.get(mode, _WHEEL_NOTCH_PX)
        if not math.isfinite(px):  # no wheel makes these: nothing to do
            return
        if abs(px) >= _WHEEL_NOTCH_MIN_PX:  # one notch or more
            notches = max(1, round(abs(px) / _WHEEL_NOTCH_PX))
            self._wheel_px, steps = 0.0, int(math.copysign(notches, px))
        else:
            if self._wheel_px * px < 0:  # turned back: start again
                self._wheel_px = 0.0
            self._wheel_px += px
            steps = int(self._wheel_px / _WHEEL_NOTCH_PX)  # towards zero
            self._wheel_px -= steps * _WHEEL_NOTCH_PX
        if steps:
            self._step_slice(steps)

    def _step_slice(self, steps: int) -> None:
        """Move ``steps`` slices, stopping at the first and the last."""
        self.slice_index = min(max(self.slice_index + steps, 0), self.n_slices - 1)

    def _on_slice_step_click(self, button) -> None:
        with self._guard("step the slice"):
            self._step_slice(1 if button is self._slice_steps[1] else -1)

    # --------------------------------------------------------------- helpers
    def _preset_window(self, name: str) -> tuple[float, float]:
        if name == "default":
            return self.image.window
        if name == "auto":
            if self._auto is None:
                self._auto = tuple(
                    float(v) for v in display.auto_window(self.image.array)
                )
            return self._auto
        return display.preset(name)

    def _apply_preset(self) -> None:
        if self.preset != "custom":
            self.window = self._preset_window(self.preset)

    def _sync_window_controls(self) -> None:
        (lo, hi), (c, w) = self._range, self.window
        span = max(hi - lo, 1e-6 * max(1.0, abs(hi)))
        step = 10.0 ** math.floor(math.log10(span / 500))
        step = max(step, 1.0) if self.image.array.dtype.kind in "iu" else step
        common = {
            "step": step,
            "readout_format": f".{max(0, -math.floor(math.log10(step)))}f",
        }
        self._set_control(
            self._center, min=min(lo, c), max=max(lo + span, c), value=c, **common
        )
        self._set_control(
            self._width, min=min(step, w), max=max(2 * span, w), value=w, **common
        )

    def _sync_slice_controls(self) -> None:
        k, n = self.slice_index, self.n_slices
        self._set_control(self._plane, value=self.plane)
        self._set_control(self._slice_index, min=0, max=max(n - 1, 0), value=k)
        if self.image.is_volume:
            axis = PLANES.index(self.plane)
            mm = k * self.image.spacing[axis]
            self._slice_mm.value = f"{'zyx'[axis]} {mm:.1f} mm ({k + 1} of {n})"

    def _plane_values(self, array: np.ndarray | None = None):
        """The shown plane of ``array`` (default: the image) and its (dy, dx) mm."""
        image = self.image
        array = image.array if array is None else array
        if not image.is_volume:
            return array, image.spacing
        return display.plane(array, image.spacing, self.plane, self.slice_index)

    def _grid(self) -> tuple[float, float]:
        """(rows, cols) of the shown plane resampled to square physical pixels."""
        values, (dy, dx) = self._plane_values()
        pixel = min(dy, dx)
        return values.shape[0] * dy / pixel, values.shape[1] * dx / pixel

    def _resample(self) -> tuple[np.ndarray, tuple[int, int]]:
        """The plane's values at the encoded size, and the CSS (width, height)."""
        values, spacing = self._plane_values()
        (gh, gw), scale = self._grid(), self.scale
        shrink = min(scale, 1.0)
        size = (max(1, round(gw * shrink)), max(1, round(gh * shrink)))
        box = self.box_size if self.zoom == "fit" else None
        out = display.resample_plane(values, spacing, size, box=box)
        big = (max(1, round(gw * scale)), max(1, round(gh * scale)))
        return out, (out.shape[1::-1] if scale <= 1 else big)

    def _resample_labels(self) -> np.ndarray:
        """The overlay's shown plane at the encoded size, nearest neighbour."""
        labels = self._plane_values(self.overlay)[0]
        return display.resample_labels(labels, self._values.shape[:2])

    def _compose(self) -> np.ndarray:
        """The display image: the resampled plane windowed, with the overlay."""
        shown = self._values
        as_stored = self.image.is_color and shown.dtype == np.uint8
        if not (as_stored and self.preset == "default"):  # RGB shown as stored
            shown = display.apply_window(shown, *self.window)
        labels = self._shown_labels()
        if labels is not None:
            shown = display.overlay(shown, labels, self.overlay_opacity)
        return shown

    def _shown_labels(self) -> np.ndarray | None:
        """The overlay at the shown size (resampled once, cached), or None."""
        if self.overlay is not None and self._labels is None:
            self._labels = self._resample_labels()
        return None if self.overlay is None else self._labels

    def _paint(self) -> None:
        """``render="browser"``: send the canvas what changed since last time."""
        canvas, sent = self._img, self._painted
        with canvas.hold_sync():
            if self.image.is_color:
                canvas.show_rgb(self._compose())
                sent.clear()
                return
            if sent.get("values") is not self._values:
                canvas.show_values(self._values)
                sent["values"] = self._values
            labels, opacity = self._shown_labels(), self.overlay_opacity
            if sent.get("labels", ()) is not labels or sent["opacity"] != opacity:
                canvas.show_overlay(labels, opacity)
                sent.update(labels=labels, opacity=opacity)
            if not self._linked:
                canvas.show_window(*self.window)

    def _show(self) -> None:
        """Draw: resample if needed (cached), window, overlay, encode or send."""
        if not self._ready:
            return
        with self._guard("draw the image"):
            if self._values is None:
                (self._values, (w, h)), self._labels = self._resample(), None
                self._img.layout.width, self._img.layout.height = f"{w}px", f"{h}px"
                box = f"{self.box_size}px"
                self._view.layout.width = self._view.layout.height = box
                self._zoom_label.value = f"zoom {self.scale * 100:.0f} %"
            if self._render == "browser":
                self._displayed = None  # composed when asked for
                self._paint()
            else:
                self._displayed = self._compose()
                self._img.value = display.encode_png(self._displayed)
            self._say("")

    def _event_pixel(self, event: dict) -> tuple[int, int] | None:
        """The shown plane's (row, col) under a pointer event, or None."""
        if self._values is None:
            return None
        (eh, ew), (h, w) = self._values.shape[:2], self._plane_values()[0].shape[:2]
        if event.get("relativeX") is not None and event.get("boundingRectWidth"):
            # The CSS pixel's centre over the rendered size: exact at any zoom.
            fx = (event["relativeX"] + 0.5) / event["boundingRectWidth"]
            fy = (event["relativeY"] + 0.5) / event["boundingRectHeight"]
        elif event.get("dataX") is not None:
            # A displayed (natural) pixel, rounded by ipyevents: off by one source
            # pixel at times when the browser enlarges the image.
            fx, fy = (event["dataX"] + 0.5) / ew, (event["dataY"] + 0.5) / eh
        else:
            return None
        return _index(fy, h), _index(fx, w)

    def _read(self, row: int, col: int) -> tuple[int, ...]:
        """Set the readout for the shown plane's (row, col); return the array index."""
        image, index = self.image, (row, col)
        if image.is_volume:
            shape = image.array.shape
            index = display.plane_to_voxel(
                shape, self.plane, self.slice_index, row, col
            )
        mm = [i * s for i, s in zip(index, image.spacing, strict=True)]
        value = image.array[index]
        if image.is_color:
            shown = "RGB " + ", ".join(str(int(v)) for v in value)
        elif value.dtype.kind in "iub":
            shown = f"{int(value)} {self.unit}"
        else:
            shown = f"{float(value):.4g} {self.unit}"
        where, voxel = (
            f"x {mm[-1]:.1f} mm, y {mm[-2]:.1f} mm",
            f"row {index[-2]}, col {index[-1]}",
        )
        if image.is_volume:
            where, voxel = f"{where}, z {mm[0]:.1f} mm", f"{voxel}, slice {index[0]}"
        text = f"{where} ({voxel}): {shown}"
        self.set_trait("readout", text)
        self._readout.value, self._pointer = text, (row, col)
        return index
