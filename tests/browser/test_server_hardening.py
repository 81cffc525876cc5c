"""The ``make dashboard`` server trusts no request (issue 17, item 4).

A foreign ``Host`` header (DNS rebinding) is refused before any handler runs;
the folder is never listed; malformed paths answer 404, not 500; the token of
``make dashboard-network`` never reaches a command line; an upload over
:data:`medimg_lab.widgets.dashboards.viewer.MAX_UPLOAD_BYTES` is refused in
the page before a byte of it is sent, and the server's message size is
capped near the limit.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    BIN,
    REPO,
    REPO_JUPYTER,
    _free_port,
    _isolated_env,
    _start,
    _stop,
    start_dashboards,
)
from medimg_lab.widgets.dashboards.viewer import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 45_000
TOKEN_ENV = "MEDIMG_DASHBOARD_TOKEN"  # noqa: S105 a variable name


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A ``make dashboard`` server of its own: (base URL, port)."""
    port = _free_port()
    home = tmp_path_factory.mktemp("hardening-home")
    server = start_dashboards("hardening", port, _isolated_env(home))
    try:
        yield f"http://127.0.0.1:{port}/", port
    finally:
        _stop(server)


def _get(port: int, path: str, host: str | None = None) -> tuple[int, str, dict]:
    """(status, body, headers) of GET ``path`` with ``Host: host``; no redirects."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Host": host} if host is not None else {}
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace"), answer.headers
    finally:
        conn.close()


FOREIGN = [
    "attacker.example",
    "attacker.example:80",
    "localhost.attacker.example",
    "127.0.0.1.nip.io",
    "LOCALHOST.evil",
    "xn--80ak6aa92e.com",
    "a" * 300,
]
PATHS = [
    "/",
    "/voila/render/index.ipynb",
    "/voila/render/viewer.ipynb",
    "/voila/static/voila.js",
    "/voila/tree",
    "/api/kernels/x/channels",
    "/voila/files/data/x.txt",
    "/login",
]


@pytest.mark.parametrize("host", FOREIGN)
def test_a_foreign_host_header_is_refused(site, host):
    """DNS rebinding: a page of attacker.example that resolves to 127.0.0.1
    sends its own name; nothing answers it but a 403 (no page, no kernel)."""
    _, port = site
    for path in PATHS:
        status, body, _ = _get(port, path, host)
        assert status == 403, (host, path, status)
        assert "voila" not in body.lower() and "kernel" not in body.lower(), body
        assert "MEDIMG_ALLOWED_HOSTS" in body  # what would work


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "[::1]", None]
)
def test_the_configured_host_names_are_served(site, host):
    _, port = site
    status, body, _ = _get(port, "/voila/render/index.ipynb", host)
    assert status == 200, (host, status)
    assert "Open and measure" in body or "viewer.ipynb" in body


def test_allowed_host_names_come_from_the_environment():
    """MEDIMG_ALLOWED_HOSTS adds names; beyond loopback, the machine's own."""
    import socket

    voila_py = _voila_module()
    names = voila_py.allowed_hosts("127.0.0.1", {"MEDIMG_ALLOWED_HOSTS": "a.b, C.d e"})
    assert names == ["a.b", "c.d", "e", "localhost"]
    network = voila_py.allowed_hosts("0.0.0.0", {})  # noqa: S104 the network mode's ip
    assert socket.gethostname().lower() in network
    assert voila_py.allowed_hosts("127.0.0.1", {}) == ["localhost"]


@pytest.mark.parametrize(
    "path",
    [
        "/voila/tree",
        "/voila/tree/",
        "/voila/tree/data",
        "/voila/tree?classic-tree=true",
        "/voila/api/contents",
        "/voila/api/contents/",
        "/voila/api/contents/data",
        "/voila/files/data/x%00.txt",
        "/voila/files/%00",
        "/logout",
        "/voila/templates/",
        "/voila/templates/x",
        "/voila/templates/lab/",
        "/voila/templates/lab/static/",
        "/voila/templates/lab/static/%00",
        "/voila/templates/lab/static/../../../etc/passwd",
        "/voila/static/%00",
        "/voila/labextensions/%00",
        "/voila/api/themes/%00",
        "/voila/render/%00.ipynb",
        "/voila/render/nothing.ipynb",
        "/nothing",
    ],
)
def test_tree_and_malformed_paths_answer_404(site, path):
    _, port = site
    status, body, _ = _get(port, path)
    # Outside file_allowlist or Voila's static folders: 403, as before.
    refused = path in ("/voila/files/%00", "/voila/static/%00")
    assert status == (403 if refused else 404), (path, status)
    for name in ("README.md", "viewer.ipynb", "Traceback", "probe"):
        assert name not in body, (path, name)


