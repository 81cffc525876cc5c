"""A server that answers garbage: clear errors, bounded memory, nothing half-written.

A tiny HTTP server on 127.0.0.1 (tests/archive/conftest.py ``junk``) plays an
archive that is broken or hostile: malformed or endless JSON, multipart
answers without boundaries or with endless parts, non-DICOM parts, UIDs that
try to leave the cache folder, 5xx storms, a server that never answers.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import pydicom
import pytest
from pydicom.uid import generate_uid

from medimg_lab.archive import (
    ArchiveAuthError,
    ArchiveNotFoundError,
    ArchiveResponseError,
    ArchiveUnavailableError,
    Credentials,
    DicomWebArchive,
)
from tests.archive.conftest import incoming_files

STUDY = generate_uid(entropy_srcs=["hostile study"])
SERIES = generate_uid(entropy_srcs=["hostile series"])
MiB = 1024**2


def _json(handler, body: bytes, status: int = 200, length: bool = True):
    handler.send_response(status)
    handler.send_header("Content-Type", "application/dicom+json")
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


def _listing(uids):
    return json.dumps([{"00080018": {"vr": "UI", "Value": [u]}} for u in uids]).encode()


def _endless(junk, handler, head: bytes, filler: bytes, total: int, ctype: str):
    """Send ``head`` then ``filler`` up to ``total`` bytes, without a length."""
    handler.send_response(200)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Connection", "close")
    handler.end_headers()
    if not junk.send(handler, head):
        return
    block = filler * (MiB // len(filler))
    while junk.sent < total:
        if not junk.send(handler, block):
            return


def _peak_mib(fn) -> tuple[float, BaseException]:
    tracemalloc.start()
    try:
        fn()
    except BaseException as exc:  # handed back to the test
        caught = exc
    else:
        caught = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / MiB, caught


# -- QIDO-RS answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json at all", "not valid JSON"),
        (b"[1, 2, 3]", "not DICOM JSON"),
        (b'"a string"', "not DICOM JSON"),
        (b'[{"0020000D": "not an element"}]', "not DICOM JSON"),
        (
            b'[{"0020000D": {"vr": "UI", "Value": ["../../../etc/passwd"]}}]',
            "not a DICOM UID",
        ),
    ],
)
def test_malformed_search_answers(junk, junk_archive, body, expected):
    junk.route = lambda h: _json(h, body)
    with pytest.raises(ArchiveResponseError, match=expected) as caught:
        junk_archive.search_studies()
    assert "Traceback" not in str(caught.value)


def test_endless_search_answer_is_cut_with_bounded_memory(junk, tmp_path):
    """256 MiB of JSON without a length: refused after 1 MiB, memory stays small."""
    archive = DicomWebArchive(
        junk.url,
        cache=tmp_path,
        retries=0,
        max_response_bytes=MiB,
        env_prefix="MEDIMG_TEST_UNSET",
    )
    junk.route = lambda h: _endless(
        junk,
        h,
        b"[",
        b'{"00100020": {"vr": "LO"}},',
        256 * MiB,
        "application/dicom+json",
    )
    peak, caught = _peak_mib(archive.search_studies)
    assert isinstance(caught, ArchiveResponseError), caught
    assert "more than the 1.0 MiB allowed" in str(caught)
    assert peak < 8, f"peak {peak:.1f} MiB"
    assert junk.sent < 64 * MiB


def test_announced_oversized_answer_is_refused_before_reading(junk, tmp_path):
    archive = DicomWebArchive(
        junk.url,
        cache=tmp_path,
        retries=0,
        max_response_bytes=MiB,
        env_prefix="MEDIMG_TEST_UNSET",
    )

    def route(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/dicom+json")
        h.send_header("Content-Length", str(10 * 1024**3))
        h.end_headers()
        junk.send(h, b"[" * 65536)

    junk.route = route
    with pytest.raises(ArchiveResponseError, match=r"announces 10\.0 GiB"):
        archive.search_studies()


# -- WADO-RS answers ---------------------------------------------------------------


def _series_route(junk, retrieval):
    """Answer the listing with one UID, and the retrieval with ``retrieval``."""
    uid = generate_uid(entropy_srcs=["hostile instance"])

    def route(h):
        if "/instances?" in h.path:
            _json(h, _listing([uid]))
        else:
            retrieval(h)

    junk.route = route
    return uid


def _multipart(
    h, body: bytes, ctype='multipart/related; type="application/dicom"; boundary=XyZ'
):
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _dicom_bytes(seeds) -> bytes:
    return seeds["mr_rle"].files[0].read_bytes()


@pytest.mark.parametrize(
    ("ctype", "body", "expected"),
    [
        ("application/dicom", b"DICM", "not a multipart/related message"),
        ("multipart/related; type=application/dicom", b"--x\r\n", "with a boundary"),
        (None, b"no delimiter here" * 10, "holds no part"),
        (
            None,
            b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--XyZ--",
            "not a DICOM instance",
        ),
        (None, b"--XyZ\r\n" + b"H" * 70000, "part headers longer than 16 KiB"),
    ],
)
def test_malformed_multipart_answers(junk, junk_archive, ctype, body, expected):
    _series_route(
        junk,
        lambda h: _multipart(h, body, ctype) if ctype else _multipart(h, body),
    )
    with pytest.raises(ArchiveResponseError, match=expected):
        junk_archive.retrieve_series(SERIES, study_uid=STUDY)
    assert incoming_files(junk_archive.cache) == []
    assert len(junk_archive.cache) == 0


def test_endless_part_is_refused_as_it_arrives(junk, junk_archive):
    """A part that never ends: refused at max_bytes, nothing kept, memory small."""
    head = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\n"
    _series_route(
        junk,
        lambda h: _endless(
            junk, h, head, b"\0", 512 * MiB, 'multipart/related; boundary="XyZ"'
        ),
    )
    peak, caught = _peak_mib(
        lambda: junk_archive.retrieve_series(SERIES, study_uid=STUDY, max_bytes=4 * MiB)
    )
    assert isinstance(caught, ArchiveResponseError), caught
    assert "larger than the 4.0 MiB allowed for one instance" in str(caught)
    assert peak < 8, f"peak {peak:.1f} MiB"
    assert junk.sent < 128 * MiB
    assert incoming_files(junk_archive.cache) == [] and len(junk_archive.cache) == 0


def test_garbage_without_boundary_is_refused_early(junk, junk_archive):
    _series_route(
        junk,
        lambda h: _endless(
            junk, h, b"", b"garbage!", 256 * MiB, "multipart/related; boundary=XyZ"
        ),
    )
    peak, caught = _peak_mib(
        lambda: junk_archive.retrieve_series(SERIES, study_uid=STUDY)
    )
    assert isinstance(caught, ArchiveResponseError), caught
    assert "no boundary in its first 64.0 KiB" in str(caught)
    assert peak < 8 and junk.sent < 64 * MiB


def test_answer_cut_mid_part_keeps_nothing(junk, junk_archive, seeds):
    data = _dicom_bytes(seeds)

    def cut(h):
        h.send_response(200)
        h.send_header("Content-Type", "multipart/related; boundary=XyZ")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(
            b"--XyZ\r\nContent-Type: application/dicom\r\n\r\n" + data[: len(data) // 2]
        )
        h.close_connection = True

    _series_route(junk, cut)
    with pytest.raises(
        ArchiveUnavailableError, match="closed the connection in the middle"
    ):
        junk_archive.retrieve_series(SERIES, study_uid=STUDY)
    assert incoming_files(junk_archive.cache) == [] and len(junk_archive.cache) == 0


def test_a_well_formed_answer_from_the_junk_server_loads(junk, junk_archive, seeds):
    """The same server with a correct answer: the failures above are the answers'."""
    data = _dicom_bytes(seeds)
    uid = str(pydicom.dcmread(seeds["mr_rle"].files[0]).SOPInstanceUID)

    def route(h):
        if "/instances?" in h.path:
            _json(h, _listing([uid]))
        else:
            _multipart(
                h,
                b"preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\n"
                + data
                + b"\r\n--XyZ--\r\nepilogue",
            )

    asked_encoding = []

    def recording(h):
        if "/instances?" not in h.path:
            asked_encoding.append(h.headers.get("Accept-Encoding"))
        route(h)

    junk.route = recording
    got = junk_archive.retrieve_series(SERIES, study_uid=STUDY)
    assert got.paths[0].read_bytes() == data
    # instances are asked for as stored: gzip of pixel data costs the server
    # far more than it saves on a hospital network
    assert asked_encoding == ["identity"]


