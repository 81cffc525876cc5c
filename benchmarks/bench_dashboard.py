"""The dashboards in Voila, in headless Chromium: first view, slider latency, load.

It starts its own Voila the way ``make dashboard`` does (the repository's
``jupyter/voila.json`` and offline template), plus a 20 s idle-kernel culling,
on a free 127.0.0.1 port. Voila serves a temporary folder: a copy of
``notebooks/dashboards/`` and two baseline notebooks written here. Debian's
Chromium (headless, 1366 x 768, every request off loopback aborted) is driven
through Playwright's sync API. Everything is stopped at the end.

First, in fresh Pythons, the **imports**: ``python -X importtime`` for
``import medimg_lab``, ``import medimg_lab.widgets`` and each dashboard's module (with
the share of the heavy packages), and the first sample's load
(``sample('head_ct')``). Then, in the same run, same server, same browser:

- **first view** of every dashboard (``index.ipynb``, the landing page, then
  ``viewer``, ``compare``, ``segmentation``) and of the baselines: from
  navigation start to the dashboard's image shown (the
  ``requestAnimationFrame`` after ``img.decode()``, or after the first paint
  of the viewer's canvas, ``render="browser"``; the landing page: its links)
  with its controls present, over fresh page loads, after one warm-up load
  that warms the OS file cache. With ``preheat_kernel`` (voila.json) each load
  waits first until the notebook's pooled kernel has run it again (refilled
  after the load before): a person opening a dashboard on an idle server.
  Each load is **broken down** into stages, from three clocks on one machine:
  the kernel's (an IPython startup file that the server's kernels run,
  ``dashboard_scenario.KERNEL_TIMING_STARTUP``: process created, kernel
  ready, each cell's start and end), the page's (Navigation Timing's
  ``responseEnd``: Voila's streamed page complete; the kernel's websocket,
  and the message ``update_states`` on it: every widget's state arrived) and
  the first view itself. A pooled kernel's work comes before the request and
  costs the request nothing; it is printed apart, as kernel-side work;
- **slider to painted image**: in the page, from a capture-phase ``keydown``
  listener (``ArrowRight`` on the focused "width" slider handle: one slider
  step) to the first new image in the view plus one
  ``requestAnimationFrame``, seen by a ``MutationObserver``: a new ``<img>``
  decoded (the baselines), or the dashboard's canvas repainted (its
  ``data-frame`` counts up). The dashboard windows in the page: the slider is
  linked to its canvas there (``jsdlink``), and the kernel follows. It is
  measured with an ROI drawn (overlay live) and the pointer resting on the
  image after a readout (readout live), on the 512² head CT and on the chest
  film (opened with the sample dropdown). Each update is waited for, then
  ``GAP_S`` left, before the next key. Keys only go right: the viewer ignores
  a slider value it set itself in the last 2 s (its echo guard), so a step
  back would show nothing;
- the **baselines**, measured the same way on the head CT: an ``interact``
  cell re-plotting with matplotlib (``%matplotlib inline``) and a plain cell
  windowing with OpenCV into an ``ipywidgets.Image`` (``cv2.imencode`` PNG);
- the **load check** of ``tests/browser/dashboard_scenario.py``: concurrent
  sessions each load, choose a preset and read a clicked pixel; memory per
  kernel and in total (the pool's kernels included); how long the sessions'
  kernels outlive the pages, and that only the pool is left.

Every time is printed as the median in ms with its p90 and interquartile
range, and as a ratio to a baseline's median (dashboard / baseline). A
page load not shown within ``LOAD_S`` is counted as unfinished and retried.
Targets (issues 8 and 16): first view of each dashboard within 2 s (median);
CT slider-to-image median <= 20 ms and p90 <= 40 ms. The machine has 2 cores;
other work on it shows in the figures (the load average is printed). Run:
``make bench`` or ``python benchmarks/bench_dashboard.py`` (``--updates``,
``--loads``, ``--sessions`` change the counts; ``--first-view-only`` stops
after the first views; ``--compare-preheat`` measures the first views with
voila.json's ``preheat_kernel`` flipped as well, on a second server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The browser tests' modules, and the package ``tests`` that they import
# (``tests.helpers``); the browser tests' conftest.py must come first
# (tests/ has one too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

import nbformat
from _timing import p90
from conftest import CHROMIUM, LAUNCH_ARGS, REPO, _local_only
from dashboard_scenario import (
    SHORT_CULLING,
    culled,
    dashboard_server,
    kernel_ids,
    kernel_memory,
    pool_size,
    run_sessions,
    sessions_table,
    wait_for_kernels,
    wait_for_kernels_gone,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from test_dashboard_server import DASHBOARDS, _notebook
from test_recognition_in_voila import _new_png, _png
from test_viewer_dashboard_in_voila import (
    NOTEBOOK,
    VIEW,
    VIEWPORT,
    _control,
    _open,
    _select,
)
from test_viewer_pointer import TIMEOUT_MS

UPDATES = 40  # slider steps measured per row
LOADS = 8  # fresh page loads measured per notebook
SESSIONS = 8  # concurrent sessions of the load check
GAP_S = 0.2  # idle time after each painted update, before the next key
UPDATE_TIMEOUT_MS = 10_000  # an update not painted by then is counted lost
LOAD_S = 30  # a page not shown by then is an unfinished load (counted, retried)
LOAD_TIMEOUT_MS = LOAD_S * 1000
POOL_S = 90  # the pool's kernels start together with the server
KERNELS_GONE_S = 60
FIRST_VIEW_TARGET_MS = 2000
CT_MEDIAN_TARGET_MS, CT_P90_TARGET_MS = 20, 40

MPL, CV2 = "baseline_matplotlib.ipynb", "baseline_opencv.ipynb"
SLIDER = ".bench-width"  # the baselines' width slider
BASELINES = {
    # interact + matplotlib: a new figure for every move of the slider.
    MPL: [
        "%matplotlib inline\nimport ipywidgets as ipw\nimport matplotlib.pyplot as plt"
        "\nfrom medimg_lab.data import sample",
        "ct = sample('head_ct').array\n\n\n"
        "def show(width, center=40.0):\n"
        "    plt.figure(figsize=(5.12, 5.12), dpi=100)\n"
        "    plt.imshow(ct, cmap='gray', vmin=center - width / 2, "
        "vmax=center + width / 2)\n"
        "    plt.axis('off')\n"
        "    plt.show()\n\n\n"
        "width = ipw.FloatSlider(100, min=1, max=4000, step=1, "
        "description='width (HU)')\n"
        "width.add_class('bench-width')\n"
        "ipw.interact(show, width=width);",
    ],
    # OpenCV window (saturating cast to uint8) and PNG into an ipywidgets.Image.
    CV2: [
        "import cv2\nimport ipywidgets as ipw\nfrom medimg_lab.data import sample",
        "ct = sample('head_ct').array.astype('float32')\n"
        "image = ipw.Image(format='png', layout={'width': '512px'})\n"
        "width = ipw.FloatSlider(100, min=1, max=4000, step=1, "
        "description='width (HU)')\n"
        "width.add_class('bench-width')\n\n\n"
        "def on_width(change, center=40.0):\n"
        "    alpha = 255 / change['new']\n"
        "    beta = (change['new'] / 2 - center) * alpha\n"
        "    shown = cv2.addWeighted(ct, alpha, ct, 0, beta, dtype=cv2.CV_8U)\n"
        "    image.value = cv2.imencode('.png', shown)[1].tobytes()\n\n\n"
        "width.observe(on_width, 'value')\n"
        "on_width({'new': width.value})\n"
        "ipw.VBox([width, image])",
    ],
}
# What "the first view" waits for: the image, decoded, and the controls.
VIEWS = {
    NOTEBOOK: (
        VIEW,
        [
            ".widget-slider .noUi-handle",
            ".widget-dropdown select",
            "button.widget-upload",
            ".widget-toggle-button",
        ],
    ),
    MPL: (".widget-interact .jp-RenderedImage img", [f"{SLIDER} .noUi-handle"]),
    CV2: ("img.widget-image", [f"{SLIDER} .noUi-handle"]),
    # The other dashboards: their first image (the head CT) and the image
    # source's controls; the landing page: its list of links.
    "compare.ipynb": (
        "img.widget-image",
        [".widget-dropdown select", "button.widget-upload"],
    ),
    "segmentation.ipynb": (
        "img.widget-image",
        [".widget-dropdown select", "button.widget-upload"],
    ),
    "index.ipynb": ("a[href$='viewer.ipynb']", ["a[href$='compare.ipynb']"]),
}
#: A proposal: the landing page with its list as Markdown (``static_index``).
STATIC_INDEX = "index_static.ipynb"
VIEWS[STATIC_INDEX] = VIEWS["index.ipynb"]
#: Every dashboard, in the order a person meets them, then the baselines.
DASHBOARD_NOTEBOOKS = ("index.ipynb", NOTEBOOK, "compare.ipynb", "segmentation.ipynb")

# Installed before the page's scripts: window.__firstView is set to
# performance.now() (ms since navigation start) at the first animation frame
# after the view's image is decoded, once every required control is there.
FIRST_VIEW_JS = """([image, controls]) => {
  const ready = () => {
    const img = document.querySelector(image);
    const all = controls.every((sel) => document.querySelector(sel));
    const shown = img && (img.tagName === 'CANVAS' ? Number(img.dataset.frame) > 0
      : img.tagName !== 'IMG' || img.getAttribute('src'));
    return shown && all ? img : null;
  };
  let pending = false;
  const check = () => {
    const img = ready();
    if (!img || pending || window.__firstView !== undefined) return;
    pending = true;
    (img.decode ? img.decode() : Promise.resolve()).then(
      () => requestAnimationFrame(() => { window.__firstView = performance.now(); }),
      () => { pending = false; setTimeout(check, 16); });  // src replaced: retry
  };
  new MutationObserver(check).observe(document, {  // classes come late, too
    childList: true, subtree: true, attributes: true,
    attributeFilter: ['src', 'class', 'data-frame'],
  });
}"""

# The latency probe on ``area`` (an element holding the view's <img> or
# <canvas>): arm() before a key; the capture-phase keydown sets t0; the first
# new image in the area after t0 (a new <img> element or src, or a canvas
# repainted: its data-frame counts up) sets `decoded` (decode() resolved; for
# the canvas, painted into its bitmap) and `frame` (the next animation frame).
# `changes` counts new images after t0.
PROBE_JS = """(area) => {
  if (window.__probe) window.__probe.observer.disconnect();
  const last = () => {
    const all = area.querySelectorAll('img, canvas');
    return all[all.length - 1];
  };
  const key = (el) => (el.tagName === 'CANVAS' ? 'frame ' + el.dataset.frame : el.src);
  const p = window.__probe = {
    t0: null, decoded: null, frame: null, changes: 0, armed: false,
    img: last(), src: last() ? key(last()) : null,
    arm() {
      this.armed = true;
      this.t0 = this.decoded = this.frame = null;
      this.changes = 0;
    },
  };
  if (!window.__probeKey) {
    window.__probeKey = true;
    window.addEventListener('keydown', () => {
      const q = window.__probe;
      if (q && q.armed) { q.t0 = performance.now(); q.armed = false; }
    }, true);
  }
  p.observer = new MutationObserver(() => {
    const img = last();
    if (!img || (img === p.img && key(img) === p.src)) return;
    p.img = img; p.src = key(img);
    if (p.t0 === null) return;
    p.changes += 1;
    if (p.frame !== null) return;
    const decode = img.decode ? img.decode() : Promise.resolve();
    decode.then(() => {  // rejected when replaced first: a later one counts
      const decoded = performance.now();
      requestAnimationFrame(() => {
        if (p.frame === null) { p.decoded = decoded; p.frame = performance.now(); }
      });
    }, () => {});
  });
  p.observer.observe(area, {
    childList: true, subtree: true, attributes: true,
    attributeFilter: ['src', 'data-frame'],
  });
}"""


@dataclass
class Times:
    """Sorted times in ms of one measured row, plus what went wrong."""

    label: str
    ms: list[float]
    decoded_ms: list[float] | None = None
    lost: int = 0
    extra: int = 0
    unfinished: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    @property
    def p90(self) -> float:
        return p90(self.ms)

    def iqr(self) -> str:
        q1, _, q3 = statistics.quantiles(self.ms, n=4)
        return f"{q1:.0f}–{q3:.0f}"


# ------------------------------------------------------------ first view
# Installed before the page's scripts too: the page's side of the timeline, in
# ms since navigation start. The kernel's websocket (the first to
# /api/kernels/<id>/channels): its kernel id, when it opened, and when the
# widgets' state arrived on it (the reply "update_states" to the widget
# manager's "request_states": every widget's state at once).
TIMELINE_JS = """(() => {
  const t = window.__timeline = {kernel: null, wsOpen: null, states: null};
  const Native = window.WebSocket;
  const has = (data, now) => {
    const seen = (text) => {
      if (t.states === null && text.includes('update_states')) t.states = now;
    };
    if (typeof data === 'string') seen(data);
    else if (data instanceof ArrayBuffer) seen(new TextDecoder().decode(data));
    else if (data instanceof Blob) data.text().then(seen);
  };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const m = /\\/api\\/kernels\\/([0-9a-f-]+)\\/channels/.exec(String(url));
      if (m && t.kernel === null) {
        t.kernel = m[1];
        this.addEventListener('open', () => { t.wsOpen = performance.now(); });
        this.addEventListener('message', (e) => {
          if (t.states === null) has(e.data, performance.now());
        });
      }
    }
  };
})()"""


@dataclass
class Load:
    """One fresh page load: its milestones in ms since navigation start.

    The kernel's come from its timing log (negative: before the request, a
    pooled kernel); ``None`` where a milestone was not seen.
    """

    first_view: float
    kernel: str | None
    page: dict  # responseStart, responseEnd, wsOpen, states
    kernel_log: list[dict]  # the kernel's events, t in ms since navigation start

    def at(self, event: str, cell: int | None = None, last: bool = False):
        rows = [
            e["t"]
            for e in self.kernel_log
            if e["event"] == event and (cell is None or e.get("cell") == cell)
        ]
        return (rows[-1] if last else rows[0]) if rows else None

    def last_cell_end(self):
        ends = [e for e in self.kernel_log if e["event"] == "cell_end" and e["cell"]]
        return ends[-1]["t"] if ends else None

    @property
    def pooled(self) -> bool:
        ready = self.at("ready")
        return ready is not None and ready < 0

    def milestones(self) -> list[tuple[str, float | None]]:
        """(stage, the ms at which it ended), in the order they happen."""
        return [
            ("kernel start", self.at("ready")),
            ("imports (cell 1)", self.at("cell_end", 1)),
            ("dashboard built", self.last_cell_end()),
            ("page streamed", self.page.get("responseEnd")),
            ("widget state", self.page.get("states")),
            ("first paint", self.first_view),
        ]

    def stages(self) -> dict[str, float | None]:
        """Each stage's share of the first view, in ms: from the previous
        milestone (or navigation) to its own, both clipped at 0 (work done
        before the request costs the request nothing)."""
        out, before = {}, 0.0
        for name, t in self.milestones():
            if t is None:
                out[name] = None
                continue
            t = max(t, 0.0)
            out[name] = max(t - before, 0.0)
            before = max(before, t)
        return out

    def kernel_work(self) -> dict[str, float | None]:
        """Kernel-side durations in ms, wherever they fell (pool or request)."""
        spawn, ready = self.at("spawn"), self.at("ready")
        c1s, c1e = self.at("cell_start", 1), self.at("cell_end", 1)
        c2s, last = self.at("cell_start", 2), self.last_cell_end()

        def d(a, b):
            return b - a if a is not None and b is not None else None

        return {
            "process → ready": d(spawn, ready),
            "cell 1 (imports)": d(c1s, c1e),
            "cells 2+ (build)": d(c2s, last),
        }


def _kernel_log(folder: Path | None, kernel: str | None, origin_s: float, cells):
    """The kernel's events, ``t`` in ms since navigation start; each
    "cell_start"/"cell_end" numbered by the notebook's code cell it ran
    (``cell``: 1, 2, ...; None for Voila's own code, which sets
    ``VOILA_KERNEL_ID`` first)."""
    if folder is None or kernel is None:
        return []
    path = folder / f"{kernel}.jsonl"
    if not path.is_file():
        return []
    rows, cell = [], None
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["event"] == "cell_start":
            cell = _cell_number(row["source"], cells)
        if row["event"] in ("cell_start", "cell_end"):
            row["cell"] = cell
        rows.append({**row, "t": (row["t"] - origin_s) * 1000})
    return rows


def _cell_number(source: str, cells: list[str]) -> int | None:
    """Which of ``cells`` (1-based) ``source`` (the logged start) is, if any."""
    head = source.strip()[:200]
    for i, cell in enumerate(cells, 1):
        if head and cell.strip().startswith(head):
            return i
    return None


def first_view_load(context, url: str, notebook: str, timing: Path | None, cells):
    """One fresh load of ``url``: a :class:`Load`, or None when the page does
    not get there within ``LOAD_TIMEOUT_MS`` (an unfinished load, counted
    apart)."""
    page = context.new_page()
    try:
        page.add_init_script(script=TIMELINE_JS)
        page.add_init_script(script=f"({FIRST_VIEW_JS})({json.dumps(VIEWS[notebook])})")
        page.goto(url, timeout=LOAD_TIMEOUT_MS)
        page.wait_for_function(
            "() => window.__firstView !== undefined", timeout=LOAD_TIMEOUT_MS
        )
        page.wait_for_load_state("load", timeout=LOAD_TIMEOUT_MS)  # responseEnd
        first, origin, nav, line = page.evaluate(
            """() => {
                const n = performance.getEntriesByType('navigation')[0];
                return [window.__firstView, performance.timeOrigin,
                        {responseStart: n.responseStart, responseEnd: n.responseEnd},
                        window.__timeline];
            }"""
        )
    except PlaywrightTimeout:
        return None
    finally:
        page.close(run_before_unload=True)
    kernel = line.get("kernel")
    # The kernel's last cell has ended once the page is complete.
    log = _kernel_log(timing, kernel, origin / 1000, cells)
    return Load(first, kernel, {**nav, **line}, log)


def code_cells(root: Path, notebook: str) -> list[str]:
    nb = json.loads((root / notebook).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def wait_for_pool(timing: Path, root: Path, notebook: str, used: set[str]) -> None:
    """Wait until a kernel no page has had yet has run all of ``notebook``'s
    cells (its pooled kernel is ready); up to ``LOAD_S``."""
    cells = code_cells(root, notebook)
    deadline = time.monotonic() + POOL_S
    while time.monotonic() < deadline:
        for path in timing.glob("*.jsonl"):
            if path.stem in used:
                continue
            log = _kernel_log(timing, path.stem, 0, cells)
            ran = {e["cell"] for e in log if e["event"] == "cell_end"}
            if ran >= set(range(1, len(cells) + 1)):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{notebook}: no pooled kernel ready after {POOL_S} s")


@dataclass
class FirstViews:
    """The measured loads of one notebook."""

    notebook: str
    loads: list[Load]
    unfinished: int = 0

    def times(self) -> Times:
        ms = sorted(load.first_view for load in self.loads)
        return Times(f"first view {self.notebook}", ms, unfinished=self.unfinished)


def first_views(
    context,
    dashboards,
    notebook: str,
    loads: int,
    *,
    timing=None,
    root=None,
    pooled: bool = False,
) -> FirstViews:
    """``loads`` measured fresh loads after a warm-up; unfinished ones retried.

    With ``pooled``, each load waits first until the notebook's pooled kernel
    has run the notebook (the pool refilled after the load before): a person
    opening a dashboard on an idle server.
    """
    url = dashboards.url(notebook)
    cells = code_cells(root, notebook)
    done, unfinished, used = [], 0, set()

    def one():
        if pooled:
            wait_for_pool(timing, root, notebook, used)
        load = first_view_load(context, url, notebook, timing, cells)
        if load is not None and load.kernel:
            used.add(load.kernel)
        return load

    while one() is None:  # warm-up: caches, imports
        unfinished += 1
        if unfinished > loads:
            raise RuntimeError(f"{notebook}: {unfinished} loads did not finish")
    while len(done) < loads:
        load = one()
        if load is None:
            unfinished += 1
            if unfinished > loads:
                raise RuntimeError(f"{notebook}: {unfinished} loads did not finish")
        else:
            done.append(load)
    return FirstViews(notebook, done, unfinished)


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v: float | None, width: int) -> str:
    return f"{v:>{width}.0f}" if v is not None else f"{'–':>{width}}"


def print_breakdown(views: list[FirstViews], base: Times | None) -> None:
    """Per notebook: first view median, p90, ratio; median ms of each stage."""
    stages = [name for name, _ in views[0].loads[0].milestones()]
    work = list(views[0].loads[0].kernel_work())
    head = "".join(f"{s:>17}" for s in stages)
    print(f"{'':<22}{'n':>3}{'median':>8}{'p90':>7}{'/ cv2':>7}{'pool':>6}{head}")
    for v in views:
        t = v.times()
        pooled = sum(load.pooled for load in v.loads)
        cells = "".join(
            _fmt(_median(load.stages()[s] for load in v.loads), 17) for s in stages
        )
        print(
            f"{v.notebook:<22}{len(t.ms):>3}{t.median:>8.0f}{t.p90:>7.0f}"
            f"{_ratio(t, base):>7}{pooled:>6}{cells}"
        )
        if v.unfinished:
            print(f"{'':<22}  + {v.unfinished} loads unfinished after {LOAD_S} s")
    print()
    print("Kernel-side work, median ms (in the pool before the request, or in it):")
    print(f"{'':<22}" + "".join(f"{w:>18}" for w in work))
    for v in views:
        cells = "".join(
            _fmt(_median(load.kernel_work()[w] for load in v.loads), 18) for w in work
        )
        print(f"{v.notebook:<22}{cells}")


# ------------------------------------------------- imports, in a fresh Python
#: The packages whose import time is worth a line (where they are first
#: imported, cumulative).
HEAVY = (
    "numpy",
    "cv2",
    "scipy",
    "pandas",
    "sklearn",
    "skimage",
    "pydicom",
    "matplotlib",
    "ipywidgets",
    "anywidget",
    "nibabel",
    "dask",
)


def importtime(module: str) -> dict[str, float]:
    """``python -X importtime -c "import <module>"``: ms for the import
    ("total": the module and its packages, all they import) and for each of
    ``HEAVY``: its subtrees imported from other packages (a package imported
    by another, numpy by pandas, counts in both)."""
    done = subprocess.run(  # noqa: S603 this venv's Python, fixed arguments
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    total, heavy = 0.0, {}
    stack: list[tuple[int, tuple[str, float]]] = []  # children come first
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$", line)
        if not m:
            continue
        ms, indent, name = int(m.group(1)) / 1000, len(m.group(2)), m.group(3)
        children = [c for i, c in stack if i > indent]
        stack = [(i, c) for i, c in stack if i <= indent] + [(indent, (name, ms))]
        if indent == 1 and (name == module or module.startswith(name + ".")):
            total += ms  # the package, then the module in it
        # A package's subtrees imported by another package's modules.
        for child, child_ms in children:
            package = child.split(".")[0]
            if package in HEAVY and package != name.split(".")[0]:
                heavy[package] = heavy.get(package, 0.0) + child_ms
    return {"total": total, **heavy}


FIRST_SAMPLE = (
    "import time\nfrom medimg_lab.data import sample\n"
    "t = time.perf_counter(); sample('head_ct')\n"
    "print((time.perf_counter() - t) * 1000)"
)


def fresh_ms(code: str, repeats: int = 3) -> float:
    """The median of what ``code`` prints (ms), each run in a fresh Python."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(  # noqa: S603 this venv's Python, fixed arguments
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        runs.append(float(done.stdout.split()[-1]))
    return statistics.median(runs)


