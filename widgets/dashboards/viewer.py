"""``ViewerDashboard``: open an image, measure it, export what you measured.

The page of ``notebooks/dashboards/viewer.ipynb``, for clinicians in Voila:

- open an upload (DICOM, NIfTI, PNG, JPEG, TIFF or a ``.zip`` of one DICOM
  series, up to :data:`MAX_UPLOAD_BYTES`) or a bundled sample, or a series
  of the configured archive (the "Studies" section,
  :class:`~medimg_lab.widgets.studies.StudiesPanel`; without an archive it
  says how to configure one);
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

import ipywidgets as ipw
import numpy as np
import pandas as pd
import traitlets

from medimg_lab import display
from medimg_lab.display import PLANES
from medimg_lab.geometry import box_statistics, distance_mm
from medimg_lab.image import MedImage

from ..viewer import ImageViewer
from ._base import (
    IDENTIFYING,
    MAX_UPLOAD_BYTES,
    Dashboard,
    ImageSource,
    describe,
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
        row = {
            "tool": "ruler",
            "plane": self._plane_name(),
            "from": p,
            "to": q,
            "distance_mm": distance_mm(p, q, self.image.spacing),
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
        normal = PLANES.index(plane) if image.is_volume else None
        if normal is not None and p[normal] != q[normal]:
            self._fail(
                ValueError(
                    f"The two ROI corners lie on different {plane} slices "
                    f"({p[normal]} and {q[normal]}); click both on one slice."
                )
            )
        stats = box_statistics(image.array, p, q, image.spacing, normal=normal)
        row = {"tool": "ROI", "plane": plane, "from": p, "to": q, **stats}
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
        return self._offer_png(
            self._viewer.displayed, self._png_link, "view.png", "open an image"
        )

    def export_csv(self) -> str:
        """The measurements as CSV, one header line with units; no identifiers."""
        return self._offer_csv(self.measurements, self._csv_link, "measurements.csv")

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
        self._png_button.on_click(lambda _: self._export(self.export_png, "PNG"))
        self._csv_button.on_click(lambda _: self._export(self.export_csv, "CSV"))
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
            self._studies_section(),
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

    def _draw(self, p: tuple[int, ...], q: tuple[int, ...] | None, label: int) -> None:
        """Draw a line (ruler), a rectangle (ROI) or a dot (q None) in the overlay."""
        image, viewer = self.image, self._viewer
        shape = image.array.shape[: len(image.spacing)]
        if self._overlay is None or self._overlay.shape != shape:
            self._overlay = np.zeros(shape, np.uint8)
        name, flat = self._plane_name(), self._overlay
        if image.is_volume:  # the plane as shown: its size sets the thickness
            flat = display.plane(self._overlay, image.spacing, name, 0)[0]
        kind = "dot" if q is None else ("box" if label == _ROI else "line")
        self._overlay = display.draw_mark(
            self._overlay,
            p,
            q,
            kind=kind,
            label=label,
            plane_name=name,
            thickness=max(1, -(-max(flat.shape) // viewer.box_size)),
        )
        viewer.overlay = self._overlay.copy()

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
