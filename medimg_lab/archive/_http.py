"""HTTP for DICOMweb: a session with retries, bounded bodies, plain-sentence errors.

Every response body is bounded. A response read whole (QIDO JSON, a STOW
answer) is refused past ``max_response_bytes`` while it is read, before it
is parsed; a WADO-RS multipart stream is written part by part to the cache's
``incoming`` files, so memory holds one chunk at a time whatever the server
sends, and each part is refused past its own bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from email.message import Message
from typing import BinaryIO

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..io._source import size_text
from .errors import (
    ArchiveAuthError,
    ArchiveError,
    ArchiveNotFoundError,
    ArchiveResponseError,
    ArchiveUnavailableError,
)

#: Statuses retried (with exponential backoff) before they count as a failure.
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
_CREDENTIALS_FIX = (
    "Set MEDIMG_ARCHIVE_USER with MEDIMG_ARCHIVE_PASSWORD (or ..._PASSWORD_FILE), "
    "or MEDIMG_ARCHIVE_TOKEN (or ..._TOKEN_FILE), to an account of this archive."
)


#: Characters that QIDO-RS matching gives a meaning (wildcards, the person
#: name separator, value lists), sent as they are: RFC 3986 allows them in a
#: query, and some archives (Orthanc 1.10 with DICOMweb 1.7) match the
#: percent-encoded forms, as dicomweb-client sends them, literally.
_QUERY_KEEP = {"%2A": "*", "%3F": "?", "%5E": "^", "%2C": ","}


def tidy_query(url: str) -> str:
    """``url`` with QIDO-RS wildcards unescaped, and spaces as %20 (not +)."""
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query = query.replace("+", "%20")
    for code, char in _QUERY_KEEP.items():
        query = query.replace(code, char).replace(code.lower(), char)
    return f"{head}?{query}"


class _Session(requests.Session):
    def send(self, request, **kwargs):
        request.url = tidy_query(request.url)
        return super().send(request, **kwargs)


def make_session(
    *,
    name: str,
    auth: requests.auth.AuthBase | None,
    retries: int,
    backoff_s: float,
    max_response_bytes: int,
) -> requests.Session:
    """A session that retries, authenticates and bounds every body it reads."""
    session = _Session()
    session.trust_env = False  # no ~/.netrc credentials or proxies behind our back
    retry = Retry(
        total=retries,
        connect=retries,
        read=False,  # a read error (timeout, reset) is raised as it is, not retried
        status=retries,
        other=False,
        backoff_factor=backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD", "POST"}),
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.auth = auth
    session.hooks["response"].append(_bounded_body(name, max_response_bytes))
    return session


def _bounded_body(name: str, limit: int) -> Callable:
    """A response hook that reads a non-streamed body up to ``limit`` bytes.

    requests calls response hooks before it reads the body of a request
    made without ``stream=True``; reading it here, in chunks, refuses an
    oversized body after ``limit`` bytes instead of after all of them.
    """

    def hook(response: requests.Response, *args, **kwargs) -> requests.Response:
        if kwargs.get("stream") or response._content_consumed:
            return response
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise _too_large(
                name, response, f"announces {size_text(int(declared))}", limit
            )
        body = bytearray()
        try:
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > limit:
                    response.close()
                    raise _too_large(name, response, "sent more", limit)
        except requests.RequestException as exc:
            raise translate(exc, name, "reading the answer", timeout_s=None) from exc
        response._content = bytes(body)
        response._content_consumed = True
        return response

    return hook


def _too_large(name: str, response, what: str, limit: int) -> ArchiveResponseError:
    return ArchiveResponseError(
        name,
        f"answered {_path(response.url)} with a body that {what} than the "
        f"{size_text(limit)} allowed for it.",
        "Narrow the search (limit=, filters), or pass a larger "
        "max_response_bytes= if the archive is trusted.",
    )


def _path(url: str) -> str:
    """The path and query of a URL, without scheme, host or credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def translate(
    exc: BaseException,
    name: str,
    what: str,
    *,
    timeout_s: float | None,
    attempts: int = 1,
) -> ArchiveError:
    """The plain-sentence ArchiveError for a requests or urllib3 failure."""
    if isinstance(exc, ArchiveError):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return http_error(exc.response, name, what, attempts=attempts)
    if isinstance(exc, requests.Timeout):
        within = f" within {timeout_s:g} s" if timeout_s else " in time"
        return ArchiveUnavailableError(
            name,
            f"did not answer {what}{within}.",
            "Check that the archive is running and reachable, or pass a larger "
            "timeout_s=.",
        )
    if isinstance(
        exc,
        requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return ArchiveUnavailableError(
            name,
            f"closed the connection in the middle of {what}.",
            "Retrieve again: the complete instances are cached, so it resumes "
            "where it stopped.",
        )
    if isinstance(exc, requests.ConnectionError):
        return ArchiveUnavailableError(
            name,
            f"could not be reached for {what}: the connection was refused or dropped.",
            "Check the URL and port, and that the archive is running; retrieve "
            "again to resume.",
        )
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return ArchiveResponseError(
            name,
            f"answered {what} with a body that is not valid JSON.",
            "Check that the URL points to the archive's DICOMweb root (for "
            "example http://host:8042/dicom-web).",
        )
    if isinstance(
        exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
    ):
        return ArchiveError(
            name, "is not a valid URL.", "Give an http:// or https:// URL."
        )
    return ArchiveUnavailableError(
        name,
        f"failed during {what} ({type(exc).__name__}).",
        "Check the archive's URL and that it is running, then try again.",
    )


def http_error(
    response: requests.Response, name: str, what: str, *, attempts: int = 1
) -> ArchiveError:
    """The ArchiveError for an HTTP error status."""
    status = response.status_code
    reason = f"HTTP {status}" + (f" {response.reason}" if response.reason else "")
    if status == 401:
        return ArchiveAuthError(
            name,
            f"refused {what}: it did not accept the credentials ({reason}).",
            _CREDENTIALS_FIX,
        )
    if status == 403:
        return ArchiveAuthError(
            name,
            f"refused {what}: the account may not do this ({reason}).",
            "Ask the archive's administrator for the rights, or use another account.",
        )
    if status == 404:
        return ArchiveNotFoundError(
            name,
            f"found nothing for {what} ({reason}).",
            "Check the UIDs with a search first, and that the URL ends at the "
            "DICOMweb root (for example /dicom-web).",
        )
    if status == 413:
        return ArchiveResponseError(
            name,
            f"refused {what} as too large ({reason}).",
            "Store fewer or smaller instances at a time.",
        )
    if status >= 500 or status in RETRY_STATUSES:
        tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
        return ArchiveUnavailableError(
            name,
            f"failed on {what} with a server error ({reason}){tries}.",
            "Try again later; if it persists, tell the archive's administrator.",
        )
    return ArchiveResponseError(
        name,
        f"rejected {what} ({reason}).",
        "Check the query's attributes and values (dates as YYYYMMDD, UIDs as "
        "digits and dots).",
    )


def boundary_of(content_type: str | None, name: str, what: str) -> bytes:
    """The multipart boundary of a Content-Type, or a plain-sentence error."""
    msg = Message()
    msg["Content-Type"] = content_type or ""
    media = (msg.get_content_type() or "").lower()
    boundary = msg.get_param("boundary")
    if media != "multipart/related" or not isinstance(boundary, str) or not boundary:
        shown = (content_type or "no Content-Type")[:80]
        raise ArchiveResponseError(
            name,
            f"answered {what} with {shown!r}, not a multipart/related message "
            "with a boundary.",
            "Check that the URL is the archive's DICOMweb root and that it "
            "supports WADO-RS.",
        )
    if len(boundary) > 200:
        raise ArchiveResponseError(
            name,
            f"answered {what} with a multipart boundary of {len(boundary)} "
            "characters (at most 70 are allowed).",
            "The archive's answer is broken; tell its administrator.",
        )
    return boundary.encode("latin-1", errors="replace")


_MAX_PREAMBLE = 64 * 1024
_MAX_PART_HEADERS = 16 * 1024


def read_multipart(
    chunks: Iterator[bytes],
    boundary: bytes,
    open_part: Callable[[int], contextlib.AbstractContextManager[BinaryIO]],
    *,
    name: str,
    what: str,
    max_part_bytes: int,
    on_bytes: Callable[[int], None],
) -> int:
    """Stream a multipart/related body into files, one part at a time.

    ``open_part(i)`` is a context manager giving a binary file for part
    ``i``; it is entered when the part's body starts and left, closed, when
    its closing delimiter has been seen (the caller then keeps the file) or
    on any failure (the caller then discards it). Memory holds at most one
    chunk plus a delimiter's length. ``on_bytes(n)`` is called for each
    chunk (progress and cancellation). Returns the number of parts.

    Raises
    ------
    ArchiveResponseError
        For a body without its delimiters, part headers past 16 KiB, or a
        part past ``max_part_bytes``.
    ArchiveUnavailableError
        If the body ends before its closing delimiter (the connection was
        closed mid-transfer).
    """
    delimiter = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # the first delimiter may open the body directly
    state = "preamble"
    parts = 0
    part_size = 0
    current: contextlib.AbstractContextManager | None = None
    sink: BinaryIO | None = None

    def malformed(problem: str) -> ArchiveResponseError:
        return ArchiveResponseError(
            name,
            f"answered {what} with a broken multipart message: {problem}.",
            "The archive's WADO-RS answer does not follow the standard; tell its "
            "administrator, or use DIMSE.",
        )

    try:
        for chunk in chunks:
            if not chunk:
                continue
            on_bytes(len(chunk))
            buf += chunk
            while state != "end":
                if state == "preamble":
                    i = buf.find(delimiter)
                    if i < 0:
                        if len(buf) > _MAX_PREAMBLE:
                            raise malformed(
                                f"no boundary in its first {size_text(_MAX_PREAMBLE)}"
                            )
                        break
                    del buf[: i + len(delimiter)]
                    state = "after"
                elif state == "after":
                    if len(buf) < 2:
                        break
                    state = "end" if buf[:2] == b"--" else "headers"
                elif state == "headers":
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        if len(buf) > _MAX_PART_HEADERS:
                            raise malformed("part headers longer than 16 KiB")
                        break
                    del buf[: i + 4]
                    current = open_part(parts)
                    sink = current.__enter__()
                    part_size = 0
                    state = "body"
                else:  # body
                    i = buf.find(delimiter)
                    upto = i if i >= 0 else max(0, len(buf) - len(delimiter) + 1)
                    if upto:
                        part_size += upto
                        if part_size > max_part_bytes:
                            raise ArchiveResponseError(
                                name,
                                f"sent part {parts + 1} of {what} larger than the "
                                f"{size_text(max_part_bytes)} allowed for one "
                                "instance.",
                                "Pass a larger max_bytes= if the instance is "
                                "genuine (a whole-slide image).",
                            )
                        sink.write(buf[:upto])
                        del buf[:upto]
                    if i < 0:
                        break
                    del buf[: len(delimiter)]
                    done, current, sink = current, None, None
                    parts += 1
                    state = "after"
                    done.__exit__(None, None, None)  # complete: the caller keeps it
            if state == "end":
                buf.clear()  # an epilogue is ignored, and not read on
                break
        if state == "preamble":
            raise malformed("it holds no part")
        if state != "end":
            raise ArchiveUnavailableError(
                name,
                f"closed the connection in the middle of {what}, after "
                f"{parts} complete instance(s).",
                "Retrieve again: the complete instances are cached, so it resumes "
                "where it stopped.",
            )
    except BaseException as exc:
        if current is not None:
            current.__exit__(type(exc), exc, exc.__traceback__)
        raise
    return parts