def test_hostile_paths_never_answer_500(site):
    """Generated paths (NUL, control bytes, dot segments, long, non-UTF-8)."""
    _, port = site
    rng = np.random.default_rng(17)
    prefixes = [
        "/voila/files/",
        "/voila/templates/",
        "/voila/static/",
        "/voila/labextensions/",
        "/voila/api/themes/",
        "/voila/render/",
        "/voila/tree/",
        "/",
    ]
    pieces = [
        "%00",
        "%ff",
        "%c0%ae",
        "..",
        "%2e%2e",
        "//",
        "%5c",
        "a" * 300,
        "%0a",
        "lab",
        "static",
        "data",
        "x.ipynb",
        "%25",
        ";",
        "~",
    ]
    answered = []
    for prefix in prefixes:
        for _ in range(12):
            parts = rng.choice(pieces, size=rng.integers(1, 5))
            path = prefix + "/".join(parts)
            status, _, _ = _get(port, path)
            answered.append((path, status))
    bad = [(p, s) for p, s in answered if s >= 500]
    assert not bad, bad


def test_the_root_leads_to_the_landing_page(site):
    _, port = site
    status, _, headers = _get(port, "/")
    assert status == 302  # not permanent: a browser does not remember it
    assert headers["Location"].endswith("/voila/render/index.ipynb")


def _voila_module():
    """``jupyter/voila.py`` as a module (outside Voila: nothing is patched)."""
    import importlib.util

    import traitlets.config

    spec = importlib.util.spec_from_file_location(
        "_voila_cfg", REPO_JUPYTER / "voila.py"
    )
    module = importlib.util.module_from_spec(spec)
    module.get_config = traitlets.config.get_config
    spec.loader.exec_module(module)
    return module


