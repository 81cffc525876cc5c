"""Every panel sends any exception of a callback to its message line.

A failure is injected (a RuntimeError, not the ValueError that the panels
used to catch alone) into what a callback computes; then the callback is fired
as the page fires it: a control's new value arrives as a front-end message
(``set_state``), a button's press calls its handlers, a pointer event comes
from ipyevents. Nothing may raise into the kernel (where ipywidgets would log
a traceback that the page never shows), and the message line holds one
sentence that says what could not be done and why, without the exception's
other lines, its type or a traceback.
"""

from __future__ import annotations

import medimg_lab.widgets.composition
import medimg_lab.widgets.dashboards.segmentation
import medimg_lab.widgets.dashboards.viewer
import medimg_lab.widgets.processing
import medimg_lab.widgets.segmentation
import numpy as np
import pytest
from medimg_lab.widgets import dashboards
from medimg_lab.widgets.composition import (
    BlendExplorer,
    FusionExplorer,
    RegistrationExplorer,
    StitchExplorer,
)
from medimg_lab.widgets.processing import ProcessingPanel
from medimg_lab.widgets.recognition import (
    BayesExplorer,
    ClassifierExplorer,
    LesionExplorer,
)
from medimg_lab.widgets.segmentation import CLASSIFIER, SegmentationPanel
from medimg_lab.widgets.viewer import ImageViewer

import medimg_lab.composition
import medimg_lab.display
import medimg_lab.recognition
import medimg_lab.segmentation
from medimg_lab import composition as C
from medimg_lab import data
from medimg_lab import recognition as rec
from medimg_lab.image import MedImage
from tests.helpers import user_moves

FAILURE = "the injected failure of this test"


def _boom(*args, **kwargs):
    raise RuntimeError(f"{FAILURE}.\nA second line that the page never shows")


@pytest.fixture(scope="module")
def ct():
    return data.sample("spine_ct")


@pytest.fixture
def inject(monkeypatch):
    """``inject(module, name)``: calling ``module.name`` raises a RuntimeError."""

    def patch(owner, name):
        monkeypatch.setattr(owner, name, _boom)

    return patch


def _says_it(message: str, html: str, action: str | None = None) -> None:
    assert FAILURE in message, message
    assert message.endswith(f"{FAILURE}."), message
    if action is not None:
        assert message.startswith(f"Could not {action}:"), message
    for leak in ("second line", "RuntimeError", "Traceback"):
        assert leak not in message and leak not in html, html
    assert "#b00" in html  # red: a problem


def _press(button) -> None:
    """A button press, each handler called as ipywidgets calls it (whose own
    catch would only log what escapes)."""
    for handler in button._click_handlers.callbacks:
        handler(button)


def _moved(control, value) -> None:
    """A new value of ``control`` from the page."""
    assert control.value != value  # a change, so that the callback runs
    control.set_state({"value": value})


# ------------------------------------------------------------------- viewer
def test_viewer(ct, inject):
    viewer = ImageViewer(ct)
    inject(medimg_lab.display, "apply_window")
    user_moves(viewer._center, 120.0)
    _says_it(viewer.message, viewer._message.value, "draw the image")


# --------------------------------------------------------------- processing
def test_processing_panel(ct, inject):
    panel = ProcessingPanel(ct, operation="gaussian")
    inject(medimg_lab.widgets.processing, "histogram_image")
    name = next(iter(panel._controls))
    control = panel._controls[name]
    _moved(control, control.max)
    _says_it(panel.message, panel._message.value, "draw the result")


def test_processing_panel_swipe(ct, inject):
    panel = ProcessingPanel(ct, operation="gaussian")
    inject(medimg_lab.widgets.processing, "swipe")
    panel._mode.set_state({"index": panel._mode.options.index("swipe")})  # a click
    assert panel.mode == "swipe"
    _says_it(panel.message, panel._message.value, "draw the swipe")


# ------------------------------------------------------------- segmentation
def test_segmentation_panel(ct, inject):
    panel = SegmentationPanel(ct, method="threshold_range")
    inject(medimg_lab.segmentation, "measure")
    _moved(panel._controls["low"], 250.0)
    _says_it(panel.message, panel.parts["message"].value, "draw the result")


def test_segmentation_panel_export(ct, inject, tmp_path):
    panel = SegmentationPanel(ct, method="threshold_range")
    inject(medimg_lab.widgets.segmentation, "save")
    panel._path.value = str(tmp_path / "mask.nii.gz")
    _press(panel._save)
    _says_it(panel.message, panel.parts["message"].value, "export the mask")


