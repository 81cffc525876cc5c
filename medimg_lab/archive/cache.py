"""A local cache of DICOM instances, keyed by SOP Instance UID.

Reopening a series whose instances are cached costs no transfer. Each
instance is one file, written through a temporary sibling and an atomic
rename (:func:`medimg_lab.io._atomic.atomic_write`), so a reader, another
process or a crash never sees half an instance. The cache keeps to a size
cap by evicting the least recently used instances (a cache hit refreshes an
instance's time), never those of the retrieval under way.

Layout under the cache folder: ``instances/<2 hex>/<SOP Instance UID>.dcm``
(the two hex digits spread the files over 256 folders), and ``.incoming/``
for parts being received (removed when their retrieval ends, whatever way;
left-overs of a killed process are removed when a cache is next opened).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from ..io._atomic import atomic_write
from ..io._source import size_text
from .errors import ArchiveError, ArchiveResponseError

__all__ = ["DEFAULT_CACHE_BYTES", "InstanceCache", "default_cache_folder"]

#: Default size cap of a cache (bytes): 20 GiB.
DEFAULT_CACHE_BYTES = 20 * 1024**3
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_STALE_S = 24 * 3600


def default_cache_folder() -> Path:
    """``$MEDIMG_ARCHIVE_CACHE``, else ``$XDG_CACHE_HOME/medimg-lab/instances``."""
    env = os.environ.get("MEDIMG_ARCHIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medimg-lab" / "instances"


def check_uid(uid: object, what: str, source: str = "archive") -> str:
    """``uid`` as a str if it is a DICOM UID (digits and dots, at most 64)."""
    text = str(uid).strip().rstrip("\0") if isinstance(uid, str) else None
    if text is None or len(text) > 64 or not _UID.match(text):
        shown = repr(uid)[:80]
        raise ArchiveResponseError(
            source,
            f"gave {what} {shown}, which is not a DICOM UID (digits and dots, at "
            "most 64 characters).",
            "Use the UIDs a search returns; a server that sends such UIDs is "
            "misconfigured.",
        )
    return text


class InstanceCache:
    """DICOM instances on disk, keyed by SOP Instance UID, with a size cap.

    Parameters
    ----------
    folder : path-like, optional
        Where the instances live; default :func:`default_cache_folder`.
    max_bytes : int
        Size cap (bytes) of the cached instances; the least recently used go
        first when a new one would pass it. Default 20 GiB.
    durable : bool
        Flush each instance to the disk before its rename, so that not even
        a power failure can leave a truncated instance under its name. The
        rename is atomic either way (for readers, and if the process is
        killed); ``False`` skips the flush, which halves the cost of a
        retrieval on this machine (benchmarks/bench_archive.py), for caches
        on scratch disks.

    Examples
    --------
    >>> import tempfile
    >>> from pydicom.data import get_testdata_file
    >>> folder = tempfile.TemporaryDirectory()
    >>> cache = InstanceCache(folder.name, max_bytes=2 * 1024**3)
    >>> cache.get("1.2.3") is None
    True
    >>> with open(get_testdata_file("CT_small.dcm"), "rb") as f:
    ...     uid = cache.put_bytes(f.read(), source="CT_small.dcm")
    >>> uid in cache, len(cache), cache.get(uid).suffix
    (True, 1, '.dcm')
    >>> folder.cleanup()
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        *,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        durable: bool = True,
    ):
        if (
            isinstance(max_bytes, bool)
            or not isinstance(max_bytes, int)
            or max_bytes < 1
        ):
            raise ValueError(
                f"max_bytes must be a positive number of bytes; got {max_bytes!r}"
            )
        self.folder = Path(folder) if folder is not None else default_cache_folder()
        self.max_bytes = max_bytes
        self.durable = bool(durable)
        self._instances = self.folder / "instances"
        self._incoming = self.folder / ".incoming"
        self._instances.mkdir(parents=True, exist_ok=True)
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._sizes: dict[str, int] = {}
        self._scan()

    def __repr__(self) -> str:
        return (
            f"InstanceCache({str(self.folder)!r}, {len(self._sizes)} instance(s), "
            f"{size_text(self.size_bytes)} of {size_text(self.max_bytes)})"
        )

    def _scan(self) -> None:
        now = time.time()
        for part in self._incoming.iterdir():
            with contextlib.suppress(OSError):
                if now - part.stat().st_mtime > _STALE_S:
                    part.unlink()
        sizes = {}
        for path in self._instances.glob("*/*.dcm"):
            with contextlib.suppress(OSError):
                sizes[path.stem] = path.stat().st_size
        self._sizes = sizes

    @property
    def size_bytes(self) -> int:
        """Bytes held by the cached instances."""
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return len(self._sizes)

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, str) or not _UID.match(uid) or len(uid) > 64:
            return False
        return self.path_for(uid).is_file()

    def path_for(self, uid: str) -> Path:
        """Where the instance ``uid`` lives (whether or not it is cached).

        Parameters
        ----------
        uid : str
            A SOP Instance UID.

        Returns
        -------
        pathlib.Path
        """
        uid = check_uid(uid, "a SOP Instance UID", str(self.folder))
        fan = hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()[:2]
        return self._instances / fan / f"{uid}.dcm"

    def get(self, uid: str) -> Path | None:
        """The cached file of ``uid`` (its use time refreshed), or None.

        Parameters
        ----------
        uid : str
            A SOP Instance UID.

        Returns
        -------
        pathlib.Path or None
        """
        path = self.path_for(uid)
        try:
            os.utime(path)  # the use time that eviction reads
        except FileNotFoundError:
            with self._lock:
                self._sizes.pop(uid, None)
            return None
        except OSError:  # a read-only cache: used as it is, never evicted here
            if not path.is_file():
                return None
        with self._lock:
            if uid not in self._sizes:
                with contextlib.suppress(OSError):
                    self._sizes[uid] = path.stat().st_size
        return path

    def digest(self, uid: str) -> str:
        """SHA-256 (hex) of the cached instance ``uid``, for provenance.

        Parameters
        ----------
        uid : str
            A SOP Instance UID in the cache.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        path = self.get(uid)
        if path is None:
            raise ArchiveError(
                str(self.folder),
                f"holds no instance {uid}.",
                "Retrieve its series first.",
            )
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    @contextlib.contextmanager
    def incoming(self) -> Iterator[tuple[Path, object]]:
        """A temporary file for one instance being received, removed at exit.

        Yields ``(path, binary file)``. :meth:`adopt` moves a complete one
        into the cache; whatever is left at exit (a cancelled, failed or
        refused part) is deleted.
        """
        fd, name = tempfile.mkstemp(prefix="part-", suffix=".dcm", dir=self._incoming)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield path, fh
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def adopt(
        self, part: Path, *, source: str, keep: Iterable[str] = (), what: str = "a part"
    ) -> str:
        """Move a complete received instance into the cache; its SOP Instance UID.

        Parameters
        ----------
        part : Path
            A file from :meth:`incoming`, closed.
        source : str
            The archive's name, for messages.
        keep : iterable of str
            UIDs that eviction must spare (the series being retrieved).
        what : str
            What the part is, for messages (``"part 3 of the response"``).

        Raises
        ------
        ArchiveResponseError
            If the part is not a DICOM instance with a SOP Instance UID.
        """
        try:
            ds = pydicom.dcmread(
                part, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
            )
            uid = ds.get("SOPInstanceUID")
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
            uid = None
        if not uid:
            raise ArchiveResponseError(
                source,
                f"sent {what} that is not a DICOM instance with a SOP Instance UID.",
                "The archive's WADO-RS answer is broken; ask its administrator, "
                "or use DIMSE.",
            )
        uid = check_uid(str(uid), "a SOP Instance UID", source)
        size = part.stat().st_size
        self._make_room(size, keep={uid, *keep}, source=source)
        target = self.path_for(uid)
        atomic_write(
            target, lambda tmp: os.replace(part, tmp), overwrite=True, sync=self.durable
        )
        with self._lock:
            self._sizes[uid] = size
        return uid

    def put_bytes(self, data: bytes, *, source: str, keep: Iterable[str] = ()) -> str:
        """Store one instance given as Part 10 bytes; its SOP Instance UID.

        Parameters
        ----------
        data : bytes
            A DICOM Part 10 file.
        source : str
            Where it came from, for messages (the archive's name).
        keep : iterable of str
            SOP Instance UIDs not to evict to make room (the rest of the
            series being retrieved).

        Returns
        -------
        str
            The instance's SOP Instance UID.
        """
        with self.incoming() as (path, fh):
            fh.write(data)
            fh.close()
            return self.adopt(path, source=source, keep=keep, what="an instance")

    def _make_room(self, size: int, *, keep: set[str], source: str) -> None:
        with self._lock:
            if self.size_bytes + size <= self.max_bytes:
                return
            self._scan()  # another process may have added or removed files
            excess = self.size_bytes + size - self.max_bytes
            if excess <= 0:
                return
            aged = []
            for uid in self._sizes:
                if uid in keep:
                    continue
                with contextlib.suppress(OSError):
                    aged.append((self.path_for(uid).stat().st_mtime, uid))
            aged.sort()
            for _, uid in aged:
                if excess <= 0:
                    break
                with contextlib.suppress(OSError):
                    self.path_for(uid).unlink()
                excess -= self._sizes.pop(uid, 0)
            if excess > 0:
                raise ArchiveError(
                    source,
                    f"needs {size_text(self.size_bytes + size)} of cache for the "
                    f"series being retrieved, more than the cache's cap of "
                    f"{size_text(self.max_bytes)}.",
                    "Open the cache with a larger max_bytes= (InstanceCache), or "
                    "retrieve a smaller series.",
                )

    def _manifest_path(self, series_uid: str) -> Path:
        uid = check_uid(series_uid, "a Series Instance UID", str(self.folder))
        return self.folder / "series" / f"{uid}.json"

    def remember_series(self, study_uid: str, series_uid: str, uids: list[str]) -> None:
        """Record a series' complete list of instances (after a full retrieval).

        With it, reopening the series needs no request at all
        (:meth:`series_instances`); the record is written atomically.

        Parameters
        ----------
        study_uid, series_uid : str
            The series' Study and Series Instance UIDs.
        uids : list of str
            Every SOP Instance UID of the series, in the archive's order.
        """
        record = json.dumps({"study": study_uid, "instances": list(uids)})
        atomic_write(
            self._manifest_path(series_uid),
            lambda tmp: tmp.write_text(record),
            overwrite=True,
            sync=False,  # a record that a retrieval rebuilds
        )

    def series_instances(self, series_uid: str) -> tuple[str, list[str]] | None:
        """(study UID, instance UIDs) of a series retrieved whole before, or None.

        None too when the record is unreadable or one of its instances has
        left the cache (evicted): the series must then be listed again.

        Parameters
        ----------
        series_uid : str
            A Series Instance UID.

        Returns
        -------
        (str, list of str) or None
        """
        try:
            record = json.loads(self._manifest_path(series_uid).read_text())
            study, uids = str(record["study"]), [str(u) for u in record["instances"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not uids or not all(u in self for u in uids):
            return None
        return study, uids

    def clear(self) -> None:
        """Remove every cached instance."""
        with self._lock:
            for uid in list(self._sizes):
                with contextlib.suppress(OSError):
                    self.path_for(uid).unlink()
            self._sizes.clear()
            for record in (self.folder / "series").glob("*.json"):
                with contextlib.suppress(OSError):
                    record.unlink()


def as_cache(cache: InstanceCache | str | os.PathLike | None) -> InstanceCache:
    """The archive's cache from its ``cache`` argument.

    Parameters
    ----------
    cache : InstanceCache, path-like or None
        A cache, the folder of one, or None for
        :func:`default_cache_folder`.

    Returns
    -------
    InstanceCache

    Raises
    ------
    TypeError
        For anything else, named.
    """
    if cache is None or isinstance(cache, str | os.PathLike):
        cache = InstanceCache(cache)
    if not isinstance(cache, InstanceCache):
        raise TypeError(
            f"cache must be an InstanceCache or a folder; got {type(cache).__name__}"
        )
    return cache
