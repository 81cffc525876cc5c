"""Image quality and agreement metrics.

- Quality against a reference: PSNR, SSIM; contrast between regions: CNR.
- Segmentation against a reference mask: Dice, IoU, sensitivity,
  specificity, and surface distances in mm (Hausdorff, its 95th percentile,
  average symmetric surface distance), all honouring anisotropic spacing.
- What each figure means: :data:`MERITS` and :func:`describe`, so that every
  number shown carries its unit and what a good value is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MERITS",
    "Merit",
    "average_surface_distance",
    "cnr",
    "describe",
    "dice",
    "hausdorff",
    "hausdorff95",
    "iou",
    "psnr",
    "sensitivity",
    "specificity",
    "ssim",
]


@dataclass(frozen=True)
class Merit:
    """A figure of merit: its label, unit, digits shown and what is good.

    Attributes
    ----------
    label : str
        Its short name on screen (``"Dice"``).
    unit : str
        ``""`` for a ratio, else ``"mm"``, ``"dB"``, ``"nats"``.
    digits : int
        Decimals shown.
    good : str
        What a good value is, in words.
    """

    label: str
    unit: str
    digits: int
    good: str


MERITS: dict[str, Merit] = {
    "ncc": Merit("NCC", "", 3, "1 is a perfect match, 0 none"),
    "mi": Merit("MI", "nats", 3, "higher is better, at most the smaller image entropy"),
    "dice": Merit("Dice", "", 3, "1 is perfect agreement, 0 none"),
    "iou": Merit("IoU", "", 3, "1 is perfect agreement, 0 none"),
    "sensitivity": Merit("sensitivity", "", 3, "1 finds all of the reference"),
    "specificity": Merit("specificity", "", 3, "1 keeps all of the background"),
    "psnr": Merit("PSNR", "dB", 1, "higher is closer; above 40 dB hard to see"),
    "ssim": Merit("SSIM", "", 3, "1 is identical structure, 0 none"),
    "cnr": Merit("CNR", "", 2, "higher is clearer; below about 3 hard to see"),
    "hausdorff": Merit("Hausdorff", "mm", 2, "0 is perfect, lower is better"),
    "hausdorff95": Merit("HD95", "mm", 2, "0 is perfect, lower is better"),
    "average_surface_distance": Merit("ASSD", "mm", 2, "0 is perfect, lower is better"),
    "auc": Merit("AUC", "", 3, "1 is perfect, 0.5 is chance"),
}


def describe(name: str, value: float, *, best: float | None = None) -> str:
    """A figure with its unit and what is good, for a sentence on screen.

    Parameters
    ----------
    name : str
        A key of :data:`MERITS` ("ncc", "mi", "dice", ...).
    value : float
        The figure, in the unit of :data:`MERITS`.
    best : float, optional
        The best value this pair can reach, when it depends on the images
        (the smaller entropy for MI): shown as a share of it.

    Examples
    --------
    >>> describe("ncc", 0.98765)
    'NCC 0.988 (1 is a perfect match, 0 none)'
    >>> describe("mi", 1.2, best=1.5)
    'MI 1.200 nats (80 % of its top 1.500 nats; higher is better)'
    """
    if name not in MERITS:
        raise ValueError(f"name must be one of {', '.join(MERITS)}; got {name!r}")
    merit = MERITS[name]
    unit = f" {merit.unit}" if merit.unit else ""
    if value is None or not np.isfinite(value):
        return f"{merit.label} not defined here ({merit.good})"
    text = f"{merit.label} {value:.{merit.digits}f}{unit}"
    if best is not None and np.isfinite(best) and best > 0:
        share = 100 * value / best
        return (
            f"{text} ({share:.0f} % of its top {best:.{merit.digits}f}{unit}; "
            "higher is better)"
        )
    return f"{text} ({merit.good})"


def _pair(a, b, names: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of one shape, as ``dtype``; ``names`` says what they are."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"{names} must have the same shape; got {a.shape} and {b.shape}"
        )
    return a.astype(dtype), b.astype(dtype)


def _data_range(reference: np.ndarray, data_range: float | None) -> float:
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    if not data_range > 0:
        raise ValueError(
            f"data_range must be > 0; got {data_range} (a constant reference "
            "needs an explicit data_range)"
        )
    return float(data_range)


def psnr(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None
) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(R² / MSE)``.

    Parameters
    ----------
    reference, image : ndarray
        Same shape, same units.
    data_range : float, optional
        ``R``; default the reference's max - min.

    Returns
    -------
    float
        dB; ``inf`` for identical images.
    """
    reference, image = _pair(reference, image, "reference and image", np.float64)
    rng = _data_range(reference, data_range)
    mse = float(np.mean((reference - image) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(rng**2 / mse))


def ssim(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None
) -> float:
    """Mean structural similarity (Wang et al. 2004), 2D or slice-wise 3D.

    Parameters
    ----------
    reference, image : ([S,] M, N) ndarray
        Same shape, same units.
    data_range : float, optional
        The value range ``L`` of the SSIM constants; default the reference's
        max - min.

    Returns
    -------
    float
        In [-1, 1]; 1 for identical images.

    References
    ----------
    doi:10.1109/TIP.2003.819861
    """
    from skimage.metrics import structural_similarity

    reference, image = _pair(reference, image, "reference and image", np.float64)
    rng = _data_range(reference, data_range)
    return float(structural_similarity(reference, image, data_range=rng))


def cnr(image: np.ndarray, roi_a: np.ndarray, roi_b: np.ndarray) -> float:
    """Contrast-to-noise ratio between two regions.

    ``|mean_a - mean_b| / sqrt((var_a + var_b) / 2)``: the difference of the
    region means in units of their pooled standard deviation.

    Parameters
    ----------
    image : ndarray
    roi_a, roi_b : bool ndarray
        Masks of the image's shape, each with at least two pixels.

    Returns
    -------
    float
        Without unit; ``inf`` for distinct constant regions.
    """
    image = np.asarray(image, dtype=np.float64)
    values = []
    for name, roi in (("roi_a", roi_a), ("roi_b", roi_b)):
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != image.shape:
            raise ValueError(f"{name} must have the image's shape {image.shape}")
        if roi.sum() < 2:
            raise ValueError(f"{name} must cover at least two pixels")
        values.append(image[roi])
    a, b = values
    pooled = np.sqrt((a.var() + b.var()) / 2)
    if pooled == 0:
        return float("inf") if a.mean() != b.mean() else 0.0
    return float(abs(a.mean() - b.mean()) / pooled)


# ------------------------------------------------------------ segmentation


def _masks(mask: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _pair(mask, reference, "mask and reference", bool)


def _counts(mask, reference) -> tuple[int, int, int, int]:
    m, r = _masks(mask, reference)
    tp = int(np.count_nonzero(m & r))
    fp = int(np.count_nonzero(m & ~r))
    fn = int(np.count_nonzero(~m & r))
    tn = m.size - tp - fp - fn
    return tp, fp, fn, tn


def dice(mask: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)``; 1.0 when both are empty.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape (nonzero is inside).

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    """
    tp, fp, fn, _ = _counts(mask, reference)
    total = 2 * tp + fp + fn
    return 1.0 if total == 0 else 2 * tp / total


def iou(mask: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|A∩B| / |A∪B|``; 1.0 when both are empty.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape (nonzero is inside).

    Returns
    -------
    float
        In [0, 1].
    """
    tp, fp, fn, _ = _counts(mask, reference)
    union = tp + fp + fn
    return 1.0 if union == 0 else tp / union


def sensitivity(mask: np.ndarray, reference: np.ndarray) -> float:
    """True-positive rate ``TP / (TP + FN)``: the share of the reference found.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape (nonzero is inside).

    Returns
    -------
    float
        In [0, 1]; a ValueError for an empty reference.
    """
    tp, _, fn, _ = _counts(mask, reference)
    if tp + fn == 0:
        raise ValueError("sensitivity is undefined: the reference mask is empty")
    return tp / (tp + fn)


def specificity(mask: np.ndarray, reference: np.ndarray) -> float:
    """True-negative rate ``TN / (TN + FP)``: the share of the background kept.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape (nonzero is inside).

    Returns
    -------
    float
        In [0, 1]; a ValueError for a reference that covers everything.
    """
    _, fp, _, tn = _counts(mask, reference)
    if tn + fp == 0:
        raise ValueError("specificity is undefined: the reference covers everything")
    return tn / (tn + fp)


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def _surface_distances(
    mask: np.ndarray, reference: np.ndarray, spacing
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances in mm, from each surface to the other."""
    from scipy import ndimage

    m, r = _masks(mask, reference)
    if not m.any() or not r.any():
        raise ValueError(
            "surface distances need two non-empty masks; got an empty "
            + ("mask" if not m.any() else "reference")
        )
    spacing = (1.0,) * m.ndim if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != m.ndim or not all(s > 0 for s in spacing):
        raise ValueError(
            f"spacing must give {m.ndim} positive values in mm; got {spacing}"
        )
    sm, sr = _surface(m), _surface(r)
    to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_m = ndimage.distance_transform_edt(~sm, sampling=spacing)
    return to_r[sm], to_m[sr]


def hausdorff(mask: np.ndarray, reference: np.ndarray, *, spacing=None) -> float:
    """Hausdorff distance between the two surfaces, in mm.

    The largest distance from a surface point of either mask to the nearest
    surface point of the other.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape, neither empty.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    float
        mm.
    """
    a, b = _surface_distances(mask, reference, spacing)
    return float(max(a.max(), b.max()))


def hausdorff95(mask: np.ndarray, reference: np.ndarray, *, spacing=None) -> float:
    """95th-percentile Hausdorff distance in mm: robust to a few stray voxels.

    The larger of the two directed 95th percentiles (as in MONAI and the
    Medical Segmentation Decathlon).

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape, neither empty.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    float
        mm.
    """
    a, b = _surface_distances(mask, reference, spacing)
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def average_surface_distance(
    mask: np.ndarray, reference: np.ndarray, *, spacing=None
) -> float:
    """Average symmetric surface distance in mm: the mean over both surfaces.

    Parameters
    ----------
    mask, reference : ([S,] M, N) bool ndarray
        The segmentation and the truth, of one shape, neither empty.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    float
        mm.
    """
    a, b = _surface_distances(mask, reference, spacing)
    return float(np.concatenate([a, b]).mean())
