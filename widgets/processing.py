"""``ProcessingPanel``: stage 1 with live controls, before and after."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import ipywidgets as ipw
import numpy as np
import traitlets

from medimg_lab import metrics, processing
from medimg_lab.composition import swipe
from medimg_lab.display import encode_png, fit, histogram_image
from medimg_lab.image import MedImage
from medimg_lab.params import OPERATIONS, get_operation, validate

from ._panel import StagePanel
from .controls import controls_for, values_of
from .viewer import ImageViewer

__all__ = ["ProcessingPanel"]

MODES = ("side by side", "swipe", "flicker")
_KERNEL_SIZES = (3, 5, 7)


def _operations() -> dict[str, str]:
    """Label → name of every processing operation (registered on import)."""
    return {
        op.label: name for name, op in OPERATIONS.items() if op.stage == "processing"
    }


class KernelEditor(ipw.VBox):
    """A grid of numbers for the kernel ``h`` of ``G = f * h``.

    ``kernel`` is the (K, K) float32 array as typed; the sum and whether the
    panel normalises it show under the grid.
    """

    kernel = traitlets.Any()

    def __init__(self, h: np.ndarray | str = "box"):
        self._size = ipw.Dropdown(
            options=_KERNEL_SIZES, description="size (px)", layout={"width": "160px"}
        )
        self._preset = ipw.Dropdown(
            options=["(custom)", *processing.KERNELS],
            description="kernel",
            layout={"width": "220px"},
        )
        self._grid = ipw.GridBox(layout={"grid_gap": "2px"})
        self._sum = ipw.HTML()
        self._cells: list[ipw.FloatText] = []
        super().__init__([ipw.HBox([self._preset, self._size]), self._grid, self._sum])
        self._size.observe(self._on_size_change, "value")
        self._preset.observe(self._on_preset_change, "value")
        self.set_kernel(processing.kernel(h) if isinstance(h, str) else h)

    def set_kernel(self, h: np.ndarray) -> None:
        """Show ``h`` (odd square) in the grid."""
        h = np.asarray(h, dtype=np.float32)
        if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] not in _KERNEL_SIZES:
            raise ValueError(f"the kernel editor takes 3x3, 5x5 or 7x7; got {h.shape}")
        size = h.shape[0]
        if len(self._cells) != h.size:  # new grid; otherwise reuse the cells
            for cell in self._cells:
                cell.close()
            self._cells = [ipw.FloatText(layout={"width": "64px"}) for _ in h.ravel()]
            for cell in self._cells:
                cell.observe(self._on_cell_change, "value")
            self._grid.layout.grid_template_columns = f"repeat({size}, 66px)"
            self._grid.children = self._cells
        with self._hold():
            self._size.value = size
            for cell, value in zip(self._cells, h.ravel(), strict=True):
                cell.value = float(value)
        self._update()

    @contextlib.contextmanager
    def _hold(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _update(self) -> None:
        size = round(len(self._cells) ** 0.5)
        h = np.array([c.value for c in self._cells], np.float32).reshape(size, size)
        total = float(h.sum())
        note = (
            f"divided by {total:g} when normalised"
            if total not in (0.0, 1.0)
            else (
                "sums to 1: flat regions keep their value"
                if total == 1
                else "sums to 0: an edge or derivative kernel"
            )
        )
        self._sum.value = f"sum of h = {total:g} ({note})"
        self.kernel = h

    def _on_cell_change(self, change) -> None:
        if not getattr(self, "_holding", False):
            self._update()

    def _on_size_change(self, change) -> None:
        if getattr(self, "_holding", False):
            return
        size = change["new"]
        h = np.zeros((size, size), np.float32)
        h[size // 2, size // 2] = 1
        self.set_kernel(h)

    def _on_preset_change(self, change) -> None:
        if change["new"] in processing.KERNELS:
            self.set_kernel(processing.kernel(change["new"]))


class ProcessingPanel(StagePanel):
    """Before/after view of a processing operation with generated controls.

    Parameters
    ----------
    image : MedImage
        A 2D image or a volume; volumes are previewed slice by slice.
    operation : str
        Name of a processing operation (``"gaussian"``, ``"clahe"`` ...).
    params : dict, optional
        Initial parameter values.
    reference : MedImage or ndarray, optional
        A clean reference of the image's shape: PSNR and SSIM of the result
        against it show live.
    rois : (mask, mask), optional
        Two boolean masks of the image's shape: the CNR between them shows.
    view_size : int
        Each view's side in screen pixels. The live preview runs on the
        image downscaled to this size; :attr:`result` is computed at full
        resolution.
    drag_budget_ms : float
        Time in ms a preview may take while a slider is dragged. When the
        last full preview took longer, a move is previewed on a grid 2–4
        times coarser per side (:func:`medimg_lab.processing.coarse_preview`)
        and the full preview follows ``settle_s`` after the last move
        (:attr:`settled`). Only for moves in a running event loop (a
        kernel); :meth:`set_params` always draws the full preview.
    settle_s : float
        Seconds without a move after which the full preview is drawn.

    Notes
    -----
    Public state: ``operation``, ``params`` (via :meth:`set_params`),
    ``mode`` ("side by side", "swipe", "flicker"), ``swipe`` (0–1),
    ``slice_index``, ``steps`` (the chain before the current step),
    :attr:`preview`, :attr:`result`, :attr:`recipe` and :attr:`settled`.
    """

    operation = traitlets.Unicode("gaussian")
    mode = traitlets.Unicode("side by side")
    swipe = traitlets.CFloat(0.5)
    slice_index = traitlets.Int(0)
    show_original = traitlets.Bool(False)

    def __init__(
        self,
        image: MedImage,
        *,
        operation: str = "gaussian",
        params: dict[str, Any] | None = None,
        reference: MedImage | np.ndarray | None = None,
        rois: tuple[np.ndarray, np.ndarray] | None = None,
        view_size: int = 600,
        drag_budget_ms: float = 20.0,
        settle_s: float = 0.25,
        **kwargs,
    ):
        if not isinstance(image, MedImage):
            raise TypeError(f"image must be a MedImage; got {type(image).__name__}")
        if image.is_color:
            raise ValueError("the processing panel takes grey images, not RGB")
        self._image = image
        self._view_size = int(view_size)
        self._reference = self._check_same_shape(reference, "reference")
        self._rois = rois
        if rois is not None:
            for roi in rois:
                self._check_same_shape(roi, "each ROI")
        self._steps: list[dict[str, Any]] = []
        self._controls: dict[str, ipw.Widget] = {}
        self._preview: np.ndarray | None = None
        self._drag_budget_ms = float(drag_budget_ms)
        self._settle_s = float(settle_s)
        self._full_ms = 0.0  # the last full-resolution preview's compute time
        self._coarse = 1  # the shown preview's coarsening (1: full resolution)
        self._settle_timer: asyncio.TimerHandle | None = None
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.slice_index = image.array.shape[0] // 2 if image.is_volume else 0
        self._start("operation", operation, self._on_operation_change, params)

    # ------------------------------------------------------------------ API
    @property
    def params(self) -> dict[str, Any]:
        """Current parameter values of the current operation."""
        values = values_of(self._controls)
        if self.operation == "convolve":
            values["h"] = self._kernel.kernel.tolist()
        return values

    def set_params(self, **values: Any) -> None:
        """Set parameters of the current operation, as the sliders would.

        Parameters
        ----------
        **values
            ``{name: value}`` of its declared parameters (checked against the
            declarations); ``h`` of ``convolve`` takes a kernel or its name.
        """
        if "h" in values and self.operation == "convolve":
            h = values.pop("h")
            self._kernel.set_kernel(processing.kernel(h) if isinstance(h, str) else h)
        checked = validate(get_operation(self.operation).fn, values)
        unknown = set(checked) - set(self._controls)
        if unknown:
            raise ValueError(
                f"{', '.join(sorted(unknown))} of {self.operation} is set by the "
                f"panel itself; set {', '.join(self._controls) or 'nothing'}"
            )
        self._apply(checked)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The chain applied before the current operation."""
        return [dict(s) for s in self._steps]

    def add_step(self) -> None:
        """Freeze the current operation into the chain and start a new step."""
        self._steps.append(self._current_step())
        self._refresh()

    def clear_steps(self) -> None:
        """Forget the chain; keep the current operation."""
        self._steps.clear()
        self._refresh()

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """All steps, the current one last: ``[{"op": name, "params": {...}}]``."""
        return [*self.steps, self._current_step()]

    @property
    def preview(self) -> np.ndarray:
        """The result on the previewed (display-size) slice."""
        return self._preview

    @property
    def settled(self) -> bool:
        """Whether :attr:`preview` is the full-resolution result.

        False while a drag preview on a coarser grid shows.
        """
        return self._coarse == 1

    @property
    def preview_input(self) -> MedImage:
        """The display-size slice the preview is computed from."""
        return self._before.image

    @property
    def result(self) -> np.ndarray:
        """The chain applied to the whole image at full resolution."""
        return self._run(self._image.array, self._image.spacing)

    @property
    def quality(self) -> dict[str, float]:
        """PSNR (dB), SSIM and CNR of the preview, as far as given."""
        return dict(self._quality)

    # --------------------------------------------------------------- layout
    def _build(self) -> None:
        self._op = ipw.Dropdown(
            options=_operations(), description="operation", layout={"width": "320px"}
        )
        self._op.observe(self._on_op_change, "value")
        self._mode = ipw.ToggleButtons(
            options=MODES,
            tooltips=[
                "before and after next to each other",
                "one view, left of the line before, right after",
                "one view; the button switches between before and after",
            ],
        )
        self._mode.observe(self._on_mode_change, "value")
        self._swipe = ipw.FloatSlider(
            value=self.swipe,
            min=0,
            max=1,
            step=0.01,
            description="swipe",
            readout_format=".0%",
            continuous_update=True,
        )
        self._swipe.observe(self._on_swipe_change, "value")
        self._flicker = ipw.ToggleButton(description="show original")
        self._flicker.observe(self._on_flicker_change, "value")
        self._slice = ipw.IntSlider(description="slice (index)", continuous_update=True)
        self._slice.observe(self._on_slice_change, "value")
        self._link_window = ipw.Checkbox(value=True, description="same window")
        self._link_window.observe(self._on_link_change, "value")
        self._add = ipw.Button(
            description="add step", tooltip="keep this step, add one"
        )
        self._add.on_click(
            self._guarded_callback("add the step", lambda _: self.add_step())
        )
        self._clear = ipw.Button(description="clear steps")
        self._clear.on_click(
            self._guarded_callback("clear the steps", lambda _: self.clear_steps())
        )
        self._steps_label = ipw.HTML()
        self._params_box = ipw.VBox()
        self._kernel_editor: KernelEditor | None = None
        self._message = ipw.HTML()
        self._histogram = ipw.Image(format="png", layout={"width": "256px"})
        self._quality_label = ipw.HTML()
        self._quality: dict[str, float] = {}
        self._swiped = ipw.Image(format="png")
        before_slice = self._slice_image(
            0 if not self._image.is_volume else self._image.array.shape[0] // 2
        )
        common = {"box_size": self._view_size}
        self._before = ImageViewer(before_slice, **common)
        self._after = ImageViewer(before_slice, **common)
        self._window_link = traitlets.link(
            (self._before, "window"), (self._after, "window")
        )
        self._views = ipw.HBox()
        if self._image.is_volume:
            self._slice.max = self._image.array.shape[0] - 1
        else:
            self._slice.layout.display = "none"
        self.children = [
            ipw.HBox([self._op, self._mode]),
            ipw.HBox([self._slice, self._link_window]),
            ipw.HBox(
                [self._params_box, ipw.VBox([self._histogram, self._quality_label])]
            ),
            ipw.HBox([self._add, self._clear, self._steps_label]),
            self._message,
            self._views,
        ]
        self._on_mode_change({"new": self.mode})

    # -------------------------------------------------------------- helpers
    @property
    def _kernel(self) -> KernelEditor:
        """The kernel editor, built the first time convolve needs it."""
        if self._kernel_editor is None:
            self._kernel_editor = KernelEditor()
            self._kernel_editor.observe(self._on_param_change, "kernel")
        return self._kernel_editor

    def _check_same_shape(self, other, name):
        if other is None:
            return None
        array = other.array if isinstance(other, MedImage) else np.asarray(other)
        if array.shape != self._image.array.shape:
            raise ValueError(
                f"{name} must have the image's shape {self._image.array.shape}; got "
                f"{array.shape}"
            )
        return array

    def _fit(self, array: np.ndarray) -> np.ndarray:
        if array.dtype == bool:
            return fit(array.astype(np.uint8), self._view_size).astype(bool)
        return fit(array, self._view_size)

    def _slice_image(self, index: int) -> MedImage:
        """The display-size 2D image the preview works on."""
        image = self._image
        array = image.array[index] if image.is_volume else image.array
        spacing = image.spacing[-2:]
        small = self._fit(array)
        factor = array.shape[0] / small.shape[0]
        return MedImage(
            small,
            spacing=tuple(s * factor for s in spacing),
            modality=image.modality,
            window=image.window,
            meta=image.meta,
        )

    def _slice_of(self, array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        if self._image.is_volume:
            array = array[self.slice_index]
        return self._fit(array)

    def _current_step(self) -> dict[str, Any]:
        return {"op": self.operation, "params": self.params}

    def _run(self, array: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        for step in self.recipe:
            array = get_operation(step["op"]).run(
                array, step["params"], spacing=spacing
            )
        return array

    # ------------------------------------------------------------ callbacks
    @traitlets.validate("operation")
    def _valid_operation(self, proposal):
        name = proposal["value"]
        op = get_operation(name)
        if op.stage != "processing":
            raise ValueError(f"{name} is a {op.stage} operation, not processing")
        return name

    @traitlets.observe("operation")
    def _on_operation_change(self, change) -> None:
        op = get_operation(change["new"])
        values = self._image.array
        value_range = (float(values.min()), float(values.max()))
        for control in self._controls.values():
            control.close()
        self._controls = controls_for(
            op.fn, value_range=value_range, units=self._before.unit
        )
        for control in self._controls.values():
            control.observe(self._on_param_change, "value")
        boxes = list(self._controls.values())
        if change["new"] == "convolve":
            boxes.append(self._kernel)
        self._params_box.children = boxes
        self._op.value = change["new"]
        self._link_window.value = op.keeps_units
        self._refresh()

    @traitlets.observe("mode")
    def _on_mode_trait(self, change) -> None:
        if change["new"] not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self._mode.value = change["new"]

    @traitlets.observe("swipe")
    def _on_swipe_trait(self, change) -> None:
        self._swipe.value = change["new"]
        self._draw_swipe()

    @traitlets.observe("slice_index")
    def _on_slice_trait(self, change) -> None:
        self._slice.value = change["new"]
        if self._image.is_volume:
            self._before.image = self._slice_image(change["new"])
        self._refresh()

    @traitlets.observe("show_original")
    def _on_show_original(self, change) -> None:
        self._flicker.value = change["new"]
        self._on_mode_change({"new": self.mode})

    def _on_op_change(self, change) -> None:
        if change["new"] != self.operation:
            self.operation = change["new"]

    def _on_mode_change(self, change) -> None:
        self.mode = change["new"]
        if self.mode == "side by side":
            self._views.children = [self._before, self._after]
        elif self.mode == "swipe":
            self._views.children = [ipw.VBox([self._swipe, self._swiped])]
            self._draw_swipe()
        else:
            shown = self._before if self.show_original else self._after
            self._views.children = [ipw.VBox([self._flicker, shown])]

    def _on_swipe_change(self, change) -> None:
        self.swipe = change["new"]

    def _on_flicker_change(self, change) -> None:
        self.show_original = change["new"]

    def _on_slice_change(self, change) -> None:
        self.slice_index = change["new"]

    def _on_link_change(self, change) -> None:
        if change["new"]:
            self._window_link = traitlets.link(
                (self._before, "window"), (self._after, "window")
            )
        elif self._window_link is not None:
            self._window_link.unlink()
            self._window_link = None
            self._after.preset = "auto"

    def _on_param_change(self, change) -> None:
        factor = self._drag_factor()
        if factor > 1 and self._settle_later():
            self._refresh(factor)
        else:
            self._refresh()

    def _on_settle(self) -> None:
        self._settle_timer = None
        if self._coarse > 1:
            self._refresh()

    def _drag_factor(self) -> int:
        """Coarsening per side that brings a move's preview within budget."""
        if self._full_ms <= self._drag_budget_ms:
            return 1
        if self._drag_budget_ms <= 0:
            return 2
        return min(
            4, max(2, math.ceil(math.sqrt(self._full_ms / self._drag_budget_ms)))
        )

    def _settle_later(self) -> bool:
        """Draw the full preview ``settle_s`` after the last move, if a loop runs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no kernel loop (a script, a test): draw it now
            return False
        if self._settle_timer is not None:
            self._settle_timer.cancel()
        self._settle_timer = loop.call_later(self._settle_s, self._on_settle)
        return True

    # -------------------------------------------------------------- drawing
    def _refresh(self, factor: int = 1) -> None:
        if not self._ready:
            return
        try:
            source = self._before.image
            if factor > 1 and source.array.ndim == 2:
                out = processing.coarse_preview(
                    self._run, source.array, factor=factor, spacing=source.spacing
                )
            else:
                factor = 1
                if self._settle_timer is not None:
                    self._settle_timer.cancel()
                    self._settle_timer = None
                start = time.perf_counter()
                out = self._run(source.array, source.spacing)
                self._full_ms = (time.perf_counter() - start) * 1000
            self._coarse = factor
            self._preview = out
            shown = out.astype(np.uint8) * 255 if out.dtype == bool else out
            window = self._before.window if self._link_window.value else None
            self._after.image = MedImage(
                shown,
                spacing=source.spacing,
                modality=source.modality,
                window=window or (127.5, 256.0),
                meta=source.meta,
            )
            if not self._link_window.value:
                self._after.preset = "auto"
            self._draw_histogram(shown)
            self._measure(out)
            self._steps_label.value = " → ".join(
                get_operation(s["op"]).label for s in self.recipe
            )
            self._draw_swipe()
            self._say("")
        except (ValueError, TypeError) as exc:
            self._say(str(exc))

    def _draw_histogram(self, values: np.ndarray) -> None:
        center, width = self._after.window
        lo, hi = center - width / 2, center + width / 2
        self._histogram.value = encode_png(histogram_image(values, (lo, hi)))

    def _measure(self, out: np.ndarray) -> None:
        quality: dict[str, float] = {}
        reference = self._slice_of(self._reference)
        same_units = all(get_operation(s["op"]).keeps_units for s in self.recipe)
        if reference is not None and same_units and out.shape == reference.shape:
            rng = float(reference.max() - reference.min()) or 1.0
            quality["PSNR (dB)"] = metrics.psnr(reference, out, data_range=rng)
            quality["SSIM"] = metrics.ssim(reference, out, data_range=rng)
        if self._rois is not None:
            a, b = (self._slice_of(np.asarray(r, np.uint8)) > 0 for r in self._rois)
            quality["CNR"] = metrics.cnr(out, a, b)
        self._quality = quality
        self._quality_label.value = "<br>".join(
            f"{k}: {v:.3g}" for k, v in quality.items()
        )

    def _draw_swipe(self) -> None:
        if self.mode != "swipe":
            return
        before, after = self._before.displayed, self._after.displayed
        if before is None or after is None or before.shape != after.shape:
            return
        with self._guard("draw the swipe"):
            # before left of the cut, after right of it: composition's swipe
            composite = swipe(before, after, position=self.swipe, axis=1)
            cols = composite.shape[1]
            composite[:, min(round(self.swipe * cols), cols - 1)] = 255  # the line
            self._swiped.value = encode_png(composite)
