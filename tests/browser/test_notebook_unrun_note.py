"""The teaching notebooks, opened in JupyterLab before they are run (issue 16, item 5).

The notebooks are committed executed without widget state: a widget's output
holds its view (``application/vnd.jupyter.widget-view+json``, a model id) and
nothing the page can draw until a kernel has run the cell again. A fresh
clone's notebook is not trusted, and JupyterLab shows an untrusted output only
in a safe MIME type: an output that holds no more than the widget view is
drawn as nothing, an empty cell with no hint (what was seen). A trusted one
would be drawn by the widget manager as "Error displaying widget: model not
found".

Each widget says, in its output's ``text/plain`` and ``text/html``, that the
cell must run (``medimg_lab.widgets._panel.NotebookNote``). These tests open each of the
seven teaching notebooks, copied to JupyterLab's temporary root so that no file
of the repository changes, WITHOUT running it, and assert that every widget
output shows that note and no error. Then one notebook (``01_processing``, the
quickest) is run: each note must give way to its widget, drawn by the widget
manager. Voila, which runs the notebook before it shows it, must show the
widget and no note.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from medimg_lab.widgets._panel import NOTEBOOK_NOTE
from medimg_lab.widgets.processing import ProcessingPanel
from test_viewer_pointer import TIMEOUT_MS, _assert_no_failure

from medimg_lab.data import sample

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
TEACHING = sorted((REPO / "notebooks").glob("0*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FOLDER = "teaching"  # under JupyterLab's temporary root
ERROR = "Error displaying widget"
RUN = "01_processing.ipynb"

# Waits (at most ``ms``) for notebook ``path``, its kernel idle and its cells
# drawn; returns, for each code cell with outputs, its index, whether the
# front end trusts it, and the MIME types of its outputs.
NOTEBOOK_READY = """
async ([path, ms]) => {
  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));
  const ready = async () => {
    let app;
    while (!(app = window.jupyterapp)) await sleep(100);
    await app.started;
    await app.restored;
    let panel;
    while (!((panel = app.shell.currentWidget) && panel.sessionContext
             && panel.context.path === path)) {
      await sleep(100);
    }
    await panel.context.ready;
    await panel.sessionContext.ready;
    let kernel;
    while (!((kernel = panel.sessionContext.session?.kernel)
             && kernel.status === "idle")) await sleep(100);
    await panel.content.fullyRendered?.promise;
    const cells = [];
    panel.content.widgets.forEach((cell, index) => {
      const model = cell.model;
      if (model.type !== "code" || model.outputs.length === 0) return;
      const mimes = [];
      for (let i = 0; i < model.outputs.length; i++) {
        mimes.push(Object.keys(model.outputs.get(i).data));
      }
      cells.push({index, trusted: model.trusted, mimes});
    });
    return cells;
  };
  const late = sleep(ms).then(() => {
    throw new Error(`no notebook with an idle kernel after ${ms} ms`);
  });
  return await Promise.race([ready(), late]);
}
"""

# Runs all cells of the open notebook; resolves when the last one is done.
RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute("notebook:run-all-cells");
  return app.shell.currentWidget.sessionContext.session.kernel.name;
}"""


def widget_cells(path: Path) -> list[int]:
    """Indices of the cells of notebook ``path`` whose outputs hold a widget view."""
    cells = json.loads(path.read_text())["cells"]
    return [
        i
        for i, cell in enumerate(cells)
        if any(WIDGET_VIEW in out.get("data", {}) for out in cell.get("outputs", []))
    ]


@pytest.fixture(scope="module")
def lab_notebooks(jupyterlab) -> Path:
    """The seven teaching notebooks, copied into JupyterLab's temporary root."""
    folder = jupyterlab.root / FOLDER
    folder.mkdir(exist_ok=True)
    for path in TEACHING:
        shutil.copy2(path, folder / path.name)
    return folder


def _open(page, jupyterlab, name: str, viewport: dict[str, int]) -> list[dict]:
    page.set_viewport_size(viewport)
    page.set_default_timeout(TIMEOUT_MS)
    # ``reset``: a fresh workspace, without the tabs that earlier tests opened
    workspace = f"lab/workspaces/unrun-{name.split('.')[0]}"  # left to no later test
    page.goto(jupyterlab.url(f"{workspace}/tree/{FOLDER}/{name}") + "&reset")
    return page.evaluate(NOTEBOOK_READY, [f"{FOLDER}/{name}", TIMEOUT_MS])


def _show(page, index: int) -> list[str]:
    """Scroll cell ``index`` into view; the texts of its outputs, once drawn."""
    return page.evaluate(SHOW_CELL, [index, TIMEOUT_MS])


def _output(page, index: int):
    """Cell ``index``'s output area, in view."""
    _show(page, index)
    area = page.locator(f'[data-cell-index="{index}"] .jp-OutputArea')
    area.scroll_into_view_if_needed()
    return area


def test_the_note_stands_in_for_the_repr_and_keeps_the_view():
    """The bundle: the view as ipywidgets gives it, the note as text and HTML."""
    panel = ProcessingPanel(sample("spine_ct"), operation="gaussian", view_size=64)
    bundle = panel._repr_mimebundle_()
    assert bundle[WIDGET_VIEW] == {
        "version_major": 2,
        "version_minor": 0,
        "model_id": panel.model_id,
    }
    assert bundle["text/plain"] == NOTEBOOK_NOTE
    assert NOTEBOOK_NOTE in bundle["text/html"]
    assert "ProcessingPanel(" in repr(panel)  # repr() itself is ipywidgets'


