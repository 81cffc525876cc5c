"""Fixtures of the archive tests: a real Orthanc, a pynetdicom SCP, a hostile server.

Every listener binds 127.0.0.1 on a free port (Orthanc's HTTP port answers
loopback only, ``RemoteAccessAllowed: false``; its DICOM server is off) and
is stopped at the end, bounded in time.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medimg_lab.archive import Credentials, DicomWebArchive, DimseArchive
from medimg_lab.archive.testing import files_of, seeded_orthanc
from tests.archive.orthanc import PASSWORD, USER, seed_all
from tests.archive.scp import LoopbackSCP


def credentials(user: str = USER, password: str = PASSWORD) -> Credentials:
    """Basic credentials, made the way a user makes them: from variables."""
    return Credentials.from_environment(
        environ={"MEDIMG_ARCHIVE_USER": user, "MEDIMG_ARCHIVE_PASSWORD": password}
    )


@pytest.fixture(scope="session")
def seeds(tmp_path_factory):
    """The sample series written as files: key -> Seeded."""
    return seed_all(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="session")
def orthanc(seeds, tmp_path_factory):
    """Debian's Orthanc with the DICOMweb plugin, seeded with every sample series."""
    with seeded_orthanc(tmp_path_factory.mktemp("orthanc"), files_of(seeds)) as server:
        yield server


@pytest.fixture
def archive(orthanc, tmp_path):
    """A DICOMweb client of the session's Orthanc, with an empty cache of its own."""
    with DicomWebArchive(
        orthanc.url,
        cache=tmp_path / "cache",
        credentials=credentials(),
        retries=1,
        backoff_s=0.05,
        timeout_s=30,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def scp(seeds, tmp_path_factory):
    """A pynetdicom C-FIND/C-GET/C-STORE SCP on 127.0.0.1 serving the sample series."""
    server = LoopbackSCP(
        files_of(seeds), store_dir=tmp_path_factory.mktemp("scp-store")
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dimse(scp, tmp_path):
    return DimseArchive(
        "127.0.0.1",
        scp.port,
        called_ae=scp.ae_title,
        cache=tmp_path / "cache",
        timeout_s=20,
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.route
        route(self)

    do_POST = do_GET


class Junk:
    """A tiny HTTP server on 127.0.0.1 whose answer each test chooses.

    ``junk.route = fn`` sets ``fn(handler)``, which writes the response;
    ``junk.requests`` lists the paths asked for; ``junk.sent`` counts bytes
    the route wrote with :meth:`send`.
    """

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.httpd.route = lambda h: h.send_error(404)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"
        self.sent = 0
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    @property
    def route(self):
        return self.httpd.route

    @route.setter
    def route(self, fn):
        self.httpd.route = fn

    def send(self, handler, data: bytes) -> bool:
        """Write ``data``; False once the client has gone away."""
        try:
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        self.sent += len(data)
        return True

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def junk():
    server = Junk()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def junk_archive(junk, tmp_path):
    with DicomWebArchive(
        junk.url,
        cache=tmp_path / "cache",
        credentials=None,
        retries=0,
        timeout_s=10,
        env_prefix="MEDIMG_TEST_UNSET",
    ) as client:
        yield client


def incoming_files(cache) -> list[Path]:
    """Files of a cache's incoming folder: parts being received (must be none)."""
    return sorted((Path(cache.folder) / ".incoming").iterdir())
