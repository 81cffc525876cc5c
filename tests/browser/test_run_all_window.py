"""After Run All, the window the viewer shows is the window the kernel holds.

Issue 16 saw notebook 01's viewer say ``custom 40/1800`` after Run All while
its cell printed ``(400.0, 1800.0)``: a value the page sent back replaced one
the kernel had set. Here a copy of ``notebooks/01_processing.ipynb`` (in the
JupyterLab fixture's temporary root; the committed notebook is not touched),
with one cell added at its end that prints the first viewer's window and
preset, is run with Run All in Chromium. Once the kernel is idle, the
viewer's preset dropdown, its center and width sliders (the noUiSlider value
and the readout) must show exactly what that cell printed, and so must the
kernel after the page has had its say.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_viewer_pointer import RUN_ALL_CELLS

pytestmark = pytest.mark.browser

NOTEBOOK = "01_processing.ipynb"
FOLDER = "run_all_window"
TIMEOUT_MS = 240_000  # the whole notebook, on a loaded machine
SETTLE_MS = 30_000  # for the page to show what it was sent last
PROBE = "RUN-ALL-WINDOW"
PROBE_SOURCE = (
    f"print('{PROBE}', repr(viewer.window[0]), repr(viewer.window[1]), "
    "viewer.preset, viewer._center.readout_format, sep='|')"
)


@pytest.fixture(scope="module")
def lab_copy(jupyterlab):
    """A copy of notebook 01 with a last cell that prints the viewer's window."""
    repo = Path(__file__).resolve().parents[2]  # (tests/widgets has a conftest too)

    folder = jupyterlab.root / FOLDER
    folder.mkdir(exist_ok=True)
    notebook = json.loads((repo / "notebooks" / NOTEBOOK).read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "run-all-window-probe",
            "metadata": {},
            "outputs": [],
            "source": [PROBE_SOURCE],
        }
    )
    for cell in notebook["cells"]:  # the page must show what this run produced
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (folder / NOTEBOOK).write_text(json.dumps(notebook))
    return f"{FOLDER}/{NOTEBOOK}"


WAIT_IDLE = """
async (ms) => {
  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const end = Date.now() + ms;
  // Every code cell has run (an execution count) and the kernel is idle.
  const done = () => panel.content.widgets.every(
    (cell) => cell.model.type !== "code" || cell.model.executionCount !== null);
  while (!(done() && kernel.status === "idle")) {
    if (Date.now() > end) throw new Error(`not idle after ${ms} ms`);
    await sleep(100);
  }
  return panel.content.widgets.length;
}
"""

SCROLL_TO_VIEWER = """
async () => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  const index = notebook.widgets.findIndex((cell) => cell.model.sharedModel
      .getSource().includes('viewer = ImageViewer(ct, preset='));
  notebook.activeCellIndex = index;
  await notebook.scrollToItem(index, 'center');
  return index;
}
"""

# The first viewer's displayed window: the cell that makes it, its output's
# preset <select>, and the center and width sliders (noUiSlider value, readout).
SHOWN = """
() => {
  const cells = [...document.querySelectorAll('.jp-CodeCell')];
  const cell = cells.find((c) => c.querySelector('.jp-InputArea')
      ?.textContent.includes('viewer = ImageViewer(ct, preset='));
  const out = cell?.querySelector('.jp-OutputArea');
  if (!out || !out.querySelector('.noUi-target')) return null;
  const slider = (name) => [...out.querySelectorAll('.widget-slider')]
      .find((s) => s.querySelector('.widget-label').textContent.startsWith(name));
  const read = (name) => {
    const s = slider(name);
    return [Number(s.querySelector('.noUi-target').noUiSlider.get()),
            s.querySelector('.widget-readout').textContent.trim()];
  };
  return {
    preset: out.querySelector('.widget-dropdown select').value,
    center: read('center'),
    width: read('width'),
  };
}
"""


