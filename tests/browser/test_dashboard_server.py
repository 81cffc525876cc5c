"""The dashboard server of ``make dashboard``: its config, its landing page, its limits.

Each test starts its own Voila the way ``make dashboard`` does (the repository's
``jupyter/voila.json`` and offline template, nothing else on the command line
but the port) on a free loopback port, serving a temporary copy of
``notebooks/dashboards/`` to which it adds small probe notebooks, and stops it
at the end.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from conftest import (
    DASHBOARDS,
    LOOPBACK,
    REPO,
    REPO_JUPYTER,
    _dashboard_argv,
    _free_port,
    _isolated_env,
    _start,
    _stop,
)
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config.loader import PyFileConfigLoader

pytestmark = pytest.mark.browser

CONFIG = REPO_JUPYTER / "voila.json"
LOAD_TIMEOUT_MS = 120_000  # a bound for a loaded 2-core machine, not a target

# A small dashboard-like notebook: matplotlib figure, slider, button with an icon.
MPL_PROBE = [
    "import ipywidgets as ipw\nimport matplotlib.pyplot as plt\nimport numpy as np",
    "fig, ax = plt.subplots(figsize=(3, 2))\n"
    "ax.plot(np.sin(np.linspace(0, 6, 50)))\nplt.show()",
    'slider = ipw.IntSlider(3, 0, 10, description="probe")\n'
    'button = ipw.Button(description="upload", icon="upload")\n'
    'slider.add_class("probe-slider")\nbutton.add_class("probe-button")\n'
    "ipw.VBox([slider, button])",
]
# Raises: the page must show neither this source nor the traceback.
ERROR_PROBE = [
    'SECRET_SOURCE = "probe-source-marker"\nprint("probe-before-error")',
    'raise ValueError("probe-traceback-marker")',
]


def _notebook(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def dashboards(tmp_path_factory):
    """A fresh ``make dashboard`` server on a copy of the dashboards plus probes."""
    root = tmp_path_factory.mktemp("dashboards")
    shutil.copytree(DASHBOARDS, root, dirs_exist_ok=True)
    _notebook(root / "mpl_probe.ipynb", MPL_PROBE)
    _notebook(root / "error_probe.ipynb", ERROR_PROBE)
    (root / "data" / "probe.txt").write_text("allowed")
    (root / "outside.txt").write_text("not allowed")
    port = _free_port()
    env = _isolated_env(tmp_path_factory.mktemp("dashboards-home"))
    base = f"http://127.0.0.1:{port}/"
    server = _start(
        "dashboards",
        _dashboard_argv(root, port),
        base + "voila/static/voila.js",
        cwd=root,
        env=env,
    )
    try:
        yield base, root
    finally:
        _stop(server)


def test_make_dashboard_uses_the_repo_config():
    """The Makefile runs the command that these tests run, with this config."""
    recipe = re.search(r"^dashboard:.*?\n((?:\t.*\n)+)", _makefile(), re.M).group(1)
    assert "voila notebooks/dashboards" in recipe
    assert '--Voila.config_file_paths="$(CURDIR)/jupyter"' in recipe
    assert 'JUPYTER_PATH="$(CURDIR)/jupyter' in recipe
    config = json.loads(CONFIG.read_text())
    assert config["Voila"]["ip"] == "127.0.0.1"
    assert config["VoilaConfiguration"]["template"] == "offline"
    # One preheated kernel per dashboard: the notebook has run before the
    # request (the first view's kernel start, imports and first image).
    assert config["VoilaConfiguration"]["preheat_kernel"] is True
    assert config["VoilaConfiguration"]["default_pool_size"] == 1
    assert "VoilaKernelManager" not in config  # no per-notebook pools: 1 each
    assert not config["VoilaConfiguration"].get("progressive_rendering")  # no pool
    # The manager is voila.py's (voila.json cannot hold a class): Voila's
    # async default, whose idle clock restarts when a kernel leaves the pool.
    assert "multi_kernel_manager_class" not in config["VoilaConfiguration"]
    manager = _voila_py().VoilaConfiguration.multi_kernel_manager_class
    assert issubclass(manager, AsyncMappingKernelManager)  # not the sync one
    assert config["MappingKernelManager"]["cull_idle_timeout"] > 0
    assert config["VoilaExecutor"]["timeout"] > 0
    assert config["VoilaExecutor"]["iopub_timeout"] >= 30  # 4 s lost pages under load


#: What Voila tells a kernel of the request (its environment): a preheated
#: kernel runs the notebook before any request, so it never sees them.
REQUEST_VARIABLES = ("QUERY_STRING", "VOILA_REQUEST_URL", "SCRIPT_NAME", "PATH_INFO")


def test_the_dashboards_read_nothing_of_the_request():
    """Preheated kernels (voila.json) run each dashboard before its request:
    no dashboard may depend on the request's URL, query string or headers."""
    sources = {p: p.read_text() for p in (REPO / "widgets").rglob("*.py")}
    for nb in DASHBOARDS.glob("*.ipynb"):
        cells = nbformat.read(nb, as_version=4).cells
        sources[nb] = "\n".join(c.source for c in cells if c.cell_type == "code")
    for path, source in sources.items():
        for name in REQUEST_VARIABLES:
            assert name not in source, f"{path.name} reads {name}"