def test_instances_the_server_does_not_send(junk, junk_archive, seeds):
    data = _dicom_bytes(seeds)
    listed = [generate_uid(entropy_srcs=["listed", str(i)]) for i in range(2)]

    def route(h):
        if "/instances?" in h.path:
            _json(h, _listing(listed))
        else:
            _multipart(h, b"--XyZ\r\n\r\n" + data + b"\r\n--XyZ--")

    junk.route = route
    with pytest.raises(ArchiveResponseError, match="sent 0 of the 2 instances"):
        junk_archive.retrieve_series(SERIES, study_uid=STUDY)


# -- statuses, retries, timeouts, tokens -------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, ArchiveAuthError, "did not accept the credentials"),
        (403, ArchiveAuthError, "may not do this"),
        (404, ArchiveNotFoundError, "found nothing for a search for studies"),
        (400, ArchiveResponseError, "rejected a search for studies"),
    ],
)
def test_http_errors_are_sentences(junk, junk_archive, status, error, expected):
    junk.route = lambda h: _json(h, b"{}", status=status)
    with pytest.raises(error, match=expected) as caught:
        junk_archive.search_studies()
    assert f"HTTP {status}" in str(caught.value)


def test_server_errors_are_retried_with_backoff_then_reported(junk, tmp_path):
    archive = DicomWebArchive(
        junk.url,
        cache=tmp_path,
        retries=2,
        backoff_s=0.05,
        env_prefix="MEDIMG_TEST_UNSET",
    )
    junk.route = lambda h: _json(h, b"busy", status=503)
    with pytest.raises(
        ArchiveUnavailableError, match=r"HTTP 503.*after 3 attempt\(s\)"
    ):
        archive.search_studies()
    assert len(junk.requests) == 3


