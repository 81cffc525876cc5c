"""Intensity clustering: k-means and a Gaussian mixture fitted by EM.

The mixture gives soft memberships ``a_i(x, y) = P(class i | value)``; with
``f_i`` the class means, ``u = Σ a_i f_i`` is the image as the model sees it.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..params import Param, Seed, declared, operation
from ._common import check_image

__all__ = ["gmm", "gmm_memberships", "kmeans"]

#: Number of classes of the clustering methods.
Classes = Annotated[int, Param(2, 8, 1, "classes", "number of classes")]

_FIT_SAMPLES = 200_000  # values used to fit; every pixel is then assigned


def _fit(model, values: np.ndarray):
    """``model.fit(values)`` on one thread.

    The fits are of at most :data:`_FIT_SAMPLES` values in 1D: OpenMP's
    threads only contend for the cores. Measured on the 2-core machine under
    the load of a test run: k-means of 5,000 values 1.8 s on the default
    threads, 0.05 s on one; of 200,000 values 3.0 s against 0.45 s; the
    mixture 0.38 s against 0.06 s and 2.9 s against 1.3 s.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return model.fit(values)


def _sample(image: np.ndarray, mask: np.ndarray | None, seed: int) -> np.ndarray:
    values = image[np.asarray(mask, bool)] if mask is not None else image.ravel()
    values = values.astype(np.float64)
    if values.size == 0:
        raise ValueError("the mask selects no pixel")
    if values.size > _FIT_SAMPLES:
        values = np.random.default_rng(seed).choice(values, _FIT_SAMPLES, replace=False)
    return values.reshape(-1, 1)


def _labels(image, mask, assign) -> np.ndarray:
    labels = np.zeros(image.shape, np.uint8)
    where = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
    labels[where] = assign(image[where].astype(np.float64))
    return labels


@operation("segmentation", "k-means")
def kmeans(
    image: np.ndarray,
    *,
    k: Classes = 3,
    seed: Seed = 0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster the intensities into ``k`` classes (Lloyd's k-means).

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    k : int
        Number of classes, in [2, 8].
    seed : int
        Seeds the initialisation and the fitting sample.
    mask : ([S,] M, N) bool ndarray, optional
        Pixels to cluster; labelled 0 outside.

    Returns
    -------
    ([S,] M, N) uint8 ndarray
        Labels ``1..k`` in order of increasing mean intensity, 0 outside
        ``mask``.
    """
    from sklearn.cluster import KMeans

    image = check_image(image)
    model = _fit(
        KMeans(n_clusters=k, n_init=4, random_state=seed), _sample(image, mask, seed)
    )
    centers = np.sort(model.cluster_centers_.ravel())
    cuts = (centers[1:] + centers[:-1]) / 2  # 1D: nearest center by midpoints
    return _labels(image, mask, lambda v: np.digitize(v, cuts) + 1)


@declared
def gmm_memberships(
    image: np.ndarray,
    *,
    k: Classes = 3,
    seed: Seed = 0,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft memberships ``a_i`` of a ``k``-class Gaussian mixture fitted by EM.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    k : int
        Number of classes, in [2, 8].
    seed : int
        Seeds the initialisation and the fitting sample.
    mask : ([S,] M, N) bool ndarray, optional
        Pixels to model; memberships are 0 outside.

    Returns
    -------
    memberships : (k, [S,] M, N) float32 ndarray
        ``a_i(x)``, summing to 1 over ``i`` inside the mask.
    means, sds : (k,) float ndarrays
        Class means ``f_i`` and standard deviations, in the image's units,
        classes ordered by mean.

    References
    ----------
    Dempster AP, Laird NM, Rubin DB. Maximum likelihood from incomplete data
    via the EM algorithm. J R Stat Soc B 1977. doi:10.1111/j.2517-6161.1977.tb01600.x
    """
    from sklearn.mixture import GaussianMixture

    image = check_image(image)
    model = _fit(
        GaussianMixture(n_components=k, random_state=seed, n_init=2),
        _sample(image, mask, seed),
    )
    order = np.argsort(model.means_.ravel())
    where = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
    memberships = np.zeros((k, *image.shape), np.float32)
    values = image[where].astype(np.float64).reshape(-1, 1)
    flat = memberships.reshape(k, -1)
    inside = np.flatnonzero(where.ravel())
    for start in range(0, inside.size, 1_000_000):  # bounded memory
        chunk = model.predict_proba(values[start : start + 1_000_000])[:, order]
        flat[:, inside[start : start + len(chunk)]] = chunk.T
    means = model.means_.ravel()[order]
    sds = np.sqrt(model.covariances_.reshape(k, -1)[:, 0])[order]
    return memberships, means, sds


@operation("segmentation", "Gaussian mixture (EM)")
def gmm(
    image: np.ndarray,
    *,
    k: Classes = 3,
    seed: Seed = 0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Labels ``1..k`` of the most probable mixture class (0 outside ``mask``).

    See :func:`gmm_memberships` for the soft memberships.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    k : int
        Number of classes, in [2, 8].
    seed : int
        Seeds the initialisation and the fitting sample.
    mask : ([S,] M, N) bool ndarray, optional
        Pixels to model; labelled 0 outside.

    Returns
    -------
    ([S,] M, N) uint8 ndarray
        Labels in order of increasing class mean.
    """
    memberships, _, _ = gmm_memberships(image, k=k, seed=seed, mask=mask)
    labels = (np.argmax(memberships, axis=0) + 1).astype(np.uint8)
    if mask is not None:
        labels[~np.asarray(mask, bool)] = 0
    return labels