def _probe(page) -> tuple[float, float, str, str]:
    text = page.locator(".jp-OutputArea-output", has_text=PROBE).last.inner_text()
    line = next(x for x in text.splitlines() if x.startswith(PROBE))
    _, c, w, preset, fmt = line.strip().split("|")
    return float(c), float(w), preset, fmt


def _kernel_says(page) -> str:
    """What the kernel holds now, asked after the page's last messages."""
    return page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget
                .sessionContext.session.kernel;
            let text = '';
            const future = kernel.requestExecute({code});
            future.onIOPub = (msg) => {
                if (msg.header.msg_type === 'stream') text += msg.content.text;
            };
            await future.done;
            return text.trim();
        }""",
        PROBE_SOURCE,
    )


def test_run_all_shows_the_window_the_kernel_set(
    page, page_errors, jupyterlab, lab_copy, artifacts
):
    page.set_viewport_size({"width": 1366, "height": 768})
    page.set_default_timeout(TIMEOUT_MS)
    # A workspace of its own: the session's other JupyterLab tests do not
    # find this notebook's tabs restored in theirs.
    page.goto(jupyterlab.url(f"lab/workspaces/{FOLDER}/tree/{lab_copy}"))
    assert page.evaluate(RUN_ALL_CELLS, TIMEOUT_MS) == "python3"
    page.evaluate(WAIT_IDLE, TIMEOUT_MS)
    center, width, preset, fmt = _probe(page)
    assert (center, width, preset) == (400.0, 1800.0, "bone")  # cell 24 set it

    # JupyterLab renders only the cells in view (and their widgets when they
    # come into view): bring the viewer's cell into view, as a reader scrolls.
    page.evaluate(SCROLL_TO_VIEWER)
    page.wait_for_function(f"() => ({SHOWN})() !== null")
    page.evaluate(WAIT_IDLE, TIMEOUT_MS)  # whatever the new views sent is handled
    with contextlib.suppress(PlaywrightTimeout):  # else the assert says how
        page.wait_for_function(
            f"""(want) => {{
                const shown = ({SHOWN})();
                const near = (a, b) => Math.abs(a - b) <= 1e-12 * Math.abs(b);
                return shown.preset === want[2] && near(shown.center[0], want[0])
                    && near(shown.width[0], want[1]);
            }}""",
            arg=[center, width, preset],
            timeout=SETTLE_MS,
        )
    shown = page.evaluate(SHOWN)
    print(f"\nkernel: {center!r} {width!r} {preset}; page: {shown}")
    digits = int(re.fullmatch(r"\.(\d+)f", fmt).group(1))
    # What the page shows, exactly: the preset and the sliders' readouts.
    assert shown["preset"] == preset
    assert shown["center"][1] == f"{center:.{digits}f}"
    assert shown["width"][1] == f"{width:.{digits}f}"
    # The handles' positions: noUiSlider keeps a value as a share of its track,
    # so 1800 comes back as 1800.0000000000002; never shown, never more.
    assert shown["center"][0] == pytest.approx(center, rel=1e-12, abs=0)
    assert shown["width"][0] == pytest.approx(width, rel=1e-12, abs=0)
    # The page had its say (every echo of the run came back): the kernel
    # still holds the window its cells set, exactly.
    said = _kernel_says(page).split("|")
    assert said[1:4] == [repr(center), repr(width), preset]
    cell = page.locator(".jp-CodeCell", has_text="viewer = ImageViewer(ct, preset=")
    cell.scroll_into_view_if_needed()
    for size in ((1366, 768), (1920, 1080)):
        page.set_viewport_size(dict(zip(("width", "height"), size, strict=True)))
        cell.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"run_all_window_{size[0]}.png"))
    errors = [e for e in page_errors if "favicon" not in e]
    assert not errors, "console errors:\n" + "\n".join(errors)
    page.evaluate(SHUT_DOWN)  # the kernel and its tab, for the next tests


SHUT_DOWN = """
async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.sessionContext.shutdown();
  panel.context.model.dirty = false;
  panel.dispose();
}
"""
