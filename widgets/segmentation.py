"""``SegmentationPanel``: stage 2 with seeds, scribbles and a live overlay."""

from __future__ import annotations

import contextlib
import html
from typing import Any

import ipywidgets as ipw
import numpy as np
import traitlets

from medimg_lab import segmentation
from medimg_lab.geometry import brush_pixels
from medimg_lab.image import MedImage
from medimg_lab.io import save
from medimg_lab.params import get_operation, operations, parameters, validate
from medimg_lab.recipe import CLEANUP
from medimg_lab.segmentation.region import marker_points

from ._panel import StagePanel
from .controls import controls_for
from .viewer import ImageViewer

__all__ = ["SegmentationPanel"]

#: Seeded methods and the parameter of their interactive input, from the
#: declarations: "seeds" are clicked, "markers" painted with the brush.
SEEDED = {op.name: op.seeded for op in operations(stage="segmentation") if op.seeded}
CLASSIFIER = "pixel_classifier"
TOOLS = ("seed", "brush", "eraser", "read")


class _Waiting(ValueError):
    """The method waits for the user's input (seeds, strokes): not an error."""


def _first_foreground(classes) -> int:
    """The class a brush starts on: the first not named "background" (1-based)."""
    for k, name in enumerate(classes, 1):
        if str(name).strip().lower() != "background":
            return k
    return 1


def _methods() -> dict[str, str]:
    """Label → name of the segmentation methods (role "method"), classifier last."""
    methods = {
        op.label: op.name
        for op in operations(stage="segmentation", role="method")
        if op.name != CLASSIFIER
    }
    methods[get_operation(CLASSIFIER).label] = CLASSIFIER
    return methods


