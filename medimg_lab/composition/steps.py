"""Composition as recipe steps: blend, fuse, register and stitch, replayable.

Each function here is a registered operation (:data:`medimg_lab.params.OPERATIONS`)
of the form ``fn(image, **params)``: the image the recipe is applied to is
``I1`` (the moving image, the first tile), and the other images, masks and
tiles are files that the step names by path and SHA-256
(:data:`~medimg_lab.params.FileRef`), so that a recipe saved as JSON replays
on one study or a thousand. The composition panel's explorers compute their
views with these same functions, and their ``.recipe`` names these steps.

- ``blend``: :func:`blend_step`, ``I = I1·M + I2·(1−M)`` with ``M`` the
  labels of the recipe's segmentation step or a saved mask, feathered in mm;
- ``fuse``: :func:`fuse_step`, a weighted, colour, checkerboard, difference
  or swipe view of the image and a second one;
- ``register``: :func:`register_step`, the image aligned onto a reference
  image (:func:`~medimg_lab.composition.register`);
- ``rigid_transform``: a known motion (:func:`~medimg_lab.composition.rigid_transform`);
- ``stitch``: :func:`stitch_step`, the image and more tiles in one mosaic.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from .._checks import Spacing
from .._files import read_array
from ..params import FileRef, Param, operation
from .fusion import (
    Colormap,
    Opacity,
    Position,
    Squares,
    Weight,
    WidthMm,
    blend,
    checkerboard,
    color_fuse,
    difference,
    difference_window,
    feather,
    fuse,
    swipe,
)
from .registration import (
    Interpolation,
    Iterations,
    Levels,
    Method,
    RansacPx,
    Ratio,
    Transform,
    register,
)
from .stitching import MinNcc, MinOverlap, SeamBlend, SeamLevels, stitch

__all__ = [
    "FUSION_MODES",
    "blend_step",
    "fuse_step",
    "register_step",
    "soft_mask",
    "stitch_step",
]

#: The views of :func:`fuse_step`.
FUSION_MODES = ("weighted", "colour", "checkerboard", "difference", "swipe")

#: A display window ``(center, width)`` in the image's units (the pair's
#: rule, width > 0, is checked where it is used).
Window = Annotated[
    tuple[float, ...] | None,
    Param(unit="image units", doc="display window (center, width)"),
]


def _windowed(array: np.ndarray, window: Window) -> np.ndarray:
    from ..display import apply_window

    if window is None:
        return array
    center, width = (float(v) for v in window)
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ValueError(
            f"a window must be (center, width) with width > 0; got {window!r}"
        )
    return apply_window(array, center, width)


def _auto(array: np.ndarray) -> np.ndarray:
    from ..display import apply_window, auto_window

    return apply_window(array, *auto_window(array))


@operation("composition", "Blend through a mask", keeps_units=False, name="blend")
def blend_step(
    image: np.ndarray,
    *,
    mask: Annotated[
        FileRef | None,
        Param(
            file="mask",
            doc="the mask M (a saved binary mask); default the labels > 0 of "
            "the recipe's segmentation",
        ),
    ] = None,
    other: Annotated[
        FileRef | None,
        Param(file="image", doc="I2, shown where M is 0; default the image itself"),
    ] = None,
    width_mm: WidthMm = 0.0,
    opacity: Opacity = 1.0,
    window: Window = None,
    other_window: Window = None,
    labels: np.ndarray | None = None,
    spacing: Spacing = None,
) -> np.ndarray:
    """``I = I1·M + I2·(1−M)``, with ``M = opacity · feather(mask, width_mm)``.

    Parameters
    ----------
    image : (M, N) ndarray
        ``I1``.
    mask : dict or ndarray, optional
        The binary mask ``M`` as a file (``{"path", "sha256"}``, ``.npy``,
        NIfTI or PNG) or an array; default ``labels > 0``.
    other : dict or ndarray, optional
        ``I2`` of the image's shape; default the image itself (two windows
        of one image in one picture).
    width_mm : float
        Width of the mask's soft edge in mm (:func:`~.fusion.feather`).
    opacity : float
        ``M`` inside the mask, in [0, 1].
    window, other_window : (center, width), optional
        Display windows of ``I1`` and ``I2`` in their units: given, the
        composite is in grey levels 0-255 (uint8); ``other_window`` defaults
        to ``window``.
    labels : ndarray, optional
        The labels of the recipe's segmentation step (the recipe passes
        them).
    spacing : tuple of float, optional
        mm per axis; ``None`` means 1 mm.

    Returns
    -------
    (M, N) ndarray
        uint8 with windows; otherwise as :func:`~.fusion.blend`.
    """
    image = np.asarray(image)
    if mask is None:
        if labels is None:
            raise ValueError(
                "blend needs a mask: give mask= (a saved mask) or put a "
                "segmentation step before it, whose labels are the mask"
            )
        binary = np.asarray(labels) > 0
    else:
        binary = read_array(mask, what="mask")
    second = image if other is None else read_array(other, what="image")
    i1 = _windowed(image, window)
    i2 = _windowed(second, window if other_window is None else other_window)
    return blend(i1, i2, soft_mask(binary, width_mm, opacity, spacing=spacing))


def soft_mask(
    mask: np.ndarray, width_mm: float, opacity: float, *, spacing: Spacing = None
) -> np.ndarray:
    """``M = opacity · feather(mask, width_mm)``: the mask :func:`blend_step` uses.

    Parameters
    ----------
    mask : ([S,] M, N) ndarray of bool
        The binary mask.
    width_mm : float
        Width of the soft edge in mm (:func:`~.fusion.feather`).
    opacity : float
        ``M`` inside the mask, in [0, 1].
    spacing : tuple of float, optional
        mm per axis; ``None`` means 1 mm.

    Returns
    -------
    ([S,] M, N) float32 ndarray
        Values in [0, opacity].
    """
    return feather(mask, width_mm=width_mm, spacing=spacing) * np.float32(opacity)


@operation("composition", "Fuse two images", keeps_units=False, name="fuse", ndim=(2,))
def fuse_step(
    image: np.ndarray,
    *,
    other: Annotated[FileRef, Param(file="image", doc="I2, the second image")],
    mode: Annotated[str, Param(choices=FUSION_MODES, doc="the view")] = "weighted",
    weight: Weight = 0.5,
    squares: Squares = 8,
    position: Position = 0.5,
    cmap: Colormap = "hot",
    opacity: Opacity = 0.6,
    layer_range: Annotated[
        tuple[float, ...] | None,
        Param(unit="layer units", doc="colour: layer values at the ends of the map"),
    ] = None,
    spacing: Spacing = None,
) -> np.ndarray:
    """The image and a second one of its shape in one view, in grey levels.

    ``weighted``: ``w·I1 + (1−w)·I2``; ``checkerboard``: alternate squares;
    ``swipe``: ``I1`` left of ``position``, ``I2`` right of it (each shown
    in its robust window, :func:`~medimg_lab.display.auto_window`);
    ``difference``: ``I1 − I2`` in the window
    :func:`~.fusion.difference_window` chooses from the pair;
    ``colour``: ``I2`` colour-mapped over the grey ``I1``
    (:func:`~.fusion.color_fuse`, RGB).

    Parameters
    ----------
    image : (M, N) ndarray
        ``I1``, the anatomy.
    other : dict or ndarray
        ``I2``: a file (``{"path", "sha256"}``) or an array of the image's shape.
    mode : str
        One of :data:`FUSION_MODES`.
    weight, squares, position, cmap, opacity : optional
        The view's options, as :func:`~.fusion.fuse`, :func:`~.fusion.checkerboard`,
        :func:`~.fusion.swipe` and :func:`~.fusion.color_fuse` declare them.
    layer_range : (low, high), optional
        ``colour``: layer values at the ends of the colour map.
    spacing : tuple of float, optional
        mm per axis (the difference window); ``None`` means 1 mm.

    Returns
    -------
    (M, N) uint8 ndarray, or (M, N, 3) for ``colour``
    """
    from ..display import apply_window

    base = np.asarray(image)
    layer = read_array(other, what="image")
    if mode == "colour":
        return color_fuse(
            base, layer, layer_range=layer_range, cmap=cmap, opacity=opacity
        )
    if mode == "difference":
        window = difference_window(base, layer, spacing=spacing)
        return apply_window(difference(base, layer), *window)
    i1, i2 = _auto(base), _auto(layer)
    if mode == "weighted":
        return fuse(i1, i2, weight)
    if mode == "checkerboard":
        return checkerboard(i1, i2, squares=squares)
    return swipe(i1, i2, position=position, axis=1)


@operation("composition", "Register to a reference", name="register", ndim=(2,))
def register_step(
    image: np.ndarray,
    *,
    reference: Annotated[
        FileRef, Param(file="image", doc="the fixed image the image is aligned onto")
    ],
    method: Method = "ecc",
    transform: Transform = "rigid",
    levels: Levels = 3,
    iterations: Iterations = 100,
    ratio: Ratio = 0.8,
    ransac_px: RansacPx = 3.0,
    interpolation: Interpolation = "cubic",
    spacing: Spacing = None,
) -> np.ndarray:
    """The image (moving) registered onto ``reference`` and resampled on its grid.

    :func:`~medimg_lab.composition.register` with the image as the moving
    image; its options are declared there, once.

    Parameters
    ----------
    image : (M, N) ndarray
        The moving image.
    reference : dict or ndarray
        The fixed image: a file (``{"path", "sha256"}``: ``.npy``, DICOM,
        NIfTI, PNG ...) or an array.
    method, transform, levels, iterations, ratio, ransac_px
        As :func:`~medimg_lab.composition.register` declares them
        (``ransac_px`` in pixels).
    interpolation : {"cubic", "linear", "nearest"}
        How the moving image is resampled once the motion is found.
    spacing : (float, float), optional
        mm per pixel of both images; ``None`` means 1 mm.

    Returns
    -------
    ndarray
        On the reference's grid; float32 unless ``interpolation="nearest"``.

    Raises
    ------
    RegistrationError
        If no transform is found (see :func:`~medimg_lab.composition.register`).
    """
    fixed = read_array(reference, what="reference image")
    found = register(
        fixed,
        np.asarray(image),
        method=method,
        transform=transform,
        spacing=spacing,
        levels=levels,
        iterations=iterations,
        ratio=ratio,
        ransac_px=ransac_px,
    )
    return found.apply(np.asarray(image), interpolation=interpolation)


@operation("composition", "Stitch tiles", name="stitch", ndim=(2,))
def stitch_step(
    image: np.ndarray,
    *,
    tiles: Annotated[
        list[FileRef], Param(file="image", doc="the other tiles, in any order")
    ],
    blend: SeamBlend = "feather",
    min_overlap: MinOverlap = 0.02,
    min_ncc: MinNcc = 0.8,
    levels: SeamLevels = 5,
    spacing: Spacing = None,
) -> np.ndarray:
    """The image (the first tile) and ``tiles`` stitched into one mosaic.

    :func:`~medimg_lab.composition.stitch` over ``[image, *tiles]``; its
    options are declared there, once.

    Parameters
    ----------
    image : (M, N) ndarray
        The first tile.
    tiles : list of dict or ndarray
        The other tiles, files (``{"path", "sha256"}``) or arrays.
    blend, min_overlap, min_ncc, levels
        As :func:`~medimg_lab.composition.stitch` declares them.
    spacing : (float, float), optional
        mm per pixel of the tiles.

    Returns
    -------
    ndarray
        The mosaic (:attr:`~medimg_lab.composition.Stitched.image`).
    """
    arrays = [np.asarray(image), *(read_array(t, what="tile") for t in tiles)]
    return stitch(
        arrays,
        blend=blend,
        min_overlap=min_overlap,
        min_ncc=min_ncc,
        levels=levels,
        spacing=spacing,
    ).image