def print_imports(repeats: int = 3) -> None:
    rows = {}
    for module in (
        "medimg_lab",
        "medimg_lab.widgets",
        "medimg_lab.widgets.dashboards.viewer",
        "medimg_lab.widgets.dashboards.compare",
        "medimg_lab.widgets.dashboards.segmentation",
    ):
        runs = [importtime(module) for _ in range(repeats)]
        rows[module] = {
            k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]
        }
    print(f"Imports in a fresh Python (python -X importtime, median of {repeats}), ms:")
    names = sorted(
        {k for r in rows.values() for k in r if k != "total"},
        key=lambda k: -max(r.get(k, 0) for r in rows.values()),
    )
    print(f"{'import':<32}{'total':>7}" + "".join(f"{n:>11}" for n in names))
    for module, r in rows.items():
        cells = "".join(_fmt(r.get(n), 11) if n in r else f"{'':>11}" for n in names)
        print(f"{module:<32}{r['total']:>7.0f}{cells}")
    print("(each package where it is first imported, its own imports included)")
    print(
        f"first sample's load, sample('head_ct') after its imports: "
        f"{fresh_ms(FIRST_SAMPLE, repeats):.0f} ms (median of {repeats})"
    )


# ---------------------------------------------------------- slider latency
def slider_latency(page, handle, area, label: str, updates: int) -> Times:
    """``updates`` ArrowRight presses on ``handle``; times to a painted new image."""
    page.evaluate(PROBE_JS, area.element_handle())
    ms, decoded, lost, extra = [], [], 0, 0
    for _ in range(updates):
        handle.evaluate("(h) => h.focus({preventScroll: true})")
        page.evaluate("() => window.__probe.arm()")
        page.keyboard.press("ArrowRight")
        try:
            page.wait_for_function(
                "() => window.__probe.frame !== null", timeout=UPDATE_TIMEOUT_MS
            )
        except PlaywrightTimeout:
            lost += 1
            continue
        page.wait_for_timeout(GAP_S * 1000)  # late extra images show in `changes`
        t0, dec, frame, changes = page.evaluate(
            "() => { const p = window.__probe; "
            "return [p.t0, p.decoded, p.frame, p.changes]; }"
        )
        ms.append(frame - t0)
        decoded.append(dec - t0)
        extra += changes - 1
    if not ms:
        raise RuntimeError(f"{label}: no update painted in {updates} tries")
    return Times(label, sorted(ms), sorted(decoded), lost, extra)


