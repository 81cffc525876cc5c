"""Interactive controls and stage panels for medimg-lab (ipywidgets).

This layer binds sliders, clicks and scribbles to the algorithms in
:mod:`medimg_lab`; it computes nothing of its own.

- :class:`ImageViewer`: the shared viewer every panel and dashboard reuses.
- :class:`ProcessingPanel`: stage 1, before/after with generated controls.
- :mod:`.controls`: one control per declared parameter.
- :mod:`.segmentation` and :mod:`.recognition`: the stage 2 and 3 panels,
  imported from their modules (recognition loads scikit-learn, so
  ``import medimg_lab.widgets`` stays light).
- :mod:`.dashboards`: the Voila dashboards, built from the panels.
"""

from .processing import KernelEditor, ProcessingPanel
from .viewer import PLANES, ImageViewer

__all__ = ["PLANES", "ImageViewer", "KernelEditor", "ProcessingPanel"]
