"""Measurements per label: size in mm² or mL, intensity statistics, extent.

The function lives in :mod:`medimg_lab._measure`, below the segmentation
stage and the SR writer of :mod:`medimg_lab.io`, which both use it.
"""

from __future__ import annotations

from .._measure import measure

__all__ = ["measure"]
