"""The in-memory image model shared by every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Perfusion maps named in ImageType's third and later values (DICOM PS3.3 C.8.2.1).
_CT_MAPS = {
    "RCBF": "cerebral blood flow (rCBF)",
    "RCBV": "cerebral blood volume (rCBV)",
    "MTT": "mean transit time (MTT)",
    "TTP": "time to peak (TTP)",
    "TMAX": "time to maximum (Tmax)",
}

__all__ = ["FromValues", "MedImage"]


class FromValues:
    """A window computed from the image's values the first time it is read.

    Pass one as ``window=`` (:data:`medimg_lab.display.AUTO_WINDOW` is the
    robust automatic window): ``compute(array)`` gives ``(center, width)``
    when the window is first read, not when the image is made. Loaders give
    it to images without a window in their header, so that a batch that
    never displays them never pays for it (0.6 ms of a chest film's load).

    Parameters
    ----------
    compute : callable
        ``compute(array) -> (center, width)``, in the array's units. A module
        function, so that an image still to compute it pickles (to a Dask
        worker, for example).
    """

    def __init__(self, compute) -> None:
        self.compute = compute

    def __repr__(self) -> str:
        return f"FromValues({getattr(self.compute, '__name__', self.compute)})"


def _checked_window(window: Any) -> tuple[float, float]:
    center, width = (float(v) for v in window)
    if not (math.isfinite(center) and math.isfinite(width) and width > 0):
        raise ValueError(
            f"window must be (center, width) with a positive finite width; got "
            f"{window!r}"
        )
    return center, width


class _Window:
    """The ``window`` field: checked when set, computed when :class:`FromValues`."""

    def __get__(self, image: MedImage | None, owner: type | None = None):
        if image is None:  # the dataclass's default
            return (0.5, 1.0)
        window = image.__dict__["_window"]
        if isinstance(window, FromValues):
            window = image.__dict__["_window"] = _checked_window(
                window.compute(image.array)
            )
        return window

    def __set__(self, image: MedImage, window: Any) -> None:
        image.__dict__["_window"] = (
            window if isinstance(window, FromValues) else _checked_window(window)
        )


@dataclass(eq=False)
class MedImage:
    """A medical image with its physical meaning.

    Parameters
    ----------
    array : (M, N) or (S, M, N) ndarray, or (..., 3) for RGB
        Pixel values in physical units where they exist: Hounsfield units for
        CT, scanner units for MR, detector values for radiographs. A volume's
        first axis is the slice axis.
    spacing : tuple of float
        Millimetres per pixel along each spatial axis, in array-axis order.
        The colour axis has none, which is how an RGB image is told apart
        from a volume of three columns.
    modality : str
        DICOM modality code (``"CT"``, ``"MR"``, ``"CR"``, ``"DX"``, ``"US"``,
        ``"OT"`` ...).
    window : (float, float) or FromValues
        Default display window as ``(center, width)`` in the array's units;
        a :class:`FromValues` (such as :data:`medimg_lab.display.AUTO_WINDOW`)
        computes it from the values when first read.
    meta : dict
        Non-identifying header facts. Patient identifiers never go here.
    source : str or None
        The path the image was read from, or ``None`` for bytes and computed
        images. :func:`medimg_lab.save` refuses to write over it.
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    modality: str = "OT"
    window: tuple[float, float] = _Window()  # type: ignore[assignment]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise TypeError(
                f"array must be a numpy.ndarray, got {type(self.array).__name__}"
            )
        spacing = tuple(float(s) for s in self.spacing)
        spatial = len(spacing)
        color = self.array.ndim == spatial + 1 and self.array.shape[-1] == 3
        if spatial not in (2, 3) or not (self.array.ndim == spatial or color):
            raise ValueError(
                f"array must be 2D or 3D (plus a last colour axis of 3) with one "
                f"spacing per spatial axis; got shape {self.array.shape} and "
                f"spacing {self.spacing!r}"
            )
        if not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(
                f"spacing must hold positive finite numbers in mm; got {self.spacing!r}"
            )
        self.spacing = spacing

    @property
    def is_color(self) -> bool:
        """True for an RGB image: one more axis than ``spacing``, of length 3."""
        return self.array.ndim == len(self.spacing) + 1

    @property
    def is_volume(self) -> bool:
        """True when the image has a slice axis."""
        return len(self.spacing) == 3

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self.array.shape

    @property
    def unit(self) -> str:
        """Unit of the values: "HU" for CT, ``meta["unit"]``, else "a.u."."""
        if self.is_color:
            return "RGB level"
        if self.meta.get("unit"):
            return str(self.meta["unit"])
        hu = self.modality == "CT" and self.meta.get("RescaleType", "HU") == "HU"
        return "HU" if hu else "a.u."

    @property
    def unit_note(self) -> str:
        """The unit with a few words on what it is, for a status line.

        "HU (Hounsfield units)" for CT; for arbitrary units ("a.u.") what the
        values are instead: MR signal, X-ray detector values, or a CT whose
        header gives no Hounsfield rescale (a derived map such as perfusion).

        Examples
        --------
        >>> from medimg_lab import data
        >>> data.sample("brain_mri").unit_note
        'a.u. (MR signal intensity: relative, no absolute scale)'
        >>> data.sample("perfusion_ct").unit_note.split(";")[0]
        'a.u. (CT perfusion map of cerebral blood flow (rCBF)'
        """
        unit = self.unit
        if unit == "HU":
            return "HU (Hounsfield units)"
        if unit == "RGB level":
            top = 255 if self.array.dtype == np.uint8 else float(np.max(self.array))
            return f"RGB level (0 to {top:g} per channel)"
        if unit == "probability":
            return "probability (0 to 1)"
        if unit != "a.u.":
            return unit
        kinds = {
            "MR": "MR signal intensity: relative, no absolute scale",
            "PT": "PET counts without an SUV rescale",
            "US": "ultrasound echo brightness",
            "OP": "camera brightness",
        }
        if self.modality in ("CR", "DX", "MG", "RF", "XA", "PX", "IO"):
            note = "X-ray detector values: relative, no physical unit"
        elif self.modality == "CT":
            types = self.meta.get("ImageType") or []
            types = types.split("\\") if isinstance(types, str) else list(types)
            types = [str(t).strip().upper() for t in types]
            maps = [_CT_MAPS[t] for t in types[2:] if t in _CT_MAPS]
            what = "CT perfusion map" if "PERFUSION" in types else "CT values"
            what += f" of {' and '.join(maps)}" if maps else ""
            rescale = str(self.meta.get("RescaleType") or "").strip()
            rescale = {"US": "unspecified", "": "not stated"}.get(rescale, rescale)
            note = f"{what}; rescale type {rescale}, not HU"
        else:
            note = kinds.get(
                self.modality, "arbitrary units: the file names no physical unit"
            )
        return f"a.u. ({note})"

    @property
    def voxel_volume_mm3(self) -> float:
        """Area of one pixel in mm² (2D) or volume of one voxel in mm³ (3D)."""
        return float(np.prod(self.spacing))

    def __repr__(self) -> str:
        spacing = " x ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"MedImage({self.modality}, shape={self.array.shape}, "
            f"dtype={self.array.dtype}, spacing={spacing} mm, "
            f"window=({self.window[0]:g}, {self.window[1]:g}))"
        )
