"""Drags, wheel notches and slider steps in the viewer dashboard, as a person makes.

Issue 16 saw "a 40 px right-drag moves the window by 1268 HU, and a 60 px
wheel or drag moves 89 slices". Here Chromium drives the viewer dashboard
(``notebooks/dashboards/viewer.ipynb`` on the session's ``make dashboard``
Voila) with Playwright's mouse and keyboard and checks the stated amounts:

- N wheel notches (``mouse.wheel(0, 100)`` each) move exactly N slices, and a
  trackpad's small deltas add up to one slice per 100 px;
- a drag of the slice slider moves ``px * (slices - 1) / track length``
  slices (within one), a track that gives every slice at least one px, and
  the step buttons move one slice each;
- a right-drag of N px on the image moves the width (right) and the center
  (up) by ``N * (max - min) / 1024`` of the image's own values, on a CT, an
  MR and a film, as painted (the canvas's ``data-window``);
- every keyboard step of a slider repaints the image; the time from the key
  to the repaint is printed (median of 20), not asserted.

Each answer of the kernel is waited for by a condition, never by a sleep: the
slice in force is read from the pointer readout after a pointer move made
after the gesture (the kernel handles the page's messages in order).
"""

from __future__ import annotations

import re
import statistics

import pytest
from medimg_lab.widgets.viewer import NO_SPACING
from test_recognition_in_voila import _wait_for_decoded
from test_viewer_dashboard_in_voila import (
    NOTEBOOK,
    READOUT,
    VIEW,
    VIEWPORT,
    _clean,
    _control,
    _select,
)
from test_viewer_pointer import TIMEOUT_MS

from medimg_lab import data

pytestmark = pytest.mark.browser

STATUS = ".medimg-status"  # the viewer's status line: "Shown at window ..."
OPEN_LINE = re.compile(r"^\s*Open: ")  # the dashboard's: the file and its unit
SLICE_LABEL = re.compile(r"^z [\d.]+ mm \((\d+) of (\d+)\)$")


@pytest.fixture(scope="module")
def dashboard_url(dashboard_site) -> str:
    return dashboard_site + "voila/render/" + NOTEBOOK


def _opened(page, image) -> None:
    """Wait until the dashboard's line says it opened ``image`` and the
    viewer's status line gives the view it was reset to."""
    shape = " × ".join(str(n) for n in image.shape)
    page.locator(
        ".widget-html",
        has_text=f" ({image.modality}, {shape}, values in {image.unit_note})",
    ).wait_for()
    c, w = image.window
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel)?.textContent.startsWith(text)",
        arg=[STATUS, f"Shown at window {c:.6g}/{w:.6g} {image.unit} ("],
    )


def _open(page, url):
    """The dashboard, its head CT painted; the viewer's <canvas>."""
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    image = page.locator(VIEW)
    _wait_for_decoded(page, image, 1)
    _opened(page, data.sample("head_ct"))
    return image


def _open_sample(page, name: str):
    """Pick sample ``name`` and wait for the viewer to say so; the sample."""
    truth = data.sample(name)
    _select(page, "or sample", f"{name} ({truth.modality})")
    _opened(page, truth)
    return truth


def _open_brain(page, url):
    image = _open(page, url)
    _open_sample(page, "brain_mri")
    _wait_for_slice(page, 94)
    image.scroll_into_view_if_needed()
    return image


def _slice_label(page):
    return page.get_by_text(SLICE_LABEL)


def _wait_for_slice(page, k: int) -> None:
    """Wait until the slice label reads slice index ``k``."""
    page.wait_for_function(
        "([el, want]) => el.textContent.includes(`(${want} of `)",
        arg=[_slice_label(page).element_handle(), k + 1],
    )


