"""Argument checks shared by the algorithm modules."""

from __future__ import annotations

import numpy as np

Spacing = tuple[float, ...] | None


def check_image(
    image: np.ndarray, name: str = "image", *, finite: bool = False
) -> np.ndarray:
    """A 2D ``(M, N)`` image or 3D ``(S, M, N)`` volume of numbers.

    ``finite=True`` also refuses NaN and infinite values. Arrays that are not
    NumPy's but have a shape and dtype (a lazy dask array) are checked as
    they are, without computing them.
    """
    if not (hasattr(image, "dtype") and hasattr(image, "ndim")):
        image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"{name} must be a 2D (M, N) image or a 3D (S, M, N) volume; got shape "
            f"{image.shape}"
        )
    if image.dtype.kind not in "uifb":
        raise ValueError(f"{name} must hold numbers; got dtype {image.dtype}")
    if finite and image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(f"{name} holds NaN or infinite values; replace them first")
    return image


def check_spacing(shape: tuple[int, ...], spacing: Spacing) -> tuple[float, ...]:
    """Spacing in mm per axis of ``shape``; ``None`` means 1 mm."""
    if spacing is None:
        return (1.0,) * len(shape)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != len(shape) or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(
            f"spacing must give {len(shape)} positive values in mm (one per axis of "
            f"shape {shape}); got {spacing}"
        )
    return spacing
