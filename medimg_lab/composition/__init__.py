"""Stage 4, composition: combining images, once they are aligned.

The stage's formula is the mask composite

.. math:: I(x, y) = I_1(x, y) \\cdot M(x, y) + I_2(x, y) \\cdot (1 - M(x, y))

where :math:`M` is a binary or soft mask in ``[0, 1]``.

- :mod:`.fusion`: :func:`blend` (the formula), feathered masks in mm,
  weighted and colour fusion, Laplacian-pyramid (multiband) blending, and
  checkerboard, difference and swipe comparisons.
"""

from __future__ import annotations

from .fusion import (
    COLORMAPS,
    blend,
    checkerboard,
    color_fuse,
    difference,
    feather,
    fuse,
    legend,
    multiband_blend,
    swipe,
)

__all__ = [
    "COLORMAPS",
    "blend",
    "checkerboard",
    "color_fuse",
    "difference",
    "feather",
    "fuse",
    "legend",
    "multiband_blend",
    "swipe",
]
