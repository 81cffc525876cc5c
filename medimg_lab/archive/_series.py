"""Retrieved series: cached files, and their assembly into a MedImage."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..image import MedImage
from ..io._source import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES, DEFAULT_MAX_ITEMS
from .progress import ProgressCallback


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
    """``load_series`` for an archive class that has ``retrieve_series``."""

    name: str

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
    ) -> MedImage:
        """A series as a MedImage, with the semantics of :func:`medimg_lab.load`.

        The instances are retrieved into the cache (``retrieve_series``,
        no transfer for those cached) and assembled by the same code as a
        folder: HU for CT, MONOCHROME1 inverted, slices in order along the
        slice normal, every transfer syntax decoded, the same budgets
        (``max_bytes``, ``max_frames``, ``max_items``) and messages.

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
        )
        return assemble(
            got.paths,
            f"{self.name} series {got.series_uid}",
            max_bytes=max_bytes,
            max_frames=max_frames,
            max_items=max_items,
        )