def _slice_in_force(page, image, toggle: list[int]) -> int:
    """The kernel's slice after every earlier gesture: move the pointer, read.

    The pointer goes to the other of two places; its readout names the slice
    the kernel holds once it has handled all that came before the move.
    """
    box = image.bounding_box()
    toggle[0] = 1 - toggle[0]
    fx = (0.3, 0.7)[toggle[0]]
    x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.5
    cols = 197  # the brain MRI's axial plane is 233 x 197
    col = int((x - box["x"] + 0.5) / box["width"] * cols)
    near = "|".join(str(c) for c in range(col - 1, col + 2))
    page.mouse.move(x, y)
    label = page.locator(".widget-label", has_text=READOUT).first
    page.wait_for_function(
        "([el, p]) => new RegExp(p).test(el.textContent)",
        arg=[label.element_handle(), rf"col ({near}), slice \d+\): "],
    )
    text = label.inner_text()
    k = int(re.search(r"slice (\d+)\): ", text).group(1))
    assert f"({k + 1} of 189)" in _slice_label(page).inner_text()
    return k


def test_n_wheel_notches_move_n_slices(page, page_errors, dashboard_url, artifacts):
    image = _open_brain(page, dashboard_url)
    toggle = [0]
    k = _slice_in_force(page, image, toggle)
    assert k == 94
    moved = []
    for notches in (1, 3, 5, -4):
        for _ in range(abs(notches)):
            page.mouse.wheel(0, 100 if notches > 0 else -100)
        now = _slice_in_force(page, image, toggle)
        moved.append(now - k)
        k = now
    print(f"\nwheel: notches (1, 3, 5, -4) moved {moved} slices")
    assert moved == [1, 3, 5, -4]
    # A trackpad: 25 deltas of 10 px are 250 px, two slices (and 50 px kept).
    for _ in range(25):
        page.mouse.wheel(0, 10)
    now = _slice_in_force(page, image, toggle)
    print(f"wheel: 25 x 10 px moved {now - k} slices")
    assert now - k == 2
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        image.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"viewer_slices_brain_{width}.png"))
    _clean(page, page_errors)


def test_a_slice_slider_drag_moves_its_stated_share(page, page_errors, dashboard_url):
    image = _open_brain(page, dashboard_url)
    slider = _control(page, "slider", "slice (index)")
    track = slider.locator(".noUi-target").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    per_px = 188 / track["width"]  # slices per px of track
    print(f"\nslice slider: track {track['width']:.0f} px, {per_px:.2f} slice/px")
    assert per_px <= 1, "a one-slice step must be one px or more of track"
    toggle = [0]
    k0 = _slice_in_force(page, image, toggle)
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=30)  # slowly, 2 px at a time
    page.mouse.up()
    k = int(slider.locator(".widget-readout").inner_text())
    _wait_for_slice(page, k)
    assert _slice_in_force(page, image, toggle) == k
    want = 60 * per_px
    print(f"slice slider: a 60 px drag moved {k - k0} slices (stated {want:.1f})")
    assert abs((k - k0) - want) <= 1
    # The step buttons: one slice each.
    forward = page.get_by_role("button", name="▶", exact=True)
    back = page.get_by_role("button", name="◀", exact=True)
    for _ in range(3):
        forward.click()
    back.click()
    assert _slice_in_force(page, image, toggle) == k + 2
    _clean(page, page_errors)


def _painted_window(image) -> tuple[float, float]:
    c, w = image.get_attribute("data-window").split()
    return float(c), float(w)


