"""Composition: combining images.

The stage's formula is the mask composite

.. math:: I(x, y) = I_1(x, y) \\cdot M(x, y) + I_2(x, y) \\cdot (1 - M(x, y))

where :math:`M` is a binary or soft mask in ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["blend"]


def blend(i1: np.ndarray, i2: np.ndarray, mask: np.ndarray | float) -> np.ndarray:
    """Composite two images through a mask: ``I = I1·M + I2·(1−M)``.

    Parameters
    ----------
    i1, i2 : (M, N[, P][, 3]) ndarray
        The images; ``i1`` shows where the mask is 1, ``i2`` where it is 0.
        Their shapes must match.
    mask : (M, N[, P]) ndarray or float
        Weights in ``[0, 1]``: boolean, or float for soft (feathered) edges.
        A grey-level mask is applied to every colour channel of RGB images.

    Returns
    -------
    ndarray
        The composite, with the shape of ``i1``. Integer inputs of one dtype
        give that dtype back, rounded; otherwise the result is floating point
        (float32 when both inputs are float32).

    Examples
    --------
    >>> import numpy as np
    >>> blend(np.full(3, 10.0), np.zeros(3), np.array([1.0, 0.5, 0.0]))
    array([10.,  5.,  0.])
    """
    i1 = np.asarray(i1)
    i2 = np.asarray(i2)
    if i1.shape != i2.shape:
        raise ValueError(
            f"i1 and i2 must have the same shape; got {i1.shape} and {i2.shape}"
        )
    m = np.asarray(mask)
    if m.dtype == bool:
        m = m.astype(np.float32)
    if m.ndim and m.shape != i1.shape:
        if m.shape == i1.shape[:-1] and i1.shape[-1] == 3:
            m = m[..., np.newaxis]
        else:
            raise ValueError(
                f"mask must be a number or have the image's shape {i1.shape} "
                f"(or {i1.shape[:-1]} for RGB); got {m.shape}"
            )
    if not np.issubdtype(m.dtype, np.number) or (
        m.size and (np.nanmin(m) < 0 or np.nanmax(m) > 1 or np.isnan(m).any())
    ):
        raise ValueError("mask values must lie in [0, 1] (0 keeps i2, 1 keeps i1)")
    work = np.result_type(i1.dtype, i2.dtype, np.float32)
    m = m.astype(work, copy=False)
    out = i1.astype(work) * m + i2.astype(work) * (1 - m)
    if i1.dtype == i2.dtype and np.issubdtype(i1.dtype, np.integer):
        info = np.iinfo(i1.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(i1.dtype)
    return out
