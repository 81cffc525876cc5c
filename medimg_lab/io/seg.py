"""Masks and labels as DICOM Segmentation (SEG), through highdicom.

:func:`seg_dataset` turns a mask or a label image drawn on a
:class:`~medimg_lab.MedImage` into a DICOM Segmentation object (PS3.3
A.51) that any viewer opens beside its source: each segment carries a coded
category and type (SNOMED CT), the algorithm's name, version and type, a
reference to every source instance, and the source's geometry (each frame's
plane position is its source slice's). :func:`save_seg` writes it
atomically; :func:`load_seg` (and so :func:`medimg_lab.load`) reads a SEG
back as labels on its source's grid.

highdicom is imported on first use, so that ``import medimg_lab`` stays fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..errors import ImageTooLargeError, MedImgError, NotAnImageError
from ..image import MedImage
from ._atomic import atomic_write
from ._source import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES, DEFAULT_MAX_ITEMS

__all__ = [
    "ALGORITHM_FAMILIES",
    "ALGORITHM_TYPES",
    "SEGMENT_PROPERTIES",
    "SEG_SOP_CLASS_UID",
    "Segment",
    "is_segmentation",
    "load_seg",
    "save_seg",
    "seg_dataset",
    "source_datasets",
]

#: Segmentation Storage (PS3.4 B.5).
SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
#: The most segments (label values 1 to 255) one export describes.
MAX_SEGMENTS = 255
#: Values of Segment Algorithm Type (0062,0008).
ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")

_ANATOMY = codes.SCT.AnatomicalStructure
_TISSUE = codes.SCT.Tissue
_SUBSTANCE = codes.SCT.BodySubstance
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure

#: Segment names known by their SNOMED CT codes (CID 7150 categories, CID
#: 7151 types): name -> (category, type).
SEGMENT_PROPERTIES: dict[str, tuple[Code, Code]] = {
    "brain": (_ANATOMY, codes.SCT.Brain),
    "lung": (_ANATOMY, codes.SCT.Lung),
    "liver": (_ANATOMY, codes.SCT.Liver),
    "kidney": (_ANATOMY, codes.SCT.Kidney),
    "heart": (_ANATOMY, codes.SCT.Heart),
    "spleen": (_ANATOMY, codes.SCT.Spleen),
    "bone": (_TISSUE, codes.SCT.Bone),
    "white matter": (_TISSUE, codes.SCT.WhiteMatter),
    "grey matter": (_TISSUE, codes.SCT.GrayMatter),
    "gray matter": (_TISSUE, codes.SCT.GrayMatter),
    "muscle": (_TISSUE, codes.SCT.Muscle),
    "fat": (_TISSUE, codes.SCT.AdiposeTissue),
    "soft tissue": (_TISSUE, codes.SCT.SoftTissue),
    "tissue": (_TISSUE, codes.SCT.Tissue),
    "csf": (_SUBSTANCE, codes.SCT.CerebrospinalFluid),
    "cerebrospinal fluid": (_SUBSTANCE, codes.SCT.CerebrospinalFluid),
    "blood": (_SUBSTANCE, codes.SCT.Blood),
    "lesion": (_ABNORMAL, codes.SCT.Lesion),
    "tumour": (_ABNORMAL, codes.SCT.Neoplasm),
    "tumor": (_ABNORMAL, codes.SCT.Neoplasm),
}

#: Algorithm families (CID 7162) by the names of the project's methods.
ALGORITHM_FAMILIES: dict[str, Code] = {
    "threshold": codes.cid7162.HistogramAnalysis,
    "region growing": codes.cid7162.NeighborhoodAnalysis,
    "clustering": codes.cid7162.ClusterAnalysis,
    "classifier": codes.cid7162.ArtificialIntelligence,
    "morphology": codes.cid7162.MorphologicalOperations,
    "manual": codes.cid7162.ManualProcessing,
}


@dataclass(frozen=True)
class Segment:
    """What one label is: a name, a coded category and a coded type.

    Parameters
    ----------
    label : str
        The segment's name, as viewers list it ("white matter").
    category : pydicom.sr.coding.Code
        Segmented Property Category (CID 7150), e.g. SCT 85756007 "Tissue".
    type : pydicom.sr.coding.Code
        Segmented Property Type (CID 7151), e.g. SCT 389080008 "White Matter".

    Examples
    --------
    >>> Segment.named("white matter").type.value
    '389080008'
    """

    label: str
    category: Code
    type: Code

    @classmethod
    def named(cls, name: str) -> Segment:
        """The segment of a known name (a key of :data:`SEGMENT_PROPERTIES`).

        Parameters
        ----------
        name : str
            Case, spaces and underscores aside, a key of
            :data:`SEGMENT_PROPERTIES` (``"liver"``, ``"white matter"`` ...).

        Returns
        -------
        Segment
            With the name's category and type codes.
        """
        key = " ".join(str(name).lower().replace("_", " ").split())
        if key not in SEGMENT_PROPERTIES:
            raise ValueError(
                f"segment name {name!r} has no known code; known names are "
                f"{', '.join(sorted(SEGMENT_PROPERTIES))}. Pass a Segment(label, "
                "category, type) with codes of your own for another structure."
            )
        category, kind = SEGMENT_PROPERTIES[key]
        return cls(str(name), category, kind)


def is_segmentation(head: bytes) -> bool:
    """True when a DICOM file's first bytes name the Segmentation SOP class.

    Reads the file meta's Media Storage SOP Class UID (0002,0002), which a
    Part 10 file holds in its first few hundred bytes.

    Parameters
    ----------
    head : bytes
        The file's first bytes (a few hundred are enough).

    Returns
    -------
    bool
    """
    at = head.find(b"\x02\x00\x02\x00UI")
    if at < 0:
        return False
    length = int.from_bytes(head[at + 6 : at + 8], "little")
    value = head[at + 8 : at + 8 + length].rstrip(b"\0 ")
    return value == SEG_SOP_CLASS_UID.encode()


# ----------------------------------------------------------------- sources
def _name(src: Any) -> str:
    if isinstance(src, Dataset):
        return "<dataset>"
    if isinstance(src, bytes | bytearray | memoryview):
        return "<bytes>"
    return str(src)


def _read_header(src: Any, max_bytes: int) -> Dataset:
    """The header of one source (pixel data not read), or a clear error."""
    from .dicom import read_dataset

    if isinstance(src, Dataset):
        return src
    name = _name(src)
    if isinstance(src, memoryview | bytearray):
        src = bytes(src)
    if not isinstance(src, bytes | str | os.PathLike):
        raise TypeError(
            "sources must be DICOM file paths, bytes or pydicom Datasets; got "
            f"{type(src).__name__}"
        )
    try:
        ds = read_dataset(src, name, stop_before_pixels=True, max_bytes=max_bytes)
    except FileNotFoundError:
        raise
    except MedImgError as err:
        raise NotAnImageError(
            name,
            f"cannot be a SEG's source: {err.problem}",
            "A SEG references DICOM images: pass the DICOM files the image was "
            "loaded from (sources=).",
        ) from err
    return ds


def _is_image(ds: Dataset) -> bool:
    return "Rows" in ds and "Columns" in ds and "SOPInstanceUID" in ds


def _expand(sources: Iterable[Any]) -> list[tuple[Any, bool]]:
    """Each source with whether it came from a folder (whose odd files skip)."""
    from .dicom import folder_members

    out: list[tuple[Any, bool]] = []
    for src in sources:
        if isinstance(src, str | os.PathLike) and Path(src).is_dir():
            out.extend((path, True) for _, path in folder_members(Path(src)))
        else:
            out.append((src, False))
    return out


def _frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _position(ds: Dataset, frame: int | None = None) -> np.ndarray | None:
    if frame is None:
        value = ds.get("ImagePositionPatient")
    else:
        value = None
        groups = ds.get("PerFrameFunctionalGroupsSequence")
        shared = ds.get("SharedFunctionalGroupsSequence")
        for seq in (groups[frame] if groups else None, shared[0] if shared else None):
            plane = seq.get("PlanePositionSequence") if seq is not None else None
            if plane:
                value = plane[0].get("ImagePositionPatient")
                break
    if value is None or len(value) != 3:
        return None
    return np.array([float(v) for v in value])


def _orientation(ds: Dataset) -> np.ndarray | None:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        for key in (
            "SharedFunctionalGroupsSequence",
            "PerFrameFunctionalGroupsSequence",
        ):
            seq = ds.get(key)
            plane = seq[0].get("PlaneOrientationSequence") if seq else None
            if plane:
                value = plane[0].get("ImageOrientationPatient")
                break
    if value is None or len(value) != 6:
        return None
    return np.array([float(v) for v in value])


def _along(positions: Sequence[np.ndarray], orientation: np.ndarray) -> np.ndarray:
    """Positions along the slice normal (row direction x column direction), mm."""
    normal = np.cross(orientation[:3], orientation[3:])
    return np.array([float(np.dot(p, normal)) for p in positions])


def _describe_found(groups: Mapping[str, list[Dataset]]) -> str:
    parts = []
    for items in groups.values():
        ds = items[0]
        frames = sum(_frames(d) for d in items)
        parts.append(f"{frames} slice(s) of {ds.Rows}x{ds.Columns}")
    return "; ".join(parts) or "no DICOM image"


def source_datasets(
    image: MedImage,
    sources: Any = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[list[Dataset], np.ndarray | None]:
    """The DICOM headers of ``image``'s source, in the order of its slices.

    Parameters
    ----------
    image : MedImage
        An image loaded from DICOM (one file, or a folder holding a series).
    sources : path, bytes, Dataset, or a sequence of them, optional
        The image's DICOM files (a folder too) or datasets, when
        ``image.source`` does not lead to them (an upload, an archive
        retrieval). The headers are enough; pixel data is not read.
    max_bytes : int
        Memory budget per file, as for :func:`medimg_lab.load`.

    Returns
    -------
    list of pydicom.Dataset
        One single-frame dataset per slice of ``image``, sorted along the
        slice normal as :func:`medimg_lab.load` sorts a series, or a single
        multi-frame dataset.
    ndarray or None
        For a multi-frame source, ``order[k]``: the source frame (0-based)
        of the image's slice ``k``; ``None`` for single-frame sources.

    Raises
    ------
    ValueError
        If no source is given or on record, or none of the given ones fits
        the image's shape.
    NotAnImageError
        If a source is not a DICOM file.
    """
    if not isinstance(image, MedImage):
        raise TypeError(f"image must be a MedImage; got {type(image).__name__}")
    if sources is None:
        if image.source is None:
            raise ValueError(
                "image has no DICOM source on record (it was loaded from bytes, "
                "retrieved or computed); pass sources= with the DICOM files or "
                "pydicom Datasets it came from."
            )
        sources = image.source
    if isinstance(sources, Dataset | str | os.PathLike | bytes | bytearray):
        sources = [sources]
    members = _expand(list(sources))
    groups: dict[str, list[Dataset]] = {}
    seen: set[str] = set()
    for src, in_folder in members:
        try:
            ds = _read_header(src, max_bytes)
        except NotAnImageError:
            if not in_folder:
                raise
            continue  # a folder's non-DICOM file, as load() skips it
        if not _is_image(ds) or str(ds.get("SOPClassUID")) == SEG_SOP_CLASS_UID:
            if not in_folder:
                raise NotAnImageError(
                    _name(src),
                    "is a DICOM object without an image (no Rows, Columns or "
                    "SOP Instance UID), or a SEG itself.",
                    "Pass the DICOM images the mask was drawn on.",
                )
            continue
        uid = str(ds.SOPInstanceUID)
        if uid in seen:
            continue
        seen.add(uid)
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    shape = image.array.shape[: len(image.spacing)]
    slices = shape[0] if image.is_volume else 1
    rows, cols = shape[-2:]
    fits = {
        key: items
        for key, items in groups.items()
        if (int(items[0].Rows), int(items[0].Columns)) == (rows, cols)
        and (
            (len(items) == 1 and _frames(items[0]) == slices)
            or (len(items) == slices and all(_frames(d) == 1 for d in items))
        )
    }
    where = "the given sources"
    if not fits:
        raise ValueError(
            f"no DICOM series in {where} fits the image: it has {slices} "
            f"slice(s) of {rows}x{cols}, the sources hold "
            f"{_describe_found(groups)}. Pass sources= with the files the image "
            "was loaded from."
        )
    if len(fits) > 1:
        raise ValueError(
            f"{len(fits)} DICOM series in {where} fit the image's {slices} "
            f"slice(s) of {rows}x{cols}; pass sources= with the files of the "
            "one it was loaded from."
        )
    items = next(iter(fits.values()))
    if len(items) == 1 and slices > 1:  # one multi-frame object
        ds = items[0]
        orientation = _orientation(ds)
        positions = [_position(ds, f) for f in range(slices)]
        order = np.arange(slices)
        if orientation is not None and all(p is not None for p in positions):
            along = _along(positions, orientation)
            order = np.argsort(along, kind="stable")
            if not np.all(np.diff(along[order]) > 1e-3):
                order = np.arange(slices)
        return items, order
    if slices > 1:
        orientation = _orientation(items[0])
        positions = [_position(d) for d in items]
        if orientation is None or any(p is None for p in positions):
            raise ValueError(
                f"the {slices} source slices carry no ImagePositionPatient and "
                "ImageOrientationPatient, so a SEG cannot place its frames on "
                "them; a SEG needs the source's geometry."
            )
        along = _along(positions, orientation)
        order = np.argsort(along, kind="stable")
        items = [items[k] for k in order]
        _check_steps(along[order], image)
    return items, None


def _grid_step(along: np.ndarray) -> float:
    """The slice step of sorted distinct positions, as load() finds a series'.

    The smallest step finds the grid (slices or frames may be missing); the
    median of the steps that are one grid step is the spacing.
    """
    steps = np.diff(along)
    ones = steps[np.abs(steps / steps.min() - 1.0) <= 0.1]
    return float(np.median(ones))


def _check_steps(along: np.ndarray, image: MedImage) -> None:
    """The sources' slice positions must match the image's slice spacing."""
    steps = np.diff(along)
    if np.any(steps <= 1e-3):
        raise ValueError(
            "two source slices share one position, so the sources hold more than "
            "one acquisition; pass sources= with the files of one."
        )
    step = _grid_step(along)
    if not math.isclose(step, image.spacing[0], rel_tol=1e-3, abs_tol=1e-3):
        raise ValueError(
            f"the sources' slices are {step:g} mm apart but the image's slice "
            f"spacing is {image.spacing[0]:g} mm: they are not the image's "
            "source. Pass sources= with the files the image was loaded from."
        )


# -------------------------------------------------------------------- labels
def check_labels(labels: Any, image: MedImage) -> np.ndarray:
    """Validate a mask or label image for a SEG of ``image``; uint8 labels."""
    if isinstance(labels, MedImage):
        labels = labels.array
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array; got {type(labels).__name__}")
    shape = image.array.shape[: len(image.spacing)]
    if labels.shape != shape:
        raise ValueError(
            f"labels must have the image's shape {shape}; got {labels.shape}. "
            "Draw the mask on this image (same slices, rows and columns)."
        )
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be boolean or integer (0 = background, 1, 2 ... = "
            f"segments); got {labels.dtype}. Threshold a probability map first, "
            "or cast whole-number labels with .astype(np.uint8)."
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise ValueError(
            f"labels must be 0 (background) or positive segment numbers; got "
            f"values down to {low}."
        )
    if high > MAX_SEGMENTS:
        raise ValueError(
            f"labels hold values up to {high}, but a SEG here describes at most "
            f"{MAX_SEGMENTS} segments (labels 1 to {MAX_SEGMENTS}), each with a "
            "coded name. Labels of connected components are not segments: "
            "merge them into classes (one label per structure) first."
        )
    if high == 0:
        raise ValueError(
            "labels hold no segment: every value is 0 (background), so there is "
            "nothing to export. Segment the image first (or check the threshold)."
        )
    return labels.astype(np.uint8)


def _segments(
    segments: Mapping[int, str | Segment] | Sequence[str | Segment] | None,
    top: int,
) -> dict[int, Segment]:
    """Every segment 1..max(top, declared), a default for undeclared labels."""
    if segments is None:
        declared: dict[int, Segment | str] = {}
    elif isinstance(segments, Mapping):
        declared = dict(segments)
    elif isinstance(segments, str | Segment):
        declared = {1: segments}
    else:
        declared = {n: s for n, s in enumerate(segments, 1)}
    out: dict[int, Segment] = {}
    for number, seg in declared.items():
        if not isinstance(number, int | np.integer) or not 1 <= number <= MAX_SEGMENTS:
            raise ValueError(
                f"segments must be keyed by label values 1 to {MAX_SEGMENTS}; got "
                f"{number!r}"
            )
        if isinstance(seg, str):
            seg = Segment.named(seg)
        if not isinstance(seg, Segment):
            raise TypeError(
                f"segment {number} must be a name or a Segment; got "
                f"{type(seg).__name__}"
            )
        out[int(number)] = seg
    last = max([top, *out])
    for number in range(1, last + 1):
        out.setdefault(number, Segment(f"label {number}", _TISSUE, _TISSUE))
    return dict(sorted(out.items()))


def _algorithm(name: str, version: str, family: str | Code):
    import highdicom as hd

    if isinstance(family, str):
        if family not in ALGORITHM_FAMILIES:
            raise ValueError(
                f"algorithm_family must be one of {', '.join(ALGORITHM_FAMILIES)} "
                f"or a pydicom Code of CID 7162; got {family!r}"
            )
        family = ALGORITHM_FAMILIES[family]
    return hd.AlgorithmIdentificationSequence(name=name, version=version, family=family)


def _pixel_measures(items: list[Dataset]):
    """Pixel spacing and slice step from the sources' headers and positions."""
    import highdicom as hd

    first = items[0]
    spacing = first.get("PixelSpacing")
    if len(items) < 2 or spacing is None:
        return None  # highdicom takes the source's own (one image, multi-frame)
    along = _along([_position(d) for d in items], _orientation(first))
    step = _grid_step(along)
    thickness = first.get("SliceThickness")
    return hd.PixelMeasuresSequence(
        pixel_spacing=[float(v) for v in spacing],
        slice_thickness=float(thickness) if thickness else step,
        spacing_between_slices=step,
    )