@pytest.mark.parametrize(
    ("name", "modality"),
    [("head_ct", "CT"), ("brain_mri", "MR"), ("chest_xray", "CR")],
)
def test_a_right_drag_moves_the_window_by_the_range_share(
    page, page_errors, dashboard_url, name, modality
):
    image = _open(page, dashboard_url)
    truth = data.sample(name) if name == "head_ct" else _open_sample(page, name)
    assert truth.modality == modality
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        "([el, want]) => el.dataset.window && el.dataset.window.split(' ')"
        ".every((v, i) => Math.abs(Number(v) - want[i]) <= 1e-9 * Math.abs(want[i]))",
        arg=[image.element_handle(), list(truth.window)],
    )
    c0, w0 = _painted_window(image)
    per_px = float(truth.array.max() - truth.array.min()) / 1024
    box = image.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x + 40, y - 20, steps=20)
    page.mouse.up(button="right")
    want = (c0 + 20 * per_px, w0 + 40 * per_px)
    page.wait_for_function(
        "([el, want]) => el.dataset.window.split(' ')"
        ".every((v, i) => Math.abs(Number(v) - want[i]) <= 1e-6 * Math.abs(want[i]))",
        arg=[image.element_handle(), list(want)],
    )
    c, w = _painted_window(image)
    print(
        f"\n{name}: a 40 px right, 20 px up drag moved the width by {w - w0:.4g} "
        f"and the center by {c - c0:.4g} {truth.unit} ({per_px:.4g} per px)"
    )
    assert c - c0 == pytest.approx(20 * per_px, rel=1e-6)
    assert w - w0 == pytest.approx(40 * per_px, rel=1e-6)
    assert _control(page, "dropdown", "preset").locator("select").input_value() == (
        "custom"
    )
    _clean(page, page_errors)


# Times, in the page, from each key press on a slider's handle to the next
# paint of the viewer's canvas (its data-frame counting up).
LATENCY = """
async ([handle, canvas, n, timeout]) => {
  const times = [];
  for (let i = 0; i < n; i++) {
    const frame = Number(canvas.dataset.frame);
    const painted = new Promise((resolve, reject) => {
      const observer = new MutationObserver(() => {
        if (Number(canvas.dataset.frame) > frame) {
          observer.disconnect();
          resolve(performance.now());
        }
      });
      observer.observe(canvas, {attributes: true, attributeFilter: ['data-frame']});
      setTimeout(() => reject(new Error(`no paint after key ${i}`)), timeout);
    });
    handle.focus();
    const start = performance.now();
    const key = {key: 'ArrowRight', bubbles: true};
    handle.dispatchEvent(new KeyboardEvent('keydown', key));
    times.push((await painted) - start);
  }
  return times;
}
"""


@pytest.mark.parametrize("name", ["center (a.u.)", "slice (index)"])
def test_each_slider_step_repaints_the_image(page, page_errors, dashboard_url, name):
    image = _open_brain(page, dashboard_url)
    # Point at the image first and wait for the readout, as a person looks
    # before moving: a move the page merges into one message with its answer
    # to the barrier of the opening (medimg_lab.widgets._sync) is taken as an echo and
    # set back (seen once in three runs; see the closing note).
    _slice_in_force(page, image, [0])
    slider = _control(page, "slider", name)
    readout = slider.locator(".widget-readout")
    before = float(readout.inner_text())
    times = page.evaluate(
        LATENCY,
        [
            slider.locator(".noUi-handle").element_handle(),
            image.element_handle(),
            20,
            60_000,
        ],
    )
    step = 1.0  # the brain MRI is 8-bit: its window and slice steps are 1
    page.wait_for_function(
        "([el, want]) => Math.abs(Number(el.textContent) - want) < 1e-9",
        arg=[readout.element_handle(), before + 20 * step],
    )
    if name.startswith("slice"):
        _wait_for_slice(page, int(before) + 20)
    print(
        f"\nslider {name!r}: key to repaint, median of 20: "
        f"{statistics.median(times):.1f} ms (min {min(times):.1f}, "
        f"max {max(times):.1f})"
    )
    assert len(times) == 20  # each step painted
    _clean(page, page_errors)


def test_the_opened_status_line_shows_with_units(
    page, page_errors, dashboard_url, artifacts
):
    image = _open(page, dashboard_url)
    status = page.locator(STATUS)
    opened = page.locator(".widget-html", has_text=OPEN_LINE)
    perfusion = _open_sample(page, "perfusion_ct")
    assert f"values in {perfusion.unit_note})" in opened.inner_text()
    assert "not HU" in opened.inner_text()
    assert "(from the header), axial slice 2 of 2." in status.inner_text()
    _open_sample(page, "chest_xray")
    assert opened.inner_text().strip().endswith(f". {NO_SPACING}")
    image.scroll_into_view_if_needed()
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artifacts / f"viewer_status_chest_{width}.png"))
    _clean(page, page_errors)
