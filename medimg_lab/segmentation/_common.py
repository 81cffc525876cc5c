"""Checks shared by the segmentation modules."""

from __future__ import annotations

import numpy as np

from .._checks import Spacing, check_image, check_spacing

__all__ = ["Spacing", "check_image", "check_mask", "check_seeds", "check_spacing"]


def check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    return check_image(mask, name).astype(bool, copy=False)


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
