"""Archive access: DICOMweb and DIMSE, with a local cache of instances.

Images in a hospital live in a PACS or a DICOMweb archive. This package
(no UI imports) searches them, retrieves series into a
:class:`~medimg_lab.MedImage` with the semantics of :func:`medimg_lab.load`,
and stores results back:

- :class:`DicomWebArchive`: QIDO-RS search (patient ID, accession number,
  modality, date range, description; paged), WADO-RS retrieval, STOW-RS
  storage, through ``dicomweb-client``. Credentials come from environment
  variables or files (:class:`Credentials`), never from an argument.
- :class:`DimseArchive`: C-ECHO, C-FIND (study, series, image level), C-GET
  and C-STORE, through ``pynetdicom``.
- :class:`InstanceCache`: instances on disk keyed by SOP Instance UID,
  written atomically, with a size cap (least recently used go first), so
  that reopening a series costs no transfer.
- Every retrieval reports :class:`Progress` (bytes and instances) and can be
  cancelled; a cancelled or failed one leaves nothing half-written.

:func:`configured_archive` opens the archive named by ``MEDIMG_ARCHIVE_URL``
(``https://host/dicom-web`` or ``dimse://AE@host:port``), for dashboards and
the command line.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ._series import RetrievedSeries
from .auth import Credentials
from .cache import DEFAULT_CACHE_BYTES, InstanceCache, default_cache_folder
from .dicomweb import DicomWebArchive
from .dimse import DimseArchive
from .errors import (
    ArchiveAuthError,
    ArchiveError,
    ArchiveNotFoundError,
    ArchiveResponseError,
    ArchiveUnavailableError,
    RetrievalCancelled,
)
from .progress import Progress, TqdmProgress
from .query import Series, Study

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "ArchiveAuthError",
    "ArchiveError",
    "ArchiveNotFoundError",
    "ArchiveResponseError",
    "ArchiveUnavailableError",
    "Credentials",
    "DicomWebArchive",
    "DimseArchive",
    "InstanceCache",
    "Progress",
    "RetrievalCancelled",
    "RetrievedSeries",
    "Series",
    "Study",
    "TqdmProgress",
    "configured_archive",
    "default_cache_folder",
    "open_archive",
]

#: How to configure an archive, for a message in a page or a terminal.
HOW_TO_CONFIGURE = (
    "Set MEDIMG_ARCHIVE_URL to the archive's DICOMweb root "
    "(https://host/dicom-web) or to dimse://AE@host:port, and its credentials "
    "in MEDIMG_ARCHIVE_USER with MEDIMG_ARCHIVE_PASSWORD_FILE, or in "
    "MEDIMG_ARCHIVE_TOKEN_FILE."
)


def open_archive(url: str, **options) -> DicomWebArchive | DimseArchive:
    """The archive at ``url``: ``http(s)://...`` (DICOMweb) or ``dimse://AE@host:port``.

    ``options`` go to :class:`DicomWebArchive` or :class:`DimseArchive`.

    Parameters
    ----------
    url : str
        ``http(s)://host/path`` of a DICOMweb service, or
        ``dimse://AE@host:port`` of a DIMSE peer (``AE``: its called AE
        title).
    **options
        The archive class's keyword options (``cache``, ``credentials`` ...).

    Returns
    -------
    DicomWebArchive or DimseArchive
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str; got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme == "dimse":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(
                f"a DIMSE archive URL is dimse://AE@host:port (such as "
                f"dimse://PACS@pacs.example.org:104); got {url!r}"
            )
        if parts.username:
            options.setdefault("called_ae", parts.username)
        return DimseArchive(parts.hostname, port, **options)
    return DicomWebArchive(url, **options)


def configured_archive(**options) -> DicomWebArchive | DimseArchive | None:
    """The archive named by ``$MEDIMG_ARCHIVE_URL``, or None if it is unset.

    When it returns None, :data:`HOW_TO_CONFIGURE` says how to set one.

    Parameters
    ----------
    **options
        As :func:`open_archive` takes them.

    Returns
    -------
    DicomWebArchive, DimseArchive or None
    """
    url = os.environ.get("MEDIMG_ARCHIVE_URL", "").strip()
    return open_archive(url, **options) if url else None