def seg_dataset(
    labels: np.ndarray,
    image: MedImage,
    *,
    sources: Any = None,
    segments: Mapping[int, str | Segment] | Sequence[str | Segment] | None = None,
    algorithm: str = "medimg-lab",
    algorithm_version: str | None = None,
    algorithm_type: str = "AUTOMATIC",
    algorithm_family: str | Code = "threshold",
    series_number: int = 900,
    series_description: str = "medimg-lab segmentation",
    max_bytes: int = DEFAULT_MAX_BYTES,
):
    """A DICOM Segmentation of ``labels``, drawn on ``image``.

    Parameters
    ----------
    labels : ([S,] M, N) bool or int ndarray
        A mask (``True`` = segment 1) or labels 1 to 255 on ``image``'s
        grid; 0 is background.
    image : MedImage
        The image the labels were drawn on, loaded from DICOM.
    sources : path, bytes, Dataset, or a sequence of them, optional
        The image's DICOM files (or a folder, or datasets) when
        ``image.source`` does not lead to them: see :func:`source_datasets`.
    segments : mapping of int to str or Segment, or a sequence, optional
        What each label is: ``{1: "white matter", 2: "grey matter"}`` (names
        of :data:`SEGMENT_PROPERTIES`) or :class:`Segment` objects with codes
        of your own; a sequence numbers them from 1. A label without an entry
        is described as "label N", category and type "Tissue".
    algorithm : str
        Name of the algorithm (or recipe) that made the labels.
    algorithm_version : str, optional
        Its version; default ``medimg_lab.__version__``.
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
        Segment Algorithm Type.
    algorithm_family : str or pydicom Code
        Algorithm family (CID 7162): a key of :data:`ALGORITHM_FAMILIES`
        ("threshold", "region growing", "clustering", "classifier",
        "morphology", "manual") or a code.
    series_number : int
        Series Number of the new SEG series.
    series_description : str
        Series Description (and Content Description) of the SEG.
    max_bytes : int
        Memory budget per source file, as for :func:`medimg_lab.load`.

    Returns
    -------
    highdicom.seg.Segmentation
        A BINARY SEG (a pydicom Dataset) in the source's study, with one frame
        per segment and source slice: empty frames are kept, so that the SEG
        alone carries the source's whole grid and loads back onto it. Each
        frame's ImagePositionPatient is its source slice's.

    Raises
    ------
    ValueError, TypeError
        For labels that are empty, of another shape, negative, above 255 or
        not integers; for unknown segment names or algorithm types; and when
        no DICOM source fits the image.
    NotAnImageError
        If a source is not a DICOM image.
    """
    import highdicom as hd

    from .. import __version__

    labels = check_labels(labels, image)
    kind = str(algorithm_type).upper()
    if kind not in ALGORITHM_TYPES:
        raise ValueError(
            f"algorithm_type must be one of {', '.join(ALGORITHM_TYPES)}; got "
            f"{algorithm_type!r}"
        )
    if not str(algorithm).strip():
        raise ValueError("algorithm must name the algorithm that made the labels")
    items, order = source_datasets(image, sources, max_bytes=max_bytes)
    described = _segments(segments, int(labels.max()))
    version = str(algorithm_version or __version__)
    ident = _algorithm(str(algorithm), version, algorithm_family)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=seg.label,
            segmented_property_category=seg.category,
            segmented_property_type=seg.type,
            algorithm_type=kind,
            algorithm_identification=ident,
            tracking_uid=hd.UID(),
            tracking_id=f"{seg.label} (segment {number})",
        )
        for number, seg in described.items()
    ]
    measures = _pixel_measures(items) if order is None else None
    pixels = labels if labels.ndim == 3 else labels[np.newaxis]
    if order is not None:  # mask slices in the multi-frame source's order
        pixels = pixels[np.argsort(order)]
    try:
        seg = hd.seg.Segmentation(
            source_images=items,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(series_number),
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medimg-lab",
            manufacturer_model_name="medimg-lab",
            software_versions=__version__,
            device_serial_number="medimg-lab",
            content_description=series_description[:64],
            content_label="SEGMENTATION",
            pixel_measures=measures,
            omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # highdicom's own text stays in __cause__, for a developer.
        raise ValueError(
            "the source's DICOM headers lack an attribute a SEG must copy from "
            "them (the patient, study, series, frame of reference or plane "
            "geometry); export the images again from the scanner or archive, "
            "with their full headers."
        ) from exc
    seg.SeriesDescription = series_description[:64]
    if measures is not None:
        # highdicom copies the source's own Pixel Measures when the pixel
        # spacing agrees, Spacing Between Slices included, and scanners often
        # write one there that the positions contradict: the step between the
        # positions is what places the frames.
        shared = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        shared.SpacingBetweenSlices = measures[0].SpacingBetweenSlices
    return seg


def save_seg(
    labels: np.ndarray,
    image: MedImage,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write :func:`seg_dataset`'s SEG to ``path`` atomically.

    Parameters
    ----------
    labels, image
        As for :func:`seg_dataset`.
    path : path-like
        The ``.dcm`` file to write; never the image's own input.
    overwrite : bool
        Replace an existing file.
    **options
        The keyword options of :func:`seg_dataset`.

    Returns
    -------
    Path
        The written file.
    """
    seg = seg_dataset(labels, image, **options)
    return write_dataset(seg, path, overwrite=overwrite, protect=[image.source])


def write_dataset(
    ds: Dataset, path: str | os.PathLike, *, overwrite: bool, protect=()
) -> Path:
    """Save a dataset as a DICOM Part 10 file through an atomic rename."""
    return atomic_write(
        path,
        lambda tmp: ds.save_as(tmp, enforce_file_format=True),
        overwrite=overwrite,
        protect=protect,
    )


# -------------------------------------------------------------------- reading
def segment_number(frame: Dataset | None, shared: Dataset | None, name: str) -> int:
    """The segment a SEG frame holds (per-frame, or shared by every frame)."""
    for group in (frame, shared):
        seq = group.get("SegmentIdentificationSequence") if group else None
        if seq:
            return int(seq[0].ReferencedSegmentNumber)
    raise NotAnImageError(
        name,
        "is a SEG whose frames do not say which segment they hold (no Segment "
        "Identification Sequence).",
        "Export the segmentation again from the tool that made it.",
    )


def _frame_sources(frame: Dataset) -> list[str]:
    uids = []
    for deriv in frame.get("DerivationImageSequence") or ():
        for src in deriv.get("SourceImageSequence") or ():
            uids.append(str(src.get("ReferencedSOPInstanceUID", "")))
    return uids


def _slots(
    seg: Dataset, name: str, nframes: int
) -> tuple[np.ndarray, int, float | None, str]:
    """Slice index per frame, slice count, slice step (mm) and how they were found."""
    shared = (seg.get("SharedFunctionalGroupsSequence") or [None])[0]
    per = seg.get("PerFrameFunctionalGroupsSequence") or []
    orientation = _orientation(seg)
    positions = [_position(seg, f) for f in range(nframes)]
    if orientation is not None and all(p is not None for p in positions):
        along = _along(positions, orientation)
        ordered = np.sort(along)
        distinct = ordered[np.r_[True, np.diff(ordered) > 1e-3]]
        if distinct.size == 1:
            return np.zeros(nframes, int), 1, None, "one plane"
        step = _grid_step(distinct)
        index = np.rint((along - distinct[0]) / step).astype(int)
        # Off the grid by more than a tenth of a step, as load() refuses a series.
        if np.max(np.abs(distinct[0] + index * step - along)) > 0.1 * step:
            raise NotAnImageError(
                name,
                "is a SEG whose frames lie at slice positions that fit no regular "
                "spacing, so they form no volume.",
                "Open it in a viewer beside its source series instead.",
            )
        return index, int(index.max()) + 1, step, "position along the slice normal"
    # No geometry (a radiograph): frames grouped by the source image they name.
    keys = [
        tuple(_frame_sources(per[f])) if f < len(per) else () for f in range(nframes)
    ]
    firsts: dict[tuple, int] = {}
    for key in keys:
        firsts.setdefault(key, len(firsts))
    del shared
    return np.array([firsts[k] for k in keys]), len(firsts), None, "source image"


def load_seg(
    source: str | os.PathLike | bytes | Dataset,
    name: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> MedImage:
    """Read a DICOM SEG as labels on its source's grid.

    Parameters
    ----------
    source : path, bytes or pydicom Dataset
        The SEG file.
    name : str, optional
        Printable name for messages; default the path.
    max_bytes, max_frames, max_items : int
        Limits, as for :func:`medimg_lab.load`.

    Returns
    -------
    MedImage
        ``array`` of uint8 (uint16 beyond 255 segments) labels, 0 for
        background and the segment number elsewhere, slices sorted along the
        slice normal as :func:`medimg_lab.load` sorts the source series, so
        ``labels[k]`` lies on the source's slice ``k`` (for a SEG that keeps
        every frame, as :func:`seg_dataset` writes it; a SEG that omits empty
        frames spans its segments' slices). ``spacing`` in mm, ``modality``
        "SEG", ``meta["segments"]`` ``{number: label}``,
        ``meta["segment_types"]`` ``{number: "SCT 389080008 White Matter"}``
        and ``meta["algorithms"]``. Where segments overlap, the higher number
        wins and ``meta["overlap_pixels"]`` counts the pixels.

    Raises
    ------
    NotAnImageError
        If the file is not a SEG, or its frames form no image.
    ImageTooLargeError
        If its frames exceed ``max_bytes``.
    """
    from .dicom import read_dataset

    name = name or _name(source)
    if isinstance(source, Dataset):
        ds = source
    else:
        ds = read_dataset(
            source,
            name,
            max_bytes=max_bytes,
            max_items=max_items,
            max_frames=max_frames,
        )
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS_UID:
        raise NotAnImageError(
            name,
            "is not a DICOM Segmentation (its SOP Class is "
            f"{getattr(ds.get('SOPClassUID'), 'name', 'missing')}).",
            "Open it with medimg_lab.load() instead.",
        )
    nframes = _frames(ds)
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if nframes > max_frames:
        raise ImageTooLargeError(
            name,
            f"holds {nframes} frames, more than max_frames={max_frames}.",
            "Pass a larger max_frames= if the file is genuine.",
        )
    if nframes * rows * cols * 2 > max_bytes:
        raise ImageTooLargeError(
            name,
            f"would unpack to {nframes} frames of {rows}x{cols}, more than the "
            "memory budget.",
            "Pass a larger max_bytes= if the file is genuine.",
        )
    try:
        pixels = ds.pixel_array.reshape(nframes, rows, cols)
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise NotAnImageError(
            name,
            "is a SEG whose pixel data does not decode into its frames.",
            "Export the segmentation again from the tool that made it.",
        ) from exc
    if str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        pixels = pixels > int(ds.get("MaximumFractionalValue") or 255) / 2
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    numbers = [
        segment_number(per[f] if f < len(per) else None, shared, name)
        for f in range(nframes)
    ]
    index, nslices, step, placed_by = _slots(ds, name, nframes)
    if nslices > max_frames or nslices * rows * cols > max_bytes:
        # Frames far apart on a fine grid would make a volume of empty slices.
        raise ImageTooLargeError(
            name,
            f"places its frames on a grid of {nslices} slices of {rows}x{cols}, "
            "more than max_frames or the memory budget allow.",
            "Pass a larger max_frames= or max_bytes= if the file is genuine.",
        )
    top = max([int(s.SegmentNumber) for s in ds.get("SegmentSequence") or ()] + numbers)
    labels = np.zeros((nslices, rows, cols), np.uint8 if top <= 255 else np.uint16)
    overlap = 0
    for f in np.argsort(numbers, kind="stable"):  # the higher number wins
        hit = pixels[f] != 0
        target = labels[index[f]]
        overlap += int(np.count_nonzero(hit & (target != 0)))
        target[hit] = numbers[f]
    measures = None
    for group in (shared, per[0] if per else None):
        seq = group.get("PixelMeasuresSequence") if group else None
        if seq:
            measures = seq[0]
            break
    in_plane, known = (1.0, 1.0), False
    value = measures.get("PixelSpacing") if measures is not None else None
    if value is not None and len(value) == 2:
        pair = tuple(float(v) for v in value)
        # A radiograph may carry 0\0: no spacing, as load() reads its source.
        if all(math.isfinite(v) and v > 0 for v in pair):
            in_plane, known = pair, True
    meta: dict[str, Any] = {
        "Modality": "SEG",
        "SOPClass": "Segmentation Storage",
        "SegmentationType": str(ds.get("SegmentationType", "")),
        "unit": "label",
        "segments": {},
        "segment_types": {},
        "algorithms": {},
        "sorted_by": placed_by,
        "spacing_known": known,
    }
    for item in ds.get("SegmentSequence") or ():
        number = int(item.SegmentNumber)
        meta["segments"][number] = str(item.get("SegmentLabel", f"segment {number}"))
        kind = (item.get("SegmentedPropertyTypeCodeSequence") or [None])[0]
        if kind is not None:
            meta["segment_types"][number] = (
                f"{kind.CodingSchemeDesignator} {kind.CodeValue} {kind.CodeMeaning}"
            )
        algo = str(item.get("SegmentAlgorithmName", "") or "")
        meta["algorithms"][number] = (
            f"{algo} ({item.get('SegmentAlgorithmType', '')})".strip()
            if algo
            else str(item.get("SegmentAlgorithmType", ""))
        )
    if overlap:
        meta["overlap_pixels"] = overlap
    if nslices == 1:
        array, spacing = labels[0], in_plane
    else:
        array, spacing = labels, (step or 1.0, *in_plane)
    return MedImage(
        array=array,
        spacing=spacing,
        modality="SEG",
        window=(top / 2.0, float(max(top, 1))),
        meta=meta,
    )
