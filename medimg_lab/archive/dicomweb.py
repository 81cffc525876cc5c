"""DICOMweb archives: QIDO-RS search, WADO-RS retrieval, STOW-RS storage.

Searches and storage go through ``dicomweb-client``'s
:class:`~dicomweb_client.api.DICOMwebClient`; retrieval streams WADO-RS
multipart answers through the same HTTP session, straight into the
:class:`~medimg_lab.archive.InstanceCache` one part at a time (bounded
memory, the instances' own bytes and transfer syntax), and assembles them
with the same code as :func:`medimg_lab.load` on a folder.

A session needs an archive (tests/archive runs these steps against a real
Orthanc)::

    pacs = DicomWebArchive("http://127.0.0.1:8042/dicom-web")
    studies = pacs.search_studies(modality="CT", date="20200101-")
    series = pacs.search_series(studies[0].study_uid, modality="CT")
    ct = pacs.load_series(series[0].series_uid)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..params import Param, declared
from . import _http
from ._series import SeriesLoader
from .auth import DEFAULT_PREFIX, Credentials
from .cache import InstanceCache, as_cache, check_uid
from .errors import ArchiveError, ArchiveResponseError
from .progress import _Tracker
from .query import (
    SERIES_FIELDS,
    STUDY_FIELDS,
    Series,
    Study,
    records,
    series_filters,
    series_from_json,
    study_filters,
    study_from_json,
)

__all__ = ["DicomWebArchive"]

_ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
#: Default bound of a body read whole (a QIDO answer, a STOW answer): 64 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024**2
_STORE_BATCH_BYTES = 64 * 1024**2


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(
            "url must be a str such as 'http://host:8042/dicom-web'; got "
            f"{type(url).__name__}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"url must be an http:// or https:// URL of a DICOMweb root, such as "
            f"'http://127.0.0.1:8042/dicom-web'; got {url!r}"
        )
    if parts.username or parts.password:
        raise ValueError(
            "url must not hold a user name or password (they would show in "
            f"notebook outputs and logs); set {DEFAULT_PREFIX}_USER and "
            f"{DEFAULT_PREFIX}_PASSWORD_FILE (or {DEFAULT_PREFIX}_TOKEN_FILE) instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"url must be the DICOMweb root without a query; got {url!r} (pass "
            "search filters to search_studies() and search_series())"
        )
    return url.rstrip("/")


class DicomWebArchive(SeriesLoader):
    """A DICOMweb archive (QIDO-RS, WADO-RS, STOW-RS), with a local cache.

    Parameters
    ----------
    url : str
        The DICOMweb root, e.g. ``"https://pacs.example.org/dicom-web"``. It
        must not hold credentials.
    cache : InstanceCache or path-like, optional
        Where retrieved instances are kept; default an
        :class:`InstanceCache` in :func:`~medimg_lab.archive.default_cache_folder`.
    credentials : Credentials, optional
        Default: :meth:`Credentials.from_environment` with ``env_prefix``
        (HTTP basic or a bearer token from environment variables or files),
        or none if they are unset.
    env_prefix : str
        Prefix of the credentials' environment variables.
    timeout_s : float
        Seconds to wait for a connection and for each read (s).
    retries : int
        Retries of a refused connection or a 408/429/5xx answer, with
        exponential backoff (``backoff_s * 2**n`` seconds).
    backoff_s : float
        First backoff (s).
    page_size : int
        Results asked for per QIDO-RS request when iterating (paging).
    max_response_bytes : int
        Bound of a body read whole (bytes), such as a search's JSON.
    chunk_bytes : int
        Bytes read at a time from a retrieval's stream (memory per stream).
    """

    @declared
    def __init__(
        self,
        url: str,
        *,
        cache: InstanceCache | str | os.PathLike | None = None,
        credentials: Credentials | None = None,
        env_prefix: str = DEFAULT_PREFIX,
        timeout_s: Annotated[
            float,
            Param(0, 3600, 1, "s", "connect and read timeout", exclusive_min=True),
        ] = 30.0,
        retries: Annotated[int, Param(0, 10, 1, "", "retries with backoff")] = 3,
        backoff_s: Annotated[float, Param(0, 60, 0.1, "s", "first backoff")] = 0.5,
        page_size: Annotated[int, Param(1, 100_000, 1, "", "results per page")] = 500,
        max_response_bytes: Annotated[
            int, Param(1024, 2**40, 1, "bytes", "largest body read whole")
        ] = DEFAULT_MAX_RESPONSE_BYTES,
        chunk_bytes: Annotated[
            int, Param(4096, 2**30, 1, "bytes", "stream chunk")
        ] = 1024**2,
    ):
        self.url = _check_url(url)
        self.name = self.url
        if credentials is None:
            credentials = Credentials.from_environment(env_prefix)
        if credentials is not None and not isinstance(credentials, Credentials):
            raise TypeError(
                "credentials must be a Credentials (from_environment() or "
                f"from_file()); got {type(credentials).__name__}"
            )
        self.credentials = credentials
        self.cache = as_cache(cache)
        self.timeout_s = timeout_s
        self.retries = retries
        self.page_size = page_size
        self.chunk_bytes = chunk_bytes
        self._session = _http.make_session(
            name=self.name,
            auth=credentials.requests_auth() if credentials else None,
            retries=retries,
            backoff_s=backoff_s,
            max_response_bytes=max_response_bytes,
        )
        # chunk_size: a STOW-RS body is sent as bytes, never as a one-shot
        # generator, so that a retried POST sends it again whole
        self._client = DICOMwebClient(
            self.url,
            session=self._session,
            timeout=(timeout_s, timeout_s),
            chunk_size=2**31,
        )
        self._client.set_http_retry_params(retry=False)  # the session retries

    def __repr__(self) -> str:
        auth = self.credentials.describe() if self.credentials else "no credentials"
        return f"DicomWebArchive({self.url!r}, {auth})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def __enter__(self) -> DicomWebArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- errors ---------------------------------------------------------------

    @contextlib.contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Turn every HTTP failure of ``what`` into a plain-sentence ArchiveError."""
        try:
            yield
        except ArchiveError:
            raise
        except requests.HTTPError as exc:
            raise _http.translate(
                exc,
                self.name,
                what,
                timeout_s=self.timeout_s,
                attempts=_attempts(exc.response),
            ) from exc
        except requests.RequestException as exc:
            raise _http.translate(
                exc, self.name, what, timeout_s=self.timeout_s
            ) from exc
        except OSError as exc:  # the cache's disk, not the network
            raise ArchiveError(
                str(self.cache.folder),
                f"could not keep what {what} received: "
                f"{exc.strerror or type(exc).__name__}.",
                "Free disk space, or give the archive another cache folder "
                "(cache=, or $MEDIMG_ARCHIVE_CACHE).",
            ) from exc

    # -- QIDO-RS --------------------------------------------------------------

    def search_studies(
        self,
        *,
        patient_id: str | None = None,
        accession_number: str | None = None,
        modality: str | None = None,
        date: Any = None,
        description: str | None = None,
        filters: Mapping[str, Any] | None = None,
        fuzzy: bool = False,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Study]:
        """Studies matching every filter given (QIDO-RS), one page of them.

        Parameters
        ----------
        patient_id, accession_number : str, optional
            Exact values, or with ``*`` and ``?`` wildcards.
        modality : str, optional
            A modality in the study (``ModalitiesInStudy``), such as ``"CT"``.
        date : str, datetime.date or (start, end), optional
            Study date or range (``"20200101-20201231"``, ``(date, None)``).
        description : str, optional
            Study description; ``*`` wildcards (``"*head*"``).
        filters : mapping, optional
            Further attributes by keyword, as QIDO-RS takes them.
        fuzzy : bool
            Ask for fuzzy matching of person names.
        limit, offset : int
            The page: at most ``limit`` results, after skipping ``offset``.

        Returns
        -------
        list of Study
            Patient name and ID are in each record but not in its repr.
        """
        search = study_filters(
            patient_id=patient_id,
            accession_number=accession_number,
            modality=modality,
            date=date,
            description=description,
            filters=filters,
        )
        what = "a search for studies"
        with self._failures(what):
            found = self._client.search_for_studies(
                fuzzymatching=bool(fuzzy) or None,
                limit=_page(limit, "limit"),
                offset=_page(offset, "offset", zero=True) or None,
                fields=list(STUDY_FIELDS),
                search_filters=search,
            )
        return [
            study_from_json(r, self.name, what) for r in records(found, self.name, what)
        ]

    def iter_studies(self, **filters) -> Iterator[Study]:
        """Every study matching the filters of :meth:`search_studies`, page by page.

        Parameters
        ----------
        **filters
            Those of :meth:`search_studies`; ``offset`` skips that many
            first, ``limit`` is ignored (pages are :attr:`page_size`).

        Yields
        ------
        Study
        """
        filters.pop("limit", None)
        start = filters.pop("offset", 0)
        yield from _paged(
            lambda limit, offset: self.search_studies(
                limit=limit, offset=offset, **filters
            ),
            self.page_size,
            start,
        )

    def search_series(
        self,
        study_uid: str | None = None,
        *,
        modality: str | None = None,
        description: str | None = None,
        series_uid: str | None = None,
        patient_id: str | None = None,
        accession_number: str | None = None,
        date: Any = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Series]:
        """Series of one study, or of every study, matching the filters (QIDO-RS).

        Parameters
        ----------
        study_uid : str, optional
            The study; default every study (filters on study attributes such
            as ``patient_id`` then narrow it).
        modality, description, series_uid : str, optional
            Series attributes (``*`` wildcards in the description).
        patient_id, accession_number, date : optional
            Study attributes, as in :meth:`search_studies`.
        limit, offset : int
            The page.
        """
        search = series_filters(
            modality=modality,
            description=description,
            series_uid=series_uid,
            patient_id=patient_id,
            accession_number=accession_number,
            date=date,
            filters=filters,
        )
        if study_uid is not None:
            study_uid = check_uid(study_uid, "study_uid", "search_series")
        what = "a search for series"
        with self._failures(what):
            found = self._client.search_for_series(
                study_instance_uid=study_uid,
                limit=_page(limit, "limit"),
                offset=_page(offset, "offset", zero=True) or None,
                fields=list(SERIES_FIELDS),
                search_filters=search,
            )
        return [
            series_from_json(r, self.name, what)
            for r in records(found, self.name, what)
        ]

    def iter_series(self, study_uid: str | None = None, **filters) -> Iterator[Series]:
        """Every series matching the filters of :meth:`search_series`, page by page.

        Parameters
        ----------
        study_uid : str, optional
            Only this study's series.
        **filters
            Those of :meth:`search_series`; ``offset`` skips that many
            first, ``limit`` is ignored (pages are :attr:`page_size`).

        Yields
        ------
        Series
        """
        filters.pop("limit", None)
        start = filters.pop("offset", 0)
        yield from _paged(
            lambda limit, offset: self.search_series(
                study_uid, limit=limit, offset=offset, **filters
            ),
            self.page_size,
            start,
        )

    def instance_uids(self, study_uid: str, series_uid: str) -> list[str]:
        """The SOP Instance UIDs of a series (QIDO-RS, every page).

        Parameters
        ----------
        study_uid, series_uid : str
            The series' Study and Series Instance UIDs.

        Returns
        -------
        list of str
            In the archive's order, each once.
        """
        what = f"the instances of series {series_uid}"

        def page(limit: int, offset: int) -> list[str]:
            with self._failures(what):
                found = self._client.search_for_instances(
                    study_instance_uid=study_uid,
                    series_instance_uid=series_uid,
                    fields=["SOPInstanceUID"],
                    limit=limit,
                    offset=offset or None,
                )
            out = []
            for record in records(found, self.name, what):
                value = record.get("00080018", {})
                values = value.get("Value") if isinstance(value, dict) else None
                if not isinstance(values, list) or not values:
                    raise ArchiveResponseError(
                        self.name,
                        f"answered {what} with a record without a SOP Instance UID.",
                        "The archive's QIDO-RS answer is broken; tell its "
                        "administrator, or use DIMSE.",
                    )
                out.append(check_uid(values[0], "a SOP Instance UID", self.name))
            return out

        return list(dict.fromkeys(_paged(page, self.page_size, 0)))

    # -- WADO-RS --------------------------------------------------------------

    def _fetch(
        self,
        study_uid: str,
        series_uid: str,
        missing: list[str],
        *,
        whole: bool,
        tracker: _Tracker,
        keep: set[str],
        max_bytes: int,
    ) -> None:
        """WADO-RS: the whole series in one request, or each missing instance."""
        series_url = f"{self.url}/studies/{quote(study_uid)}/series/{quote(series_uid)}"
        if whole:
            self._wado(series_url, f"series {series_uid}", tracker, keep, max_bytes)
            return
        for uid in missing:
            self._wado(
                f"{series_url}/instances/{quote(uid)}",
                f"instance {uid}",
                tracker,
                keep,
                max_bytes,
            )

    def _wado(
        self, url: str, what: str, tracker: _Tracker, keep: set[str], max_bytes: int
    ) -> None:
        """One WADO-RS request, its parts streamed into the cache."""

        @contextlib.contextmanager
        def open_part(i: int):
            with self.cache.incoming() as (path, fh):
                yield fh
                fh.close()
                self.cache.adopt(
                    path, source=self.name, keep=keep, what=f"part {i + 1} of {what}"
                )
            tracker.instance_done()

        with self._failures(what):
            response = self._session.get(
                url,
                # instances as stored: no gzip of (often compressed) pixel
                # data, which cost Orthanc 180 ms per 0.5 MB instance
                # against 23 ms sent as is (tests/archive, this machine)
                headers={"Accept": _ACCEPT_DICOM, "Accept-Encoding": "identity"},
                stream=True,
                timeout=(self.timeout_s, self.timeout_s),
            )
            with response:
                if response.status_code >= 400:
                    raise _http.http_error(
                        response, self.name, what, attempts=_attempts(response)
                    )
                boundary = _http.boundary_of(
                    response.headers.get("Content-Type"), self.name, what
                )
                _http.read_multipart(
                    response.iter_content(self.chunk_bytes),
                    boundary,
                    open_part,
                    name=self.name,
                    what=what,
                    max_part_bytes=max_bytes,
                    on_bytes=tracker.received_bytes,
                )

    # -- STOW-RS --------------------------------------------------------------

    def store(self, instances: Iterable[Dataset | str | os.PathLike]) -> list[str]:
        """Store DICOM instances (datasets or files) on the archive (STOW-RS).

        Parameters
        ----------
        instances : iterable of pydicom Dataset or path-like
            The objects to store, such as a SEG and an SR.

        Returns
        -------
        list of str
            The SOP Instance UIDs stored.

        Raises
        ------
        ArchiveResponseError
            If the archive refused some instances (its reasons are named).
        """
        datasets = [_as_dataset(item) for item in instances]
        if not datasets:
            raise ValueError(
                "instances must name at least one dataset or file to store"
            )
        stored: list[str] = []
        for batch in _batches(datasets):
            what = f"storing {len(batch)} instance(s)"
            with self._failures(what):
                answer = self._client.store_instances(batch)
            failed = answer.get("FailedSOPSequence") if answer is not None else None
            if failed:
                reasons = sorted(
                    {str(item.get("FailureReason", "?")) for item in failed}
                )
                raise ArchiveResponseError(
                    self.name,
                    f"refused {len(failed)} of {len(batch)} instance(s) when "
                    f"storing (failure reasons {', '.join(reasons)}, PS3.18 "
                    "Table I.2-1).",
                    "Check that they are complete DICOM objects of a SOP class "
                    "the archive accepts.",
                )
            stored.extend(str(ds.SOPInstanceUID) for ds in batch)
        return stored


