"""The Voila dashboards: applications for clinicians, built from the panels.

Each dashboard is one page (``notebooks/dashboards/<name>.ipynb``) over the
shared base in :mod:`._base` (the page's two-column frame, uploads, sample
picker, message line and exports):

- :class:`~.viewer.ViewerDashboard`: open a study, window it, measure.
- :class:`~.compare.CompareDashboard`: register two studies and compare them.
- :class:`~.segmentation.SegmentationDashboard`: segment, measure, export.

The panels (``medimg_lab.widgets.*``) never import this package.
"""

from .compare import CompareDashboard
from .segmentation import SegmentationDashboard
from .viewer import ViewerDashboard

__all__ = ["CompareDashboard", "SegmentationDashboard", "ViewerDashboard"]