class SegmentationPanel(StagePanel):
    """Segment an image interactively: methods, seeds, scribbles, clean-up.

    Parameters
    ----------
    image : MedImage
        A grey 2D image or volume.
    method : str
        A segmentation operation (``"threshold_range"``, ``"threshold_otsu"``,
        ``"region_grow"``, ``"gmm"`` ...) or ``"pixel_classifier"``.
    params : dict, optional
        Initial parameter values of the method.
    classes : sequence of str
        Names of the scribble classes 1, 2, ... (for the classifier and
        watershed markers).
    model : {"forest", "svm", "linear"}
        The pixel classifier's model.

    Notes
    -----
    Public state, all with setters so that a notebook drives it without a
    mouse: ``method``, :meth:`set_params`, ``tool`` ("seed", "brush",
    "eraser", "read"), ``label`` (the class painted), ``brush_mm``,
    :meth:`add_seed`, :meth:`remove_seed`, :meth:`scribble`, :meth:`undo`,
    :meth:`set_cleanup`; results :attr:`labels`, :attr:`probabilities`,
    :attr:`uncertainty`, :attr:`table`, :attr:`recipe`; :meth:`export`;
    ``revision`` counts the redraws.
    """

    method = traitlets.Unicode("threshold_range")
    tool = traitlets.Unicode("seed")
    label = traitlets.Int(1)
    brush_mm = traitlets.CFloat(2.0)
    #: Counts the segmentations drawn: observe it to follow every change.
    revision = traitlets.Int(0, read_only=True)

    def __init__(
        self,
        image: MedImage,
        *,
        method: str = "threshold_range",
        params: dict[str, Any] | None = None,
        classes: tuple[str, ...] = ("background", "foreground"),
        model: str = "forest",
        **kwargs,
    ):
        if not isinstance(image, MedImage) or image.is_color:
            raise ValueError("the segmentation panel takes a grey MedImage")
        if len(classes) < 2:
            raise ValueError(f"give at least two classes; got {classes}")
        self._image = image
        self._classes = tuple(classes)
        self._model = model
        self._seeds: list[tuple[int, ...]] = []
        self._scribbles = np.zeros(image.array.shape, np.uint8)
        self._undo: list[tuple[np.ndarray, np.ndarray]] = []
        self._cleanup: dict[str, dict[str, Any]] = {}
        self._controls: dict[str, ipw.Widget] = {}
        self._labels = np.zeros(image.array.shape, np.uint8)
        self._drawn_by = ""  # the method whose result _labels holds
        self._classifier = None
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.label = _first_foreground(self._classes)  # never the background
        self._start("method", method, self._on_method_change, params)

    # ------------------------------------------------------------------ API
    def set_params(self, **values: Any) -> None:
        """Set the method's parameters, as the sliders would.

        Parameters
        ----------
        **values
            ``{name: value}``, checked against the method's declarations.
        """
        if self.method == CLASSIFIER:
            raise ValueError("the pixel classifier is set with model= and scribbles")
        checked = validate(get_operation(self.method).fn, values)
        self._apply(checked)

    @property
    def parts(self) -> dict[str, ipw.Widget]:
        """The panel's widgets by name, for a page that lays them out its own way.

        ``viewer`` (the :class:`ImageViewer` with the live overlay),
        ``parameters`` (the method's sliders), ``cleanup`` (the clean-up
        check boxes), ``class`` (the class painted), ``brush`` (its size in
        mm), ``undo``, ``show`` and ``map`` (probability and uncertainty
        maps of the classifier) and ``message``. The segmentation dashboard
        uses them.
        """
        return {
            "viewer": self._viewer,
            "parameters": self._params_box,
            "cleanup": self._cleanup_row,
            "class": self._label,
            "brush": self._brush,
            "undo": self._undo_button,
            "show": self._view,
            "map": self._map,
            "message": self._message,
        }

    @property
    def seeds(self) -> list[tuple[int, ...]]:
        """Seed points, as array indices."""
        return list(self._seeds)

    def add_seed(self, index) -> None:
        """Add a seed at an array index ``(row, col)`` or ``(slice, row, col)``.

        Parameters
        ----------
        index : tuple of int
            ``(row, col)``, or ``(slice, row, col)`` for a volume.
        """
        index = self._check_index(index)
        if index not in self._seeds:
            self._seeds.append(index)
        self._refresh()

    def remove_seed(self, index) -> None:
        """Remove the seed nearest to ``index`` (within 5 pixels).

        Parameters
        ----------
        index : tuple of int
            ``(row, col)``, or ``(slice, row, col)`` for a volume.
        """
        index = self._check_index(index)
        if self._seeds:
            dist = [np.linalg.norm(np.subtract(s, index)) for s in self._seeds]
            if min(dist) <= 5:
                self._seeds.pop(int(np.argmin(dist)))
        self._refresh()

    @property
    def scribbles(self) -> np.ndarray:
        """The painted classes, 0 where nothing is painted (a copy)."""
        return self._scribbles.copy()

    def scribble(self, points, label: int | None = None, radius_mm=None) -> None:
        """Paint a stroke through array indices with class ``label`` (0 erases).

        The brush is a disc of ``radius_mm`` (default :attr:`brush_mm`) in the
        slice of each point.

        Parameters
        ----------
        points : sequence of tuple of int
            Array indices along the stroke.
        label : int, optional
            Class 1..K, or 0 to erase; default :attr:`label`.
        radius_mm : float, optional
            Radius of the brush in mm.
        """
        label = self.label if label is None else int(label)
        if not 0 <= label <= len(self._classes):
            raise ValueError(
                f"label must be 0 (erase) .. {len(self._classes)}; got {label}"
            )
        radius = self.brush_mm if radius_mm is None else float(radius_mm)
        points = np.array([self._check_index(p) for p in points], dtype=np.int64)
        if points.size == 0:
            return
        rows, cols, owner = brush_pixels(
            points[:, -2:], radius, self._image.spacing[-2:], self._scribbles.shape[-2:]
        )
        where = [rows, cols]
        if self._image.is_volume:
            where.insert(0, points[owner, 0])
        flat = np.ravel_multi_index(where, self._scribbles.shape)
        flat = np.unique(flat)
        self._undo.append((flat, self._scribbles.ravel()[flat].copy()))
        self._scribbles.ravel()[flat] = label
        self._refresh()

    def undo(self) -> None:
        """Take back the last stroke."""
        if self._undo:
            flat, before = self._undo.pop()
            self._scribbles.ravel()[flat] = before
            self._refresh()

    def set_cleanup(self, name: str, enabled: bool = True, **params: Any) -> None:
        """Switch a clean-up step on or off, with its parameters.

        ``name`` is one of fill_holes, keep_largest, remove_small, binary_open,
        binary_close; they run in that order on the method's mask.

        Parameters
        ----------
        name : str
            The clean-up operation.
        enabled : bool
            On or off.
        **params
            Its parameters, checked against its declarations; the others keep
            their defaults.
        """
        if name not in CLEANUP:
            raise ValueError(
                f"unknown clean-up {name!r}; choose one of {', '.join(CLEANUP)}"
            )
        if enabled:
            fn = get_operation(name).fn
            defaults = {k: spec.default for k, spec in parameters(fn).items()}
            self._cleanup[name] = {**defaults, **validate(fn, params)}
        else:
            self._cleanup.pop(name, None)
        self._cleanup_boxes[name].value = enabled
        self._refresh()

    @property
    def labels(self) -> np.ndarray:
        """The segmentation: 0 background, 1..K classes (a mask is 0/1)."""
        return self._labels.copy()

    @property
    def probabilities(self) -> np.ndarray | None:
        """Per-class probabilities ``(K, ...)`` of the pixel classifier."""
        return None if self._classifier is None else self._proba.copy()

    @property
    def uncertainty(self) -> np.ndarray | None:
        """The pixel classifier's uncertainty map, 0 (sure) to 1."""
        return None if self._classifier is None else self._uncertain.copy()

    @property
    def table(self):
        """Measurements per label: size in mm² or mL, mean ± SD in the image's unit."""
        return segmentation.measure(
            self._labels,
            self._image.array,
            spacing=self._image.spacing,
            unit=self._image.unit,
        )

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The method and the clean-up steps, as data that replays.

        Seeds and watershed markers are in the parameters (array indices;
        markers as ``[index..., label]`` per painted pixel); the trained
        pixel classifier is a skops file named by path and SHA-256
        (:meth:`medimg_lab.recipe.Recipe.save` copies it beside the recipe).

        Raises
        ------
        ValueError
            For the pixel classifier before it was trained (paint scribbles
            of two classes first).
        """
        first = {"op": self.method, "params": self.params}
        need = SEEDED.get(self.method)
        if need == "seeds":
            first["params"]["seeds"] = [list(s) for s in self._seeds]
        elif need == "markers":
            first["params"]["markers"] = marker_points(self._scribbles)
        if self.method == CLASSIFIER:
            first["params"] = {"model": self._model_file()}
        steps = [first]
        steps += [
            {"op": name, "params": dict(self._cleanup[name])}
            for name in CLEANUP
            if name in self._cleanup
        ]
        return steps

    def _model_file(self) -> dict[str, str]:
        """The trained classifier as a skops file: ``{"path", "sha256"}``."""
        import tempfile
        from pathlib import Path

        from medimg_lab._files import keep

        if self._classifier is None or self._classifier.classes is None:
            raise ValueError(
                "the pixel classifier has no trained model yet: paint scribbles of "
                "at least two classes (tool: brush), then take the recipe"
            )
        with tempfile.TemporaryDirectory() as folder:
            path = self._classifier.save(Path(folder) / "model.skops")
            return keep(path.read_bytes(), ".skops")

    def export(self, path) -> str:
        """Save the labels as NIfTI or PNG through :func:`medimg_lab.save`.

        Parameters
        ----------
        path : str or os.PathLike
            Ending ``.nii``, ``.nii.gz`` or ``.png``.

        Returns
        -------
        str
            The file written.
        """
        labels = MedImage(
            self._labels,
            spacing=self._image.spacing,
            modality="SEG",
            window=(
                0.5 * self._labels.max(initial=1),
                float(max(self._labels.max(), 1)),
            ),
            meta={"source_modality": self._image.modality},
        )
        written = save(labels, path)
        self._say(f"Saved the labels to {written.name}.", ok=True)
        return str(written)

    # --------------------------------------------------------------- layout
    def _build(self) -> None:
        self._viewer = ImageViewer(self._image)
        self._viewer.observe(self._on_click, "clicked")
        self._viewer.observe(self._on_stroke, "stroke")
        self._method = ipw.Dropdown(
            options=_methods(), description="method", layout={"width": "340px"}
        )
        self._method.observe(
            self._guarded_callback(
                "change the method", lambda c: setattr(self, "method", c["new"])
            ),
            "value",
        )
        self._tool = ipw.ToggleButtons(options=TOOLS, description="tool")
        self._tool.observe(
            self._guarded_callback(
                "change the tool", lambda c: setattr(self, "tool", c["new"])
            ),
            "value",
        )
        self._label = ipw.Dropdown(
            options={f"{i}: {n}": i for i, n in enumerate(self._classes, 1)},
            description="class",
            layout={"width": "220px"},
        )
        self._label.observe(
            self._guarded_callback(
                "change the class", lambda c: setattr(self, "label", c["new"])
            ),
            "value",
        )
        self._brush = ipw.FloatSlider(
            value=2.0, min=0.5, max=20, step=0.5, description="brush (mm)"
        )
        self._brush.observe(
            self._guarded_callback(
                "size the brush", lambda c: setattr(self, "brush_mm", c["new"])
            ),
            "value",
        )
        self._undo_button = ipw.Button(description="undo stroke")
        self._undo_button.on_click(
            self._guarded_callback("undo", lambda _: self.undo())
        )
        self._params_box = ipw.VBox()
        self._cleanup_boxes = {
            name: ipw.Checkbox(
                description=get_operation(name).label,
                value=False,
                indent=False,
                layout={"width": "auto", "margin": "0 12px 0 0"},
            )
            for name in CLEANUP
        }
        for name, box in self._cleanup_boxes.items():
            box.observe(lambda c, n=name: self._on_cleanup_toggle(n, c["new"]), "value")
        self._cleanup_row = ipw.HBox(
            list(self._cleanup_boxes.values()), layout={"flex_flow": "row wrap"}
        )
        self._view = ipw.ToggleButtons(
            options=("labels", "probability", "uncertainty"), description="show"
        )
        self._view.observe(
            self._guarded_callback("show the map", lambda c: self._show_maps()), "value"
        )
        self._map = ImageViewer(
            MedImage(
                np.zeros(self._image.array.shape, np.float32), self._image.spacing
            ),
            window=(0.5, 1.0),
            box_size=256,
            status_line=False,  # a map made here, not an image opened
        )
        self._map.layout.display = "none"
        self._table = ipw.HTML()
        self._path = ipw.Text(value="segmentation.nii.gz", description="file")
        self._save = ipw.Button(description="export mask")
        self._save.on_click(self._on_export_click)
        self._message = ipw.HTML()
        self.children = [
            ipw.HBox([self._method, self._tool]),
            ipw.HBox([self._label, self._brush, self._undo_button]),
            self._params_box,
            self._cleanup_row,
            self._message,
            ipw.HBox([self._viewer, ipw.VBox([self._view, self._map, self._table])]),
            ipw.HBox([self._path, self._save]),
        ]

    # -------------------------------------------------------------- helpers
    def _check_index(self, index) -> tuple[int, ...]:
        index = tuple(int(v) for v in index)
        shape = self._image.array.shape
        if len(index) != len(shape) or not all(
            0 <= v < n for v, n in zip(index, shape, strict=True)
        ):
            raise ValueError(f"index {index} lies outside the image of shape {shape}")
        return index

    def _run_method(self) -> np.ndarray:
        image, spacing = self._image.array, self._image.spacing
        if self.method == CLASSIFIER:
            return self._run_classifier()
        self._classifier = None
        op = get_operation(self.method)
        params = dict(self.params)
        need = SEEDED.get(self.method)
        if need == "seeds":
            if not self._seeds:
                raise _Waiting("Click in the image to place a seed (tool: seed).")
            return op.fn(image, self._seeds, **validate(op.fn, params))
        if need == "markers":
            if len(np.unique(self._scribbles)) < 3:
                raise _Waiting(self._paint_more("markers"))
            return op.run(
                image, {"markers": self._scribbles, **params}, spacing=spacing
            )
        return op.run(image, params, spacing=spacing)

    def _run_classifier(self) -> np.ndarray:
        from medimg_lab.segmentation.classifier import PixelClassifier

        if len(np.unique(self._scribbles[self._scribbles > 0])) < 2:
            raise _Waiting(self._paint_more("scribbles"))
        if self._classifier is None:
            self._classifier = PixelClassifier(model=self._model)
        self._classifier.fit(
            self._image.array, self._scribbles, spacing=self._image.spacing
        )
        self._proba = self._classifier.predict_proba()
        self._uncertain = self._classifier.uncertainty()
        classes = self._classifier.classes  # the painted ones, as predict gives
        return classes[np.argmax(self._proba, axis=0)].astype(np.uint8)

    def _paint_more(self, what: str) -> str:
        """What to paint next: at least two classes, and which are there."""
        done = [int(v) for v in np.unique(self._scribbles) if v > 0]
        names = [f"{k}: {self._classes[k - 1]}" for k in done]
        return (
            f"Paint {what} of at least two classes (tool: brush); the brush "
            f"paints {self.label}: {self._classes[self.label - 1]}; painted so "
            f"far: {', '.join(names) or 'none'}."
        )

    def _clean(self, labels: np.ndarray) -> np.ndarray:
        if not self._cleanup:
            return labels
        mask = labels > 0
        for name in CLEANUP:
            if name in self._cleanup:
                mask = get_operation(name).run(
                    mask, self._cleanup[name], spacing=self._image.spacing
                )
        return np.where(mask, np.maximum(labels, 1), 0).astype(np.uint8)

    # ------------------------------------------------------------ callbacks
    @traitlets.validate("method")
    def _valid_method(self, proposal):
        name = proposal["value"]
        if name != CLASSIFIER:
            op = get_operation(name)
            if op.stage != "segmentation" or name in CLEANUP:
                raise ValueError(f"{name} is not a segmentation method")
        return name

    @traitlets.observe("method")
    def _on_method_change(self, change) -> None:
        for control in self._controls.values():
            control.close()
        self._controls = {}
        if change["new"] != CLASSIFIER:
            values = self._image.array
            self._controls = controls_for(
                get_operation(change["new"]).fn,
                value_range=(float(values.min()), float(values.max())),
                units=self._image.unit,
            )
        for control in self._controls.values():
            control.observe(lambda _: self._refresh(), "value")
        self._params_box.children = list(self._controls.values())
        self._method.value = change["new"]
        self._refresh()

    @traitlets.validate("tool")
    def _valid_tool(self, proposal):
        if proposal["value"] not in TOOLS:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)}")
        return proposal["value"]

    @traitlets.observe("tool")
    def _on_tool_change(self, change) -> None:
        self._tool.value = change["new"]
        self._viewer.tool = "brush" if change["new"] in ("brush", "eraser") else "read"

    @traitlets.observe("label")
    def _on_label_change(self, change) -> None:
        if not 1 <= change["new"] <= len(self._classes):
            raise ValueError(f"label must be 1..{len(self._classes)}")
        self._label.value = change["new"]

    @traitlets.observe("brush_mm")
    def _on_brush_change(self, change) -> None:
        self._brush.value = change["new"]

    def _on_click(self, change) -> None:
        if self.tool != "seed" or not change["new"]:
            return
        with contextlib.suppress(ValueError):
            index = self._check_index(change["new"])
            near = [
                s for s in self._seeds if np.linalg.norm(np.subtract(s, index)) <= 5
            ]
            (self.remove_seed if near else self.add_seed)(index)

    def _on_stroke(self, change) -> None:
        if self.tool in ("brush", "eraser") and change["new"]:
            self.scribble(change["new"], label=0 if self.tool == "eraser" else None)

    def _on_cleanup_toggle(self, name: str, enabled: bool) -> None:
        if enabled != (name in self._cleanup):
            params = {
                k: c.value
                for k, c in controls_for(
                    get_operation(name).fn, units=self._image.unit
                ).items()
            }
            self.set_cleanup(name, enabled, **params)

    def _on_export_click(self, _) -> None:
        with self._guard("export the mask"):
            self.export(self._path.value)

    # -------------------------------------------------------------- drawing
    def _refresh(self) -> None:
        if not self._ready:
            return
        try:
            labels = self._clean(np.asarray(self._run_method()).astype(np.uint8))
            self._labels, self._drawn_by = labels, self.method
            self._say("")
        except Exception as exc:  # any failure: a sentence in the message line
            if isinstance(exc, _Waiting):
                self._tell(str(exc))
            elif isinstance(exc, ValueError):
                self._say(str(exc))
            else:
                self._say_failure("segment the image", exc)
            if self._drawn_by != self.method:  # another method's result: not shown
                self._labels = np.zeros_like(self._labels)
            labels = self._labels
        shown = np.where(self._scribbles > 0, self._scribbles, labels)
        self._viewer.overlay = shown
        self._table.value = self._table_html()
        self._show_maps()
        self.set_trait("revision", self.revision + 1)

    def _show_maps(self) -> None:
        view = self._view.value
        if view == "labels" or self._classifier is None:
            self._map.layout.display = "none"
            return
        values = self._proba[-1] if view == "probability" else self._uncertain
        self._map.image = MedImage(values.astype(np.float32), self._image.spacing)
        self._map.window = (0.5, 1.0)
        self._map.slice_index = self._viewer.slice_index
        self._map.layout.display = ""

    def _table_html(self) -> str:
        table = self.table
        if table.empty:
            return "<i>no region</i>"
        unit = self._image.unit
        names = {
            "pixels": "pixels",
            "area_mm2": "area (mm²)",
            "volume_ml": "volume (mL)",
            **{f"{k}_{unit}": f"{k} ({unit})" for k in ("mean", "sd", "min", "max")},
        }
        table = table.drop(columns=["bbox"]).round(2).rename(columns=names)
        out = table.to_html(index=False, border=0)
        note = self._image.unit_note
        if unit != "HU" and note != unit:  # say what the values are
            out += f"<i>values in {html.escape(note)}</i>"
        return out
