"""What the page shows is what the kernel set: the viewer dashboard switching images.

Each image a clinician opens after the first must show at that image's own
default window (the header's, or the robust auto window), at its middle
slice, with an empty readout: the page's sliders, preset and painted pixels
are compared with the values the package gives for the same image. Each
answer of the kernel is waited for, never slept for.
"""

from __future__ import annotations

import pytest
from medimg_lab.widgets.viewer import NO_SPACING
from test_recognition_in_voila import _png
from test_viewer_dashboard_in_voila import (
    NOTEBOOK,
    READOUT,
    _choose_file,
    _clean,
    _click_pixel,
    _control,
    _readout,
    _select,
)
from test_viewer_drags import OPEN_LINE, STATUS, _open, _opened
from test_viewer_pointer import POINTS, _painted

import medimg_lab
from medimg_lab import data
from tests.helpers import dicom_file

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dashboard_url(dashboard_site) -> str:
    return dashboard_site + "voila/render/" + NOTEBOOK


def _wait_for_window(page, unit: str, window) -> None:
    """Wait until the center and width sliders hold ``window``, to their step.

    A slider holds values on its grid of steps: the window's own values,
    snapped to the nearest step (the image shows the window itself).
    """
    handles = [
        _control(page, "slider", f"{name} ({unit})").element_handle()
        for name in ("center", "width")
    ]
    page.wait_for_function(
        """([sliders, want]) => sliders.every((el, i) => {
            const s = el.querySelector('.noUi-target').noUiSlider;
            return Math.abs(Number(s.get()) - want[i]) <= s.options.step / 2 + 1e-9;
        })""",
        arg=[handles, list(window)],
    )


def _preset(page) -> str:
    return _control(page, "dropdown", "preset").locator("select").input_value()


def _no_readout(page) -> None:
    page.wait_for_function(
        """(pattern) => ![...document.querySelectorAll('.widget-label')]
            .some((el) => new RegExp(pattern).test(el.textContent))""",
        arg=READOUT.pattern,
    )


_NO_SPACING = f". {NO_SPACING}"


def _status(page) -> str:
    return page.locator(STATUS).inner_text().strip()


@pytest.mark.parametrize(
    ("sample", "modality"),
    [("chest_xray", "CR"), ("brain_mri", "MR"), ("spine_ct", "CT")],
)
def test_a_new_sample_shows_at_its_own_window_with_no_readout(
    page, page_errors, dashboard_url, artifacts, sample, modality
):
    image = _open(page, dashboard_url)
    _select(page, "preset", "bone")  # the old image's window, set by the user
    _wait_for_window(page, "HU", (400, 1800))
    _click_pixel(page, _painted(page, image), *POINTS["brain"], 1)
    _readout(page, r"\(row 294, col 194\): ")

    truth = data.sample(sample)
    _select(page, "or sample", f"{sample} ({modality})")
    _opened(page, truth)
    want, unit = truth.window, truth.unit
    _wait_for_window(page, unit, want)
    assert _preset(page) == "default"
    _no_readout(page)
    # The dashboard's line names the file and its unit with what it means;
    # the viewer's status line what the view was reset to.
    opened = page.locator(".widget-html", has_text=OPEN_LINE).inner_text().strip()
    assert f"values in {truth.unit_note})" in opened
    unknown = truth.meta["spacing_source"].startswith("unknown")
    assert opened.endswith(_NO_SPACING) == unknown
    status = _status(page)
    assert status.startswith(f"Shown at window {want[0]:.6g}/{want[1]:.6g} {unit} (")
    if truth.is_volume:
        n = truth.shape[0]
        assert f"axial slice {n // 2 + 1} of {n}" in status
    _, png = _png(image)
    assert png  # something is painted
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artifacts / f"viewer_dashboard_{sample}_{width}.png"))
    _clean(page, page_errors)


def test_an_uploaded_file_shows_at_its_header_window(page, page_errors, dashboard_url):
    image = _open(page, dashboard_url)
    _select(page, "preset", "brain")
    _wait_for_window(page, "HU", (40, 80))
    _click_pixel(page, _painted(page, image), *POINTS["air"], 1)
    _readout(page, r"\(row 54, col 260\): ")

    path = dicom_file("CT_small.dcm")
    small = medimg_lab.load(path)
    _choose_file(page, path)
    _opened(page, small)
    _wait_for_window(page, "HU", small.window)
    assert small.window == (-38.0, 1646.0)  # its robust auto window (no header's)
    assert "window -38/1646 HU (auto, from the value percentiles)" in _status(page)
    assert _preset(page) == "default"
    _no_readout(page)
    _clean(page, page_errors)
