"""Image quality and agreement metrics.

Quality against a reference (PSNR, SSIM) and contrast between regions (CNR).
Segmentation overlap metrics arrive with the segmentation stage.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cnr", "psnr", "ssim"]


def _pair(reference: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, image = np.asarray(reference), np.asarray(image)
    if reference.shape != image.shape:
        raise ValueError(
            f"reference and image must have the same shape; got {reference.shape} "
            f"and {image.shape}"
        )
    return reference.astype(np.float64), image.astype(np.float64)


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
    reference, image = _pair(reference, image)
    rng = _data_range(reference, data_range)
    mse = float(np.mean((reference - image) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(rng**2 / mse))


def ssim(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None
) -> float:
    """Mean structural similarity (Wang et al. 2004), 2D or slice-wise 3D.

    References
    ----------
    doi:10.1109/TIP.2003.819861
    """
    from skimage.metrics import structural_similarity

    reference, image = _pair(reference, image)
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