def _cmdlines(root_pid: int) -> dict[int, str]:
    """The command lines of ``root_pid``'s process group."""
    lines = {}
    pgid = os.getpgid(root_pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            lines[int(entry.name)] = (
                (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            )
        except (OSError, ProcessLookupError):
            continue
    return lines


def _assert_token_guards(base: str, token: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for query in ("", "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(base + "voila/render/index.ipynb" + query, timeout=60)
        assert refused.value.code in (302, 403), query
    with opener.open(
        base + f"voila/render/index.ipynb?token={token}", timeout=60
    ) as ok:
        assert ok.status == 200


def test_make_dashboard_network_keeps_the_token_off_the_command_line(tmp_path):
    """``make dashboard-network`` as a user runs it (``install`` taken as
    done): the token is required, and no process of it has it in
    /proc/<pid>/cmdline."""
    token, port = secrets.token_urlsafe(16), _free_port()
    env = _isolated_env(tmp_path / "home")
    env["TOKEN"] = token
    base = f"http://127.0.0.1:{port}/"
    server = _start(
        "dashboard_network",
        [
            "make",
            "-s",
            "-o",
            "install",
            "dashboard-network",
            f"PORT={port}",
            f"BIN={BIN}",
        ],
        base + "voila/static/voila.js",
        cwd=REPO,
        env=env,
    )
    try:
        lines = _cmdlines(server.process.pid)
        assert any("voila" in line for line in lines.values()), lines
        leaks = {pid: line for pid, line in lines.items() if token in line}
        assert not leaks, leaks
        _assert_token_guards(base, token)
        assert token in server.log.read_text()  # printed once, for the user
    finally:
        _stop(server)


def test_the_token_can_come_from_a_file(tmp_path):
    token, port = secrets.token_urlsafe(16), _free_port()
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    secret.chmod(0o600)
    env = _isolated_env(tmp_path / "home")
    env["MEDIMG_DASHBOARD_TOKEN_FILE"] = str(secret)
    base = f"http://127.0.0.1:{port}/"
    server = start_dashboards("dashboard_token_file", port, env)
    try:
        assert token not in _cmdlines(server.process.pid).get(server.process.pid, "")
        _assert_token_guards(base, token)
    finally:
        _stop(server)


def test_an_unreadable_token_file_is_a_sentence(tmp_path):
    voila_py = _voila_module()
    with pytest.raises(ValueError, match=r"TOKEN_FILE=.*readable file"):
        voila_py.token_from_environment(
            {"MEDIMG_DASHBOARD_TOKEN_FILE": str(tmp_path / "none")}
        )
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        voila_py.token_from_environment(
            {"MEDIMG_DASHBOARD_TOKEN_FILE": str(tmp_path / "empty")}
        )
    assert voila_py.token_from_environment({TOKEN_ENV: " t "}) == "t"
    assert voila_py.token_from_environment({}) is None


#: What a message around an upload adds to its file's bytes (the JSON header
#: of the widget's update, the buffer offsets); measured below.
OVERHEAD_BOUND = 2**20


def _frames(page) -> list[int]:
    """Sizes of the frames ``page`` sends over its websockets, as they go."""
    sizes: list[int] = []

    def on_socket(ws):
        ws.on(
            "framesent",
            lambda payload: sizes.append(
                len(payload) if isinstance(payload, bytes) else len(payload.encode())
            ),
        )

    page.on("websocket", on_socket)
    return sizes


def _choose(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").first.click()
    chooser.value.set_files(str(path))


def test_an_over_limit_upload_is_refused_before_any_byte_is_sent(
    page, site, tmp_path, artifacts
):
    base, _ = site
    sizes = _frames(page)
    page.goto(base + "voila/render/viewer.ipynb", timeout=LOAD_TIMEOUT_MS)
    button = page.locator("button.widget-upload.medimg-upload").first
    button.wait_for(timeout=LOAD_TIMEOUT_MS)
    classes = button.get_attribute("class")
    assert f"medimg-max-bytes-{MAX_UPLOAD_BYTES}" in classes.split()
    page.get_by_text("Open:").first.wait_for(timeout=LOAD_TIMEOUT_MS)

    # A file the page lets through, so that the frame listener is shown to
    # see an upload: random bytes (the kernel refuses them by content).
    rng = np.random.default_rng(4)
    small = tmp_path / "small.bin"
    small.write_bytes(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    _choose(page, small)
    page.get_by_text("small.bin").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    deadline = time.monotonic() + 60
    while max(sizes, default=0) < 300_000 and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # frames arrive as events: poll the list
    upload_frame = max(sizes)
    overhead = upload_frame - 300_000
    print(f"upload frame: {upload_frame} bytes for 300000: overhead {overhead} bytes")
    assert 0 <= overhead < OVERHEAD_BOUND

    # Over the limit: refused in the page, nothing of it sent.
    big = tmp_path / "big.dcm"
    with big.open("wb") as out:
        out.truncate(MAX_UPLOAD_BYTES + 2**20)  # 65 MiB, sparse
    before = len(sizes)
    _choose(page, big)
    note = page.locator(".medimg-upload-refused")
    note.wait_for(timeout=LOAD_TIMEOUT_MS)
    text = note.inner_text()
    assert "big.dcm" in text and "65.0 MiB" in text and "64.0 MiB" in text
    assert "nothing was sent" in text
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artifacts / f"upload_refused_{width}x{height}.png"))
    page.set_viewport_size({"width": 1366, "height": 768})
    # A small file after it goes through (the socket is alive, the kernel
    # answers), and no frame since the refusal carried the big one.
    after = tmp_path / "after.bin"
    after.write_bytes(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    _choose(page, after)
    page.get_by_text("after.bin").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    later = sizes[before:]
    assert 200_000 <= max(later) < 200_000 + OVERHEAD_BOUND, later


def test_the_server_caps_messages_near_the_upload_limit():
    """voila.json: a message may hold one upload and its overhead, no more."""
    config = json.loads((REPO_JUPYTER / "voila.json").read_text())
    cap = config["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert MAX_UPLOAD_BYTES + 4096 <= cap <= MAX_UPLOAD_BYTES + OVERHEAD_BOUND


def test_the_server_refuses_an_over_cap_message(site):
    """A client that skips the page's check: the server closes the socket."""
    import asyncio
    import concurrent.futures
    import re

    import tornado.httpclient
    import tornado.websocket

    base, port = site
    html = urllib.request.urlopen(base + "voila/render/viewer.ipynb", timeout=60).read()  # noqa: S310 the loopback server started above
    kernel = re.search(rb'"kernelId": "([0-9a-f-]{36})"', html)
    assert kernel, "no kernel id in the page"
    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel.group(1).decode()}/channels"

    async def ask(pad: int) -> str:
        """Send a kernel_info_request padded to ``pad`` bytes: "reply" or "closed"."""
        request = tornado.httpclient.HTTPRequest(url, request_timeout=60)
        ws = await tornado.websocket.websocket_connect(request)
        msg_id = secrets.token_hex(8)
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "kernel_info_request",
                "username": "test",
                "session": secrets.token_hex(8),
                "date": "2026-01-01T00:00:00Z",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {"pad": "x" * pad},
            "content": {},
            "channel": "shell",
            "buffers": [],
        }
        try:
            await ws.write_message(json.dumps(message))
        except tornado.websocket.WebSocketClosedError:
            return "closed"  # while the message was still going out
        while (answer := await asyncio.wait_for(ws.read_message(), 60)) is not None:
            if isinstance(answer, str):
                parent = json.loads(answer).get("parent_header", {})
                if parent.get("msg_id") == msg_id:
                    ws.close()
                    return "reply"
        return "closed"

    # In a thread: pytest-playwright's event loop runs in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        small = pool.submit(asyncio.run, ask(1000)).result(timeout=120)
        # An upload's worth and more (64 MiB + 1 MiB): the old 256 MiB cap
        # passed it to the kernel.
        big = pool.submit(asyncio.run, ask(MAX_UPLOAD_BYTES + OVERHEAD_BOUND))
        big = big.result(timeout=120)
    assert small == "reply"  # a well-formed request is answered...
    assert big == "closed"  # ...but not once it is over the cap
