"""``ViewerDashboard``: open an image, measure it, export what you measured.

The page of ``notebooks/dashboards/viewer.ipynb``, for clinicians in Voila:

- open an upload (DICOM, NIfTI, PNG, JPEG, TIFF or a ``.zip`` of one DICOM
  series, up to :data:`MAX_UPLOAD_BYTES`) or a bundled sample;
- the shared :class:`~medimg_lab.widgets.viewer.ImageViewer`: plane, slices, window by
  preset, slider or drag, and the pixel readout in the image's unit and mm;
- a ruler (two clicks, distance in mm through the voxel spacing) and a
  rectangular ROI (two opposite corners: mean ± SD, min and max in the
  image's unit, area in mm², pixel count), drawn as the viewer's overlay and
  listed in a table;
- a header panel without patient identifiers;
- downloads of a PNG of the view and a CSV of the measurements.

Opening another image (a sample or an upload) removes the ROIs and rulers
and says so in the "Open:" line, with the image's unit and what it means:
"Open: brain_mri (MR, 189 × 233 × 197, values in a.u. (MR signal intensity:
relative, no absolute scale)); measurements cleared."

Points are array indices: ``(row, col)`` for a 2D image, ``(slice, row, col)``
for a volume, as in the viewer's ``clicked``. Every callback shows its problem
as one plain sentence in the page and the page keeps working.
"""

from __future__ import annotations

import html
import math

import cv2
import ipywidgets as ipw
import numpy as np
import pandas as pd
import traitlets

from medimg_lab import display
from medimg_lab.display import PLANES
from medimg_lab.image import MedImage

from ..viewer import ImageViewer
from ._base import (
    IDENTIFYING,
    MAX_UPLOAD_BYTES,
    Dashboard,
    ImageSource,
    describe,
    download_link,
    heading,
    html_table,
    page,
    section,
)

__all__ = ["DASHBOARD_TOOLS", "MAX_UPLOAD_BYTES", "ViewerDashboard"]

#: Pointer tools: read values, a ruler, a rectangular ROI.
DASHBOARD_TOOLS = ("read", "ruler", "roi")

_RULER, _ROI = 1, 2  # overlay labels
_HINTS = {
    "read": "Point at the image to read its value and position.",
    "ruler": "Ruler: click the first point.",
    "roi": "ROI: click one corner of the rectangle.",
}
_SECOND = {
    "ruler": "Ruler: click the second point.",
    "roi": "ROI: click the opposite corner.",
}


