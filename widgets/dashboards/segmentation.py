"""``SegmentationDashboard``: segment a region and quantify it, for clinicians.

The page of ``notebooks/dashboards/segmentation.ipynb`` in Voila:

- open an upload (DICOM, NIfTI, PNG, a zip of a DICOM series) or a sample;
- segment by a threshold (tissue presets in HU for CT, otherwise a range
  starting at Otsu's threshold), by region growing from a click, or by the
  pixel classifier trained on brush strokes (``u = Σ a_i f_i``);
- clean up (fill holes, keep the largest part, remove small parts, open,
  close);
- read the area in mm² (2D) or the volume in mL (3D), with mean ± SD, min
  and max in the image's unit (HU for CT), per label;
- download the mask as NIfTI, the measurements as CSV, the recipe as JSON,
  and a de-identified pair: the image as de-identified DICOM (PS3.15 basic
  profile, dates removed, UIDs remapped) and as NIfTI, with the mask.

The work is done by :class:`~medimg_lab.widgets.segmentation.SegmentationPanel`; this
page lays out its widgets for a clinician and adds opening and exports.
Every callback shows its problem as one plain sentence in the page.
"""

from __future__ import annotations

import html
import io
import secrets
import zipfile

import ipywidgets as ipw
import numpy as np
import pandas as pd
import traitlets

from medimg_lab import segmentation
from medimg_lab.image import MedImage
from medimg_lab.io.deid import deidentified_bytes
from medimg_lab.io.nifti import nifti_bytes
from medimg_lab.io.results import SEG_NAME, SR_NAME, results_bytes, results_datasets
from medimg_lab.io.seg import SEGMENT_PROPERTIES
from medimg_lab.segmentation import HU_RANGES, otsu_value

from ..segmentation import CLASSIFIER, SegmentationPanel
from ._base import (
    Dashboard,
    ImageSource,
    describe,
    heading,
    html_table,
    page,
    section,
)

__all__ = ["MODES", "SegmentationDashboard"]

#: Ways to segment: label shown → the panel's method.
MODES = {
    "threshold": "threshold_range",
    "region grow": "region_grow",
    "brush classifier": CLASSIFIER,
}
_TOOLS = {"threshold_range": "read", "region_grow": "seed", CLASSIFIER: "brush"}
_HINTS = {
    "threshold_range": "Choose a tissue preset or move the range sliders.",
    "region_grow": "Click in the region to grow it from there; click a seed "
    "again to remove it.",
    CLASSIFIER: "Paint a few strokes of each class with the brush; the "
    "classifier learns from them and labels the rest.",
}
_CUSTOM = "custom"
_GROUPS = ("threshold", "region grow", "brush classifier")


def _range_label(name: str, low: float, high: float) -> str:
    return f"{name} ({low:g} to {high:g} HU)"


