"""Measurements per segment as a DICOM Structured Report (TID 1500).

:func:`sr_dataset` reports, for each segment of a SEG made by
:func:`medimg_lab.io.seg.seg_dataset`, its area in mm² (2D) or volume in mL
(3D) and the mean ± SD of the image's values inside it (HU for CT) as a
Comprehensive 3D SR holding a TID 1500 Measurement Report: one measurement
group per segment, referencing that segment of the SEG and the source series
(TID 1411 volumetric, or TID 1410 planar for one slice with the SEG frame and
its source image). :func:`read_sr` reads such a report back as a table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from .._measure import measure
from ..errors import MedImgError, NotAnImageError
from ..image import MedImage
from ._source import DEFAULT_MAX_BYTES
from .seg import (
    SEG_SOP_CLASS_UID,
    check_labels,
    segment_number,
    write_dataset,
)

__all__ = ["read_sr", "save_sr", "sr_dataset"]

#: UCUM units of the reported values (PS3.16 CID 7181 / UCUM).
_UCUM = {
    "mm2": ("mm2", "square millimeter"),
    "mL": ("mL", "milliliter"),
    "HU": ("[hnsf'U]", "Hounsfield unit"),
    "a.u.": ("[arb'U]", "arbitrary unit"),
}
_PIXEL_VALUE = ("pixel-value", "99MEDIMGLAB", "Pixel value")


def _concept(value: str, scheme: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _unit(key: str):
    value, meaning = _UCUM[key]
    return _concept(value, "UCUM", meaning)


def _intensity(image: MedImage):
    """The concept and UCUM unit of the image's values."""
    if image.unit == "HU":
        return codes.DCM.AttenuationCoefficient, _unit("HU")
    if image.modality == "MR":
        return codes.DCM.MRSignalIntensity, _unit("a.u.")
    unit = _unit("a.u.") if image.unit == "a.u." else _concept("1", "UCUM", "no units")
    return _concept(*_PIXEL_VALUE), unit


def _procedure(modality: str):
    if modality == "CT":
        return codes.LN.CTUnspecifiedBodyRegion
    if modality == "MR":
        return codes.LN.MRIUnspecifiedBodyRegion
    return codes.SCT.DiagnosticImaging


def _check_seg(seg: Dataset, labels: np.ndarray) -> dict[int, Dataset]:
    if not isinstance(seg, Dataset) or str(seg.get("SOPClassUID")) != SEG_SOP_CLASS_UID:
        raise ValueError(
            "seg must be the DICOM Segmentation (a pydicom Dataset) made from "
            "these labels with seg_dataset(); got "
            f"{type(seg).__name__}"
        )
    if (int(seg.Rows), int(seg.Columns)) != labels.shape[-2:]:
        raise ValueError(
            f"seg has frames of {seg.Rows}x{seg.Columns}, the labels are "
            f"{labels.shape[-2]}x{labels.shape[-1]}: pass the SEG made from "
            "these labels."
        )
    described = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    missing = sorted(set(np.unique(labels[labels > 0]).tolist()) - set(described))
    if missing:
        raise ValueError(
            f"labels {missing} have no segment in seg; pass the SEG made from "
            "these labels."
        )
    return described


def _frame_of_segment(seg: Dataset, number: int) -> int:
    """The (1-based) frame of one segment in a SEG of one slice."""
    shared = (seg.get("SharedFunctionalGroupsSequence") or [None])[0]
    for k, frame in enumerate(seg.PerFrameFunctionalGroupsSequence, 1):
        if segment_number(frame, shared, "seg") == number:
            return k
    raise ValueError(f"seg has no frame of segment {number}")


def _extent(labels: np.ndarray) -> tuple[list[int], list[int]]:
    """First and last index of the labelled pixels along each axis."""
    first, last = [], []
    for axis in range(labels.ndim):
        others = tuple(a for a in range(labels.ndim) if a != axis)
        hit = np.flatnonzero(np.any(labels, axis=others))
        first.append(int(hit[0]))
        last.append(int(hit[-1]))
    return first, last


def _referenced_sources(seg: Dataset) -> list[Dataset]:
    """The SEG's source instances as the SR's evidence, from its references."""
    out = []
    for series in seg.ReferencedSeriesSequence:
        for ref in series.ReferencedInstanceSequence:
            ds = Dataset()
            ds.StudyInstanceUID = seg.StudyInstanceUID
            ds.SeriesInstanceUID = series.SeriesInstanceUID
            ds.SOPClassUID = ref.ReferencedSOPClassUID
            ds.SOPInstanceUID = ref.ReferencedSOPInstanceUID
            out.append(ds)
    return out


