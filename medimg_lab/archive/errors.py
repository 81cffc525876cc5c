"""Errors of archive access: every failure is a sentence a person can act on.

Each is a :class:`~medimg_lab.MedImgError` whose ``source`` names the archive
(its URL without credentials, or ``AE@host:port``), whose ``problem`` says
what happened and whose ``fix`` says what would work. No library's internal
exception text reaches the message; the original exception stays chained as
``__cause__`` for a debugger.
"""

from __future__ import annotations

from ..errors import MedImgError

__all__ = [
    "ArchiveAuthError",
    "ArchiveError",
    "ArchiveNotFoundError",
    "ArchiveResponseError",
    "ArchiveUnavailableError",
    "RetrievalCancelled",
]


class ArchiveError(MedImgError):
    """An archive could not be searched, read or written."""


class ArchiveAuthError(ArchiveError, PermissionError):
    """The archive refused the credentials (HTTP 401/403, DIMSE rejection)."""


class ArchiveNotFoundError(ArchiveError, LookupError):
    """The study, series or instance asked for is not on the archive."""


class ArchiveUnavailableError(ArchiveError, ConnectionError):
    """The archive did not answer: refused, timed out, closed mid-transfer, 5xx."""


class ArchiveResponseError(ArchiveError, ValueError):
    """The archive answered something that is not what the standard says.

    Malformed JSON, a multipart message without its boundary, a part that is
    not DICOM, or a response larger than the bound set for it.
    """


class RetrievalCancelled(ArchiveError):
    """The caller cancelled a retrieval (an Event was set, or progress said no)."""