def test_network_mode_needs_the_token(tmp_path_factory):
    """``make dashboard-network``: a token on every page (tested on loopback)."""
    recipe = re.search(
        r"^dashboard-network:.*?\n((?:\t.*\n)+)", _makefile(), re.M
    ).group(1)
    # The token goes through the environment (jupyter/voila.py), never argv.
    assert "--token" not in recipe and "secrets.token_urlsafe" in recipe
    assert "export MEDIMG_DASHBOARD_TOKEN" in recipe
    assert '--Voila.config_file_paths="$(CURDIR)/jupyter"' in recipe
    token, port = secrets.token_urlsafe(16), _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = _isolated_env(tmp_path_factory.mktemp("token-home"))
    env["MEDIMG_DASHBOARD_TOKEN"] = token
    server = _start(
        "dashboards_token",
        _dashboard_argv(DASHBOARDS, port),
        base + "voila/static/voila.js",
        cwd=REPO,
        env=env,
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        for path in ("voila/render/index.ipynb", "voila/render/viewer.ipynb"):
            for query in ("", "?token=wrong"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    opener.open(base + path + query, timeout=30)
                assert refused.value.code in (302, 403), (path, query)
                assert "login" in refused.value.headers.get("Location", "login")
        with opener.open(
            base + f"voila/render/index.ipynb?token={token}", timeout=60
        ) as ok:
            assert ok.status == 200
    finally:
        _stop(server)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect (to the login page) is an answer, not followed


def _voila_py():
    """The config that ``jupyter/voila.py`` sets (Voila reads it with voila.json)."""
    return PyFileConfigLoader("voila.py", path=str(REPO_JUPYTER)).load_config()


def _makefile() -> str:
    return (REPO / "Makefile").read_text()


def _watch(page) -> tuple[list[str], list[str]]:
    """Console errors and the URLs of every request of ``page``."""
    errors: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url} {r.failure}"))
    return errors, requests


def _fonts(page) -> list[tuple[str, str]]:
    """(family, status) of each font face the page declares, once fonts settle."""
    return page.evaluate(
        """async () => {
            await document.fonts.ready;
            return [...document.fonts].map(f => [f.family, f.status]);
        }"""
    )


def _assert_local(requests: list[str]) -> None:
    remote = [
        u
        for u in requests
        if urlsplit(u).scheme not in ("data", "blob", "about")
        and urlsplit(u).hostname not in LOOPBACK
    ]
    assert not remote, f"requests to other hosts: {remote}"


def test_the_root_lands_on_the_dashboards_list(page, dashboards):
    """``make dashboard`` prints ``/``: it shows the landing page, never the files."""
    base, _ = dashboards
    page.goto(base, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_url(base + "voila/render/index.ipynb", timeout=LOAD_TIMEOUT_MS)
    page.get_by_text("Open and measure").first.wait_for(timeout=LOAD_TIMEOUT_MS)


@pytest.mark.parametrize(
    "path", ["voila/tree", "voila/tree/data", "voila/tree?classic-tree=true"]
)
def test_the_tree_is_not_served(dashboards, path):
    """No folder listing (issue 17): the tree answers 404 and names no file."""
    base, _ = dashboards
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + path, timeout=60)  # noqa: S310 loopback http URL
    assert refused.value.code == 404
    listing = refused.value.read().decode()
    for name in ("README.md", "outside.txt", "probe.txt", "viewer.ipynb"):
        assert name not in listing, name


def test_make_dashboard_prints_the_landing_page():
    recipe = re.search(r"^dashboard:.*?\n((?:\t.*\n)+)", _makefile(), re.M).group(1)
    assert "/voila/render/index.ipynb" in recipe


def test_landing_page_lists_the_dashboards_offline(page, dashboards):
    base, _ = dashboards
    errors, requests = _watch(page)
    page.goto(base + "voila/render/index.ipynb", timeout=LOAD_TIMEOUT_MS)
    links = page.locator("main a[href$='.ipynb'], body a[href$='.ipynb']")
    links.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    hrefs = {urlsplit(h).path.rsplit("/", 1)[-1] for h in _hrefs(links)}
    # Every dashboard of the repository's folder (the probes are this test's).
    expected = {p.name for p in DASHBOARDS.glob("*.ipynb")} - {"index.ipynb"}
    assert expected == hrefs, (
        f"not linked: {expected - hrefs}, extra: {hrefs - expected}"
    )
    # A link leads to its dashboard: the viewer paints its canvas.
    href = page.locator("a[href$='viewer.ipynb']").first.evaluate("a => a.href")
    viewer = page.context.new_page()
    try:
        viewer.goto(href, timeout=LOAD_TIMEOUT_MS)
        viewer.locator("canvas.medimg-canvas").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    finally:
        viewer.close()
    index, page = page, page.context.new_page()
    errors_too, requests_too = _watch(page)
    try:  # the probe: widgets' fonts and icons come from the server
        page.goto(base + "voila/render/mpl_probe.ipynb", timeout=LOAD_TIMEOUT_MS)
        page.locator(".probe-slider").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".probe-button i.fa-upload").wait_for(timeout=LOAD_TIMEOUT_MS)
        page.locator(".jp-RenderedImage img").first.wait_for(timeout=LOAD_TIMEOUT_MS)
        _assert_fonts_and_icons(page)
    finally:
        page.close()
    _assert_fonts_and_icons(index, icons=False)
    _assert_local(requests + requests_too)
    assert not errors + errors_too, errors + errors_too


