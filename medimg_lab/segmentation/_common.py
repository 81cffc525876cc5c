"""Checks shared by the segmentation modules."""

from __future__ import annotations

import numpy as np

Spacing = tuple[float, ...] | None


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"{name} must be a 2D (M, N) image or a 3D (S, M, N) volume; got shape "
            f"{image.shape}"
        )
    if image.dtype.kind not in "uifb":
        raise ValueError(f"{name} must hold numbers; got dtype {image.dtype}")
    return image


def check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    return check_image(mask, name).astype(bool, copy=False)


def check_spacing(shape: tuple[int, ...], spacing: Spacing) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * len(shape)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != len(shape) or not all(s > 0 for s in spacing):
        raise ValueError(
            f"spacing must give {len(shape)} positive values in mm (one per axis of "
            f"shape {shape}); got {spacing}"
        )
    return spacing


def check_seeds(seeds, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Seeds as index tuples inside ``shape``."""
    seeds = [tuple(int(v) for v in s) for s in np.atleast_2d(np.asarray(seeds))]
    if not seeds or any(len(s) != len(shape) for s in seeds):
        raise ValueError(
            f"seeds must be one or more {len(shape)}-tuples of indices; got {seeds}"
        )
    for s in seeds:
        if not all(0 <= v < n for v, n in zip(s, shape, strict=True)):
            raise ValueError(f"seed {s} lies outside the image of shape {shape}")
    return seeds
