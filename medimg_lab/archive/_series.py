"""Retrieved series: cached files, and their assembly into a MedImage."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..image import MedImage
from ..io._source import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES, DEFAULT_MAX_ITEMS
from .cache import InstanceCache, check_uid
from .errors import ArchiveNotFoundError, ArchiveResponseError
from .progress import ProgressCallback, _Tracker


@dataclass(frozen=True)
class RetrievedSeries:
    """The cached files of one series, and what their retrieval cost.

    Parameters
    ----------
    study_uid, series_uid : str
        The series' Study and Series Instance UIDs.
    paths : tuple of Path
        The cached file of each instance, in the archive's listing order.
    instances_cached : int
        Instances that were in the cache already (no transfer).
    bytes_received : int
        Bytes received from the archive (bytes); 0 when all were cached.
    """

    study_uid: str
    series_uid: str
    paths: tuple[Path, ...]
    instances_cached: int
    bytes_received: int

    @property
    def instances_received(self) -> int:
        """Instances transferred by this retrieval."""
        return len(self.paths) - self.instances_cached


def assemble(
    paths: tuple[Path, ...] | list[Path],
    name: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> MedImage:
    """One MedImage from a series' cached files, as ``load(folder)`` makes it.

    The files go through the same series assembly as a folder (order along
    the slice normal, HU, MONOCHROME1, padding, every transfer syntax, the
    same budgets and messages), called on the cache's files.
    """
    from ..io import _guard
    from ..io._source import check_limit
    from ..io.dicom import load_series

    limits = {
        "max_bytes": check_limit(max_bytes, "max_bytes"),
        "max_frames": check_limit(max_frames, "max_frames"),
        "max_items": check_limit(max_items, "max_items"),
    }
    members = [(p.name, p) for p in paths]
    return _guard(
        lambda: load_series(
            members,
            name,
            limits["max_bytes"],
            max_frames=limits["max_frames"],
            max_items=limits["max_items"],
        ),
        name,
    )


class SeriesLoader:
    """Retrieval through the cache, shared by the DICOMweb and DIMSE archives.

    A subclass gives ``name``, ``cache``, ``instance_uids(study, series)``,
    ``_study_of(series)`` and ``_fetch(...)`` (the protocol's transfer of
    the missing instances into the cache).
    """

    name: str
    cache: InstanceCache

    def retrieve_series(
        self,
        series_uid: str,
        *,
        study_uid: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        refresh: bool = False,
    ) -> RetrievedSeries:
        """Bring a series' instances into the cache; their files.

        Instances already cached are not transferred. With none cached the
        series comes in one request (WADO-RS series, C-GET at series level);
        otherwise each missing instance is asked for, so a retrieval that
        failed or was cancelled resumes where it stopped. A series retrieved
        whole before, with all its instances still cached, reopens without
        any request (unless ``refresh``).

        Parameters
        ----------
        series_uid : str
            The Series Instance UID.
        study_uid : str, optional
            Its Study Instance UID; found by a search when not given.
        progress : callable, optional
            ``progress(Progress)`` after each chunk and instance; return
            ``False`` to cancel.
        cancel : threading.Event, optional
            Set it (from another thread) to cancel.
        max_bytes : int
            Largest instance accepted (bytes); a larger one is refused as it
            arrives.
        refresh : bool
            List the series' instances on the archive even when the cache
            holds the whole series (for a series still being acquired).

        Returns
        -------
        RetrievedSeries
            The cached files (in listing order) and what the retrieval cost.

        Raises
        ------
        RetrievalCancelled
            When cancelled; complete instances stay cached, nothing
            half-written does.
        ArchiveError
            Subclasses for each failure (credentials, not found, server
            unreachable or stopping mid-transfer, broken answers).
        """
        series_uid = uid_argument(series_uid, "series_uid")
        if study_uid is not None:
            study_uid = uid_argument(study_uid, "study_uid")
        known = None if refresh else self.cache.series_instances(series_uid)
        if known is not None and study_uid in (None, known[0]):
            study_uid, uids = known
        else:
            if study_uid is None:
                study_uid = self._study_of(series_uid)
            uids = self.instance_uids(study_uid, series_uid)
        if not uids:
            raise ArchiveNotFoundError(
                self.name,
                f"holds no instance of series {series_uid} in study {study_uid}.",
                "Check both UIDs with search_series().",
            )
        missing = [u for u in uids if self.cache.get(u) is None]
        tracker = _Tracker(
            self.name, len(uids), len(uids) - len(missing), progress, cancel
        )
        tracker.check()
        if missing:
            self._fetch(
                study_uid,
                series_uid,
                missing,
                whole=len(missing) == len(uids),
                tracker=tracker,
                keep=set(uids),
                max_bytes=max_bytes,
            )
        paths = []
        for uid in uids:
            path = self.cache.get(uid)
            if path is None:
                got = sum(1 for u in uids if u in self.cache)
                raise ArchiveResponseError(
                    self.name,
                    f"sent {got} of the {len(uids)} instances its listing of "
                    f"series {series_uid} names.",
                    "Retrieve again; if the same instances stay missing, ask the "
                    "archive's administrator (it may not send this SOP class or "
                    "transfer syntax).",
                )
            paths.append(path)
        self.cache.remember_series(study_uid, series_uid, uids)
        return RetrievedSeries(
            study_uid, series_uid, tuple(paths), tracker.cached, tracker.received
        )

    def _study_of(self, series_uid: str) -> str:
        found = self.search_series(series_uid=series_uid)
        if not found:
            raise ArchiveNotFoundError(
                self.name,
                f"holds no series {series_uid}.",
                "Check the UID with search_series() first.",
            )
        return found[0].study_uid

    def load_series(
        self,
        series_uid: str,
        *,
        study_uid: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_items: int = DEFAULT_MAX_ITEMS,
        refresh: bool = False,
    ) -> MedImage:
        """A series as a MedImage, with the semantics of :func:`medimg_lab.load`.

        The instances are retrieved into the cache (``retrieve_series``,
        no transfer for those cached) and assembled by the same code as a
        folder: HU for CT, MONOCHROME1 inverted, slices in order along the
        slice normal, every transfer syntax decoded, the same budgets
        (``max_bytes``, ``max_frames``, ``max_items``) and messages.
        ``progress``, ``cancel`` and ``refresh`` are as in
        ``retrieve_series``.

        Returns
        -------
        MedImage
            ``meta`` holds no patient identifier and no UID; ``source`` is
            None (the image has no file of its own).
        """
        got = self.retrieve_series(
            series_uid,
            study_uid=study_uid,
            progress=progress,
            cancel=cancel,
            max_bytes=max_bytes,
            refresh=refresh,
        )
        return assemble(
            got.paths,
            f"{self.name} series {got.series_uid}",
            max_bytes=max_bytes,
            max_frames=max_frames,
            max_items=max_items,
        )


def uid_argument(value, option: str) -> str:
    """``value`` if it is a UID given as a str, else a ValueError naming ``option``."""
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a UID as a str; got {type(value).__name__}")
    try:
        return check_uid(value, option, option)
    except ArchiveResponseError:
        raise ValueError(
            f"{option} must be a DICOM UID (digits and dots, at most 64); got {value!r}"
        ) from None