def _width_handle(page, scope: str | None = None):
    slider = page.locator(scope) if scope else _control(page, "slider", "width")
    return slider.locator(".noUi-handle").first


def _draw_roi_and_read(page, image) -> None:
    """Draw an ROI with the ROI tool (two clicks), then rest the pointer on it."""
    page.locator(".widget-toggle-button", has_text="ROI").click()
    page.get_by_text("ROI: click one corner of the rectangle.").wait_for()
    image.scroll_into_view_if_needed()
    box = image.bounding_box()

    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.click(*at(0.35, 0.4))
    page.get_by_text("ROI: click the opposite corner.").wait_for()
    shown = _png(image)
    page.mouse.click(*at(0.6, 0.65))
    page.locator(".widget-html table tr", has_text="ROI").last.wait_for()
    _new_png(page, image, shown)  # the rectangle drawn in the overlay
    page.locator(".widget-toggle-button", has_text="read").first.click()
    page.mouse.move(*at(0.5, 0.5))
    page.mouse.move(*at(0.52, 0.5))
    readout = re.compile(r"\(row \d+, col \d+\): ")
    page.locator(".widget-label", has_text=readout).first.wait_for()
    image.evaluate("(img) => img.scrollIntoView({block: 'center'})")
    page.mouse.move(*at(0.5, 0.5))


