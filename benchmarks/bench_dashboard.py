"""Viewer dashboard in Voila, in headless Chromium: first view, slider latency, load.

It starts its own Voila the way ``make dashboard`` does (the repository's
``jupyter/voila.json`` and offline template), plus a 20 s idle-kernel culling,
on a free 127.0.0.1 port. Voila serves a temporary folder: a copy of
``notebooks/dashboards/`` and two baseline notebooks written here. Debian's
Chromium (headless, 1366 x 768, every request off loopback aborted) is driven
through Playwright's sync API. Everything is stopped at the end.

In the same run, same server, same browser, it measures:

- **first view**: from navigation start to the viewer's image shown (the
  ``requestAnimationFrame`` after ``img.decode()``, or after the first paint
  of the dashboard's canvas, ``render="browser"``) with its
  controls present, over fresh page loads, after one warm-up load that warms
  the OS file cache and imports (Voila starts a new kernel per page:
  ``preheat_kernel`` is off);
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
  kernel and in total; how long the kernels outlive the pages.

Every time is printed as the median in ms with its p90 and interquartile
range, and as a ratio to each baseline's median (dashboard / baseline). A
page load not shown within ``LOAD_S`` is counted as unfinished and retried.
Targets (issue 8): first view within 2 s (median); CT slider-to-image median
<= 20 ms and p90 <= 40 ms. The machine has 2 cores; other work on it shows in
the figures. Run: ``make bench`` or ``python benchmarks/bench_dashboard.py``
(``--updates``, ``--loads``, ``--sessions`` change the counts).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The browser tests' modules, and tests/helpers.py that they import; the
# browser tests' conftest.py must come first (tests/ has one too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

from _timing import p90
from conftest import CHROMIUM, LAUNCH_ARGS, _local_only
from dashboard_scenario import (
    culled,
    dashboard_server,
    kernel_memory,
    run_sessions,
    sessions_table,
    wait_for_no_kernels,
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
}

# Installed before the page's scripts: window.__firstView is set to
# performance.now() (ms since navigation start) at the first animation frame
# after the view's image is decoded, once every required control is there.
FIRST_VIEW_JS = """([image, controls]) => {
  const ready = () => {
    const img = document.querySelector(image);
    const all = controls.every((sel) => document.querySelector(sel));
    const shown = img && (img.tagName === 'CANVAS'
      ? Number(img.dataset.frame) > 0 : img.getAttribute('src'));
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
def first_view_ms(context, url: str, notebook: str) -> float | None:
    """One fresh load of ``url``: ms from navigation start to the first view.

    None when the page does not get there within ``LOAD_TIMEOUT_MS`` (an
    unfinished load, counted apart).
    """
    page = context.new_page()
    try:
        page.add_init_script(script=f"({FIRST_VIEW_JS})({json.dumps(VIEWS[notebook])})")
        page.goto(url, timeout=LOAD_TIMEOUT_MS)
        page.wait_for_function(
            "() => window.__firstView !== undefined", timeout=LOAD_TIMEOUT_MS
        )
        return page.evaluate("() => window.__firstView")
    except PlaywrightTimeout:
        return None
    finally:
        page.close(run_before_unload=True)


def first_views(context, dashboards, notebook: str, loads: int) -> Times:
    """``loads`` measured fresh loads after a warm-up; unfinished ones retried."""
    url = dashboards.url(notebook)
    ms, unfinished = [], 0
    while first_view_ms(context, url, notebook) is None:  # warm-up: caches, imports
        unfinished += 1
        if unfinished > loads:
            raise RuntimeError(f"{notebook}: {unfinished} loads did not finish")
    while len(ms) < loads:
        t = first_view_ms(context, url, notebook)
        if t is None:
            unfinished += 1
            if unfinished > loads:
                raise RuntimeError(f"{notebook}: {unfinished} loads did not finish")
        else:
            ms.append(t)
    return Times(f"first view {notebook}", sorted(ms), unfinished=unfinished)


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


def build_root(folder: Path) -> Path:
    root = folder / "dashboards"
    shutil.copytree(DASHBOARDS, root)
    for name, sources in BASELINES.items():
        _notebook(root / name, sources)
    return root


def run(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        root = build_root(folder)
        with dashboard_server(root, name="bench_dashboard") as dashboards:
            measure(dashboards, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(dashboards, args) -> None:
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            context.route("**/*", lambda r: _local_only(r, blocked))
            context.set_default_timeout(TIMEOUT_MS)
            views = {
                nb: first_views(context, dashboards, nb, args.loads)
                for nb in (NOTEBOOK, MPL, CV2)
            }
            mpl = baseline_latency(
                context, dashboards, MPL, "interact + matplotlib, CT", args.updates
            )
            cv2 = baseline_latency(
                context, dashboards, CV2, "OpenCV → ipywidgets.Image, CT", args.updates
            )
            ct, chest = dashboard_latencies(context, dashboards, args.updates)
        finally:
            browser.close()
    print(
        f"Voila {dashboards.base} (make dashboard's config + 20 s culling), "
        f"headless Chromium {VIEWPORT['width']}x{VIEWPORT['height']}, 2 cores"
    )
    if blocked:
        print(f"requests off loopback, aborted: {blocked}")
    print()
    print_times(
        [
            (views[NOTEBOOK], views[MPL], views[CV2]),
            (views[MPL], None, None),
            (views[CV2], None, None),
        ],
        f"First view: navigation start → image decoded + frame, controls there "
        f"({args.loads} fresh loads each, after 1 warm-up)",
    )
    print()
    print_times(
        [(ct, mpl, cv2), (chest, mpl, cv2), (mpl, None, None), (cv2, None, None)],
        "Slider → painted image: keydown (one step of the width slider) → new "
        "image (<img> decoded, or canvas painted) + frame; dashboard with ROI "
        "overlay and readout live",
    )
    print()
    first = views[NOTEBOOK]
    print(
        f"target first view median ≤ {FIRST_VIEW_TARGET_MS} ms: {first.median:.0f} ms"
        f" {verdict(first.median <= FIRST_VIEW_TARGET_MS)}"
    )
    print(
        f"target CT slider → image median ≤ {CT_MEDIAN_TARGET_MS} ms: "
        f"{ct.median:.1f} ms {verdict(ct.median <= CT_MEDIAN_TARGET_MS)}"
    )
    print(
        f"target CT slider → image p90 ≤ {CT_P90_TARGET_MS} ms: "
        f"{ct.p90:.1f} ms {verdict(ct.p90 <= CT_P90_TARGET_MS)}"
    )
    print()
    load_check(dashboards, args.sessions)


def load_check(dashboards, n: int) -> None:
    """The load check: kernels of earlier pages gone, then ``n`` sessions."""
    server = dashboards.server
    before = wait_for_no_kernels(server, KERNELS_GONE_S)
    print(f"Load check: {n} concurrent sessions (load → preset → click → readout)")
    print(f"(kernels of the pages above gone {before:.0f} s after the last closed)")
    start = time.monotonic()
    sessions, memory = run_sessions(
        dashboards.url(), n, while_open=lambda: kernel_memory(server)
    )
    print(f"all sessions over in {time.monotonic() - start:.1f} s")
    print(sessions_table(sessions))
    print()
    print(memory.table())
    try:
        gone = wait_for_no_kernels(server, KERNELS_GONE_S)
        left = f"no kernel left {gone:.1f} s after the pages closed"
    except TimeoutError as exc:
        left = str(exc)
    print(f"{left}; kernels culled by the server so far: {culled(server)}")
    ok = all(s.ok for s in sessions) and len(memory.kernels) == n
    print(f"load check: {'PASS' if ok else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=UPDATES)
    parser.add_argument("--loads", type=int, default=LOADS)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