def test_segmentation_panel_brush_stroke(ct, inject):
    panel = SegmentationPanel(ct, method=CLASSIFIER)
    panel.tool = "brush"
    inject(medimg_lab.widgets.segmentation, "brush_pixels")
    panel.parts["viewer"].set_trait("stroke", ((20, 20), (21, 22)))  # a drag
    _says_it(panel.message, panel.parts["message"].value, "handle the stroke")


# -------------------------------------------------------------- composition
def test_blend_explorer(ct, inject):
    panel = BlendExplorer(ct)
    inject(medimg_lab.widgets.composition, "blend_step")
    _moved(panel._controls["opacity"], 0.5)
    _says_it(panel.message, panel._message.value, "draw the view")


def test_blend_explorer_click(ct, inject):
    panel = BlendExplorer(ct)
    panel.source = "circle"
    inject(medimg_lab.widgets.composition, "disc_mask")
    panel._viewer.set_trait("clicked", (30, 40))  # a click in the image
    _says_it(panel.message, panel._message.value, "draw the view")


def test_fusion_explorer(ct, inject):
    layer = MedImage(ct.array[::-1].copy(), ct.spacing, ct.modality)
    panel = FusionExplorer(ct, layer)
    inject(medimg_lab.widgets.composition, "fuse_step")
    _moved(panel._controls["weight"], 0.25)
    _says_it(panel.message, panel._message.value, "draw the view")


def test_registration_explorer(ct, inject):
    moving = MedImage(np.roll(ct.array, 3, axis=1), ct.spacing, ct.modality)
    panel = RegistrationExplorer(ct, moving)
    inject(C, "difference")
    _moved(panel._controls["shift_x_mm"], 1.0)
    _says_it(panel.message, panel._message.value, "draw the view")
    inject(C, "register")
    _press(panel.parts["register"])
    _says_it(panel.message, panel._message.value, "register")


def test_stitch_explorer(ct, inject):
    tiles, _ = C.cut_tiles(ct.array, grid=(1, 2), overlap=0.4, seed=0)
    panel = StitchExplorer(tiles, spacing=ct.spacing)
    inject(medimg_lab.composition, "stitch")
    _moved(panel._controls["min_ncc"], 0.5)
    _says_it(panel.message, panel._message.value, "draw the view")


# -------------------------------------------------------------- recognition
@pytest.fixture(scope="module")
def bayes():
    return BayesExplorer()


def test_bayes_explorer_prior_slider(bayes, inject):
    inject(medimg_lab.recognition, "posterior_maps")
    _moved(bayes._controls["CSF"], 0.25)
    _says_it(bayes.message, bayes._message.value)


def test_bayes_explorer_reset_button(bayes, inject):
    inject(medimg_lab.widgets.recognition, "rebalance_priors")
    _press(bayes._reset)
    _says_it(bayes.message, bayes._message.value, "reset the priors")


def test_classifier_explorer(inject):
    panel = ClassifierExplorer(
        rec.sample_patches(size=16, per_class=20, block=32, seed=0)
    )
    inject(medimg_lab.recognition, "evaluate")
    _moved(panel._folds, 3)
    _says_it(panel.message, panel._message.value, "draw the result")


def test_lesion_explorer(inject):
    panel = LesionExplorer()
    inject(medimg_lab.recognition, "lesion_roc")
    control = panel._controls["contrast"]
    _moved(control, control.min)
    _says_it(panel.message, panel._message.value, "draw the result")


# --------------------------------------------------------------- dashboards
def test_viewer_dashboard_ruler(ct, inject):
    dash = dashboards.ViewerDashboard(ct, box_size=256)
    inject(medimg_lab.widgets.dashboards.viewer, "distance_mm")
    dash._tool.set_state({"index": 1})  # the "ruler (mm)" button
    assert dash.tool == "ruler"
    viewer = dash.viewer
    for x in (10, 200):  # two clicks from ipyevents
        viewer._on_pointer_event(
            {
                "type": "click",
                "relativeX": x,
                "relativeY": 100,
                "boundingRectWidth": 256,
                "boundingRectHeight": 256,
            }
        )
    _says_it(dash.message, dash._message.value, "measure with the ruler")


def test_segmentation_dashboard_export(ct, inject):
    dash = dashboards.SegmentationDashboard(ct, box_size=256)
    inject(medimg_lab.widgets.dashboards.segmentation, "nifti_bytes")
    _press(dash._export_buttons["mask"])
    _says_it(dash.message, dash._message.value, "export the mask (NIfTI)")


def test_compare_dashboard_register(ct, inject):
    dash = dashboards.CompareDashboard(ct, box_size=256)
    inject(C, "register")
    _press(dash._register)
    _says_it(dash.message, dash._message.value, "register B onto A")
