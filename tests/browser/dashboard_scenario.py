"""The viewer dashboard used by several people at once: one scenario, its kernels.

Shared by ``test_dashboard_load.py`` (asserts) and
``benchmarks/bench_dashboard.py`` (prints):

- :func:`dashboard_server` starts Voila the way ``make dashboard`` does (the
  repository's ``jupyter/voila.json`` and offline template) on a free loopback
  port, plus :data:`SHORT_CULLING`, and stops it at the end;
- :func:`run_sessions` runs :func:`scenario` in ``n`` browser sessions at once:
  one thread each, each with its own Playwright and its own headless Debian
  Chromium (fresh profile, 1366 x 768, every request off loopback aborted);
- :func:`kernel_memory` reads each kernel's memory while the pages are open;
  each session notes its page's kernel id (its websocket's URL), and
  :func:`wait_for_kernels_gone` times how long those kernels outlive the
  pages. The server also holds its pool of preheated kernels (voila.json's
  ``preheat_kernel``), :func:`pool_size` of them once filled
  (:func:`wait_for_kernels`), before the pages and after;
- with ``kernel_timing``, every kernel of the server writes its timeline
  (:data:`KERNEL_TIMING_STARTUP`), for the benchmark's breakdown.

The scenario is what a clinician does first: open ``viewer.ipynb`` (the head
CT), choose the window preset "bone" (new PNG bytes shown), click a pixel and
read its value (the readout must equal the CT's value in HU there). The page
must then be clean: no traceback, no failed-cell sentence, no red message, no
console error and no request off loopback. Each step reuses the helpers of
``test_viewer_dashboard_in_voila.py``.

Closing a page fires its ``beforeunload``, on which Voila's page posts a
request to shut its kernel down. With voila.json's settings the server refuses
it (403: the page carries no ``_xsrf`` cookie), so the kernels go by culling:
:data:`SHORT_CULLING` culls a kernel idle for 20 s instead of voila.json's
120 s, and :func:`culled` counts the kernels culled.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from conftest import (
    CHROMIUM,
    LAUNCH_ARGS,
    REPO,
    Server,
    _free_port,
    _isolated_env,
    _local_only,
    _start,
    _stop,
)
from test_dashboard_server import _dashboard_argv
from test_recognition_in_voila import _png
from test_viewer_dashboard_in_voila import (
    NOTEBOOK,
    VIEW,
    VIEWPORT,
    _clean,
    _click_pixel,
    _new_png,
    _open,
    _readout,
    _select,
)
from test_viewer_pointer import POINTS, _painted, _wait_for_viewer

from medimg_lab.data import sample

#: Any single wait of a session's page. Eight pages share two cores with the
#: pool's refills (and, in the tests, other work): a page took 57 s to paint
#: under two busy loops, so the bound is well above that, not a target.
TIMEOUT_MS = 180_000

#: Culling for these servers: an idle kernel without a page goes after 20 s.
SHORT_CULLING = (
    "--MappingKernelManager.cull_idle_timeout=20",
    "--MappingKernelManager.cull_interval=5",
)
#: The scenario's preset and its clicked pixel, (row, col) of the head CT.
PRESET = "bone"
POINT = POINTS["brain"]
MIB = 2**20


@dataclass(frozen=True)
class Dashboards:
    """A running dashboard server: ``url("viewer.ipynb")`` renders a notebook."""

    base: str
    server: Server

    def url(self, notebook: str = NOTEBOOK) -> str:
        return f"{self.base}voila/render/{notebook}"


#: An IPython startup file for the kernels of a timed server: each kernel
#: appends JSON lines to ``$MEDIMG_KERNEL_TIMING/<kernel id>.jsonl``, with
#: ``t`` in seconds since the epoch: "spawn" (its process created), "ready"
#: (this file runs: ipykernel imported, the shell built, just before the
#: kernel answers), then "cell_start" and "cell_end" around each execution.
KERNEL_TIMING_STARTUP = """\
import json as _json
import os as _os
import time as _time


