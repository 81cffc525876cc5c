"""``CompareDashboard``: compare and fuse two studies or series, for clinicians.

The page of ``notebooks/dashboards/compare.ipynb`` in Voila:

- open a reference image A and a compared image B, each an upload (DICOM,
  NIfTI, PNG, a zip of a DICOM series) or a sample; by default B is A moved
  by a known rigid motion, a demo pair, and the page says so;
- B is brought onto A's grid in mm (resampled by the spacings, centres
  aligned, cropped or padded); volumes are compared slice by slice, B's
  slice at the same height in mm as A's;
- register automatically (with :func:`~medimg_lab.composition.register`'s
  default method for images of one kind, mutual information across
  contrasts, or any method of :data:`medimg_lab.composition.METHODS`),
  then nudge the motion by hand
  (sliders and ±0.5 mm, ±0.5° buttons);
- view the pair as a blend, a checkerboard, a swipe or a difference, with
  NCC and mutual information on the overlap and the transform in mm and
  degrees;
- download a PNG of the view, B registered onto A's grid as NIfTI, and the
  transform with its quality as CSV (units in the header).

The work is done by :class:`~medimg_lab.widgets.composition.RegistrationExplorer`;
this page lays out its widgets, brings B onto A's grid, and adds opening and
exports. Every callback shows its problem as one plain sentence in the page.
"""

from __future__ import annotations

import html

import ipywidgets as ipw
import numpy as np
import pandas as pd
import traitlets

from medimg_lab import composition as C
from medimg_lab import display
from medimg_lab.geometry import slice_onto
from medimg_lab.image import MedImage
from medimg_lab.io.nifti import nifti_bytes
from medimg_lab.metrics import describe as merit
from medimg_lab.params import parameters

from ..composition import RegistrationExplorer
from ._base import (
    Dashboard,
    ImageSource,
    describe,
    heading,
    page,
    section,
)

__all__ = ["DEMO_MOTION", "NUDGE", "VIEWS", "CompareDashboard"]

#: Views: label shown → the explorer's view.
VIEWS = {
    "blend": "overlay",
    "checkerboard": "checkerboard",
    "swipe": "swipe",
    "difference": "difference",
}
#: The demo pair's motion of B: shift (down, right) in mm, rotation in degrees.
DEMO_MOTION = ((4.0, 3.0), 5.0)
#: The nudge buttons' steps: mm for the shifts, degrees for the rotation.
NUDGE = {"shift_y_mm": 0.5, "shift_x_mm": 0.5, "rotation_deg": 0.5}
_UNITS = {"shift_y_mm": "mm", "shift_x_mm": "mm", "rotation_deg": "°"}
#: The method for images of one kind: register's default, read from its one
#: declaration (the registration panel's dropdown starts on it too).
_SAME_KIND = parameters(C.register)["method"].default
_OWN = "each its own"
_AUTO = "auto (robust range)"
_BLANK = MedImage(np.zeros((32, 32), np.float32), (1.0, 1.0))
_VIEW_TIPS = [
    "A and B mixed by a weight: doubled edges show misalignment",
    "alternate squares of A and B: edges must continue across squares",
    "A left of the line, B right of it: move the line across the anatomy",
    "A − B in A's unit: mid-grey where the two agree, light or dark where not",
]


def _grid_text(image: MedImage) -> str:
    shape = " × ".join(str(n) for n in image.array.shape)
    spacing = " × ".join(f"{s:.3g}" for s in image.spacing)
    return f"{shape} at {spacing} mm"


