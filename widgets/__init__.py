"""Interactive controls and stage panels for medimg-lab (ipywidgets).

This layer binds sliders, clicks and scribbles to the algorithms in
:mod:`medimg_lab`; it computes nothing of its own. The shared viewer and the
stage panels arrive with the stage issues.
"""
