"""Eight people open the viewer dashboard at once; their kernels go when they leave.

A fresh Voila, started as ``make dashboard`` starts it plus a 20 s idle-kernel
culling (``dashboard_scenario.SHORT_CULLING``), serves
``notebooks/dashboards/``. It keeps one preheated kernel per dashboard
(voila.json's ``preheat_kernel``), so it holds that pool before any page
opens, and after: the pool is bounded, and refilled when a page takes its
kernel. Eight browser sessions (a thread, a Playwright and a Chromium each)
run the scenario of ``dashboard_scenario.py`` together: load, window preset,
click, readout equal to the CT's HU, clean page. One of them gets the pooled
kernel, the others a kernel started for them. While their pages are open
every session's kernel must be running; their memory is written to
``artifacts/dashboard_load.txt``. Once the pages are closed, no session's
kernel may be left within a bounded time, and the server holds no more than
its pool.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from dashboard_scenario import (
    KERNEL_URL,
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
from test_compare_dashboard_in_voila import _open as _open_compare
from test_dashboard_server import DASHBOARDS
from test_recognition_in_voila import _wait_for_decoded
from test_segmentation_dashboard_in_voila import _open as _open_segmentation
from test_viewer_dashboard_in_voila import VIEW
from test_viewer_dashboard_in_voila import _open as _open_viewer

pytestmark = pytest.mark.browser

SESSIONS = 8
# Page closed: its kernel is culled after 20 s idle, checked every 5 s.
KERNELS_GONE_S = 45
POOL_FILLED_S = 120  # the pool's kernels start and run their notebook together


def test_eight_concurrent_sessions_then_only_the_pool(artifacts):
    pool = pool_size(DASHBOARDS)
    assert pool == len(list(DASHBOARDS.glob("*.ipynb")))  # one per dashboard
    with dashboard_server(DASHBOARDS, name="dashboard_load") as dashboards:
        server = dashboards.server
        wait_for_kernels(server, pool, POOL_FILLED_S)  # only the pool, no page
        pooled = set(kernel_ids(server))
        sessions, (memory, running) = run_sessions(
            dashboards.url(),
            SESSIONS,
            while_open=lambda: (kernel_memory(server), set(kernel_ids(server))),
        )
        mine = {s.kernel for s in sessions if s.kernel}
        try:
            gone = wait_for_kernels_gone(server, mine, KERNELS_GONE_S)
            left = f"no session's kernel left {gone:.1f} s after the pages closed"
        except TimeoutError as exc:
            gone, left = None, str(exc)
        after = set(kernel_ids(server))
        report = "\n\n".join(
            [
                f"{SESSIONS} concurrent sessions of the viewer dashboard "
                f"(a pool of {pool} preheated kernels)",
                sessions_table(sessions),
                "Memory while the pages were open (the sessions' kernels and the pool)",
                memory.table(),
                f"{left} (culled: {culled(server)}); kernels after: {len(after)}, "
                f"of them from the pool before: {len(after & pooled)}",
            ]
        )
        (artifacts / "dashboard_load.txt").write_text(report + "\n")

    failed = [s for s in sessions if not s.ok]
    assert not failed, report
    assert len(mine) == SESSIONS, report  # a kernel of its own for each page
    assert mine <= running, report  # each running while its page was open
    assert len(mine & pooled) <= 1, report  # the viewer's pool had one kernel
    assert gone is not None, report
    assert len(after) <= pool, report  # bounded: the pool, nothing else
    assert not after & mine, report


def _open_index(page, url):
    page.goto(url)
    page.locator("a[href$='viewer.ipynb']").wait_for()


SCREENS = ({"width": 1366, "height": 768}, {"width": 1920, "height": 1080})
OPEN_HEAD_CT = re.compile(r"^\s*Open: head_ct \(CT, 512 × 512")  # the status line

#: Each dashboard and how a test sees it open (its first image, its lines).
OPEN = {
    "index.ipynb": _open_index,
    "viewer.ipynb": _open_viewer,
    "compare.ipynb": _open_compare,
    "segmentation.ipynb": _open_segmentation,
}


def _kernel_of(page) -> list[str]:
    """The ids of the kernels ``page`` connects to, as it connects."""
    ids: list[str] = []
    page.on(
        "websocket",
        lambda ws: ids.extend(m.group(1) for m in [KERNEL_URL.search(ws.url)] if m),
    )
    return ids


def test_each_dashboard_opens_on_its_preheated_kernel(page, browser, artifacts):
    """The first page of each dashboard gets the kernel that has run it already.

    The kernel was started, and the notebook run in it, before the request
    (the work that made the first view slow); the page shows the dashboard as
    a fresh kernel would. A second page opened at once while the pool refills
    still opens, on a kernel of its own.
    """
    assert set(OPEN) == {p.name for p in DASHBOARDS.glob("*.ipynb")}
    with dashboard_server(DASHBOARDS, name="dashboard_preheat") as dashboards:
        server = dashboards.server
        wait_for_kernels(server, pool_size(DASHBOARDS), POOL_FILLED_S)
        for notebook, open_page in OPEN.items():
            # Its kernel has run the notebook (before that, Voila starts a
            # new kernel for the page: the CI run saw it for the landing page).
            _wait_for_log(server, f"Kernel pool of {notebook} is filled", 1)
            pooled = set(kernel_ids(server))
            ids = _kernel_of(page)
            page.set_default_timeout(60_000)
            open_page(page, dashboards.url(notebook))
            cells = nbformat.read(DASHBOARDS / notebook, as_version=4).cells
            # The landing page is Markdown: its HTML is the page. Voila's page
            # script may still connect to the kernel it was rendered in (two
            # CI runs saw it, local runs did not); either way no kernel is
            # started for the request.
            markdown = not any(c.cell_type == "code" for c in cells)
            assert len(ids) <= 1 if markdown else len(ids) == 1, (notebook, ids)
            assert set(ids) <= pooled, (notebook, ids, pooled)
            used = f"Using pre-heated kernel: {ids[0]} for {notebook}" if ids else ""
            assert used in server.log_tail(10**6), (notebook, server.log_tail())
            for size in SCREENS:  # the first view, as a person sees it
                page.set_viewport_size(size)
                name = (
                    f"first_view_{Path(notebook).stem}_{size['width']}x{size['height']}"
                )
                page.screenshot(path=str(artifacts / f"{name}.png"))
            page.goto("about:blank")
        # Two people at once, once the viewer's pool has been refilled: both
        # see the head CT, each on a kernel of its own (the second waits for
        # the pool's next kernel or gets one started for it).
        refilled = "Kernel pool of viewer.ipynb is filled"
        _wait_for_log(server, refilled, 2)
        other = browser.new_page()
        try:
            ids, other_ids = _kernel_of(page), _kernel_of(other)
            for p in (page, other):
                p.set_default_timeout(60_000)
                p.goto(dashboards.url("viewer.ipynb"), wait_until="commit")
            for p in (page, other):
                _wait_for_decoded(p, p.locator(VIEW), 1)
                p.locator(".widget-html", has_text=OPEN_HEAD_CT).wait_for()
        finally:
            other.close()
        assert len(ids) == len(other_ids) == 1, (ids, other_ids)
        assert ids != other_ids, (ids, other_ids)


def _wait_for_log(server, text: str, count: int, timeout: float = POOL_FILLED_S):
    """Wait until ``text`` is in the server's log ``count`` times."""
    deadline = time.monotonic() + timeout
    while server.log_tail(10**6).count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not {count} times in the log"
        time.sleep(0.25)


