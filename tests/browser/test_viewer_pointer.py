"""ImageViewer's pointer events (ipyevents) in a real browser: Voila and JupyterLab.

``notebooks/viewer_probe.ipynb`` shows the 512 x 512 head CT in an
``ImageViewer`` at zoom 1:1, plus labels mirroring its ``readout``, ``clicked``
and ``window`` traits. First the screen must show the windowed array pixel
for pixel, which fixes where image pixel ``(row, col)`` is painted: at
``(x0 + col, y0 + row)``, ``(x0, y0)`` being the image's top left corner
snapped to whole pixels as Chromium paints it. Chromium then clicks the centre
of that screen pixel; the kernel must read the array pixel ``(row, col)`` and
its value in HU. A right-button drag must set the window that the viewer's
docstring promises, and the screen must then show that window, pixel for
pixel.

Each page is checked for tracebacks, the viewer's error sentences and console
errors, and (``page`` fixture) for requests leaving the machine.
"""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from medimg_lab.display import apply_window, preset

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000  # any single wait on a page
VIEWPORT = {"width": 1280, "height": 1024}  # the whole 512 px image in view
IMAGE = "img.widget-image"
# (row, col) probes, each unlike its 8 neighbours: a pixel off shows.
POINTS = {"brain": (294, 194), "bone": (365, 148), "air": (54, 260)}
# Page texts that mean a cell or a widget callback failed.
FAILURE_TEXTS = ("Traceback", "There was an error when executing cell", "Could not ")

# What an image element shows, as a key that changes with it: an <img>'s
# ``src``, or a viewer canvas's (widgets/canvas.js) count of paints.
SHOWN_JS = """(el) => el.tagName === 'CANVAS' ? 'frame ' + el.dataset.frame : el.src"""
# (rows, cols) of the image an <img> or a canvas holds.
NATURAL_JS = """(el) => el.tagName === 'CANVAS'
    ? [el.height, el.width] : [el.naturalHeight, el.naturalWidth]"""
# Whether an <img> is decoded or a canvas painted.
READY_JS = """(el) => el.tagName === 'CANVAS' ? Number(el.dataset.frame) > 0
    : Boolean(el.src && el.complete && el.naturalWidth > 0)"""


def _prepare(page) -> None:
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)


def _wait_for_viewer(page, selector: str = IMAGE):
    """The viewer's <img> (or canvas), once it shows a 512 x 512 image, at 1:1."""
    image = page.locator(selector)
    image.wait_for(state="visible")
    page.wait_for_function(
        f"""(el) => ({READY_JS})(el) && ({NATURAL_JS})(el)[1] === 512""",
        arg=image.element_handle(),
    )
    image.evaluate("(img) => img.scrollIntoView({block: 'center', inline: 'center'})")
    box = image.bounding_box()
    assert box is not None
    assert (box["width"], box["height"]) == (512, 512), f"not at 1:1: {box}"
    return image


def _painted(page, image) -> tuple[int, int]:
    """The screen pixel where the image's pixel (0, 0) is painted: (x, y).

    The layout may put the image at a fractional CSS position; Chromium paints
    it snapped to the nearest pixel, which is where a user sees and clicks.
    """
    box = image.bounding_box()
    return math.floor(box["x"] + 0.5), math.floor(box["y"] + 0.5)


def _grab(page, origin, path) -> np.ndarray:
    """The 512 x 512 screen pixels from ``origin``, as grey levels."""
    x, y = origin
    clip = {"x": x, "y": y, "width": 512, "height": 512}
    png = page.screenshot(path=str(path), clip=clip, animations="disabled")
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(bgr[..., 0], bgr[..., 2]), "a grey image came out coloured"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def _assert_shows(page, image, ct, window, path) -> np.ndarray:
    """Assert the screen shows the CT in ``window``, pixel for pixel, at 1:1."""
    shown = _grab(page, _painted(page, image), path)
    want = apply_window(ct.array, *window)
    mismatch = int(np.count_nonzero(shown != want))
    assert mismatch == 0, f"{mismatch} screen pixels differ from the window {window}"
    return shown


def _label(page, name: str) -> str:
    return page.locator(f".probe-{name}").inner_text().strip()


