"""Results as DICOM: a SEG of the labels and an SR of their measurements.

One call for the exports of the dashboards and of batch runs:
:func:`results_datasets` builds both objects, :func:`results_bytes` encodes
them for a download, :func:`export_results` writes them to a folder.

With ``deidentified=True`` both go through the de-identifier of
:mod:`medimg_lab.io.deid` with the options given for the images (``salt``,
``date_shift_days``, ``date_shift``): a SEG and SR exported with the salt of
the de-identified images reference exactly those images (the same remapped
study, series, frame-of-reference and instance UIDs).
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from ..image import MedImage
from ._atomic import atomic_write, refuse_overwrite
from ._source import DEFAULT_MAX_BYTES
from .deid import SALT_ENV, DeidReport, deidentify
from .seg import Segment, seg_dataset
from .sr import sr_dataset

__all__ = ["SEG_NAME", "SR_NAME", "export_results", "results_bytes", "results_datasets"]

#: File names of the two objects in an export folder or download.
SEG_NAME = "segmentation.dcm"
SR_NAME = "measurements.dcm"


def _restore_text(clean: Dataset, original: Dataset) -> None:
    """Put back the TEXT values of an SR content tree that this module wrote.

    The de-identifier removes every TextValue, since a report's free text
    may name a patient. The report's text here is ours alone: tracking
    identifiers made from the segment labels (which the SEG keeps) and the
    algorithm's and device's names. The trees have the same items, in the
    same order (the de-identifier removes elements, never items).
    """
    for new, old in zip(
        clean.get("ContentSequence") or (),
        original.get("ContentSequence") or (),
        strict=True,
    ):
        if old.get("ValueType") == "TEXT" and "TextValue" in old:
            new.TextValue = old.TextValue
        _restore_text(new, old)


def results_datasets(
    labels: np.ndarray,
    image: MedImage,
    *,
    sources: Any = None,
    segments: Mapping[int, str | Segment] | Sequence[str | Segment] | None = None,
    algorithm: str = "medimg-lab",
    algorithm_version: str | None = None,
    algorithm_type: str = "AUTOMATIC",
    algorithm_family: str | Code = "threshold",
    deidentified: bool = False,
    salt: str | bytes | None = None,
    date_shift_days: int | None = None,
    date_shift: _dt.timedelta | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Dataset, Dataset, list[DeidReport]]:
    """The SEG of ``labels`` and the SR of their measurements.

    Parameters
    ----------
    labels : ([S,] M, N) bool or int ndarray
        A mask or labels 1 to 255 on ``image``'s grid; 0 is background.
    image : MedImage
        The image, loaded from DICOM.
    sources, segments, algorithm, algorithm_version, algorithm_type, algorithm_family
        As for :func:`medimg_lab.io.seg.seg_dataset`.
    deidentified : bool
        De-identify both objects (PS3.15 Basic Profile, as
        :func:`medimg_lab.deidentify`).
    salt : str or bytes, optional
        The salt the images of the export were (or will be) de-identified
        with, so that the objects reference them. ``None`` reads
        ``MEDIMG_DEID_SALT``, or draws one salt for both objects (they then
        match each other, but no image exported with another salt).
    date_shift_days, date_shift
        As for :func:`medimg_lab.deidentify`.
    max_bytes : int
        Memory budget per source file, as for :func:`medimg_lab.load`.

    Returns
    -------
    seg, sr : pydicom.Dataset
        The Segmentation and the Comprehensive 3D SR (TID 1500).
    list of DeidReport
        The de-identifier's reports for the SEG and the SR; empty when not
        ``deidentified``.
    """
    seg = seg_dataset(
        labels,
        image,
        sources=sources,
        segments=segments,
        algorithm=algorithm,
        algorithm_version=algorithm_version,
        algorithm_type=algorithm_type,
        algorithm_family=algorithm_family,
        max_bytes=max_bytes,
    )
    sr = sr_dataset(
        labels,
        image,
        seg,
        algorithm=algorithm,
        algorithm_version=algorithm_version,
    )
    if not deidentified:
        return seg, sr, []
    drawn = salt is None and not os.environ.get(SALT_ENV, "").strip()
    key = secrets.token_hex(16) if drawn else salt
    options = {
        "salt": key,
        "date_shift_days": date_shift_days,
        "date_shift": date_shift,
    }
    seg_clean, seg_report = deidentify(seg, **options)
    sr_clean, sr_report = deidentify(sr, **options)
    _restore_text(sr_clean, sr)
    for report in (seg_report, sr_report):
        report.salt_shared = not drawn
    return seg_clean, sr_clean, [seg_report, sr_report]


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def results_bytes(
    labels: np.ndarray, image: MedImage, **options: Any
) -> dict[str, bytes]:
    """The SEG and SR as DICOM files in memory, for a download.

    Parameters
    ----------
    labels, image
        As for :func:`results_datasets`.
    **options
        The keyword options of :func:`results_datasets`.

    Returns
    -------
    dict
        ``{"segmentation.dcm": bytes, "measurements.dcm": bytes}``.
    """
    seg, sr, _ = results_datasets(labels, image, **options)
    return {SEG_NAME: _encode(seg), SR_NAME: _encode(sr)}


def export_results(
    labels: np.ndarray,
    image: MedImage,
    folder: str | os.PathLike,
    *,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Path]:
    """Write the SEG and SR into ``folder``, each atomically.

    Parameters
    ----------
    labels, image
        As for :func:`results_datasets`.
    folder : path-like
        Where ``segmentation.dcm`` and ``measurements.dcm`` go (created if
        missing).
    overwrite : bool
        Replace existing files of those names.
    **options
        The keyword options of :func:`results_datasets`.

    Returns
    -------
    dict
        ``{"seg": Path, "sr": Path}``.

    Raises
    ------
    OutputExistsError
        If a file exists and ``overwrite`` is false; nothing is written then.
    """
    folder = Path(folder)
    targets = {"seg": folder / SEG_NAME, "sr": folder / SR_NAME}
    for target in targets.values():  # both refused before either is written
        refuse_overwrite(target, overwrite)
    payload = results_bytes(labels, image, **options)
    protect = [image.source]
    return {
        key: atomic_write(
            target,
            lambda tmp, data=payload[target.name]: tmp.write_bytes(data),
            overwrite=overwrite,
            protect=protect,
        )
        for key, target in targets.items()
    }