def _medimg_timing():
    folder = _os.environ.get("MEDIMG_KERNEL_TIMING")
    if not folder:
        return
    import psutil

    me = psutil.Process()
    files = [_os.path.basename(a) for a in me.cmdline() if a.endswith(".json")]
    ids = [f[len("kernel-") : -len(".json")] for f in files if f.startswith("kernel-")]
    path = _os.path.join(folder, (ids or [str(_os.getpid())])[0] + ".jsonl")
    cells = [0]

    def log(event, t=None, **more):
        line = {"event": event, "t": _time.time() if t is None else t, **more}
        with open(path, "a", encoding="utf-8") as out:
            out.write(_json.dumps(line) + "\\n")

    def start(info):
        cells[0] += 1
        log("cell_start", cell=cells[0], source=info.raw_cell[:500])

    def end(result):
        log("cell_end", cell=cells[0], error=result.error_in_exec is not None)

    log("spawn", t=me.create_time())
    log("ready")
    shell = get_ipython()  # noqa: F821 an IPython startup file
    shell.events.register("pre_run_cell", start)
    shell.events.register("post_run_cell", end)


_medimg_timing()
del _medimg_timing
"""


@contextlib.contextmanager
def dashboard_server(
    root: Path, *, name: str, extra=SHORT_CULLING, kernel_timing: Path | None = None
) -> Iterator:
    """Voila as ``make dashboard`` serves ``root``, plus ``extra`` options.

    Its log goes to ``artifacts/<name>.log``; it is stopped at the end. With
    ``kernel_timing`` (a folder), every kernel writes its timeline there
    (:data:`KERNEL_TIMING_STARTUP`); the notebooks stay as they are.
    """
    home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = _isolated_env(home)
    if kernel_timing is not None:
        startup = Path(env["IPYTHONDIR"]) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-medimg-timing.py").write_text(KERNEL_TIMING_STARTUP)
        env["MEDIMG_KERNEL_TIMING"] = str(kernel_timing)
    server = _start(
        name,
        [*_dashboard_argv(root, port), *extra],
        base + "voila/static/voila.js",
        cwd=REPO,  # where `make dashboard` runs
        env=env,
    )
    try:
        yield Dashboards(base, server)
    finally:
        _stop(server)
        shutil.rmtree(home, ignore_errors=True)


# -------------------------------------------------------------- the scenario
def expected_readout(row: int, col: int) -> str:
    """The viewer's readout for pixel ``(row, col)`` of the head CT."""
    ct = sample("head_ct")
    dy, dx = ct.spacing
    where = f"x {col * dx:.1f} mm, y {row * dy:.1f} mm"
    return f"{where} (row {row}, col {col}): {int(ct.array[row, col])} HU"


def scenario(page, url: str, errors: list[str], times: dict[str, float]) -> str:
    """Load, preset, click, read: the readout's text. Step end times in ``times``.

    ``times`` gets, in seconds since the start: "load" (the head CT shown),
    "preset" (the preset's new PNG shown), "readout" (the clicked pixel's
    value shown). Raises AssertionError when the page is not as expected.
    """
    start = time.monotonic()
    image = _open(page, url, timeout_ms=TIMEOUT_MS)
    times["load"] = time.monotonic() - start
    shown = _png(image)
    _select(page, "preset", PRESET)
    _new_png(page, image, shown)
    times["preset"] = time.monotonic() - start
    image = _wait_for_viewer(page, VIEW)  # 512 px at 1:1: pixel (r, c) at (x0+c, y0+r)
    row, col = POINT
    _click_pixel(page, _painted(page, image), row, col, 1)
    readout = _readout(page, rf"\(row {row}, col {col}\): ")
    times["readout"] = time.monotonic() - start
    want = expected_readout(row, col)
    assert readout == want, f"readout {readout!r}, expected {want!r}"
    _clean(page, errors)
    return readout


@dataclass
class Session:
    """One browser session's outcome."""

    index: int
    times: dict[str, float] = field(default_factory=dict)
    kernel: str | None = None  # the page's kernel id (its websocket's URL)
    readout: str = ""
    error: str | None = None
    blocked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.blocked