def _page(context, open_page, tries: int = 3):
    """A new page opened by ``open_page(page)`` (its value too); an unfinished
    load is retried in a new page."""
    for attempt in range(tries):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            return page, open_page(page)
        except PlaywrightTimeout:
            page.close(run_before_unload=True)
            if attempt == tries - 1:
                raise
            print(f"(an unfinished load of {page.url}, retried)")
    raise AssertionError("unreachable")


def dashboard_latencies(context, dashboards, updates: int) -> tuple[Times, Times]:
    page, image = _page(context, lambda page: _open(page, dashboards.url()))
    try:
        area = image.locator("xpath=..")
        _draw_roi_and_read(page, image)
        ct = slider_latency(
            page, _width_handle(page), area, "dashboard, head CT 512²", updates
        )
        shown = _png(image)
        _select(page, "or sample", "chest_xray (CR)")
        opened = re.compile(r"^\s*Open: chest_xray")
        page.locator(".widget-html", has_text=opened).wait_for()
        _new_png(page, image, shown)
        _draw_roi_and_read(page, image)
        chest = slider_latency(
            page, _width_handle(page), area, "dashboard, chest film", updates
        )
        return ct, chest
    finally:
        page.close(run_before_unload=True)


def baseline_latency(context, dashboards, notebook: str, label: str, updates: int):
    selector = VIEWS[notebook][0]

    def open_page(page):
        page.goto(dashboards.url(notebook), timeout=LOAD_TIMEOUT_MS)
        image = page.locator(selector).first
        image.wait_for(timeout=LOAD_TIMEOUT_MS)
        return image

    page, image = _page(context, open_page)
    try:
        area = page.locator(
            ".widget-interact" if notebook == MPL else f".widget-vbox:has(> {SLIDER})"
        )
        image.evaluate("(img) => img.scrollIntoView({block: 'center'})")
        return slider_latency(page, _width_handle(page, SLIDER), area, label, updates)
    finally:
        page.close(run_before_unload=True)


