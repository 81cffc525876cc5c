"""Debian's Chromium, driven by Playwright, and local servers for the browser tests.

The browser is launched once per test session with a fresh, throw-away
profile. It must be Debian's ``/usr/bin/chromium`` (``make chromium``), never a
browser downloaded by Playwright. Its context aborts any request leaving
this machine, and the ``page`` fixture fails a test whose page tried one, so a
test that passes proves that nothing was fetched from the network.

Servers (one each per session, started on first use, on a free loopback port,
stopped at the end; their output goes to ``artifacts/<name>.log``):

- ``voila``: Voila serving the folder ``notebooks/`` with the ``offline``
  template of the repository's ``jupyter/`` folder, shared with
  ``make dashboard`` (Voila's "lab" template without its Font Awesome
  stylesheets from cdn.jsdelivr.net); ``voila.render("x.ipynb")`` is the URL
  that runs and shows ``notebooks/x.ipynb``, and ``voila_url`` that of
  ``viewer_probe.ipynb``;
- ``jupyterlab``: JupyterLab on a temporary copy of ``notebooks/``, with news,
  update checks and the PyPI extension manager off, and ``window.jupyterapp``
  exposed so that a test can run the notebook's cells.

Both run from this virtual environment, with Jupyter's config, data, runtime
and IPython directories moved to temporary ones, so that no user setting or
extension changes what the tests see.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from medimg_lab.data import sample

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Untagged PNGs are sRGB; keep the output sRGB too, so no colour conversion.
    "--force-color-profile=srgb",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Jupyter data (the "offline" Voila template) and Voila config (voila.json) of
# the repository, shared by `make dashboard` and the tests.
REPO_JUPYTER = REPO / "jupyter"
NOTEBOOKS = HERE / "notebooks"
PROBE = NOTEBOOKS / "viewer_probe.ipynb"
BIN = Path(sys.executable).parent  # this venv's voila and jupyter
SERVER_START_SECONDS = 60

# Served by Voila or run in JupyterLab by the tests, never collected (nbval).
collect_ignore = ["notebooks"]


@pytest.fixture(scope="session")
def blocked_requests() -> list[str]:
    """URLs that pages of the session tried to fetch from the network."""
    return []


@pytest.fixture(scope="session")
def browser(tmp_path_factory, blocked_requests):
    """A headless Debian Chromium with a fresh profile, for the whole session."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}. Run `make chromium` (Debian's "
            "chromium package) and run the browser tests again. Do not use "
            "`playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
            device_scale_factor=1,
            viewport={"width": 1024, "height": 768},
        )
        context.route("**/*", lambda route: _local_only(route, blocked_requests))
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _local_only(route, blocked: list[str]) -> None:
    """Let loopback and data URLs through; abort everything else."""
    url = route.request.url
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about") or (
        parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOOPBACK
    ):
        route.continue_()
        return
    blocked.append(url)
    route.abort("blockedbyclient")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, for fixtures to see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, browser, blocked_requests):
    """A new page in the session's browser; fails if it tried the network.

    When the test fails, the page's screenshot and text are saved to
    ``artifacts/<test>-failure.png`` and ``.txt``.
    """
    page = browser.new_page()
    before = len(blocked_requests)
    try:
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            _save_failure(page, ARTIFACTS / f"{request.node.name}-failure")
    finally:
        page.close()
    tried = blocked_requests[before:]
    assert not tried, f"the page tried to fetch from the network: {tried}"


def _save_failure(page, stem: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):  # the page may be gone
        page.screenshot(
            path=str(stem.with_suffix(".png")), full_page=True, timeout=10_000
        )
    with contextlib.suppress(Exception):
        text = page.locator("body").inner_text(timeout=10_000)
        stem.with_suffix(".txt").write_text(f"{page.url}\n\n{text}")


@pytest.fixture(scope="session")
def ct():
    """The 512 x 512 head CT sample (values in HU)."""
    return sample("head_ct")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``tests/browser/artifacts/``, git-ignored, for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# ------------------------------------------------------------------ servers
