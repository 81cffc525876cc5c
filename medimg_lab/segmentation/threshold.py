"""Thresholds: HU ranges and presets, Otsu and multi-Otsu."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..params import Param, declared, operation
from ._common import check_image

__all__ = [
    "HU_RANGES",
    "otsu_value",
    "threshold_multiotsu",
    "threshold_otsu",
    "threshold_preset",
    "threshold_range",
]

#: Typical CT ranges ``name: (low, high)`` in Hounsfield units, inclusive.
HU_RANGES: dict[str, tuple[float, float]] = {
    "bone": (300.0, 3000.0),
    "soft tissue": (-100.0, 300.0),
    "brain": (15.0, 60.0),
    "csf": (0.0, 15.0),
    "acute blood": (50.0, 90.0),
    "fat": (-190.0, -30.0),
    "lung": (-950.0, -400.0),
    "air": (-1024.0, -900.0),
}


@operation("segmentation", "Threshold range")
def threshold_range(
    image: np.ndarray,
    *,
    low: Annotated[
        float, Param(unit="image units", doc="lowest value kept", scale="level")
    ] = 300.0,
    high: Annotated[
        float, Param(unit="image units", doc="highest value kept", scale="level")
    ] = 3000.0,
) -> np.ndarray:
    """Keep the pixels with ``low <= value <= high``.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        Values in their units (HU for CT).
    low, high : float
        The range, inclusive; the defaults are bone, 300–3000 HU.

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    image = check_image(image)
    if not low <= high:
        raise ValueError(f"need low <= high; got low={low}, high={high}")
    return (image >= low) & (image <= high)


@operation("segmentation", "HU preset")
def threshold_preset(
    image: np.ndarray,
    *,
    preset: Annotated[
        str, Param(choices=tuple(HU_RANGES), doc="tissue range in HU")
    ] = "bone",
) -> np.ndarray:
    """Keep a named tissue's range of :data:`HU_RANGES`; the image must be in HU.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        CT values in HU.
    preset : str
        A name of :data:`HU_RANGES` (``"bone"``, ``"lung"`` ...).

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    low, high = HU_RANGES[preset]
    return threshold_range(image, low=low, high=high)


def _values(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    values = image if mask is None else image[np.asarray(mask, bool)]
    values = np.asarray(values).ravel()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        raise ValueError(
            "Otsu's threshold needs at least two different values in the image "
            "(or in the mask)"
        )
    return values


#: Histogram bins of Otsu's methods.
Bins = Annotated[int, Param(16, 4096, 16, "bins", "histogram bins")]


@declared
def otsu_value(
    image: np.ndarray, *, nbins: Bins = 256, mask: np.ndarray | None = None
) -> float:
    """Otsu's threshold (Otsu 1979), in the image's units.

    It maximises the between-class variance of the histogram.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        At least two different finite values (in ``mask``).
    nbins : int
        Histogram bins, in [16, 4096].
    mask : ([S,] M, N) bool ndarray, optional
        Only these pixels make the histogram.

    Returns
    -------
    float
        The threshold, in the image's units.

    References
    ----------
    Otsu N. A threshold selection method from gray-level histograms. IEEE
    Trans Syst Man Cybern 1979. doi:10.1109/TSMC.1979.4310076
    """
    from skimage.filters import threshold_otsu as skimage_otsu

    return float(skimage_otsu(_values(check_image(image), mask), nbins=nbins))


@operation("segmentation", "Otsu")
def threshold_otsu(
    image: np.ndarray,
    *,
    nbins: Bins = 256,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels above Otsu's threshold (:func:`otsu_value`).

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    nbins : int
        Histogram bins, in [16, 4096].
    mask : ([S,] M, N) bool ndarray, optional
        Only these pixels make the histogram.

    Returns
    -------
    ([S,] M, N) bool ndarray
        ``False`` outside ``mask`` when one is given.
    """
    image = check_image(image)
    out = image > otsu_value(image, nbins=nbins, mask=mask)
    return out if mask is None else out & np.asarray(mask, bool)


@operation("segmentation", "Multi-Otsu")
def threshold_multiotsu(
    image: np.ndarray,
    *,
    classes: Annotated[int, Param(2, 5, 1, "classes", "number of classes")] = 3,
    nbins: Bins = 256,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Labels ``1..classes`` by Otsu's criterion for several classes.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    classes : int
        Number of classes, in [2, 5].
    nbins : int
        Histogram bins, in [16, 4096].
    mask : ([S,] M, N) bool ndarray, optional
        Only these pixels make the histogram; the others are labelled 0.

    Returns
    -------
    ([S,] M, N) uint8 ndarray
        Labels in order of intensity, 0 outside ``mask``.

    References
    ----------
    Liao P-S et al. A fast algorithm for multilevel thresholding. J Inf Sci
    Eng 2001; 17: 713–727.
    """
    from skimage.filters import threshold_multiotsu as skimage_multiotsu

    image = check_image(image)
    thresholds = skimage_multiotsu(_values(image, mask), classes=classes, nbins=nbins)
    labels = (np.digitize(image, thresholds) + 1).astype(np.uint8)
    if mask is not None:
        labels[~np.asarray(mask, bool)] = 0
    return labels