# ----------------------------------------------------------------- report
def _ratio(t: Times, base: Times | None) -> str:
    return f"{t.median / base.median:.2f}×" if base else "–"


def print_times(rows: list[tuple[Times, Times | None, Times | None]], note: str):
    print(note)
    print(
        f"{'':<38}{'n':>4}{'median ms':>11}{'p90 ms':>8}{'IQR ms':>11}"
        f"{'decoded ms':>12}{'/ mpl':>8}{'/ cv2':>8}"
    )
    for t, mpl, cv2 in rows:
        decoded = f"{statistics.median(t.decoded_ms):.1f}" if t.decoded_ms else "–"
        print(
            f"{t.label:<38}{len(t.ms):>4}{t.median:>11.1f}{t.p90:>8.1f}{t.iqr():>11}"
            f"{decoded:>12}{_ratio(t, mpl):>8}{_ratio(t, cv2):>8}"
        )
        if t.lost or t.extra:
            print(f"{'':<38}  {t.lost} updates lost, {t.extra} extra images")
        if t.unfinished:
            print(f"{'':<38}  + {t.unfinished} loads unfinished after {LOAD_S} s")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def static_index(root: Path) -> None:
    """``STATIC_INDEX``: ``index.ipynb`` with its list as a Markdown cell.

    The landing page's list is a code cell's output, which Voila's page
    renders in the browser once its scripts have loaded; a Markdown cell is
    rendered by the server, into the page's HTML. Measured as a proposal.
    """
    nb = nbformat.read(root / "index.ipynb", as_version=4)
    lines = []
    for name in sorted(DASHBOARD_NOTEBOOKS[1:]):  # the list the code cell makes
        cells = nbformat.read(root / name, as_version=4).cells
        heads = [c.source for c in cells if c.cell_type == "markdown"]
        lines.append(f"- [{heads[0].splitlines()[0].lstrip('#').strip()}]({name})")
    listing = "\n".join(lines)
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown"]
    nb.cells.append(nbformat.v4.new_markdown_cell(listing))
    nbformat.write(nb, root / STATIC_INDEX)


