"""The viewer's image drawn in the browser: window/level without a round trip.

:class:`WindowCanvas` is an anywidget ``<canvas>`` (``canvas.js``) that holds
one plane's values, already resampled to the shown size, and windows them in
the page. :class:`~.viewer.ImageViewer` built with ``render="browser"``
links its center and width sliders to it in the page (``jsdlink``): moving a
slider repaints at once, while the kernel follows (readout, state, exports).

The page's arithmetic is :func:`medimg_lab.display.apply_window`'s, bit for bit
(``canvas.js`` says how), and the label overlay is a table that
:func:`medimg_lab.display.overlay` itself fills in, so the browser shows what
:attr:`ImageViewer.displayed` computes in Python; the browser tests compare
the two pixel for pixel.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from medimg_lab import display

__all__ = ["WindowCanvas"]

#: Value types the page windows itself, by numpy dtype; others go as float32,
#: which is what :func:`display.apply_window` computes them in.
_KINDS = {np.dtype(np.uint8): "u1", np.dtype(np.uint16): "u2", np.dtype(np.int16): "i2"}
_serial = itertools.count(1)


class WindowCanvas(anywidget.AnyWidget):
    """One plane shown in the browser: values, window and overlay (see module)."""

    _esm = Path(__file__).with_name("canvas.js")

    #: Raw little-endian values, row-major, ``shape`` = (rows, cols).
    values = traitlets.Bytes(b"").tag(sync=True)
    kind = traitlets.Unicode("u1").tag(sync=True)  # u1, u2, i2, f4 or rgb
    shape = traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=(0, 0)).tag(
        sync=True
    )
    #: The window the sliders send (linked in the page).
    center = traitlets.Float(0.0).tag(sync=True)
    width = traitlets.Float(1.0).tag(sync=True)
    #: The window the kernel sends: (center, width, serial); the serial makes
    #: every send a change, so the last sent always wins in the page.
    window = traitlets.List([]).tag(sync=True)
    #: Overlay colour index per pixel (uint8, 0 = none) and the RGB of every
    #: (colour, grey level): ``(K, 256, 3)`` uint8.
    labels = traitlets.Bytes(b"").tag(sync=True)
    table = traitlets.Bytes(b"").tag(sync=True)

    def show_values(self, values: np.ndarray) -> None:
        """Show a grey plane's values, windowed in the page.

        Parameters
        ----------
        values : (M, N) ndarray
            In the image's units; integers up to 16 bits are sent as they
            are, other dtypes as float32.
        """
        values = np.asarray(values)
        kind = _KINDS.get(values.dtype, "f4")
        sent = np.dtype(np.float32 if kind == "f4" else values.dtype)
        with self.hold_sync():
            self.kind, self.shape = kind, values.shape[:2]
            self.values = values.astype(sent.newbyteorder("<"), copy=False).tobytes()

    def show_rgb(self, rgb: np.ndarray) -> None:
        """Show a ``(H, W, 3)`` uint8 RGB image as it is, windowed in the kernel.

        Parameters
        ----------
        rgb : (H, W, 3) array_like
            Converted to uint8.
        """
        rgb = np.asarray(rgb, dtype=np.uint8)
        with self.hold_sync():
            self.kind, self.shape = "rgb", rgb.shape[:2]
            self.values, self.labels = np.ascontiguousarray(rgb).tobytes(), b""

    def show_window(self, center: float, width: float) -> None:
        """Window the values with ``(center, width)``, sent even if unchanged.

        Parameters
        ----------
        center, width : float
            The window, in the values' units.
        """
        self.window = [float(center), float(width), next(_serial)]

    def show_overlay(self, labels: np.ndarray | None, opacity: float) -> None:
        """Draw ``labels`` (0 = none; the shown plane's size) at ``opacity``.

        Parameters
        ----------
        labels : (M, N) int ndarray or None
            Labels of the shown plane; None or all 0 removes the overlay.
        opacity : float
            In [0, 1].
        """
        tables = None if labels is None else display.overlay_table(labels, opacity)
        if tables is None:
            self.labels = self.table = b""
            return
        index, table = tables
        with self.hold_sync():
            self.table = np.ascontiguousarray(table, dtype=np.uint8).tobytes()
            self.labels = np.ascontiguousarray(index).tobytes()