def sr_dataset(
    labels: np.ndarray,
    image: MedImage,
    seg: Dataset,
    *,
    algorithm: str = "medimg-lab",
    algorithm_version: str | None = None,
    series_number: int = 901,
    series_description: str = "medimg-lab measurements",
):
    """A TID 1500 Measurement Report of each segment's size and values.

    For segment ``i`` with ``n_i`` pixels of spacing ``s`` (mm per axis), the
    size is ``n_i * prod(s)`` in mm² (2D) or ``n_i * prod(s) / 1000`` in mL
    (3D); the mean and SD are those of the image's values inside it, in the
    image's unit (HU for CT, arbitrary units otherwise). A segment without
    pixels reports its size (0) only; an image whose pixel spacing is unknown
    (``meta["spacing_known"]`` false) reports no size, and a colour image no
    mean or SD.

    Parameters
    ----------
    labels : ([S,] M, N) bool or int ndarray
        The labels the SEG was made from.
    image : MedImage
        The image they were drawn on; its values give the mean ± SD.
    seg : highdicom.seg.Segmentation or pydicom.Dataset
        The SEG of ``labels`` (:func:`medimg_lab.io.seg.seg_dataset`).
    algorithm : str
        Name of the measuring algorithm.
    algorithm_version : str, optional
        Its version; default ``medimg_lab.__version__``.
    series_number : int
        Series Number of the new SR series.
    series_description : str
        Series Description of the SR.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        The report (a pydicom Dataset) in the source's study, its evidence
        the SEG and every source instance the SEG references (no source file
        is read again).

    Raises
    ------
    ValueError, TypeError
        For labels that do not fit the image or the SEG.
    """
    import highdicom as hd

    from .. import __version__

    labels = check_labels(labels, image)
    described = _check_seg(seg, labels)
    items = _referenced_sources(seg)
    values = None if image.is_color else image.array
    # Counts, means and SDs need only the labelled box: cropped, a few
    # structures in a large volume are measured without walking all of it.
    box = tuple(slice(a, b + 1) for a, b in zip(*_extent(labels), strict=True))
    cropped = None if values is None else values[box]
    table = measure(labels[box], cropped, spacing=image.spacing).set_index("label")
    volume = labels.ndim == 3
    # Without the pixel spacing (a radiograph's 0\0), an area in mm² would be
    # a guess: the size is left out, the values' mean and SD stay.
    spacing_known = image.meta.get("spacing_known", True) is not False
    size_name = codes.SCT.Volume if volume else codes.SCT.Area
    size_unit = _unit("mL" if volume else "mm2")
    size_column = "volume_ml" if volume else "area_mm2"
    name, unit = _intensity(image)
    version = str(algorithm_version or __version__)
    algo = hd.sr.AlgorithmIdentification(name=str(algorithm), version=version)
    series_uid = str(items[0].SeriesInstanceUID)
    groups = []
    for number, item in described.items():
        label = str(item.get("SegmentLabel", f"segment {number}"))
        measurements = []
        if spacing_known:
            measurements.append(
                hd.sr.Measurement(
                    name=size_name,
                    value=float(table[size_column].get(number, 0.0)),
                    unit=size_unit,
                    algorithm_id=algo,
                )
            )
        if values is not None and number in table.index:
            for column, derivation in (
                ("mean", codes.SCT.Mean),
                ("sd", codes.SCT.StandardDeviation),
            ):
                measurements.append(
                    hd.sr.Measurement(
                        name=name,
                        value=float(table.loc[number, column]),
                        unit=unit,
                        derivation=derivation,
                        algorithm_id=algo,
                    )
                )
        tracking = hd.sr.TrackingIdentifier(
            uid=str(item.get("TrackingUID") or hd.UID()),
            identifier=f"{label} (segment {number})",
        )
        common = {
            "tracking_identifier": tracking,
            "finding_type": hd.sr.CodedConcept.from_dataset(
                item.SegmentedPropertyTypeCodeSequence[0]
            ),
            "finding_category": hd.sr.CodedConcept.from_dataset(
                item.SegmentedPropertyCategoryCodeSequence[0]
            ),
            "measurements": measurements,
            "algorithm_id": algo,
        }
        if volume:
            referenced = hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID),
                sop_instance_uid=str(seg.SOPInstanceUID),
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
            )
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=referenced, **common
                )
            )
        else:
            referenced = hd.sr.ReferencedSegmentationFrame(
                sop_class_uid=str(seg.SOPClassUID),
                sop_instance_uid=str(seg.SOPInstanceUID),
                frame_number=_frame_of_segment(seg, number),
                segment_number=number,
                source_image=hd.sr.SourceImageForSegmentation(
                    referenced_sop_class_uid=str(items[0].SOPClassUID),
                    referenced_sop_instance_uid=str(items[0].SOPInstanceUID),
                ),
            )
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=referenced, **common
                )
            )
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="medimg-lab"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_procedure(image.modality),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *items],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=int(series_number),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medimg-lab",
        is_complete=True,
    )
    sr.SeriesDescription = series_description[:64]
    return sr