class SegmentationDashboard(Dashboard):
    """Segment, quantify and export: the segmentation dashboard.

    Parameters
    ----------
    image : MedImage, optional
        A grey 2D image or volume; default the sample ``sample``.
    sample : str
        Sample opened when ``image`` is not given.
    box_size : int
        Side of the viewer's display box, in screen pixels.

    Notes
    -----
    Setters, for notebooks and tests: :meth:`load_bytes`, :meth:`load_sample`,
    the ``image`` property, ``mode`` ("threshold", "region grow", "brush
    classifier"), ``preset`` (an HU preset name or "custom"),
    :meth:`set_range`, :meth:`set_cleanup`, and the panel's own
    (:attr:`panel`: ``add_seed``, ``scribble``, ``undo``). Getters:
    :attr:`labels`, :attr:`measurements` (units in the column names),
    :attr:`summary`, :meth:`export_mask`, :meth:`export_csv`,
    :meth:`export_recipe`, :meth:`export_pair`, :attr:`message`.

    Examples
    --------
    >>> dash = SegmentationDashboard()
    >>> dash.preset = "bone"
    >>> dash.measurements.columns[1]
    'area (mm²)'
    """

    mode = traitlets.Enum(tuple(MODES), "threshold")
    preset = traitlets.Unicode(_CUSTOM)

    def __init__(
        self,
        image: MedImage | None = None,
        *,
        sample: str = "head_ct",
        box_size: int = 512,
        **kwargs,
    ):
        self._box_size = box_size
        self._panel: SegmentationPanel | None = None
        self._quiet = False
        super().__init__(**kwargs)
        self._build()
        self._range: tuple[float, float] | None = None
        self._open_first(image, sample)

    # ------------------------------------------------------------------ API
    @property
    def panel(self) -> SegmentationPanel:
        """The segmentation panel doing the work (seeds, scribbles, labels)."""
        return self._panel

    @property
    def image(self) -> MedImage:
        """The image segmented; setting it starts a new segmentation."""
        return self._image

    @image.setter
    def image(self, image: MedImage) -> None:
        self._source.show(image)

    def set_range(self, low: float, high: float) -> None:
        """Threshold range in the image's unit (HU for CT), inclusive.

        Bounds beyond the image's values are clipped to them (nothing lies
        beyond, so the mask is the same).

        Parameters
        ----------
        low, high : float
            The range, in the image's unit, ``low <= high``.
        """
        self.mode = "threshold"
        self._quiet = True
        try:
            self.preset = _CUSTOM
        finally:
            self._quiet = False
        self._set_clipped(float(low), float(high))
        self._update()

    def set_cleanup(self, name: str, enabled: bool = True, **params) -> None:
        """Switch a clean-up step on or off (see the panel's ``set_cleanup``).

        Parameters
        ----------
        name : str
            A clean-up operation (``"fill_holes"``, ``"remove_small"`` ...).
        enabled : bool
            On or off.
        **params
            Its parameters, checked against its declarations.
        """
        self._panel.set_cleanup(name, enabled, **params)
        self._update()

    @property
    def labels(self) -> np.ndarray:
        """The segmentation: 0 background, 1.. labels.

        The classifier's first class is the background: its labels are
        shifted down by one.
        """
        labels = self._panel.labels
        if self._panel.method == CLASSIFIER:
            labels = np.where(labels > 1, labels - 1, 0).astype(labels.dtype)
        return labels

    @property
    def measurements(self) -> pd.DataFrame:
        """One row per label: size (mm² or mL), mean, SD, min, max, count."""
        image = self._image
        table = segmentation.measure(
            self.labels, image.array, spacing=image.spacing, unit=image.unit
        )
        unit = image.unit
        size = "volume (mL)" if self._image.is_volume else "area (mm²)"
        count = "voxels" if self._image.is_volume else "pixels"
        if table.empty:
            return pd.DataFrame(columns=["label", size, *self._stat_names(unit), count])
        stats = {
            f"{k}_{unit}": name
            for k, name in zip(
                ("mean", "sd", "min", "max"), self._stat_names(unit), strict=True
            )
        }
        out = pd.DataFrame({"label": table["label"].astype(int)})
        out[size] = table["volume_ml" if self._image.is_volume else "area_mm2"]
        for key, name in stats.items():
            out[name] = table[key]
        out[count] = table["pixels"].astype(int)
        return out

    @property
    def summary(self) -> str:
        """The first label's size and mean ± SD, as the page shows it."""
        table = self.measurements
        if table.empty:
            return "No region yet."
        row, unit = table.iloc[0], self._image.unit
        size = (
            f"volume {row.iloc[1]:.2f} mL"
            if self._image.is_volume
            else f"area {row.iloc[1]:.1f} mm²"
        )
        return (
            f"Label {int(row['label'])}: {size}; mean {row.iloc[2]:.1f} ± "
            f"{row.iloc[3]:.1f} {unit}, min {row.iloc[4]:.4g}, max {row.iloc[5]:.4g} "
            f"{unit} ({int(row.iloc[6])} {table.columns[6]})."
        )

    def export_mask(self) -> bytes:
        """The labels as a ``.nii.gz`` on the image's grid (geometry only)."""
        payload = nifti_bytes(self._mask_image())
        self._offer(self._links["mask"], payload, "mask.nii.gz", "application/gzip")
        return payload

    def export_csv(self) -> str:
        """The measurements as CSV, units in the header; no identifiers."""
        return self._offer_csv(
            self.measurements, self._links["csv"], "measurements.csv"
        )

    def export_recipe(self) -> str:
        """The method and clean-up as a recipe (JSON) for a batch run.

        A recipe that names files (the brush classifier's trained model) is
        offered as ``recipe.zip``: the JSON and the files beside it, by
        relative path and SHA-256. Returns the recipe's JSON text.
        """
        import io
        import zipfile

        from medimg_lab.recipe import Recipe

        steps = self._panel.recipe
        if self._panel.method == CLASSIFIER:  # replay labels as shown here
            steps[0]["params"]["background"] = 1
        recipe = Recipe(steps)
        if not recipe.files:
            text = recipe.to_json()
            self._offer(
                self._links["recipe"],
                text.encode("utf-8"),
                "recipe.json",
                "application/json",
            )
            return text
        data = recipe.to_zip()
        self._offer(self._links["recipe"], data, "recipe.zip", "application/zip")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read("recipe.json").decode("utf-8")

    def export_dicom(self) -> bytes:
        """The labels as a DICOM SEG and their measurements as an SR, zipped.

        ``segmentation.dcm`` (SEG, referencing every source instance, on the
        source's geometry) and ``measurements.dcm`` (SR TID 1500: area in
        mm² or volume in mL, mean ± SD per label), both de-identified
        (PS3.15 basic profile, with the salt of :meth:`export_pair` for this
        image: they reference the de-identified images of its zip). The
        image must come from DICOM.
        """
        files = results_bytes(
            self.labels,
            self._image,
            deidentified=True,
            salt=self._salt,
            **self._results_options(),
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in (SEG_NAME, SR_NAME):
                archive.writestr(name, files[name])
        payload = buffer.getvalue()
        self._offer(self._links["dicom"], payload, "seg-sr.zip", "application/zip")
        return payload

    def archive_results(self) -> list:
        """The SEG and SR to store beside the archive series shown (identified).

        They reference the series' own instances, so that the archive's
        viewers show them in its study. Used by the Studies panel's "Send
        results".

        Returns
        -------
        list of pydicom.Dataset
            The SEG and the SR.
        """
        if self.archive_series is None:
            self._fail(
                ValueError(
                    "Results go back to the study of their images: open a series "
                    "from the archive (Studies) and segment it first."
                )
            )
        seg, sr, _ = results_datasets(
            self.labels, self._image, **self._results_options()
        )
        return [seg, sr]

    def export_pair(self) -> bytes:
        """A zip of the de-identified image (DICOM and NIfTI) and the mask.

        ``image/image_001.dcm`` ... (when the image came from DICOM: PS3.15
        basic profile, dates removed, UIDs remapped with one salt drawn for
        the image opened, which :meth:`export_dicom`'s SEG and SR share),
        ``image.nii.gz``, ``mask.nii.gz`` and ``measurements.csv``. A
        warning shows when the DICOM files may carry text burned into the
        pixels.
        """
        salt = self._salt  # one per image opened: the series stays together
        dicom, burned = [], False
        for name, payload in self._source.dicom_files():
            clean, report = deidentified_bytes(payload, salt=salt)
            dicom.append((name, clean))
            burned |= report.burned_in_annotation
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, payload in dicom:
                archive.writestr(f"image/{name}", payload)
            archive.writestr("image.nii.gz", nifti_bytes(self._image))
            archive.writestr("mask.nii.gz", nifti_bytes(self._mask_image()))
            archive.writestr("measurements.csv", self.measurements.to_csv(index=False))
        payload = buffer.getvalue()
        self._offer(self._links["pair"], payload, "deidentified.zip", "application/zip")
        parts = f"{len(dicom)} de-identified DICOM file(s), " if dicom else ""
        text = f"The zip is ready ({parts}image and mask as NIfTI): click to save."
        if burned:
            text += (
                " Warning: this image type may have names or dates burned into "
                "the pixels; look at it before sharing."
            )
        self._say(text, ok=not burned)
        return payload

    # ---------------------------------------------------------------- build
    def _build(self) -> None:
        self._source = ImageSource(self, self._show_image, grey_only=True)
        self._opened = ipw.HTML()
        self._mode = ipw.ToggleButtons(
            options=list(MODES),
            value="threshold",
            tooltips=[
                "keep the values in a range: a tissue preset in HU, or your own",
                "click in a region: it grows over similar, connected values",
                "paint strokes of each class; a random forest labels the rest",
            ],
            style={"button_width": "auto"},
        )
        traitlets.link((self._mode, "value"), (self, "mode"))
        self._preset = ipw.Dropdown(
            description="tissue",
            tooltip="typical CT ranges in Hounsfield units",
            layout={"width": "330px"},
            style={"description_width": "60px"},
        )
        self._preset.observe(self._on_preset_change, "value")
        self._hint = ipw.HTML()
        self._brush_tool = ipw.ToggleButtons(
            options=["brush", "eraser"],
            value="brush",
            tooltips=["paint the chosen class", "erase strokes"],
            style={"button_width": "80px"},
        )
        self._brush_tool.observe(
            lambda c: setattr(self._panel, "tool", c["new"]), "value"
        )
        self._method_box = ipw.VBox()
        self._cleanup_box = ipw.VBox()
        self._summary = ipw.HTML()
        self._table = ipw.HTML()
        self._links = {
            k: ipw.HTML() for k in ("mask", "csv", "recipe", "dicom", "pair")
        }
        buttons = [
            self._export_button(text, tip, action)
            for text, tip, action in (
                ("mask (NIfTI)", "the labels as .nii.gz", self.export_mask),
                (
                    "table (CSV)",
                    "the measurements, units in the header",
                    self.export_csv,
                ),
                (
                    "recipe (JSON)",
                    "the method and clean-up, for a batch run",
                    self.export_recipe,
                ),
                (
                    "SEG + SR (DICOM)",
                    "the labels as DICOM Segmentation and the measurements as "
                    "DICOM SR (TID 1500), de-identified",
                    self.export_dicom,
                ),
                (
                    "de-identified pair",
                    "a zip: the image as de-identified DICOM and NIfTI, with the mask",
                    self.export_pair,
                ),
            )
        ]
        self._export_buttons = dict(zip(self._links, buttons, strict=True))
        self._viewer_slot = ipw.Box()
        sections = [
            section([heading("Open"), self._source, self._opened]),
            self._studies_section(send=self.archive_results),
            section([heading("Segment"), self._mode, self._hint, self._method_box]),
            section(
                [
                    heading("Result"),
                    self._summary,
                    self._table,
                    heading("Export"),
                    ipw.HBox(buttons, layout={"flex_flow": "row wrap"}),
                    *self._links.values(),
                    self._message,
                ]
            ),
            section([heading("Clean up"), self._cleanup_box]),
        ]
        self.children = page(self._viewer_slot, sections, width=self._box_size + 12)

    # ------------------------------------------------------------- updating
    def _show_image(self, image: MedImage, name: str) -> None:
        panel = SegmentationPanel(image)
        panel.parts["viewer"].box_size = self._box_size
        panel.parts["viewer"].status_line = "view"  # the "Open:" line says the rest
        self._panel, self._image = panel, image
        # one de-identification salt per image opened: its pair and its SEG
        # and SR reference each other's remapped UIDs
        self._salt = secrets.token_hex(16)
        parts = panel.parts
        panel.observe(self._on_revision, "revision")
        self._viewer_slot.children = [parts["viewer"]]
        self._cleanup_box.children = [parts["cleanup"]]
        self._range = None
        self._opened.value = html.escape(describe(image, name))
        hu = image.unit == "HU"
        options = [(_CUSTOM, _CUSTOM)]
        if hu:
            options += [(_range_label(k, *v), k) for k, v in HU_RANGES.items()]
        self._quiet = True
        try:
            self._preset.options = options
            self._preset.value = _CUSTOM
        finally:
            self._quiet = False
        for link in self._links.values():
            link.value = ""
        self._say("")
        self._on_mode({"new": self.mode}, first=True)

    def _default_range(self) -> tuple[float, float]:
        """Brain for a head CT; otherwise Otsu's threshold to the maximum."""
        values = self._image.array
        if self._image.unit == "HU":
            return HU_RANGES["brain"]
        lo, hi = float(np.min(values)), float(np.max(values))
        return (otsu_value(values) if lo < hi else lo), hi

    def _on_mode(self, change, first: bool = False) -> None:
        method = MODES[change["new"]]
        panel, parts = self._panel, self._panel.parts
        if panel.method == "threshold_range" and method != panel.method:
            self._range = (panel.params["low"], panel.params["high"])
        if panel.method != method:
            panel.method = method
        panel.tool = _TOOLS[method]
        self._hint.value = f"<i>{html.escape(_HINTS[method])}</i>"
        rows: list[ipw.Widget] = []
        if method == "threshold_range":
            rows = (
                [self._preset, parts["parameters"]]
                if self._image.unit == "HU"
                else [parts["parameters"]]
            )
            if first or self._range is None:
                self._range = self._default_range()
            self._set_clipped(*self._range)
        elif method == "region_grow":
            rows = [parts["parameters"], parts["message"]]
        else:
            self._brush_tool.value = "brush"  # the panel's tool, set above
            rows = [
                ipw.HBox([parts["class"], parts["undo"]]),
                ipw.HBox([self._brush_tool, parts["brush"]]),
                parts["message"],
            ]
        for slider in parts["parameters"].children:  # inside the section
            slider.layout.width, slider.layout.max_width = "100%", "380px"
        self._method_box.children = rows
        self._update()

    def _clipped(self, low: float, high: float) -> tuple[float, float]:
        """A range clipped to the image's values (the sliders' range)."""
        values = self._image.array
        lo, hi = float(np.min(values)), float(np.max(values))
        return min(max(low, lo), hi), min(max(high, lo), hi)

    def _set_clipped(self, low: float, high: float) -> None:
        low, high = self._clipped(low, high)
        self._panel.set_params(low=low, high=high)

    def _results_options(self) -> dict:
        """The SEG's sources, segment, algorithm and family, as segmented here."""
        files = self._source.dicom_files()
        if not files:
            self._fail(
                ValueError(
                    "A DICOM SEG and SR are drawn on the image's DICOM files, and "
                    "this image did not come from DICOM; open a DICOM file, a zip "
                    "of a series, a DICOM sample or a series of the archive, or "
                    "export the mask as NIfTI."
                )
            )
        method = self._panel.method
        family = {
            "threshold_range": "threshold",
            "region_grow": "region growing",
            CLASSIFIER: "classifier",
        }[method]
        named = method == "threshold_range" and self.preset in SEGMENT_PROPERTIES
        return {
            "sources": [payload for _, payload in files],
            "segments": {1: self.preset} if named else None,
            "algorithm": f"medimg-lab {self.mode}",
            "algorithm_type": "SEMIAUTOMATIC",
            "algorithm_family": family,
        }

    def _mask_image(self) -> MedImage:
        labels = self.labels
        return MedImage(
            labels,
            spacing=self._image.spacing,
            modality="SEG",
            window=(0.5 * max(int(labels.max()), 1), float(max(int(labels.max()), 1))),
        )

    def _update(self) -> None:
        with self._guard("measure the region"):
            self._summary.value = f"<b>{html.escape(self.summary)}</b>"
            self._table.value = html_table(self.measurements, "No region yet.")
            for link in self._links.values():
                link.value = ""

    @staticmethod
    def _stat_names(unit: str) -> list[str]:
        return [f"mean ({unit})", f"SD ({unit})", f"min ({unit})", f"max ({unit})"]

    # ------------------------------------------------------------ callbacks
    @traitlets.observe("mode")
    def _on_mode_change(self, change) -> None:
        if self._panel is not None:
            with self._guard("change the method"):
                self._on_mode(change)

    @traitlets.validate("preset")
    def _valid_preset(self, proposal):
        name = proposal["value"]
        if name != _CUSTOM and name not in HU_RANGES:
            self._fail(
                ValueError(
                    f"preset must be {_CUSTOM!r} or one of {', '.join(HU_RANGES)}; "
                    f"got {name!r}"
                )
            )
        if name != _CUSTOM and self._image.unit != "HU":
            self._fail(
                ValueError(
                    f"The {name} preset is a range in HU, and this image's values "
                    f"are not in HU ({self._image.unit}); set the range with the "
                    "sliders."
                )
            )
        return name

    @traitlets.observe("preset")
    def _on_preset_trait(self, change) -> None:
        self._quiet = True
        try:
            self._preset.value = change["new"]
        finally:
            self._quiet = False
        if change["new"] != _CUSTOM:
            self._quiet = True
            try:
                self.mode = "threshold"
                self._set_clipped(*HU_RANGES[change["new"]])
            finally:
                self._quiet = False
            self._update()

    def _on_preset_change(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        with self._guard("apply the preset"):
            self.preset = change["new"]

    def _on_revision(self, change) -> None:
        """The panel drew a new segmentation: a moved slider ends a preset."""
        name = self.preset
        if name != _CUSTOM and not self._quiet:
            params = self._panel.params
            if (params.get("low"), params.get("high")) != self._clipped(
                *HU_RANGES[name]
            ):
                self.preset = _CUSTOM
        self._update()