def _wait_for_label(page, name: str, pattern: str) -> str:
    """Wait until the ``.probe-<name>`` label matches ``pattern``; its text."""
    page.wait_for_function(
        """([sel, pattern]) => {
            const el = document.querySelector(sel);
            return el && new RegExp(pattern).test(el.textContent);
        }""",
        arg=[f".probe-{name}", pattern],
    )
    return _label(page, name)


def wait_for_pointer_at(page, row: int, col: int, slack: int = 1) -> None:
    """Wait until a viewer's readout names the pixel ``(row, col)`` (± ``slack``).

    A drag's moves reach the kernel throttled (40 ms) and late on a busy
    machine; the readout follows every move the kernel receives, so this
    waits for the last one instead of for a fixed time.
    """
    rows = "|".join(str(r) for r in range(row - slack, row + slack + 1))
    cols = "|".join(str(c) for c in range(col - slack, col + slack + 1))
    page.wait_for_function(
        """(pattern) => [...document.querySelectorAll('.widget-label')]
            .some((el) => new RegExp(pattern).test(el.textContent))""",
        arg=rf"\(row ({rows}), col ({cols})(, slice \d+)?\):",
    )


def _assert_this_python(page) -> None:
    """The kernel runs in this virtual environment."""
    assert _label(page, "python") == f"python {sys.prefix}"


def _preset(page) -> str:
    return page.locator(".widget-dropdown select").first.input_value()


def _assert_no_failure(page, errors: list[str]) -> None:
    text = page.locator("body").inner_text()
    for failure in FAILURE_TEXTS:
        assert failure not in text, f"{failure!r} on the page:\n{text[:3000]}"
    assert not errors, "console errors:\n" + "\n".join(errors)


def _click_pixels(page, image, ct) -> list[str]:
    """Click the centre of each probe pixel; check readout and value. Readouts."""
    x0, y0 = _painted(page, image)
    readouts = []
    for what, (row, col) in POINTS.items():
        page.mouse.click(x0 + col + 0.5, y0 + row + 0.5)
        clicked = _wait_for_label(page, "clicked", rf"^clicked \({row}, {col}\)$")
        assert clicked == f"clicked ({row}, {col})", what
        readout = _wait_for_label(page, "readout", rf"\(row {row}, col {col}\):")
        value = int(ct.array[row, col])
        dy, dx = ct.spacing
        where = f"x {col * dx:.1f} mm, y {row * dy:.1f} mm"
        assert readout == f"{where} (row {row}, col {col}): {value} HU", what
        readouts.append(readout)
    return readouts


def test_voila_viewer_click_reads_the_pixel(
    page, page_errors, voila_url, ct, artifacts
):
    _prepare(page)
    page.goto(voila_url)
    image = _wait_for_viewer(page)
    _assert_this_python(page)
    _assert_no_failure(page, page_errors)
    _assert_shows(page, image, ct, preset("brain"), artifacts / "voila_viewer.png")

    readouts = _click_pixels(page, image, ct)

    page.screenshot(path=str(artifacts / "voila_viewer_click.png"))
    values = [int(ct.array[r, c]) for r, c in POINTS.values()]
    assert 0 < values[0] < 80 and values[1] > 700 and values[2] < -900  # the tissues
    assert len(set(readouts)) == len(POINTS)
    _assert_no_failure(page, page_errors)


def test_voila_viewer_right_drag_changes_the_window(
    page, page_errors, voila_url, ct, artifacts
):
    _prepare(page)
    page.goto(voila_url)
    image = _wait_for_viewer(page)
    center, width = preset("brain")
    assert _label(page, "window") == f"window {center!r} {width!r}"
    assert _slider_readouts(page) == [f"{center:.0f}", f"{width:.0f}"]
    assert _preset(page) == "brain"
    before = _assert_shows(
        page, image, ct, (center, width), artifacts / "voila_drag_before.png"
    )
    src_before = image.get_attribute("src")

    # Right-drag 200 px right and 100 px up: the width and the center move by
    # the CT's value range per 1024 px (the viewer's docstring).
    x0, y0 = _painted(page, image)
    start = (x0 + 100, y0 + 300)
    per_px = float(ct.array.max() - ct.array.min()) / 1024
    want = (center + 100 * per_px, width + 200 * per_px)
    page.mouse.move(*start)
    page.mouse.down(button="right")
    page.mouse.move(start[0] + 200, start[1] - 100, steps=20)
    # Throttled moves (40 ms) trail: wait for the last one before releasing.
    _wait_for_label(page, "window", rf"^window {want[0]!r} {want[1]!r}$")
    page.mouse.up(button="right")
    page.mouse.move(x0 + 600, y0)  # off the image
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old",
        arg=[IMAGE, src_before],
    )
    page.wait_for_function("(sel) => document.querySelector(sel).complete", arg=IMAGE)

    assert image.get_attribute("src") != src_before  # a new PNG
    after = _assert_shows(page, image, ct, want, artifacts / "voila_drag_after.png")
    assert np.count_nonzero(after != before) > 10_000  # a visibly different image
    assert _slider_readouts(page) == [f"{want[0]:.0f}", f"{want[1]:.0f}"]
    assert _preset(page) == "custom"
    assert _label(page, "window") == f"window {want[0]!r} {want[1]!r}"
    page.screenshot(path=str(artifacts / "voila_viewer_drag.png"))
    _assert_no_failure(page, page_errors)