def save_sr(
    labels: np.ndarray,
    image: MedImage,
    seg: Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write :func:`sr_dataset`'s report to ``path`` atomically.

    Parameters
    ----------
    labels, image, seg
        As for :func:`sr_dataset`.
    path : path-like
        The ``.dcm`` file to write; never the image's own input.
    overwrite : bool
        Replace an existing file.
    **options
        The keyword options of :func:`sr_dataset`.

    Returns
    -------
    Path
        The written file.
    """
    sr = sr_dataset(labels, image, seg, **options)
    return write_dataset(sr, path, overwrite=overwrite, protect=[image.source])


def _unit_text(unit) -> str:
    return {"[hnsf'U]": "HU", "[arb'U]": "a.u.", "1": ""}.get(unit.value, unit.value)


def read_sr(
    source: str | os.PathLike | bytes | Dataset, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Any:  # a pandas.DataFrame; pandas (~0.3 s) loads on first use
    """The measurements of a TID 1500 report, one row per measurement group.

    Parameters
    ----------
    source : path, bytes or pydicom Dataset
        The SR file.
    max_bytes : int
        Memory budget, as for :func:`medimg_lab.load`.

    Returns
    -------
    pandas.DataFrame
        Columns ``label`` (the referenced segment number), ``segment`` (the
        tracking identifier), ``finding`` (the finding type's meaning),
        ``volume_ml`` or ``area_mm2``, ``mean_<unit>`` and ``sd_<unit>``
        (``mean_HU``, ``sd_HU`` for CT) where reported.

    Raises
    ------
    NotAnImageError
        If the file is not a DICOM SR holding a Measurement Report.
    """
    import highdicom as hd
    import pandas as pd

    from .dicom import read_dataset

    if isinstance(source, Dataset):
        ds, name = source, "<dataset>"
    else:
        name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
        ds = read_dataset(source, name, max_bytes=max_bytes)
    try:
        document = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=False)
        content = hd.sr.MeasurementReport.from_sequence([document], copy=False)
        groups = [
            *content.get_volumetric_roi_measurement_groups(),
            *content.get_planar_roi_measurement_groups(),
        ]
    except MedImgError:
        raise
    except Exception as exc:  # highdicom raises many types for other documents
        raise NotAnImageError(
            name,
            "is not a DICOM SR holding a TID 1500 Measurement Report.",
            "Open a report written by medimg_lab.io.sr.save_sr().",
        ) from exc
    rows = []
    for group in groups:
        ref = getattr(group, "referenced_segment", None) or getattr(
            group, "referenced_segmentation_frame", None
        )
        numbers = ref.referenced_segment_numbers if ref is not None else None
        finding = group.finding_type
        row: dict[str, Any] = {
            "label": int(numbers[0]) if numbers else None,
            "segment": group.tracking_identifier,
            "finding": finding.meaning if finding is not None else None,
        }
        for m in group.get_measurements():
            derivation = m.derivation
            if derivation is None:
                key = {"mL": "volume_ml", "mm2": "area_mm2"}.get(m.unit.value)
                key = key or f"{m.name.meaning.lower()}_{_unit_text(m.unit)}"
            else:
                stat = {"373098007": "mean", "386136009": "sd"}.get(
                    derivation.value, derivation.meaning.lower()
                )
                unit = _unit_text(m.unit)
                key = f"{stat}_{unit}" if unit else stat
            row[key] = float(m.value)
        rows.append(row)
    return pd.DataFrame(rows)