def _assert_fonts_and_icons(page, icons: bool = True) -> None:
    if icons:  # the icon is drawn with Font Awesome, from loopback
        family = page.evaluate(
            """() => getComputedStyle(
                document.querySelector('.probe-button i.fa-upload'), '::before'
            ).fontFamily"""
        )
        assert "Font Awesome" in family
        assert page.evaluate(
            "() => document.fonts.check(`900 16px 'Font Awesome 5 Free'`)"
        )
    fonts = _fonts(page)
    if icons:
        assert any("Font Awesome" in f and s == "loaded" for f, s in fonts), fonts
    assert not [f for f in fonts if f[1] == "error"], fonts


def _hrefs(links) -> list[str]:
    return links.evaluate_all("els => els.map(e => e.href)")


def test_config_strips_sources_hides_tracebacks_and_files(page, dashboards):
    base, _ = dashboards
    _, requests = _watch(page)
    page.goto(base + "voila/render/error_probe.ipynb", timeout=LOAD_TIMEOUT_MS)
    page.get_by_text("probe-before-error").wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_load_state("load")
    html = page.content()
    assert "probe-source-marker" not in html  # sources stripped
    assert "probe-traceback-marker" not in html  # traceback hidden
    assert "Traceback" not in html
    assert "Reload the page" in page.locator("body").inner_text()
    # Files: only data/ is served, never a notebook.
    request = page.context.request
    assert request.get(base + "voila/files/data/probe.txt").status == 200
    for path in ("outside.txt", "error_probe.ipynb", "data/../outside.txt"):
        assert request.get(base + "voila/files/" + path).status in (403, 404), path
    _assert_local(requests)


LOADS = 50
CONCURRENT = 4


def test_fifty_fresh_page_loads_all_complete(browser, blocked_requests, dashboards):
    """Each load renders the figure and the widgets (Voila issue #1428)."""
    base, _ = dashboards
    url = base + "voila/render/mpl_probe.ipynb"
    before = len(blocked_requests)
    done, failures, started = 0, [], time.monotonic()
    while done + len(failures) < LOADS:
        batch = min(CONCURRENT, LOADS - done - len(failures))
        pages = [browser.new_page() for _ in range(batch)]
        try:
            for p in pages:
                p.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
            for p in pages:
                try:
                    p.locator(
                        ".probe-slider .ui-slider-handle, .probe-slider"
                    ).first.wait_for(timeout=LOAD_TIMEOUT_MS)
                    p.locator(".probe-button").wait_for(timeout=LOAD_TIMEOUT_MS)
                    p.locator(".jp-RenderedImage img").first.wait_for(
                        timeout=LOAD_TIMEOUT_MS
                    )
                    done += 1
                except Exception as exc:  # counted and reported
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            for p in pages:
                p.close()
    seconds = time.monotonic() - started
    print(f"{done}/{LOADS} loads completed in {seconds:.1f} s")
    assert not failures, f"{len(failures)} of {LOADS} loads unfinished: {failures}"
    assert blocked_requests[before:] == []