def _slider_readouts(page) -> list[str]:
    """The readouts of the viewer's center and width sliders."""
    return [
        page.locator(".widget-slider", has_text=name)
        .locator(".widget-readout")
        .inner_text()
        .strip()
        for name in ("center", "width")
    ]


def test_jupyterlab_viewer_click_reads_the_pixel(
    page, page_errors, jupyterlab, ct, artifacts
):
    _prepare(page)
    page.goto(jupyterlab.url("lab/workspaces/click/tree/viewer_probe.ipynb"))
    assert page.evaluate(RUN_ALL_CELLS, TIMEOUT_MS) == "python3"
    image = _wait_for_viewer(page)
    _assert_this_python(page)
    _assert_no_failure(page, page_errors)
    _assert_shows(page, image, ct, preset("brain"), artifacts / "jupyterlab_viewer.png")

    _click_pixels(page, image, ct)

    page.screenshot(path=str(artifacts / "jupyterlab_viewer_click.png"))
    _assert_no_failure(page, page_errors)


# Waits (at most ``ms``) for the notebook and its kernel, runs all cells; the
# kernel's name. Needs JupyterLab's --LabApp.expose_app_in_browser=True.
RUN_ALL_CELLS = """
async (ms) => {
  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));
  const run = async () => {
    let app;
    while (!(app = window.jupyterapp)) await sleep(100);
    await app.started;
    await app.restored;
    let panel;
    while (!((panel = app.shell.currentWidget) && panel.sessionContext)) {
      await sleep(100);
    }
    await panel.context.ready;
    await panel.sessionContext.ready;
    while (!panel.sessionContext.session?.kernel) await sleep(100);
    await app.commands.execute("notebook:run-all-cells");
    return panel.sessionContext.session.kernel.name;
  };
  const late = sleep(ms).then(() => {
    throw new Error(`no notebook with a kernel to run after ${ms} ms`);
  });
  return await Promise.race([run(), late]);
}
"""


STEP_WAIT_MS = 15_000  # for one step's answer; a step without one is counted


def _slow_drag(page, slider, image, label: str, pattern: str, steps: int, px: int):
    """Drag ``slider``'s handle ``steps`` times ``px`` px, waiting at each step.

    After each move that changed the page's slider value, wait for the
    kernel's ``.probe-<label>`` text to match ``pattern`` (formatted with the
    value) and then for the image to repaint. Returns (values the page sent,
    of them those the kernel held, of them those that repainted).
    """
    handle = slider.locator(".noUi-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    get = "(el) => Number(el.querySelector('.noUi-target').noUiSlider.get())"
    value = float(slider.evaluate(get))
    sent, held, painted = [], [], []
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, steps + 1):
        shown = image.evaluate(SHOWN_JS)
        page.mouse.move(x + i * px, y)
        new = slider.evaluate(get)
        if new == value:
            continue
        value = float(new)  # JSON sends 135.0 as 135
        sent.append(value)
        try:
            _wait_for_label_ms(page, label, pattern.format(value), STEP_WAIT_MS)
            held.append(value)
            page.wait_for_function(
                f"([el, old]) => ({SHOWN_JS})(el) !== old && ({READY_JS})(el)",
                arg=[image.element_handle(), shown],
                timeout=STEP_WAIT_MS,
            )
            painted.append(value)
        except PlaywrightTimeout:
            pass
    page.mouse.up()
    return sent, held, painted