def test_a_passing_failure_is_retried_away(junk, tmp_path):
    archive = DicomWebArchive(
        junk.url,
        cache=tmp_path,
        retries=2,
        backoff_s=0.05,
        env_prefix="MEDIMG_TEST_UNSET",
    )
    answers = iter([500, 200])
    junk.route = lambda h: _json(h, b"[]", status=next(answers))
    assert archive.search_studies() == []
    assert len(junk.requests) == 2


def test_a_server_that_never_answers_times_out(junk, tmp_path):
    archive = DicomWebArchive(
        junk.url,
        cache=tmp_path,
        retries=0,
        timeout_s=0.3,
        env_prefix="MEDIMG_TEST_UNSET",
    )
    junk.route = lambda h: time.sleep(3)
    with pytest.raises(
        ArchiveUnavailableError,
        match=r"did not answer a search for studies within 0.3 s",
    ):
        archive.search_studies()


@pytest.mark.parametrize("right", [True, False])
def test_bearer_token_from_a_file(junk, tmp_path, right):
    token = tmp_path / "token"
    token.write_text("s3cr3t-token-value\n")

    def route(h):
        ok = h.headers.get("Authorization") == "Bearer s3cr3t-token-value"
        _json(h, b"[]" if ok else b"{}", status=200 if ok else 401)

    junk.route = route
    env = (
        {"MEDIMG_ARCHIVE_TOKEN_FILE": str(token)}
        if right
        else {"MEDIMG_ARCHIVE_TOKEN": "wrong"}
    )
    creds = Credentials.from_environment(environ=env)
    archive = DicomWebArchive(
        junk.url, cache=tmp_path / "c", credentials=creds, retries=0
    )
    assert "s3cr3t" not in repr(archive) and "s3cr3t" not in repr(creds)
    if right:
        assert archive.search_studies() == []
    else:
        with pytest.raises(ArchiveAuthError, match="HTTP 401"):
            archive.search_studies()