def test_every_teaching_notebook_has_widget_cells_to_check():
    """The notebooks below are the seven of the course, and six show widgets."""
    assert [p.name[:2] for p in TEACHING] == ["00", "01", "02", "03", "04", "05", "06"]
    with_widgets = [p.name for p in TEACHING if widget_cells(p)]
    assert len(with_widgets) == 6, with_widgets


# Scrolls cell ``index`` of the open notebook into view (JupyterLab attaches a
# cell to the page only near the view) and waits until it has drawn all its
# outputs; tags its node with ``data-cell-index``, for a locator; returns the
# text of each output as drawn (an output that JupyterLab cannot show is an
# empty, bare widget). That the text is on screen is checked apart.
SHOW_CELL = """
async ([index, ms]) => {
  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));
  const notebook = window.jupyterapp.shell.currentWidget.content;
  const cell = notebook.widgets[index];
  const deadline = Date.now() + ms;
  const outputs = () => cell.node.querySelectorAll(
    ".jp-OutputArea > :not(.jp-OutputArea-promptOverlay)");
  await notebook.scrollToItem(index, "center");
  while (!(cell.node.isConnected
           && outputs().length === cell.model.outputs.length)) {
    if (Date.now() > deadline) throw new Error(`cell ${index} not drawn in ${ms} ms`);
    await sleep(100);
  }
  cell.node.dataset.cellIndex = String(index);
  return [...outputs()].map((output) => output.textContent.trim());
}
"""


def _widget_class(path: Path, index: int) -> str:
    """The class of the widget that cell ``index`` of ``path`` displays."""
    source = "".join(json.loads(path.read_text())["cells"][index]["source"])
    shown = re.search(r"display\((\w+)", source)
    made = shown and re.search(rf"{shown[1]} = (\w+)\(", source)
    return made[1] if made else "?"


@pytest.mark.parametrize("path", TEACHING, ids=[p.stem for p in TEACHING])
def test_widget_cells_opened_before_run_show_the_note(
    page, page_errors, jupyterlab, lab_notebooks, path, artifacts
):
    expected = widget_cells(path)
    cells = _open(page, jupyterlab, path.name, {"width": 1366, "height": 768})
    shown = {c["index"]: c for c in cells}
    assert set(expected) <= set(shown), f"widget cells not drawn: {expected}"
    problems = []
    for index in expected:
        cell, outputs = shown[index], _show(page, index)
        assert not cell["trusted"], f"cell {index} is trusted, as no fresh clone is"
        for mimes, text in zip(cell["mimes"], outputs, strict=True):
            if WIDGET_VIEW in mimes and (text != NOTEBOOK_NOTE or ERROR in text):
                widget = _widget_class(path, index)
                problems.append(
                    f"cell {index} ({widget}) shows {text!r}; is medimg_lab."
                    "widgets._panel.NotebookNote a base of its class, and was "
                    "the notebook executed since?"
                )
    if path.name == RUN:  # screenshots, before any verdict
        _output(page, expected[0])
        page.screenshot(path=str(artifacts / "unrun_note_1366x768.png"))
        page.set_viewport_size({"width": 1920, "height": 1080})
        _output(page, expected[0])
        page.screenshot(path=str(artifacts / "unrun_note_1920x1080.png"))
    assert not problems, f"{path.name}, opened before run:\n" + "\n".join(problems)
    page.set_viewport_size({"width": 1366, "height": 768})
    for index in expected:  # what a person sees: the note on screen, in view
        note = _output(page, index).get_by_text(NOTEBOOK_NOTE, exact=True)
        for k in range(note.count()):
            note.nth(k).wait_for(state="visible")
            box = note.nth(k).bounding_box()
            assert box and box["width"] > 100 and box["height"] > 5, f"{index}: {box}"
    _assert_no_failure(page, page_errors)


def test_running_the_notebook_replaces_each_note_by_its_widget(
    page, page_errors, jupyterlab, lab_notebooks, artifacts
):
    expected = widget_cells(lab_notebooks / RUN)
    _open(page, jupyterlab, RUN, {"width": 1366, "height": 768})
    assert page.evaluate(RUN_ALL) == "python3"
    for index in expected:
        area = _output(page, index)
        widget = area.locator(".jp-OutputArea-output .jupyter-widgets").first
        widget.wait_for(state="visible")
        area.locator("img.widget-image, canvas").first.wait_for(state="visible")
        text = area.inner_text()
        assert NOTEBOOK_NOTE not in text, f"cell {index} still shows the note"
        assert ERROR not in text, f"cell {index}: {text!r}"
    _output(page, expected[0])
    page.screenshot(path=str(artifacts / "unrun_note_after_run_1366x768.png"))
    _assert_no_failure(page, page_errors)


def test_voila_shows_the_panel_not_the_note(page, page_errors, voila):
    """Voila runs the notebook first: the panel's output is drawn as the widget."""
    page.set_viewport_size({"width": 1366, "height": 768})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(voila.render("processing_probe.ipynb"))
    panel = page.locator(".probe-panel")
    panel.wait_for(state="visible")
    panel.locator("img.widget-image").first.wait_for(state="visible")
    text = page.locator("body").inner_text()
    assert NOTEBOOK_NOTE not in text
    assert ERROR not in text
    _assert_no_failure(page, page_errors)