class CompareDashboard(Dashboard):
    """Compare and fuse two images: the compare dashboard.

    Parameters
    ----------
    reference : MedImage, optional
        A, the reference (fixed) image: grey 2D or a volume; default the
        sample ``sample``.
    compared : MedImage, optional
        B, the image compared with A and registered onto it; default A moved
        by :data:`DEMO_MOTION` (a demo pair, said so in the page).
    sample : str
        Sample opened as A when ``reference`` is not given.
    box_size : int
        Side of the viewer's display box, in screen pixels.

    Notes
    -----
    B is compared on A's grid: resampled by the spacings with the centres
    aligned, cropped or padded
    (:func:`medimg_lab.geometry.onto_grid`). For a volume, A's slice
    ``slice_index`` is compared with B's plane at the same height in mm from
    the centre (linear between slices); the 2D transform found on one slice
    applies to every slice.

    The transform is the motion of B's content relative to A, as
    :func:`~medimg_lab.composition.register` reports it: ``shift_y_mm``
    (down), ``shift_x_mm`` (right) and ``rotation_deg`` (counter-clockwise
    on screen); the view undoes it.

    Setters, for notebooks and tests: :meth:`load_bytes`, :meth:`load_sample`
    (``which`` "A" or "B"), the ``reference`` and ``compared`` properties,
    ``slice_index``, ``method``, ``view`` (:data:`VIEWS`), ``window``,
    :meth:`set_params` (``shift_y_mm``, ``shift_x_mm``, ``rotation_deg``,
    ``weight``, ``squares``, ``position``), :meth:`nudge`, :meth:`register`.
    Getters: :attr:`transform`, :attr:`quality`, :attr:`table`,
    :attr:`registered`, :attr:`displayed`, :meth:`export_png`,
    :meth:`export_nifti`, :meth:`export_csv`, :attr:`message`,
    :attr:`explorer`.

    Examples
    --------
    >>> dash = CompareDashboard()
    >>> found = dash.register()
    >>> [round(v, 1) for v in (*found.shift_mm, found.rotation_deg)]
    [4.0, 3.0, 5.0]
    """

    def __init__(
        self,
        reference: MedImage | None = None,
        *,
        compared: MedImage | None = None,
        sample: str = "head_ct",
        box_size: int = 512,
        **kwargs,
    ):
        self._a: MedImage | None = None
        self._b: MedImage | None = None
        self._demo = self._demo_next = False
        self._quiet = False
        self._found_by = ""
        super().__init__(**kwargs)
        self._build(box_size)
        if compared is not None:
            self._quiet = True  # one pair update, once A is open too
            try:
                self._sources["B"].show(compared, "B")
            finally:
                self._quiet = False
        if reference is None:
            self._sources["A"].load_sample(sample)
        else:
            self._sources["A"].show(reference, "A")

    # ------------------------------------------------------------------ API
    @property
    def explorer(self) -> RegistrationExplorer:
        """The registration explorer doing the work, on the compared slice."""
        return self._explorer

    @property
    def reference(self) -> MedImage:
        """A, the reference image, as opened."""
        return self._a

    @reference.setter
    def reference(self, image: MedImage) -> None:
        self._sources["A"].show(image, "A")

    @property
    def compared(self) -> MedImage:
        """B, the compared image, as opened (before the grid and the transform)."""
        return self._b

    @compared.setter
    def compared(self, image: MedImage) -> None:
        self._sources["B"].show(image, "B")

    @property
    def is_demo(self) -> bool:
        """True when B is A moved by :data:`DEMO_MOTION`."""
        return self._demo

    def load_bytes(
        self, payload: bytes, name: str = "upload", which: str = "A"
    ) -> MedImage:
        """Open an upload as A or B (see :meth:`ImageSource.load_bytes`).

        Parameters
        ----------
        payload : bytes
            The file's bytes (DICOM, NIfTI, PNG ...).
        name : str
            The file's name, for messages.
        which : {"A", "B"}
            The reference A or the compared image B.

        Returns
        -------
        MedImage
        """
        return self._source(which).load_bytes(payload, name)

    def load_sample(self, name: str, which: str = "A") -> MedImage:
        """Open a bundled grey sample by name as A or B.

        Parameters
        ----------
        name : str
            A sample of :func:`medimg_lab.data.samples`.
        which : {"A", "B"}
            The reference A or the compared image B.

        Returns
        -------
        MedImage
        """
        return self._source(which).load_sample(name)

    @property
    def slice_index(self) -> int:
        """A's axial slice compared (0 for a 2D image)."""
        return int(self._slice.value) if self._a.is_volume else 0

    @slice_index.setter
    def slice_index(self, k: int) -> None:
        n = self._a.array.shape[0] if self._a.is_volume else 1
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < n:
            self._fail(
                ValueError(
                    f"slice_index must be a whole number in [0, {n - 1}]; got {k!r}"
                )
            )
        self._slice.value = int(k)

    @property
    def method(self) -> str:
        """The automatic registration method (see ``composition.METHODS``)."""
        return self._explorer.params["method"]

    @method.setter
    def method(self, name: str) -> None:
        if name not in C.METHODS:
            self._fail(
                ValueError(
                    f"method must be one of {', '.join(C.METHODS)}; got {name!r}"
                )
            )
        self._explorer.set_params(method=name)

    @property
    def view(self) -> str:
        """The view: "blend", "checkerboard", "swipe" or "difference"."""
        return self._view.label

    @view.setter
    def view(self, name: str) -> None:
        if name not in VIEWS:
            self._fail(
                ValueError(f"view must be one of {', '.join(VIEWS)}; got {name!r}")
            )
        self._view.value = VIEWS[name]

    @property
    def window(self) -> str:
        """How A and B are windowed: their own windows, "auto", or a CT preset."""
        return self._window.value

    @window.setter
    def window(self, name: str) -> None:
        options = list(self._window.options)
        if name not in options:
            self._fail(
                ValueError(f"window must be one of {', '.join(options)}; got {name!r}")
            )
        self._window.value = name

    def set_params(self, **values) -> None:
        """Set the motion or a view's control by name, as a user would.

        Names: ``shift_y_mm``, ``shift_x_mm`` (mm), ``rotation_deg`` (°),
        ``weight`` (of A in the blend, 0 to 1), ``squares`` (2 to 64),
        ``position`` (of the swipe line, 0 to 1).

        Parameters
        ----------
        **values
            ``{name: value}`` of those controls.
        """
        allowed = (*NUDGE, "weight", "squares", "position")
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            self._fail(ValueError(f"unknown parameters {unknown}; set {list(allowed)}"))
        try:
            self._explorer.set_params(**values)
        except ValueError as exc:
            self._fail(exc)

    def nudge(self, name: str, step: float) -> None:
        """Move a motion slider by ``step`` (mm for shifts, ° for the rotation).

        Parameters
        ----------
        name : str
            ``shift_y_mm``, ``shift_x_mm`` or ``rotation_deg``.
        step : float
            mm for a shift, degrees for the rotation.
        """
        try:
            self._explorer.nudge(name, step)
        except ValueError as exc:
            self._fail(exc)

    def register(self) -> C.Registration:
        """Register B onto A automatically on the compared slice.

        The sliders take the motion found; nudge them afterwards if needed.

        Raises
        ------
        RegistrationError or ValueError
            The method found no transform; the sentence also shows in the
            page and the sliders stay.
        """
        method = self._found_by = self.method
        self._say(f"Registering with {method}…", ok=True)
        self._register.disabled = True
        try:
            result = self._explorer.register()
        finally:
            self._register.disabled = False
        where = f" on slice {self.slice_index}" if self._a.is_volume else ""
        ncc = merit("ncc", result.ncc)
        mi = merit("mi", result.mi, best=self._explorer.mi_top)
        self._say(
            f"Registered with {method}{where}: {ncc}; {mi}, on the overlap. "
            "Nudge the sliders if an edge still does not match.",
            ok=True,
        )
        return result

    @property
    def transform(self) -> dict[str, float]:
        """The motion of B relative to A now.

        ``shift_y_mm``, ``shift_x_mm``, ``rotation_deg`` (after the nudges).
        """
        p = self._explorer.params
        return {name: float(p[name]) for name in NUDGE}

    @property
    def quality(self) -> dict[str, float]:
        """``ncc``, ``mi`` and ``mi_top`` of A and the registered B.

        ``ncc`` and ``mi`` (nats) on their overlap, and ``mi_top``, the MI
        they would reach if aligned perfectly (the smaller of their entropies
        there, nats).
        """
        explorer = self._explorer
        return {"ncc": explorer.ncc, "mi": explorer.mi, "mi_top": explorer.mi_top}

    @property
    def table(self) -> pd.DataFrame:
        """The transform and its quality: the automatic one and the one now."""
        rows = []
        result, index = self._explorer.result, self.slice_index
        if result is not None:
            dy, dx = result.shift_mm
            rows.append(
                (
                    "automatic",
                    self._found_by,
                    dy,
                    dx,
                    result.rotation_deg,
                    result.ncc,
                    result.mi,
                )
            )
        top = self._explorer.mi_top  # of the pair on the overlap now
        now = self.transform
        quality = self.quality
        rows.append(
            (
                "applied",
                self._applied_by(result),
                now["shift_y_mm"],
                now["shift_x_mm"],
                now["rotation_deg"],
                quality["ncc"],
                quality["mi"],
            )
        )
        table = pd.DataFrame(
            rows,
            columns=[
                "transform",
                "found by",
                "shift down (mm)",
                "shift right (mm)",
                "rotation (°, counter-clockwise)",
                "NCC (overlap, -1 to 1; 1 is a perfect match)",
                "MI (overlap, nats)",
            ],
        )
        table["MI top (nats; the smaller entropy, higher MI is better)"] = top
        table["slice (index)"] = index
        table["A grid (rows × columns)"] = "×".join(
            str(n) for n in self._a.array.shape[-2:]
        )
        table["A pixel (mm)"] = "×".join(f"{s:.4g}" for s in self._a.spacing[-2:])
        return table

    def _applied_by(self, result: C.Registration | None) -> str:
        """How the transform now was found: by hand, automatically, or both."""
        if result is None:
            return "by hand"
        now = self.transform
        found = (*result.shift_mm, result.rotation_deg)
        if np.allclose([now[k] for k in NUDGE], found, atol=1e-9):
            return self._found_by
        return f"{self._found_by}, then nudged"

    @property
    def registered(self) -> MedImage:
        """B on A's grid with the transform undone, every slice: B registered onto A.

        Values in B's unit, float32; geometry of A (shape, spacing).
        """
        a, b = self._a, self._b
        if a.is_volume:
            array = np.stack(
                [self._undo(self._compared_plane(k)) for k in range(a.array.shape[0])]
            )
        else:
            array = self._undo(self._compared_plane(0))
        meta = {"unit": b.unit} if b.unit not in ("HU", "a.u.") else {}
        return MedImage(array.astype(np.float32), a.spacing, b.modality, b.window, meta)

    @property
    def on_grid(self) -> MedImage:
        """B's plane compared now, on A's grid, before the transform is undone."""
        return self._planes()[1]

    @property
    def displayed(self) -> np.ndarray | None:
        """The view as shown, ``(H, W)`` uint8."""
        return self._explorer.parts["viewer"].displayed

    def export_png(self) -> bytes:
        """A PNG of the view as shown."""
        return self._offer_png(
            self.displayed, self._links["png"], "compare_view.png", "open two images"
        )

    def export_nifti(self) -> bytes:
        """B registered onto A's grid, as ``.nii.gz`` (geometry only)."""
        payload = nifti_bytes(self.registered)
        self._offer(self._links["nifti"], payload, "B_on_A.nii.gz", "application/gzip")
        return payload

    def export_csv(self) -> str:
        """The transform and its quality as CSV, units in the header."""
        return self._offer_csv(self.table, self._links["csv"], "transform.csv")

    # ---------------------------------------------------------------- build
    def _build(self, box_size: int) -> None:
        self._sources = {
            "A": ImageSource(
                self,
                self._show_reference,
                description="Upload A",
                grey_only=True,
            ),
            "B": ImageSource(
                self,
                self._show_compared,
                description="Upload B",
                grey_only=True,
            ),
        }
        self._opened = {k: ipw.HTML() for k in self._sources}
        self._grid_note = ipw.HTML()
        self._slice = ipw.IntSlider(
            description="slice of A (index)",
            min=0,
            max=0,
            tooltip="A's axial slice; B's slice at the same height in mm is compared",
            style={"description_width": "120px"},
            layout={"width": "300px"},
        )
        self._slice_mm = ipw.Label()
        self._slice_row = ipw.HBox(
            [self._slice, self._slice_mm],
            layout={"display": "none", "flex_flow": "row wrap"},
        )
        self._slice.observe(self._on_slice_change, "value")

        explorer = RegistrationExplorer(_BLANK, _BLANK)
        self._explorer, parts = explorer, explorer.parts
        viewer = parts["viewer"]
        viewer.box_size = box_size
        viewer.window_controls = False  # the composite's grey window: not asked
        others = ", ".join(m for m in C.METHODS if m not in (_SAME_KIND, "mi"))
        parts["method"].tooltip = (
            f"{_SAME_KIND}: images of one kind (register's default); mi: "
            f"different contrasts (mutual information); {others}: others"
        )
        parts["method"].layout.width = "230px"
        parts["method"].style.description_width = "60px"
        self._register = ipw.Button(
            description="Register",
            tooltip="find the shift (mm) and rotation (°) of B automatically",
            button_style="primary",
            layout={"width": "120px", "margin": "0 0 0 12px"},
        )
        self._register.on_click(self._on_register_click)
        self._method_hint = ipw.HTML()
        motion_rows = []
        for name, step in NUDGE.items():
            unit = _UNITS[name]
            slider = parts[name]
            slider.tooltip = "how far B is moved from A; the view undoes it"
            buttons = []
            for sign, text in ((-1, "−"), (1, "+")):
                button = ipw.Button(
                    description=f"{text}{step:g}",
                    tooltip=f"{slider.description}: {text}{step:g} {unit}",
                    layout={"width": "38px", "padding": "0"},
                )
                button.on_click(
                    lambda _, n=name, s=sign * step: self._on_nudge_click(n, s)
                )
                buttons.append(button)
            motion_rows.append(ipw.HBox([slider, *buttons]))
        self._nudge_buttons = {
            name: row.children[1:] for name, row in zip(NUDGE, motion_rows, strict=True)
        }
        self._transform = ipw.HTML()
        self._view = ipw.ToggleButtons(
            options=list(VIEWS.items()),
            value=VIEWS["blend"],
            tooltips=_VIEW_TIPS,
            style={"button_width": "auto"},
        )
        traitlets.link((self._view, "value"), (parts["view"], "value"))
        parts["weight"].description = "weight of A"
        parts["weight"].tooltip = "1 shows A only, 0 shows B only"
        parts["squares"].description = "squares (per side)"
        parts["squares"].tooltip = "squares along the longer side"
        parts["position"].description = "swipe line (0–1)"
        parts["position"].tooltip = "A left of the line, B right of it"
        for name in ("weight", "squares", "position"):  # each label in full
            parts[name].style.description_width = "130px"
            parts[name].layout.width = "360px"
        self._window = ipw.Dropdown(
            options=[_OWN, _AUTO],
            value=_OWN,
            description="window",
            tooltip="each image's own window (its header's), robust percentiles, "
            "or a CT preset in HU for both",
            style={"description_width": "130px"},
            layout={"width": "360px"},
        )
        self._window.observe(self._on_window_change, "value")
        self._links = {k: ipw.HTML() for k in ("png", "nifti", "csv")}
        buttons = [
            self._export_button(text, tip, action)
            for text, tip, action in (
                ("PNG of the view", "the view as shown, as a PNG", self.export_png),
                (
                    "B on A (NIfTI)",
                    "B registered onto A's grid, every slice, in B's unit",
                    self.export_nifti,
                ),
                (
                    "transform (CSV)",
                    "the shift (mm), rotation (°), NCC and MI, units in the header",
                    self.export_csv,
                ),
            )
        ]
        self._export_buttons = dict(zip(self._links, buttons, strict=True))
        explorer.observe(self._on_revision, "revision")
        sections = [
            section(
                [
                    heading("A: reference"),
                    self._sources["A"],
                    self._opened["A"],
                    heading("B: compared with A"),
                    self._sources["B"],
                    self._opened["B"],
                    self._grid_note,
                    self._slice_row,
                ]
            ),
            section(
                [
                    heading("Register B onto A"),
                    ipw.HBox(
                        [parts["method"], self._register],
                        layout={"align_items": "center"},
                    ),
                    self._method_hint,
                    *motion_rows,
                    self._transform,
                    parts["found"],
                    parts["quality"],
                ]
            ),
            section(
                [
                    heading("View"),
                    self._view,
                    parts["weight"],
                    parts["squares"],
                    parts["position"],
                    self._window,
                ]
            ),
            section(
                [
                    heading("Export"),
                    ipw.HBox(buttons, layout={"flex_flow": "row wrap"}),
                    *self._links.values(),
                    parts["message"],
                    self._message,
                ]
            ),
        ]
        self.children = page(viewer, sections, width=box_size + 12)

    # ------------------------------------------------------------- opening
    def _source(self, which: str) -> ImageSource:
        if which not in self._sources:
            self._fail(ValueError(f"which must be 'A' or 'B'; got {which!r}"))
        return self._sources[which]

    def _show_reference(self, image: MedImage, name: str) -> None:
        self._a = image
        self._opened["A"].value = html.escape(describe(image, name))
        if self._b is None or self._demo:
            self._demo_next = True
            try:
                self._sources["B"].show(self._demo_of(image), f"{name} moved (demo)")
            finally:
                self._demo_next = False
            return  # B's opening updates the pair
        self._new_pair()

    def _show_compared(self, image: MedImage, name: str) -> None:
        self._b, self._demo = image, self._demo_next
        self._opened["B"].value = html.escape(describe(image, name))
        if self._a is not None and not self._quiet:
            self._new_pair()

    @staticmethod
    def _demo_of(image: MedImage) -> MedImage:
        """``image`` moved by :data:`DEMO_MOTION` (each slice of a volume)."""
        shift, turn = DEMO_MOTION
        spacing = image.spacing[-2:]
        planes = image.array if image.is_volume else image.array[None]
        moved = np.stack(
            [
                C.rigid_transform(p, shift_mm=shift, rotation_deg=turn, spacing=spacing)
                for p in planes
            ]
        )
        meta = {"unit": image.unit} if image.unit not in ("HU", "a.u.") else {}
        return MedImage(
            moved if image.is_volume else moved[0],
            image.spacing,
            image.modality,
            image.window,
            meta,
        )

    def _new_pair(self) -> None:
        a, b = self._a, self._b
        self._say("")
        for link in self._links.values():
            link.value = ""
        if a.is_volume:
            n = a.array.shape[0]
            self._quiet = True
            try:
                self._slice.max = n - 1
                self._slice.value = n // 2
            finally:
                self._quiet = False
        self._slice_row.layout.display = "" if a.is_volume else "none"
        self._grid_note.value = self._grid_sentence()
        same = a.modality == b.modality and a.unit == b.unit
        hu = a.unit == b.unit == "HU"
        windows = [_OWN, _AUTO, *(display.PRESETS if hu else ())]
        self._quiet = True
        try:
            self._window.options = windows
            self._window.value = _OWN
        finally:
            self._quiet = False
        self._explorer.set_images(*self._planes(), keep_motion=False)
        self._explorer.set_params(method=_SAME_KIND if same else "mi")
        self._method_hint.value = (
            "<i>"
            + (
                f"A and B are of one kind: {_SAME_KIND}, the default of "
                "register, is chosen."
                if same
                else f"A ({a.modality}, {a.unit}) and B ({b.modality}, {b.unit}) "
                "differ in contrast: MI (mutual information) is chosen."
            )
            + "</i>"
        )
        self._apply_window()
        self._show_slice_mm()

    def _grid_sentence(self) -> str:
        a, b = self._a, self._b
        parts = []
        if self._demo:
            (dy, dx), turn = DEMO_MOTION
            parts.append(
                f"B is A moved by {dy:.1f} mm down, {dx:.1f} mm right and "
                f"{turn:g}° counter-clockwise: a demo pair (the samples hold no "
                "second study of one patient). Open your own B to compare two "
                "studies."
            )
        if a.is_volume and not b.is_volume:
            parts.append("B is one image: each slice of A is compared with it.")
        elif b.is_volume and not a.is_volume:
            k, n = b.array.shape[0] // 2, b.array.shape[0]
            parts.append(f"A is one image: B's middle slice ({k + 1} of {n}) is used.")
        same_grid = a.array.shape[-2:] == b.array.shape[-2:] and np.allclose(
            a.spacing[-2:], b.spacing[-2:]
        )
        if a.is_volume and b.is_volume:
            same_grid = a.array.shape == b.array.shape and np.allclose(
                a.spacing, b.spacing
            )
        if not same_grid:
            parts.append(
                f"B ({_grid_text(b)}) is resampled onto A's grid ({_grid_text(a)}) "
                "in mm, centres aligned: what lies outside A's field is cropped, "
                "the rest padded."
            )
        return "<br>".join(html.escape(p) for p in parts)

    # ------------------------------------------------------------- geometry
    def _compared_plane(self, k: int) -> np.ndarray:
        """B's plane at the height of A's slice ``k``, on A's in-plane grid."""
        return slice_onto(self._b, self._a, k)

    def _planes(self) -> tuple[MedImage, MedImage]:
        """A's compared slice and B's plane on its grid, as 2D images."""
        a, b, k = self._a, self._b, self.slice_index
        fixed = a.array[k] if a.is_volume else a.array
        spacing = a.spacing[-2:]
        moving = self._compared_plane(k)
        meta = {"unit": b.unit} if b.unit not in ("HU", "a.u.") else {}
        return (
            MedImage(fixed, spacing, a.modality, a.window, dict(a.meta)),
            MedImage(moving, spacing, b.modality, b.window, meta),
        )

    def _undo(self, plane: np.ndarray) -> np.ndarray:
        """``plane`` (on A's grid) with the motion undone, as the view does."""
        t = self.transform
        return C.rigid_transform(
            plane,
            shift_mm=(t["shift_y_mm"], t["shift_x_mm"]),
            rotation_deg=t["rotation_deg"],
            spacing=self._a.spacing[-2:],
            inverse=True,
        )

    def _windows(self) -> tuple[tuple[float, float], tuple[float, float]]:
        name, a, b = self._window.value, self._a, self._b
        if name == _OWN:
            return tuple(a.window), tuple(b.window)
        if name == _AUTO:  # over the whole images: one window for every slice
            return display.auto_window(a.array), display.auto_window(b.array)
        return display.preset(name), display.preset(name)

    def _apply_window(self) -> None:
        fixed, moving = self._windows()
        self._explorer.set_windows(fixed, moving)

    def _show_slice_mm(self) -> None:
        if self._a.is_volume:
            k, n = self.slice_index, self._a.array.shape[0]
            self._slice_mm.value = f"z {k * self._a.spacing[0]:.1f} mm ({k + 1} of {n})"

    # ------------------------------------------------------------ callbacks
    def _on_revision(self, _) -> None:
        t = self.transform
        self._transform.value = (
            "B relative to A, undone in the view: shift "
            f"<b>{t['shift_y_mm']:+.2f} mm</b> down, <b>{t['shift_x_mm']:+.2f} mm</b> "
            f"right, rotation <b>{t['rotation_deg']:+.2f}°</b> counter-clockwise"
        )
        for link in self._links.values():
            link.value = ""

    def _on_slice_change(self, _) -> None:
        if self._quiet or self._a is None:
            return
        with self._guard("show the slice"):
            self._explorer.set_images(*self._planes(), keep_motion=True)
            self._show_slice_mm()

    def _on_window_change(self, _) -> None:
        if self._quiet:
            return
        with self._guard("set the window"):
            self._apply_window()

    def _on_register_click(self, _) -> None:
        with self._guard("register B onto A"):
            self.register()

    def _on_nudge_click(self, name: str, step: float) -> None:
        with self._guard("nudge the transform"):
            self.nudge(name, step)
            self._say("")
