"""The study of a batch, below both :mod:`medimg_lab.batch` and the archive.

:class:`Item` is what :func:`medimg_lab.batch.run` works on; a cohort's series
(:class:`medimg_lab.archive.cohort.ArchiveSeries`) is one too. It lives here
so that the batch (which searches cohorts) and the archive (whose series are
items) do not import each other. ``medimg_lab.batch.Item`` is the same class.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Item"]


@dataclass(frozen=True)
class Item:
    """One study of a batch.

    Attributes
    ----------
    id : str
        Unique, file-name safe; names the outputs.
    path : str
        The file, or the folder of a DICOM series.
    files : tuple of str
        The files the study is read from (one, or a series' files).
    series : str or None
        ``SeriesInstanceUID`` of a series in a folder.
    """

    id: str
    path: str
    files: tuple[str, ...]
    series: str | None = None