class ViewerDashboard(Dashboard):
    """Open, view, measure and export one image: the viewer dashboard.

    Parameters
    ----------
    image : MedImage, optional
        The image shown first; default the sample ``sample``.
    sample : str
        Sample opened when ``image`` is not given (see :func:`data.samples`).
    box_size : int
        Side of the viewer's square display box, in screen pixels.

    Notes
    -----
    Setters, for notebooks and tests: :meth:`load_bytes`, :meth:`load_sample`,
    the ``image`` property, the ``tool`` trait ("read", "ruler", "roi"),
    :meth:`measure_distance`, :meth:`measure_roi`, :meth:`clear_measurements`.
    Getters: :attr:`measurements` (a DataFrame with the unit in each header),
    :meth:`export_png`, :meth:`export_csv`, :attr:`message`, :attr:`viewer`.

    Examples
    --------
    >>> dash = ViewerDashboard()
    >>> dash.image.modality
    'CT'
    >>> round(dash.measure_distance((0, 0), (0, 100))["distance_mm"], 1)
    47.9
    """

    tool = traitlets.Unicode("read")

    def __init__(
        self,
        image: MedImage | None = None,
        *,
        sample: str = "head_ct",
        box_size: int = 512,
        **kwargs,
    ):
        self._rows: list[dict] = []
        self._first: tuple[int, ...] | None = None
        self._overlay: np.ndarray | None = None
        # Blank until the first image opens (read once, by the ImageSource).
        blank = MedImage(np.zeros((8, 8), np.float32), (1.0, 1.0))
        self._viewer = ImageViewer(
            blank,
            box_size=box_size,
            overlay_opacity=0.9,
            render="browser",
            status_line="view",  # the "Open:" line names the file and its unit
        )
        super().__init__(**kwargs)
        self.children = self._build()
        self._viewer.observe(self._on_click_change, "clicked")
        self._viewer.observe(self._on_plane_change, ["plane", "slice_index"])
        self._open_first(image, sample)

    # ------------------------------------------------------------------ API
    @property
    def viewer(self) -> ImageViewer:
        """The shared viewer (plane, slice, window, overlay traits)."""
        return self._viewer

    @property
    def image(self) -> MedImage:
        """The image shown; setting it clears the measurements."""
        return self._viewer.image

    @image.setter
    def image(self, image: MedImage) -> None:
        self._source.show(image)

    @property
    def measurements(self) -> pd.DataFrame:
        """One row per measurement, the unit in each column's name."""
        unit, where = self.image.unit, self._index_names()
        columns = [
            "#",
            "tool",
            "plane",
            f"from ({where})",
            f"to ({where})",
            "distance (mm)",
            f"mean ({unit})",
            f"SD ({unit})",
            f"min ({unit})",
            f"max ({unit})",
            "area (mm²)",
            "pixels",
        ]
        keys = [
            "n",
            "tool",
            "plane",
            "from",
            "to",
            "distance_mm",
            "mean",
            "sd",
            "min",
            "max",
            "area_mm2",
            "pixels",
        ]
        rows = [[row.get(k) for k in keys] for row in self._rows]
        table = pd.DataFrame(rows, columns=columns)
        for column in ("from", "to"):
            name = f"{column} ({where})"
            table[name] = [" ".join(str(i) for i in v) for v in table[name]]
        table["pixels"] = table["pixels"].astype("Int64")
        return table

    def measure_distance(self, p, q) -> dict:
        """Distance between two voxel centres in mm; adds a table row.

        Parameters
        ----------
        p, q : tuple of int
            Array indices, ``(row, col)`` or ``(slice, row, col)``.

        Returns
        -------
        dict
            ``tool``, ``plane``, ``from``, ``to`` and ``distance_mm``,
            ``sqrt(sum(((p - q) * spacing)**2))``.
        """
        p, q = self._point(p, "p"), self._point(q, "q")
        steps = (np.subtract(p, q)) * np.asarray(self.image.spacing)
        row = {
            "tool": "ruler",
            "plane": self._plane_name(),
            "from": p,
            "to": q,
            "distance_mm": float(np.sqrt(np.sum(steps**2))),
        }
        self._draw(p, q, _RULER)
        return self._add(row)

    def measure_roi(self, p, q) -> dict:
        """Statistics of the rectangle with opposite corners ``p`` and ``q``.

        The rectangle lies in the viewer's current plane, corners included;
        for a volume both corners must lie on the same slice of that plane.

        Parameters
        ----------
        p, q : tuple of int
            Array indices, ``(row, col)`` or ``(slice, row, col)``.

        Returns
        -------
        dict
            ``tool``, ``plane``, ``from``, ``to``, ``pixels``, ``area_mm2``
            (pixels times the in-plane spacings) and ``mean``, ``sd``
            (population), ``min``, ``max`` in the image's unit (for an RGB
            image, over the three channels' levels).
        """
        p, q = self._point(p, "p"), self._point(q, "q")
        image, plane = self.image, self._plane_name()
        spacing = np.asarray(image.spacing)
        in_plane = list(range(len(p)))
        if image.is_volume:
            normal = PLANES.index(plane)
            if p[normal] != q[normal]:
                self._fail(
                    ValueError(
                        f"The two ROI corners lie on different {plane} slices "
                        f"({p[normal]} and {q[normal]}); click both on one slice."
                    )
                )
            in_plane.remove(normal)
        box = tuple(slice(min(a, b), max(a, b) + 1) for a, b in zip(p, q, strict=True))
        values = image.array[box].astype(np.float64)
        pixels = int(np.prod([box[a].stop - box[a].start for a in in_plane]))
        row = {
            "tool": "ROI",
            "plane": plane,
            "from": p,
            "to": q,
            "mean": float(values.mean()),
            "sd": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
            "area_mm2": pixels * float(np.prod(spacing[in_plane])),
            "pixels": pixels,
        }
        self._draw(p, q, _ROI)
        return self._add(row)

    def clear_measurements(self) -> None:
        """Remove every measurement and its drawing."""
        self._rows, self._first = [], None
        self._overlay = None
        self._viewer.overlay = None
        self._render_table()
        self._hint()

    def export_png(self) -> bytes:
        """A PNG of the view as shown (window, overlay, display size)."""
        shown = self._viewer.displayed
        if shown is None:
            self._fail(ValueError("There is no view to export yet; open an image."))
        payload = display.encode_png(shown)
        self._png_link.value = download_link(
            payload, "view.png", "image/png", "view.png"
        )
        return payload

    def export_csv(self) -> str:
        """The measurements as CSV, one header line with units; no identifiers."""
        text = self.measurements.to_csv(index=False)
        payload = text.encode("utf-8")
        self._csv_link.value = download_link(
            payload, "measurements.csv", "text/csv;charset=utf-8", "measurements.csv"
        )
        return text

    # ---------------------------------------------------------------- layout
    def _build(self) -> list[ipw.Widget]:
        self._source = ImageSource(self, self._show_image)
        self._opened = ipw.HTML()

        self._tool = ipw.ToggleButtons(
            options=[("read", "read"), ("ruler (mm)", "ruler"), ("ROI", "roi")],
            value="read",
            tooltips=[
                "read the value under the pointer (HU for CT) and its position in mm",
                "two clicks: the distance between them in mm",
                "two clicks on opposite corners: mean ± SD, min, max, area in mm²",
            ],
            style={"button_width": "100px"},
        )
        traitlets.link((self._tool, "value"), (self, "tool"))
        self._hint_label = ipw.HTML(
            layout={"flex": "0 1 auto", "width": "auto", "margin": "0 12px 0 0"}
        )
        self._clear = ipw.Button(
            description="clear",
            tooltip="remove all measurements and their drawings",
            layout={"width": "80px", "flex": "0 0 auto"},
        )
        self._clear.on_click(self._on_clear_click)
        # No max height: the page scrolls, the image beside it stays in view.
        self._table = ipw.HTML()

        self._png_button = ipw.Button(
            description="PNG of the view",
            icon="",
            tooltip="the image as shown (window, drawings), as a PNG file",
            layout={"width": "150px"},
        )
        self._csv_button = ipw.Button(
            description="CSV of measurements",
            tooltip="the measurement table as a CSV file (no patient identifiers)",
            layout={"width": "170px"},
        )
        self._png_button.on_click(self._on_png_click)
        self._csv_button.on_click(self._on_csv_click)
        self._png_link, self._csv_link = ipw.HTML(), ipw.HTML()

        self._header = ipw.HTML()
        self._accordion = ipw.Accordion(
            children=[self._header],
            titles=("Header (no patient identifiers)",),
            selected_index=None,
        )
        self._message = ipw.HTML()
        sections = [
            section([heading("Open"), self._source, self._opened]),
            section(
                [
                    heading("Export"),
                    ipw.HBox(
                        [self._png_button, self._csv_button],
                        layout={"flex_flow": "row wrap"},
                    ),
                    self._png_link,
                    self._csv_link,
                    self._message,
                ]
            ),
            section(
                [
                    heading("Measure"),
                    self._tool,
                    ipw.HBox(
                        [self._hint_label, self._clear],
                        layout={"align_items": "center"},
                    ),
                    self._table,
                ],
                wide=True,
            ),
            section([self._accordion], wide=True),
        ]
        return page(self._viewer, sections, width=self._viewer.box_size + 12)

    # ------------------------------------------------------------- messages
    def _hint(self, text: str | None = None) -> None:
        self._hint_label.value = html.escape(text or _HINTS[self.tool])

    # ------------------------------------------------------------- updating
    def _show_image(self, image: MedImage, name: str) -> None:
        drawn = bool(self._rows) or self._first is not None
        self._rows, self._first, self._overlay = [], None, None
        self._viewer.overlay = None
        self._viewer.image = image
        self._name = name
        reset = "measurements cleared" if drawn else ""
        self._opened.value = html.escape(describe(image, name, reset))
        self._png_link.value = self._csv_link.value = ""
        self._render_table()
        self._render_header()
        self._hint()
        self._say("")

    def _render_header(self) -> None:
        # Static: the window being used is on the sliders; redrawing this
        # table on every move of a slider would slow each image update.
        image = self.image
        spacing = " × ".join(f"{s:.4g}" for s in image.spacing)
        (c, w), unit = image.window, image.unit
        rows = [
            ("modality", image.modality),
            ("shape", " × ".join(str(n) for n in image.array.shape)),
            ("spacing (mm)", spacing),
            ("unit of values", unit),
            (f"stored window center, width ({unit})", f"{c:.4g}, {w:.4g}"),
        ]
        rows += [
            (key, value)
            for key, value in image.meta.items()
            if not IDENTIFYING.search(str(key))
        ]
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(str(k))}"
            f"</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        self._header.value = f"<table style='font-size:12px'>{body}</table>"

    def _render_table(self) -> None:
        table = self.measurements.drop(
            columns=[
                c
                for c in self.measurements.columns
                if c.startswith(("from (", "to ("))  # the points: in the CSV only
            ]
        )
        self._table.value = html_table(table)

    def _add(self, row: dict) -> dict:
        row = {"n": len(self._rows) + 1, **row}
        self._rows.append(row)
        self._render_table()
        self._say("")
        return row

    # -------------------------------------------------------------- geometry
    def _plane_name(self) -> str:
        return self._viewer.plane if self.image.is_volume else "axial"

    def _index_names(self) -> str:
        return "slice row col" if self.image.is_volume else "row col"

    def _point(self, point, name: str) -> tuple[int, ...]:
        """``point`` as array indices inside the image, or a ValueError."""
        shape = self.image.array.shape[: len(self.image.spacing)]
        try:
            index = tuple(int(i) for i in point)
        except (TypeError, ValueError):
            index = None
        if index is None or len(index) != len(shape):
            self._fail(
                ValueError(
                    f"{name} must be {len(shape)} array indices "
                    f"({self._index_names()}); got {point!r}"
                )
            )
        if not all(0 <= i < n for i, n in zip(index, shape, strict=True)):
            self._fail(
                ValueError(f"{name} = {index} lies outside the image of shape {shape}")
            )
        return index

    def _on_plane(self, index: tuple[int, ...]) -> tuple[int, int, int | None]:
        """(row, col) on the shown plane of an array index, and its slice."""
        if not self.image.is_volume:
            return index[0], index[1], None
        top = self.image.array.shape[0] - 1
        k, r, c = index
        return {
            "axial": (r, c, k),
            "coronal": (top - k, c, r),
            "sagittal": (top - k, r, c),
        }[self._viewer.plane]

    def _draw(self, p: tuple[int, ...], q: tuple[int, ...] | None, label: int) -> None:
        """Draw a line (ruler), a rectangle (ROI) or a dot (q None) in the overlay."""
        image, viewer = self.image, self._viewer
        shape = image.array.shape[: len(image.spacing)]
        if self._overlay is None or self._overlay.shape != shape:
            self._overlay = np.zeros(shape, np.uint8)
        (r0, c0, k0), (r1, c1, k1) = self._on_plane(p), self._on_plane(q or p)
        plane = self._plane_view(k0)
        thick = max(1, math.ceil(max(plane.shape) / viewer.box_size))
        if q is None:
            cv2.circle(plane, (c0, r0), 2 * thick, label, -1)
        elif label == _ROI:
            cv2.rectangle(plane, (c0, r0), (c1, r1), label, thick)
        elif k0 == k1:
            cv2.line(plane, (c0, r0), (c1, r1), label, thick)
        else:  # a ruler across slices: mark the voxels on the segment
            n = int(np.max(np.abs(np.subtract(p, q)))) + 1
            line = np.rint(np.linspace(p, q, n)).astype(int)
            self._overlay[tuple(line.T)] = label
        self._plane_store(k0, plane)
        viewer.overlay = self._overlay.copy()

    def _plane_view(self, k: int | None) -> np.ndarray:
        """A contiguous copy of the overlay's plane ``k``, as shown."""
        if k is None:
            return self._overlay.copy()
        return np.ascontiguousarray(
            display.plane(self._overlay, self.image.spacing, self._viewer.plane, k)[0]
        )

    def _plane_store(self, k: int | None, plane: np.ndarray) -> None:
        if k is None:
            self._overlay[...] = plane
            return
        name = self._viewer.plane
        if name == "axial":
            self._overlay[k] = plane
        elif name == "coronal":
            self._overlay[:, k] = plane[::-1]
        else:
            self._overlay[:, :, k] = plane[::-1]

    # ------------------------------------------------------------ callbacks
    @traitlets.validate("tool")
    def _valid_tool(self, proposal):
        value = proposal["value"]
        if value not in DASHBOARD_TOOLS:
            self._fail(
                ValueError(
                    f"tool must be one of {', '.join(DASHBOARD_TOOLS)}; got {value!r}"
                )
            )
        return value

    @traitlets.observe("tool")
    def _on_tool_change(self, change):
        self._first = None
        self._hint()

    def _on_click_change(self, change):
        index = change["new"]
        if not index or self.tool == "read":
            return
        with self._guard(f"measure with the {self.tool}"):
            if self._first is None:
                self._first = tuple(int(i) for i in index)
                self._draw(self._first, None, _RULER if self.tool == "ruler" else _ROI)
                self._hint(_SECOND[self.tool])
                return
            first, self._first = self._first, None
            self._hint()
            if self.tool == "ruler":
                self.measure_distance(first, index)
            else:
                self.measure_roi(first, index)

    def _on_plane_change(self, change):
        if change["name"] == "plane" and self._first is not None:
            self._first = None
            self._hint()

    def _on_clear_click(self, _):
        with self._guard("clear the measurements"):
            self.clear_measurements()

    def _on_png_click(self, _):
        with self._guard("export the PNG"):
            self.export_png()
            self._say("The PNG is ready: click the link to save it.", ok=True)

    def _on_csv_click(self, _):
        with self._guard("export the CSV"):
            self.export_csv()
            self._say("The CSV is ready: click the link to save it.", ok=True)
