r"""Stage 2, segmentation: dividing an image into regions.

A segmentation assigns each pixel a membership of each class; soft methods
give memberships ``a_i(x, y)`` in ``[0, 1]``, and an image is described as

.. math:: u(x, y) = \sum_i a_i(x, y)\, f_i(x, y)

with ``f_i`` the description of class ``i`` (its mean intensity for a
Gaussian mixture, a feature vector for a pixel classifier).

- :mod:`.threshold`: HU ranges and presets, Otsu, multi-Otsu.
- :mod:`.region`: region growing from seeds, watershed from markers,
  Chan–Vese active contours.
- :mod:`.cluster`: k-means and a Gaussian mixture fitted by EM.
- :mod:`.morphology`: fill holes, keep the largest component, remove islands
  by size in mm² or mL, open and close with a radius in mm.
- :mod:`.measure`: area, volume and intensity statistics per label.
- :mod:`.classifier`: an ilastik-style pixel classifier trained from
  scribbles on a multi-scale feature bank (random forest, SVM, or a linear
  model whose weights are the ``a_i`` of ``u = Σ a_i f_i``).
"""

from __future__ import annotations

from .classifier import PixelClassifier, feature_bank, feature_names
from .cluster import gmm, gmm_memberships, kmeans
from .measure import measure
from .morphology import (
    binary_close,
    binary_open,
    fill_holes,
    keep_largest,
    remove_small,
)
from .region import chan_vese, region_grow, watershed
from .threshold import (
    HU_RANGES,
    otsu_value,
    threshold_multiotsu,
    threshold_otsu,
    threshold_preset,
    threshold_range,
)

__all__ = [
    "HU_RANGES",
    "PixelClassifier",
    "binary_close",
    "binary_open",
    "chan_vese",
    "feature_bank",
    "feature_names",
    "fill_holes",
    "gmm",
    "gmm_memberships",
    "keep_largest",
    "kmeans",
    "measure",
    "otsu_value",
    "region_grow",
    "remove_small",
    "threshold_multiotsu",
    "threshold_otsu",
    "threshold_preset",
    "threshold_range",
    "watershed",
]