def build_root(folder: Path) -> Path:
    root = folder / "dashboards"
    shutil.copytree(DASHBOARDS, root)
    for name, sources in BASELINES.items():
        _notebook(root / name, sources)
    static_index(root)
    return root


def preheat_configured() -> bool:
    """Whether ``jupyter/voila.json`` (what ``make dashboard`` uses) preheats."""
    config = json.loads((REPO / "jupyter" / "voila.json").read_text())
    return bool(config["VoilaConfiguration"].get("preheat_kernel", False))


def run(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        root = build_root(folder)
        print_imports()
        print()
        preheat = preheat_configured()
        settings = [preheat] + ([not preheat] if args.compare_preheat else [])
        for i, on in enumerate(settings):
            timing = folder / f"timing-{i}"
            timing.mkdir()
            extra = [*SHORT_CULLING, f"--VoilaConfiguration.preheat_kernel={on}"]
            with dashboard_server(
                root, name="bench_dashboard", extra=extra, kernel_timing=timing
            ) as dashboards:
                what = "voila.json as committed" if i == 0 else "the other setting"
                print(f"== preheat_kernel={str(on).lower()} ({what})")
                measure(
                    dashboards,
                    args,
                    root=root,
                    timing=timing,
                    pooled=on,
                    rest=i == 0 and not args.first_view_only,
                )
                print()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure_first_views(context, dashboards, args, *, root, timing, pooled):
    views = {
        nb: first_views(
            context, dashboards, nb, args.loads, timing=timing, root=root, pooled=pooled
        )
        for nb in (*DASHBOARD_NOTEBOOKS, STATIC_INDEX, CV2, MPL)
    }
    base = views[CV2].times()
    print(
        f"First view, ms from navigation start, {args.loads} fresh loads each after "
        f"1 warm-up{'; each load once the pooled kernel is ready' if pooled else ''}"
        f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )
    print(
        "Stages (medians): kernel start = navigation → kernel ready; imports = "
        "its first cell; dashboard built = its other cells (the head CT read, "
        "the widgets made); page streamed = Voila's page complete; widget state "
        "= the widgets' state arrived on the kernel's websocket; first paint = "
        "the image decoded and painted. Work done before the request (a pooled "
        "kernel) counts 0; 'pool' = loads that had a pooled kernel."
    )
    print_breakdown(list(views.values()), base)
    print()
    for nb in DASHBOARD_NOTEBOOKS:
        t = views[nb].times()
        print(
            f"target first view median ≤ {FIRST_VIEW_TARGET_MS} ms, {nb}: "
            f"{t.median:.0f} ms (p90 {t.p90:.0f}) "
            f"{verdict(t.median <= FIRST_VIEW_TARGET_MS)}"
        )
    return views


def measure(dashboards, args, *, root, timing, pooled, rest) -> None:
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            context.route("**/*", lambda r: _local_only(r, blocked))
            context.set_default_timeout(TIMEOUT_MS)
            print(
                f"Voila {dashboards.base} (make dashboard's config + 20 s culling), "
                f"headless Chromium {VIEWPORT['width']}x{VIEWPORT['height']}"
            )
            measure_first_views(
                context, dashboards, args, root=root, timing=timing, pooled=pooled
            )
            if not rest:
                return
            mpl = baseline_latency(
                context, dashboards, MPL, "interact + matplotlib, CT", args.updates
            )
            cv2 = baseline_latency(
                context, dashboards, CV2, "OpenCV → ipywidgets.Image, CT", args.updates
            )
            ct, chest = dashboard_latencies(context, dashboards, args.updates)
        finally:
            browser.close()
            if blocked:
                print(f"requests off loopback, aborted: {blocked}")
    print()
    print_times(
        [(ct, mpl, cv2), (chest, mpl, cv2), (mpl, None, None), (cv2, None, None)],
        "Slider → painted image: keydown (one step of the width slider) → new "
        "image (<img> decoded, or canvas painted) + frame; dashboard with ROI "
        "overlay and readout live",
    )
    print()
    print(
        f"target CT slider → image median ≤ {CT_MEDIAN_TARGET_MS} ms: "
        f"{ct.median:.1f} ms {verdict(ct.median <= CT_MEDIAN_TARGET_MS)}"
    )
    print(
        f"target CT slider → image p90 ≤ {CT_P90_TARGET_MS} ms: "
        f"{ct.p90:.1f} ms {verdict(ct.p90 <= CT_P90_TARGET_MS)}"
    )
    print()
    load_check(dashboards, args.sessions, root)


def load_check(dashboards, n: int, root: Path) -> None:
    """The load check: only the pool's kernels left, then ``n`` sessions."""
    server = dashboards.server
    pool = pool_size(root)
    mine_before = set(kernel_ids(server))
    print(f"Load check: {n} concurrent sessions (load → preset → click → readout)")
    try:
        before = wait_for_kernels(server, pool, KERNELS_GONE_S)
        print(
            f"(the pages above: kernels culled {before:.0f} s after the last "
            f"closed; {pool} pooled kernels held)"
        )
    except TimeoutError as exc:
        print(f"({exc}; {len(mine_before)} before)")
    start = time.monotonic()
    sessions, memory = run_sessions(
        dashboards.url(), n, while_open=lambda: kernel_memory(server)
    )
    print(f"all sessions over in {time.monotonic() - start:.1f} s")
    print(sessions_table(sessions))
    print()
    print(memory.table())
    print("(the sessions' kernels and the pool's)")
    mine = {s.kernel for s in sessions if s.kernel}
    try:
        gone = wait_for_kernels_gone(server, mine, KERNELS_GONE_S)
        left = f"no session's kernel left {gone:.1f} s after the pages closed"
    except TimeoutError as exc:
        left = str(exc)
    held = len(kernel_ids(server))
    print(
        f"{left}; {held} kernels held (pool {pool}); "
        f"kernels culled by the server so far: {culled(server)}"
    )
    ok = all(s.ok for s in sessions) and len(mine) == n and held <= pool
    print(f"load check: {'PASS' if ok else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=UPDATES)
    parser.add_argument("--loads", type=int, default=LOADS)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument(
        "--first-view-only",
        action="store_true",
        help="only the imports and the first views (no slider latency, no load check)",
    )
    parser.add_argument(
        "--compare-preheat",
        action="store_true",
        help="measure the first views with voila.json's preheat_kernel flipped too",
    )
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