def _watch_errors(page) -> list[str]:
    errors: list[str] = []

    def console(message):
        if message.type == "error":
            errors.append(f"console.error: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


def _session(session: Session, url, go: threading.Event, done, release) -> None:
    """A thread: own Playwright and Chromium; the scenario; close on ``release``."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
            )
            try:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                context.route("**/*", lambda r: _local_only(r, session.blocked))
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                errors = _watch_errors(page)
                page.on("websocket", lambda ws: _note_kernel(session, ws.url))
                done.ready()
                if not go.wait(TIMEOUT_MS / 1000):
                    raise TimeoutError("the other sessions did not get ready")
                try:
                    session.readout = scenario(page, url, errors, session.times)
                except Exception as exc:
                    session.error = _summary(exc)
                done.finished()
                release.wait(TIMEOUT_MS / 1000)
                _close(page)
            finally:
                browser.close()
    except Exception as exc:  # the browser itself failed
        session.error = session.error or _summary(exc)
    finally:
        done.ready()
        done.finished()


KERNEL_URL = re.compile(r"/api/kernels/([0-9a-f-]+)/channels")


def _note_kernel(session: Session, url: str) -> None:
    found = KERNEL_URL.search(url)
    if found and session.kernel is None:
        session.kernel = found.group(1)


def _summary(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(exc)).strip()
    return re.sub(r"\s+", " ", text)[:500]


def _close(page, timeout: float = 10) -> None:
    """Close ``page`` as a user does: its ``beforeunload`` runs (kernel shutdown)."""
    page.close(run_before_unload=True)
    deadline = time.monotonic() + timeout
    while not page.is_closed() and time.monotonic() < deadline:
        time.sleep(0.05)


class _Countdown:
    """Sessions ready (browser up) and finished (scenario over), counted."""

    def __init__(self, n: int):
        self.n, self._ready, self._finished = n, set(), set()
        self._lock = threading.Condition()

    def ready(self):
        with self._lock:
            self._ready.add(threading.get_ident())
            self._lock.notify_all()

    def finished(self):
        with self._lock:
            self._finished.add(threading.get_ident())
            self._lock.notify_all()

    def wait(self, which: str, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(
                lambda: len(getattr(self, f"_{which}")) >= self.n, timeout
            )


def run_sessions(
    url: str, n: int, *, while_open: Callable[[], object] | None = None, timeout=180
) -> tuple[list[Session], object]:
    """Run :func:`scenario` in ``n`` concurrent browser sessions.

    The sessions start together once every browser is up. When all have
    finished, ``while_open()`` runs (their pages and kernels still alive),
    then every page is closed. Returns the sessions and ``while_open``'s
    value. Each wait is bounded by ``timeout`` seconds.
    """
    sessions = [Session(i + 1) for i in range(n)]
    go, release, count = threading.Event(), threading.Event(), _Countdown(n)
    threads = [
        threading.Thread(
            target=_session,
            args=(s, url, go, count, release),
            name=f"session-{s.index}",
            daemon=True,
        )
        for s in sessions
    ]
    for thread in threads:
        thread.start()
    count.wait("ready", timeout)
    go.set()
    count.wait("finished", timeout)
    value = None
    try:
        value = while_open() if while_open is not None else None
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout)
    for session, thread in zip(sessions, threads, strict=True):
        if thread.is_alive():
            session.error = session.error or f"still running after {timeout} s"
    return sessions, value


# ------------------------------------------------------------------ kernels
def kernel_processes(server: Server) -> list[psutil.Process]:
    """The server's live kernel processes (``ipykernel`` children)."""
    kernels = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(server.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.is_running() and "ipykernel" in " ".join(child.cmdline()):
                    kernels.append(child)
    return kernels


@dataclass(frozen=True)
class Memory:
    """Resident memory of the server and of each kernel, in bytes."""

    server_rss: int
    kernels: list[tuple[int, int, int]]  # (pid, RSS, USS)

    @property
    def kernel_rss(self) -> int:
        return sum(rss for _, rss, _ in self.kernels)

    @property
    def kernel_uss(self) -> int:
        return sum(uss for _, _, uss in self.kernels)

    def table(self) -> str:
        """A text table in MiB: one row per kernel, totals, the server."""
        lines = [f"{'process':<22}{'RSS MiB':>10}{'USS MiB':>10}"]
        for pid, rss, uss in self.kernels:
            lines.append(f"{f'kernel {pid}':<22}{rss / MIB:>10.0f}{uss / MIB:>10.0f}")
        n = max(len(self.kernels), 1)
        lines += [
            f"{'kernel mean':<22}{self.kernel_rss / n / MIB:>10.0f}"
            f"{self.kernel_uss / n / MIB:>10.0f}",
            f"{f'{len(self.kernels)} kernels, total':<22}"
            f"{self.kernel_rss / MIB:>10.0f}{self.kernel_uss / MIB:>10.0f}",
            f"{'Voila server':<22}{self.server_rss / MIB:>10.0f}",
            f"{'server + kernels':<22}"
            f"{(self.server_rss + self.kernel_rss) / MIB:>10.0f}",
        ]
        return "\n".join(lines)


def kernel_memory(server: Server) -> Memory:
    """RSS and USS (memory only this process holds) of each kernel; server RSS."""
    rows = []
    for kernel in kernel_processes(server):
        with contextlib.suppress(psutil.Error):
            info = kernel.memory_full_info()
            rows.append((kernel.pid, info.rss, info.uss))
    server_rss = psutil.Process(server.process.pid).memory_info().rss
    return Memory(server_rss, sorted(rows))


def kernel_ids(server: Server) -> dict[str, int]:
    """The server's live kernels: kernel id (from its connection file) → pid."""
    ids = {}
    for kernel in kernel_processes(server):
        with contextlib.suppress(psutil.Error):
            for arg in kernel.cmdline():
                name = Path(arg).name
                if name.startswith("kernel-") and name.endswith(".json"):
                    ids[name[len("kernel-") : -len(".json")]] = kernel.pid
    return ids


def pool_size(root: Path, config: Path = REPO / "jupyter" / "voila.json") -> int:
    """How many preheated kernels Voila keeps for ``root`` with ``config``.

    0 without ``preheat_kernel``; else, for each notebook under ``root`` (as
    Voila finds them: ``**/*.ipynb`` outside checkpoints), its entry in
    ``VoilaKernelManager.kernel_pools_config``, else the ``"default"`` entry,
    else ``VoilaConfiguration.default_pool_size`` (Voila's default 1).
    """
    settings = json.loads(config.read_text())
    voila = settings.get("VoilaConfiguration", {})
    if not voila.get("preheat_kernel", False):
        return 0
    pools = settings.get("VoilaKernelManager", {}).get("kernel_pools_config", {})
    default = pools.get("default", {}).get(
        "pool_size", voila.get("default_pool_size", 1)
    )
    notebooks = [
        str(nb.relative_to(root))
        for nb in root.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in str(nb)
    ]
    return sum(max(pools.get(nb, {}).get("pool_size", default), 0) for nb in notebooks)


def wait_for_kernels(server: Server, n: int, timeout: float) -> float:
    """Seconds until the server holds ``n`` kernels (a pool filled)."""
    start = time.monotonic()
    while len(kernel_processes(server)) != n:
        if time.monotonic() - start > timeout:
            held = len(kernel_processes(server))
            raise TimeoutError(f"{held} kernels, not {n}, after {timeout:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - start


def wait_for_kernels_gone(server: Server, ids, timeout: float) -> float:
    """Seconds until no kernel of ``ids`` is left; TimeoutError after ``timeout``."""
    start = time.monotonic()
    while left := set(ids) & set(kernel_ids(server)):
        if time.monotonic() - start > timeout:
            raise TimeoutError(
                f"{len(left)} of the pages' kernels still running after {timeout:.0f} s"
            )
        time.sleep(0.25)
    return time.monotonic() - start


def culled(server: Server) -> int:
    """How many kernels the server has culled so far (from its log)."""
    return len(re.findall(r"Culling '\w+' (dead )?kernel", server.log_tail(10**6)))


def sessions_table(sessions: list[Session]) -> str:
    """One row per session: its step times in s and its outcome."""
    lines = [f"{'session':<9}{'load s':>8}{'preset s':>10}{'readout s':>11}  result"]
    for s in sessions:
        t = [s.times.get(k) for k in ("load", "preset", "readout")]
        cells = "".join(
            f"{v:>{w}.1f}" if v is not None else f"{'-':>{w}}"
            for v, w in zip(t, (8, 10, 11), strict=True)
        )
        outcome = "ok: " + s.readout if s.ok else f"FAILED: {s.error or s.blocked}"
        lines.append(f"{s.index:<9}{cells}  {outcome}")
    return "\n".join(lines)