def _attempts(response: requests.Response | None) -> int:
    retries = getattr(getattr(response, "raw", None), "retries", None)
    return len(getattr(retries, "history", ()) or ()) + 1


def _page(value: Any, option: str, *, zero: bool = False) -> int | None:
    if value is None and not zero:
        return None
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{option} must be an integer >= {low}; got {value!r}")
    return value


def _paged(page, size: int, start: int) -> Iterator:
    offset = start
    while True:
        found = page(size, offset)
        yield from found
        if len(found) < size:
            return
        offset += len(found)


def _as_dataset(item: Any) -> Dataset:
    if isinstance(item, Dataset):
        if "SOPInstanceUID" not in item or "SOPClassUID" not in item:
            raise ValueError(
                "each dataset to store needs SOPClassUID and SOPInstanceUID; one "
                "lacks them"
            )
        return item
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        try:
            return pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise ValueError(
                f"{path.name} cannot be stored: it is not a readable DICOM file "
                f"({type(exc).__name__}); give DICOM files or pydicom datasets"
            ) from None
    raise TypeError(
        "instances to store must be pydicom datasets or paths; got "
        f"{type(item).__name__}"
    )


def _batches(datasets: list[Dataset]) -> Iterator[list[Dataset]]:
    batch: list[Dataset] = []
    size = 0
    for ds in datasets:
        n = len(getattr(ds, "PixelData", b"") or b"") + 4096
        if batch and size + n > _STORE_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(ds)
        size += n
    if batch:
        yield batch