#: Culling for the pool test: a kernel idle 5 s without a page goes, checked
#: every second.
FAST_CULLING = (
    "--MappingKernelManager.cull_idle_timeout=5",
    "--MappingKernelManager.cull_interval=1",
)
IDLE_S = 5
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_a_kernel_taken_from_the_pool_waits_for_its_page(tmp_path):
    """A pooled kernel idle for longer than the culling timeout, taken by a
    request, lives ``cull_idle_timeout`` from then on: its page has that long to
    connect (a slow browser, a loaded machine). Voila's manager counted its
    idle time from its notebook's run, and culled it at the next pass, under
    the page. A page that never connects still loses its kernel, in bounded
    time.
    """
    timing = tmp_path / "timing"
    timing.mkdir()
    with dashboard_server(
        DASHBOARDS, name="dashboard_pool_cull", extra=FAST_CULLING, kernel_timing=timing
    ) as dashboards:
        server = dashboards.server
        wait_for_kernels(server, pool_size(DASHBOARDS), POOL_FILLED_S)
        ran = _wait_for_notebook_run(timing, "viewer.ipynb")
        while time.time() - ran < 2 * IDLE_S:  # idle past the timeout, in the pool
            assert set(kernel_ids(server)) >= set(kernels_ran(timing)), "pool culled"
            time.sleep(0.25)
        pooled = set(kernel_ids(server))
        taken = time.monotonic()
        # The page's HTML (its kernel's id in it), as a browser gets it; no
        # script of it runs, so nothing connects to the kernel.
        html = urllib.request.urlopen(dashboards.url("viewer.ipynb"), timeout=120)  # noqa: S310 the loopback server started above
        kernel = set(UUID.findall(html.read().decode())) & pooled
        assert len(kernel) == 1, kernel
        gone = wait_for_kernels_gone(server, kernel, 6 * IDLE_S + 30)
        lived = time.monotonic() - taken
    assert lived >= IDLE_S, f"culled {lived:.1f} s after a request took it"
    assert gone < 6 * IDLE_S + 30


def kernels_ran(timing) -> list[str]:
    """Ids of the kernels that have written a timing log."""
    return [p.stem for p in timing.glob("*.jsonl")]


def _wait_for_notebook_run(timing, notebook: str) -> float:
    """When (time.time()) a pooled kernel ended ``notebook``'s last code cell."""
    nb = nbformat.read(DASHBOARDS / notebook, as_version=4)
    last = [c.source for c in nb.cells if c.cell_type == "code"][-1].strip()[:200]
    deadline = time.monotonic() + POOL_FILLED_S
    while time.monotonic() < deadline:
        for path in timing.glob("*.jsonl"):
            rows = [json.loads(x) for x in path.read_text().splitlines() if x]
            for start, end in itertools.pairwise(rows):
                if (
                    start["event"] == "cell_start"
                    and end["event"] == "cell_end"
                    and start["source"].strip()[:200] == last
                ):
                    return end["t"]
        time.sleep(0.25)
    raise AssertionError(f"no kernel ran {notebook} in {POOL_FILLED_S} s")
