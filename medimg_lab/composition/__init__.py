r"""Stage 4, composition: combining images, once they are aligned.

The stage's formula is the mask composite

.. math:: I(x, y) = I_1(x, y) \cdot M(x, y) + I_2(x, y) \cdot (1 - M(x, y))

where :math:`M` is a binary or soft mask in ``[0, 1]``.

- :mod:`.fusion`: :func:`blend` (the formula), feathered masks in mm,
  weighted and colour fusion, Laplacian-pyramid (multiband) blending, and
  checkerboard, difference and swipe comparisons.
- :mod:`.registration`: :func:`register` by phase correlation, ECC or
  ORB/AKAZE/SIFT features with RANSAC, multi-scale, with the transform in mm,
  the resampled image, NCC and mutual information; :func:`rigid_transform`
  moves an image by a known amount.
- :mod:`.stitching`: :func:`stitch` unordered overlapping tiles into a
  mosaic (pairwise phase correlation, a global least-squares placement,
  feathered or multiband seams), :func:`cut_tiles` for known-truth
  experiments, and :func:`hconcat`/:func:`vconcat` for the trivial case.
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
    pyramid_composite,
    swipe,
)
from .registration import (
    METHODS,
    TRANSFORMS,
    Registration,
    RegistrationError,
    akaze_available,
    mutual_information,
    ncc,
    register,
    rigid_transform,
)
from .stitching import Match, Stitched, cut_tiles, hconcat, stitch, vconcat

__all__ = [
    "COLORMAPS",
    "METHODS",
    "TRANSFORMS",
    "Match",
    "Registration",
    "RegistrationError",
    "Stitched",
    "akaze_available",
    "blend",
    "checkerboard",
    "color_fuse",
    "cut_tiles",
    "difference",
    "feather",
    "fuse",
    "hconcat",
    "legend",
    "multiband_blend",
    "mutual_information",
    "ncc",
    "pyramid_composite",
    "register",
    "rigid_transform",
    "stitch",
    "swipe",
    "vconcat",
]