def _wait_for_label_ms(page, name: str, pattern: str, ms: int) -> None:
    page.wait_for_function(
        """([sel, pattern]) => {
            const el = document.querySelector(sel);
            return el && new RegExp(pattern).test(el.textContent);
        }""",
        arg=[f".probe-{name}", pattern],
        timeout=ms,
    )


@pytest.mark.parametrize("where", ["jupyterlab", "voila"])
def test_a_slow_slider_drag_repaints_at_every_step(
    request, page, page_errors, where, artifacts
):
    _prepare(page)
    if where == "jupyterlab":
        lab = request.getfixturevalue("jupyterlab")
        page.goto(lab.url("lab/workspaces/slow-drag/tree/viewer_probe.ipynb"))
        assert page.evaluate(RUN_ALL_CELLS, TIMEOUT_MS) == "python3"
    else:
        page.goto(request.getfixturevalue("voila_url"))
    image = _wait_for_viewer(page)
    _assert_no_failure(page, page_errors)
    center = page.locator(".widget-slider", has_text="center")
    center.scroll_into_view_if_needed()
    sent, held, painted = _slow_drag(
        page, center, image, "window", r"^window {!r} 80\.0$", 15, 3
    )
    print(
        f"\n{where}: a slow drag of the center slider sent {len(sent)} values; "
        f"the kernel held {len(held)}, the image repainted {len(painted)}"
    )
    assert len(sent) >= 10  # 45 px of a 1 HU/step slider: many steps
    assert held == sent and painted == sent
    assert _label(page, "window") == f"window {sent[-1]!r} 80.0"  # the last, exact
    page.screenshot(path=str(artifacts / f"{where}_slow_drag.png"))
    _assert_no_failure(page, page_errors)


# Adds a cell at the end of the notebook in view, runs it, and waits for it.
ADD_AND_RUN_CELL = """
async (code) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  const notebook = panel.content;
  notebook.activeCellIndex = notebook.widgets.length - 1;
  await app.commands.execute("notebook:insert-cell-below");
  notebook.activeCell.model.sharedModel.setSource(code);
  await app.commands.execute("notebook:run-cell");
  const kernel = panel.sessionContext.session.kernel;
  while (notebook.activeCell.model.executionCount === null
         || kernel.status !== "idle") {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return notebook.widgets.length;
}
"""

VOLUME_VIEWER = """\
brain = ImageViewer(ml.data.sample("brain_mri"), box_size=400)
slice_label = ipw.Label()
slice_label.add_class("probe-slice")
ipw.dlink((brain, "slice_index"), (slice_label, "value"), lambda k: f"slice {k}")
ipw.VBox([brain, slice_label])
"""


def test_jupyterlab_slow_slice_drag_repaints_at_every_step(
    page, page_errors, jupyterlab, artifacts
):
    _prepare(page)
    # A workspace of its own, and the notebook closed unsaved at the end: the
    # added cell stays in this test.
    page.goto(jupyterlab.url("lab/workspaces/slow-slice/tree/viewer_probe.ipynb"))
    assert page.evaluate(RUN_ALL_CELLS, TIMEOUT_MS) == "python3"
    _wait_for_viewer(page)
    page.evaluate(ADD_AND_RUN_CELL, VOLUME_VIEWER)
    _wait_for_label(page, "slice", r"^slice 94$")
    cell = page.locator(".jp-CodeCell", has_text="brain = ImageViewer(").last
    slider = cell.locator(".widget-slider", has_text="slice (index)")
    slider.scroll_into_view_if_needed()
    image = cell.locator(IMAGE)
    sent, held, painted = _slow_drag(
        page, slider, image, "slice", r"^slice {:.0f}$", 20, 2
    )
    print(
        f"\njupyterlab: a slow drag of a volume's slice slider sent {len(sent)} "
        f"values; the kernel held {len(held)}, the image repainted {len(painted)}"
    )
    assert len(sent) >= 10
    assert held == sent and painted == sent
    assert _label(page, "slice") == f"slice {sent[-1]:.0f}"
    page.screenshot(path=str(artifacts / "jupyterlab_slow_slice_drag.png"))
    _assert_no_failure(page, page_errors)
    page.evaluate(CLOSE_UNSAVED)


CLOSE_UNSAVED = """
async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.shutdown();
  panel.context.model.dirty = false;
  panel.dispose();
}
"""