def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _isolated_env(home: Path) -> dict[str, str]:
    """The environment for a server: Jupyter and IPython dirs under ``home``."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(home / name.lower())
    env["IPYTHONDIR"] = str(home / "ipython")
    env["JUPYTER_PATH"] = str(REPO_JUPYTER)  # the "offline" Voila template
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """A server process started by :func:`_start`."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _start(name, argv, url, *, cwd, env, timeout=SERVER_START_SECONDS) -> Server:
    """Start ``argv`` in its own process group; return once ``url`` answers 200."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 argv built by the fixtures, no shell
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for _stop
        )
    server = Server(name, url, process, log)
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 the fixtures' http://127.0.0.1 URL
                if response.status == 200:
                    return server
        except (OSError, urllib.error.URLError) as exc:
            error = exc
        time.sleep(0.2)
    code = process.poll()
    _stop(server)
    state = f"exited with {code}" if code is not None else f"no answer in {timeout} s"
    pytest.fail(
        f"{name} did not start ({state}; last error: {error}). "
        f"Its log, {log}:\n{server.log_tail()}",
        pytrace=False,
    )


def _stop(server: Server, timeout: float = 10) -> None:
    """SIGTERM the server's process group; SIGKILL whatever is left of it.

    On SIGTERM the server shuts its kernels down (each runs in a session of
    its own); a kernel whose server died anyway exits by itself.
    """
    process = server.process
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a hung server, or kernels it left
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


DASHBOARDS = REPO / "notebooks" / "dashboards"


def _dashboard_argv(root: Path, port: int) -> list[str]:
    """The command of ``make dashboard``, for folder ``root`` and ``port``."""
    return [
        str(BIN / "voila"),
        str(root),
        f"--Voila.config_file_paths={REPO_JUPYTER}",
        f"--port={port}",
    ]


def start_dashboards(name: str, port: int, env: dict) -> Server:
    """Voila serving ``notebooks/dashboards/`` on ``port``, as ``make dashboard``
    starts it (from the repository, the port alone on the command line)."""
    return _start(
        name,
        _dashboard_argv(DASHBOARDS, port),
        f"http://127.0.0.1:{port}/voila/static/voila.js",
        cwd=REPO,
        env=env,
    )


@pytest.fixture(scope="session")
def dashboard_site(tmp_path_factory) -> str:
    """Base URL of a ``make dashboard`` Voila serving ``notebooks/dashboards/``.

    Started once per session the way ``make dashboard`` starts it (the
    repository's ``jupyter/voila.json`` and offline template, only the port on
    the command line); ``dashboard_site + "voila/render/viewer.ipynb"`` is a
    dashboard's URL.
    """
    port = _free_port()
    home = tmp_path_factory.mktemp("dashboard-site-home")
    server = start_dashboards("dashboards_site", port, _isolated_env(home))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(server)


@dataclass(frozen=True)
class Voila:
    """A running Voila serving ``notebooks/``: ``render("x.ipynb")`` is x's URL."""

    base: str

    def render(self, name: str) -> str:
        if not (NOTEBOOKS / name).is_file():
            raise FileNotFoundError(f"no probe notebook {NOTEBOOKS / name}")
        return f"{self.base}voila/render/{name}"


@pytest.fixture(scope="session")
def voila(tmp_path_factory) -> Voila:
    """Voila serving the probe notebooks of ``notebooks/`` on 127.0.0.1."""
    home = tmp_path_factory.mktemp("voila-home")
    port = _free_port()
    argv = [
        str(BIN / "voila"),
        str(NOTEBOOKS),  # a folder: each notebook at /voila/render/<name>
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",  # fail, rather than serve on another port
        "--template=offline",  # see <repo>/jupyter/voila/templates/offline/
        "--strip_sources=True",
        "--show_tracebacks=True",  # a failing cell shows its traceback: tests see it
        # The default, async, kernel manager, named so that it stays. The
        # synchronous MappingKernelManager suggested in Voila issue #1428
        # corrupts the kernel websocket's write buffer here (tornado
        # AssertionError in IOStream._handle_write) and so drops widget
        # messages: 3 of 8 runs of these tests lost a click or a drag.
        "--VoilaConfiguration.multi_kernel_manager_class="
        "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager",
        "--VoilaExecutor.timeout=60",  # a stuck cell fails instead of hanging
    ]
    url = f"http://127.0.0.1:{port}/"
    server = _start(
        "voila",
        argv,
        url + "voila/static/voila.js",
        cwd=HERE.parents[1],
        env=_isolated_env(home),
    )
    try:
        yield Voila(url)
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def voila_url(voila) -> str:
    """URL at which Voila runs and shows ``notebooks/viewer_probe.ipynb``."""
    return voila.render(PROBE.name)


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab: ``url("lab/tree/x.ipynb")`` adds the token."""

    base: str
    token: str
    root: Path

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory) -> JupyterLab:
    """JupyterLab on 127.0.0.1, its root a temporary copy of ``notebooks/``."""
    home = tmp_path_factory.mktemp("jupyterlab-home")
    root = tmp_path_factory.mktemp("jupyterlab-root")
    shutil.copytree(NOTEBOOKS, root, dirs_exist_ok=True)
    env = _isolated_env(home)
    # The announcements plugin would ask, in a toast, whether to fetch news.
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps(
            {
                "disabledExtensions": {
                    "@jupyterlab/apputils-extension:announcements": True
                }
            }
        )
    )
    port, token = _free_port(), secrets.token_hex(16)
    argv = [
        str(BIN / "jupyter"),
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        "--ServerApp.terminals_enabled=False",
        # Nothing fetched from the network, by the server either.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class="
        "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--LabApp.user_settings_dir={home / 'lab-settings'}",
        f"--LabApp.workspaces_dir={home / 'lab-workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run cells
    ]
    if os.geteuid() == 0:  # CI containers
        argv.append("--allow-root")
    base = f"http://127.0.0.1:{port}/"
    server = _start(
        "jupyterlab", argv, f"{base}api/status?token={token}", cwd=root, env=env
    )
    try:
        yield JupyterLab(base, token, root)
    finally:
        _stop(server)


# ------------------------------------------------------------ page errors
@pytest.fixture
def page_errors(page) -> list[str]:
    """Console errors and uncaught exceptions of ``page``, as they happen."""
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console.error: {msg.text} @ {msg.location}")
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors
