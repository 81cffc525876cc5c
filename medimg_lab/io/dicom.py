"""DICOM reading with medical semantics.

What a naive reader gets wrong and this module gets right:

- CT values become Hounsfield units: ``HU = raw * RescaleSlope +
  RescaleIntercept``, taken per frame from the enhanced multi-frame functional
  groups where they live there.
- Pixel padding (``PixelPaddingValue``) becomes air, -1024 HU, on CT, and the
  image's background elsewhere.
- MONOCHROME1 images (most radiographs) are turned around, so that a higher
  value displays brighter, and their header window with them.
- Palette colour and YBR images become RGB.
- Multi-frame objects become volumes, and a folder series is sorted by the
  position of each slice along the slice normal, not by file name.
- Every transfer syntax for which pydicom has a decoder plugin decodes:
  uncompressed, deflate, RLE, JPEG baseline, extended and lossless, JPEG-LS
  and JPEG 2000 (pylibjpeg, pyjpegls). Greyscale JPEG-LS and JPEG 2000
  frames are decoded straight through imagecodecs (:mod:`._codecs`), JPEG
  2000 on every core, to the same pixels.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)
from pydicom.valuerep import AMBIGUOUS_VR

from ..display import AUTO_WINDOW
from ..errors import (
    DecodeError,
    ImageTooLargeError,
    InvalidValuesError,
    MedImgError,
    NoPixelDataError,
    NotAnImageError,
    SeriesError,
    TruncatedFileError,
    warn_caller,
)
from ..image import MedImage
from ._codecs import decode_frames, encoded_frames, j2k_siz, jpeg_segment
from ._source import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_ITEMS,
    ITEM_TAG_BIG,
    ITEM_TAG_LITTLE,
    check_budget,
    check_count,
    count_items,
    damaged_header,
    native,
    size_text,
    sniff,
    special_file,
    special_reason,
)

__all__ = [
    "SAFE_HEADER_KEYWORDS",
    "SliceGapWarning",
    "expected_length",
    "load_dicom",
    "load_series",
    "read_dataset",
]

#: Header attributes copied into ``MedImage.meta``. It is an allow-list: no
#: name, ID, date, UID or free text that could identify a patient is on it.
SAFE_HEADER_KEYWORDS = (
    "Modality",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "ImageType",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SliceThickness",
    "KVP",
    "ConvolutionKernel",
    "MagneticFieldStrength",
    "EchoTime",
    "RepetitionTime",
    "FlipAngle",
    "ScanningSequence",
    "PatientPosition",
    "ViewPosition",
    "ImageOrientationPatient",
    "BurnedInAnnotation",
    "VOILUTFunction",
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_AIR_HU = -1024
_CINE_MODALITIES = {"US", "XA", "RF", "ES", "XC", "IVUS"}


def _plain(value: Any) -> Any:
    """Turn pydicom values into plain Python for ``meta``."""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, pydicom.valuerep.DSfloat | pydicom.valuerep.IS):
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _lookup(ds: Dataset, keyword: str, group: str, frame: int = 0) -> Any:
    """Find an attribute per frame, in the shared groups, or at the top level.

    Enhanced multi-frame objects keep rescale, spacing, position and window in
    ``PerFrameFunctionalGroupsSequence`` or ``SharedFunctionalGroupsSequence``
    items, under the functional-group sequence named by ``group``.
    """
    if not _FUNCTIONAL_GROUPS.isdisjoint(ds._dict):
        for seq_name, index in (
            ("PerFrameFunctionalGroupsSequence", frame),
            ("SharedFunctionalGroupsSequence", 0),
        ):
            seq = ds.get(seq_name)
            if seq and index < len(seq):
                inner = seq[index].get(group)
                if inner and keyword in inner[0]:
                    return inner[0][keyword].value
    return _get(ds, keyword)


#: The functional groups of an enhanced multi-frame object.
_FUNCTIONAL_GROUPS = frozenset((0x52009229, 0x52009230))


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)`` for a keyword of the DICOM dictionary.

    The same value, without pydicom's attribute machinery on each call (a
    load looks up some sixty attributes).
    """
    tag = _KEYWORD_TAGS.get(keyword)
    if tag is None:
        tag = _KEYWORD_TAGS.setdefault(keyword, Tag(tag_for_keyword(keyword)))
    elem = ds._dict.get(tag)
    if elem is None:
        return default
    if type(elem) is DataElement and elem.VR != "SQ":
        return elem.value  # as Dataset.__getitem__ returns a converted element
    return ds[tag].value


_KEYWORD_TAGS: dict[str, BaseTag] = {}


def _first_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _vector(value: Any, n: int) -> np.ndarray | None:
    try:
        vec = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return vec if vec.shape == (n,) and np.all(np.isfinite(vec)) else None


def _fit_int(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cast integer values known to lie in ``[lo, hi]`` to the smallest dtype."""
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return arr.astype(dtype, copy=False)
    return arr.astype(np.float32)


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(_get(ds, "BitsStored") or _get(ds, "BitsAllocated") or 16)
    if int(_get(ds, "PixelRepresentation") or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _padding_value(ds: Dataset, name: str) -> int | None:
    value = _get(ds, "PixelPaddingValue")
    if isinstance(value, bytes):
        signed = int(_get(ds, "PixelRepresentation") or 0) == 1
        value = int.from_bytes(value[:2], "little", signed=signed)
    return None if value is None else int(value)


@dataclass
class _Decoded:
    """One DICOM object decoded into frames, before series assembly."""

    frames: np.ndarray  # (F, rows, cols) or (F, rows, cols, 3)
    positions: list[np.ndarray | None]
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    window: tuple[float, float] | None
    window_source: str
    meta: dict[str, Any] = field(default_factory=dict)
    slice_gap: float | None = None


def _transfer_syntax(ds: Dataset, name: str) -> UID:
    """The file's transfer syntax, refusing a value that names none."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        known = isinstance(syntax, UID) and syntax.is_transfer_syntax
    except ValueError:  # a private UID pydicom knows nothing of
        known = False
    if not known:
        raise DecodeError(
            name,
            f"its file meta names {str(syntax)[:64]!r} as the transfer syntax, "
            "which is not a DICOM transfer syntax, so its pixel data cannot be "
            "decoded.",
            "The file is damaged; export it again from its source.",
        )
    return syntax


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD}
_JPEG_SOF |= {0xCE, 0xCF, 0xF7}  # and JPEG-LS


def _codestream_size(frame: bytes, j2k: bool) -> tuple[int, int] | None:
    """(rows, columns) announced by a JPEG, JPEG-LS or JPEG 2000 codestream."""
    if j2k:
        pos = j2k_siz(frame, 22)
        if pos is None:
            return None
        x, y, x0, y0 = struct.unpack(">4I", frame[pos + 6 : pos + 22])
        return y - y0, x - x0
    pos = jpeg_segment(frame, _JPEG_SOF, 9)
    return None if pos is None else struct.unpack(">HH", frame[pos + 5 : pos + 9])


def _check_codestreams(ds: Dataset, name: str, frames: int) -> int:
    """Count the encoded frames; refuse JPEG frames of another size.

    A JPEG decoder allocates what its codestream announces, not what
    Rows and Columns say; a height of 0 (defined later by a DNL marker) makes
    pylibjpeg-libjpeg grow its buffers without end.

    Returns
    -------
    int
        The frames the encapsulated data holds. pydicom decodes them all
        when there are more than NumberOfFrames says, so they are what the
        budget and the frame limit must be checked against.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    jpeg = syntax in (
        *JPEGTransferSyntaxes,
        *JPEGLSTransferSyntaxes,
        *JPEG2000TransferSyntaxes,
    )
    j2k = syntax in JPEG2000TransferSyntaxes
    rows, cols = int(ds.Rows), int(ds.Columns)
    count = 0
    try:
        for index, frame in enumerate(encoded_frames(ds, frames)):
            count = index + 1
            size = _codestream_size(frame, j2k) if jpeg else None
            if size is not None and tuple(size) != (rows, cols):
                raise DecodeError(
                    name,
                    f"its {syntax.name} data of frame {index + 1} is "
                    f"{size[0]} x {size[1]} pixels, but its header says "
                    f"{rows} x {cols}, so it was not decoded.",
                    "The file is damaged; export it again from its source.",
                )
    except MedImgError:
        raise
    except Exception:  # damaged encapsulation: the decoder names it
        return frames
    return max(count, frames)


def expected_length(
    ds: Dataset, *, frames: int | None = None, samples: int | None = None
) -> int:
    """Bytes of uncompressed pixel data the header announces, as pydicom counts.

    Follows :func:`pydicom.pixels.utils.get_expected_length` (PS3.5 8.1.1,
    PS3.3 C.7.6.3.1.2): ``rows * columns * samples * frames`` values of
    ``BitsAllocated // 8`` bytes; BitsAllocated 1 packs eight values a byte
    across frame boundaries (rounded up once, for the whole data);
    YBR_FULL_422 stores two of every three values (4:2:2 chroma subsampling).
    The trailing padding byte of odd-length data is not counted.

    Parameters
    ----------
    ds : Dataset
        Holds Rows, Columns, BitsAllocated and, optionally,
        PhotometricInterpretation, SamplesPerPixel and NumberOfFrames.
    frames, samples : int, optional
        Already validated NumberOfFrames and SamplesPerPixel (default: read
        from ``ds``, an absent or zero value counting as 1).

    Returns
    -------
    int
        The expected length in bytes.
    """
    header = Dataset()
    header.Rows, header.Columns = int(ds.Rows), int(ds.Columns)
    header.BitsAllocated = int(ds.BitsAllocated)
    header.SamplesPerPixel = int(samples or _get(ds, "SamplesPerPixel") or 1)
    header.NumberOfFrames = int(frames or _get(ds, "NumberOfFrames") or 1)
    photometric = str(_get(ds, "PhotometricInterpretation") or "MONOCHROME2")
    header.PhotometricInterpretation = photometric.strip().upper()
    return int(get_expected_length(header, "bytes"))


def _check_pixel_module(
    ds: Dataset, name: str, max_bytes: int, max_frames: int = DEFAULT_MAX_FRAMES
) -> int:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        sop = _get(ds, "SOPClassUID")
        kind = getattr(sop, "name", None) or "this object"
        raise NoPixelDataError(
            name,
            f"holds no pixel data ({kind}); it is a DICOM file, but not an image.",
            "Open an image object of the study instead (CT, MR, CR, DX, US ...).",
        )
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        frames = int(_get(ds, "NumberOfFrames") or 1)
        samples = int(_get(ds, "SamplesPerPixel") or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise NotAnImageError(
            name,
            "has pixel data but no valid image size: Rows, Columns, "
            "BitsAllocated, NumberOfFrames and SamplesPerPixel must be whole "
            "numbers.",
            "The header is damaged; export the image again from its source.",
        ) from exc
    check_count(name, "frames", frames, max_frames, "max_frames")
    check_budget(name, (frames, rows, cols, samples), max(4, bits // 8), max_bytes)
    syntax = _transfer_syntax(ds, name)
    if "PixelData" in ds and syntax.is_compressed:
        found = _check_codestreams(ds, name, frames)
        if found > frames:  # pydicom decodes every frame it finds
            check_count(name, "frames", found, max_frames, "max_frames")
            check_budget(
                name, (found, rows, cols, samples), max(4, bits // 8), max_bytes
            )
    else:
        keyword = next(k for k in _PIXEL_KEYWORDS if k in ds)
        expected = expected_length(ds, frames=frames, samples=samples)
        got = len(ds[keyword].value or b"")
        if got < expected:
            raise TruncatedFileError(
                name,
                f"holds {got} bytes of pixel data where its header announces "
                f"{expected} ({frames} frame(s) of {rows} x {cols}); the file was "
                "cut short.",
                "Copy or export the file again from its source.",
            )
    return frames


#: Decoder plugins in the order they are tried, by transfer syntax, as
#: measured (``benchmarks/bench_io.py``, the same pixels bit for bit on the
#: pydicom corpus, tests/io/test_decoders.py): for JPEG-LS, pyjpegls
#: (CharLS) decodes 2.5-4 x faster than pylibjpeg-libjpeg, which pydicom
#: tries first, and than GDCM; for JPEG 2000 pylibjpeg-openjpeg, GDCM and
#: SimpleITK share OpenJPEG and run alike, so pylibjpeg stays first. The
#: first one installed is used; pydicom's own order is the fallback. These
#: decode what :func:`._codecs.decode_frames` leaves: colour frames, and
#: frames imagecodecs refuses.
DECODER_PREFERENCE: dict[str, tuple[str, ...]] = {
    **{str(uid): ("pyjpegls", "pylibjpeg", "gdcm") for uid in JPEGLSTransferSyntaxes},
    **{str(uid): ("pylibjpeg", "gdcm", "pillow") for uid in JPEG2000TransferSyntaxes},
}


def preferred_decoder(syntax: UID) -> str | None:
    """The measured fastest decoder plugin installed for ``syntax``, if any."""
    order = DECODER_PREFERENCE.get(str(syntax))
    if not order:
        return None
    try:
        available = set(pydicom.pixels.get_decoder(syntax).available_plugins)
    except (NotImplementedError, ValueError):
        return None
    return next((plugin for plugin in order if plugin in available), None)


def _pixel_array(ds: Dataset, syntax: UID) -> np.ndarray:
    """``ds.pixel_array`` through the preferred decoder, else pydicom's order.

    Greyscale JPEG-LS and JPEG 2000 frames are decoded straight through
    imagecodecs first (:mod:`medimg_lab.io._codecs`): the same pixels,
    without pydicom's per-frame pipeline, and JPEG 2000 on every core.
    """
    direct = decode_frames(ds, syntax, int(_get(ds, "NumberOfFrames") or 1))
    if direct is not None:
        return direct
    plugin = preferred_decoder(syntax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if plugin is None:
            return ds.pixel_array
        ds.pixel_array_options(decoding_plugin=plugin)
        try:
            return ds.pixel_array
        except Exception:  # that plugin cannot decode this file: the others try
            ds.pixel_array_options(decoding_plugin="")
            return ds.pixel_array


def _decode(ds: Dataset, name: str) -> np.ndarray:
    """The pixel data of ``ds`` as an array; the encoded data leaves ``ds``."""
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        arr = _pixel_array(ds, syntax)
    except (MedImgError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # every codec failure becomes one clear error;
        # a Rust decoder's panic (pylibjpeg-rle) is a BaseException, not Exception
        raise DecodeError(
            name,
            f"its pixel data ({syntax.name}) could not be decoded: the decoder "
            "stopped on data that breaks that encoding.",
            "The file may be damaged. If it opens elsewhere, convert it to "
            "uncompressed DICOM (for example `dcmdjpeg` or `gdcmconv --raw`) and "
            "try again.",
        ) from exc
    # The encoded bytes and pydicom's cached array are no longer needed:
    # dropping them keeps the working set to the decoded array (and the
    # output the rescale writes), not the file's bytes beside it.
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    ds._pixel_array = None
    ds._pixel_id = {}
    return native(arr)


def _rescale_pairs(ds: Dataset, nframes: int) -> list[tuple[float, float]]:
    """(RescaleSlope, RescaleIntercept) of each frame; (1, 0) where absent."""
    pairs = []
    for f in range(nframes):
        slope = _lookup(ds, "RescaleSlope", "PixelValueTransformationSequence", f)
        intercept = _lookup(
            ds, "RescaleIntercept", "PixelValueTransformationSequence", f
        )
        pairs.append(_pair(slope, intercept))
    return pairs


def _pair(slope: Any, intercept: Any) -> tuple[float, float]:
    """(slope, intercept) as numbers; (1, 0) where absent or not a number."""
    slope, intercept = _first_number(slope), _first_number(intercept)
    return (1.0 if not slope else slope, intercept or 0.0)


#: Values handled at once when rescaling: the temporaries of one block are
#: all the working memory the rescale needs beside the output.
_BLOCK_VALUES = 1 << 18
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_SAFE = 2.0**62


def _blocks(shape: tuple[int, ...]):
    """(frame, row slice) blocks of about ``_BLOCK_VALUES`` values each."""
    per_row = max(1, math.prod(shape[2:]))
    step = max(1, _BLOCK_VALUES // per_row)
    for f in range(shape[0]):
        for r in range(0, shape[1], step):
            yield f, slice(r, min(r + step, shape[1]))


def _work_type(integral: bool, lo: float, hi: float) -> type:
    """The type a block is rescaled in: exact integers, else float32.

    float64 where float32 would overflow.
    """
    big = max(abs(lo), abs(hi))
    if integral:
        return np.int64 if big < _INT64_SAFE else np.float64
    return np.float32 if big < _FLOAT32_MAX else np.float64


def _fits(dtype: np.dtype, *values: float) -> bool:
    """Whether an integer ``dtype`` holds every one of ``values``."""
    info = np.iinfo(dtype)
    return all(info.min <= v <= info.max for v in values)


def _output_type(integral: bool, lo: float, hi: float) -> np.dtype:
    """The smallest type that holds values in ``[lo, hi]``, as ``_fit_int``."""
    if integral:
        for dtype in (np.uint8, np.uint16, np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return np.dtype(dtype)
    big = max(abs(lo), abs(hi))
    return np.dtype(np.float32 if big < _FLOAT32_MAX else np.float64)


def _grey_values(
    ds: Dataset,
    frames: np.ndarray,
    nframes: int,
    name: str,
    modality: str,
    photometric: str,
    meta: dict[str, Any],
    max_bytes: int = DEFAULT_MAX_BYTES,
    pairs: list[tuple[float, float]] | None = None,
    raw_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Rescale, padding, lossy air and MONOCHROME1, in the output type.

    ``HU = raw * RescaleSlope + RescaleIntercept`` per frame; padding
    (PixelPaddingValue to PixelPaddingRangeLimit, on the raw values) becomes
    air on CT and the image's background elsewhere; on lossy CT values below
    air become air; MONOCHROME1 is turned around (``lo + hi - value`` over
    the stored range). The output type is chosen first, from the values'
    range, and the work is done a block at a time into it (into the decoded
    array itself when the types have one size), so the working set is the
    output plus a block, not an int64 copy beside the raw array.

    Returns
    -------
    frames, slope, intercept
        The values, and the first frame's rescale.

    ``pairs`` gives each frame's (slope, intercept) where they come from
    elsewhere than ``ds`` (the slices of a series); ``raw_range`` the least
    and greatest raw value, where the caller has them already.
    """
    pairs = pairs or _rescale_pairs(ds, nframes)
    slope, intercept = pairs[0]
    pad = _padding_value(ds, name)
    padding = None
    if pad is not None:
        limit = _get(ds, "PixelPaddingRangeLimit")
        padding = sorted((pad, int(limit) if limit is not None else pad))
    lossy = modality == "CT" and str(_get(ds, "LossyImageCompression", "")) == "01"
    mono1 = photometric == "MONOCHROME1"
    identity = all(p == (1.0, 0.0) for p in pairs)
    exact = frames.dtype.kind in "iu"
    integral = exact and all(a.is_integer() and b.is_integer() for a, b in pairs)
    if raw_range is not None:  # as below: bounds that include 0
        raw_lo, raw_hi = min(float(raw_range[0]), 0.0), max(float(raw_range[1]), 0.0)
    else:
        raw_lo = float(frames.min(initial=0)) if frames.size else 0.0
        raw_hi = float(frames.max(initial=0)) if frames.size else 0.0
    span = [
        v * a + b for a, b in set(pairs) for v in (raw_lo, raw_hi)
    ]  # bounds of every rescaled value, for the work type
    work = _work_type(integral, min(span), max(span))

    def rescaled(f: int, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        block = frames[f, rows]
        if identity:
            return block, block
        a, b = pairs[f]
        values = block.astype(work)  # one temporary; then in place
        if a != 1:
            values *= work(a)
        if b != 0:
            values += work(b)
        return block, values

    def ends(f: int, block: np.ndarray) -> tuple[float, float]:
        """The least and greatest rescaled value of ``block``.

        The rescale of its raw extremes: a rescale that rounds is monotonic,
        so this is exact.
        """
        raw = np.array([block.min(), block.max()], dtype=block.dtype)
        if not identity:
            a, b = pairs[f]
            raw = raw.astype(work)
            if a != 1:
                raw *= work(a)
            if b != 0:
                raw += work(b)
        return float(raw.min()), float(raw.max())

    def masks(block: np.ndarray, values: np.ndarray):
        mask = below = None
        if padding is not None and padding[0] == padding[1]:
            mask = block == padding[0]
        elif padding is not None:
            mask = (block >= padding[0]) & (block <= padding[1])
        if lossy:
            below = values < _AIR_HU
            mask = below if mask is None else mask | below
        return mask, below

    # Pass 1: the range of the values, the padded pixels and the background;
    # the values themselves only where they are needed (lossy air, the
    # background beside padding outside CT).
    need_values = lossy or (padding is not None and modality != "CT")
    # One block (a slice): its padding mask is kept for pass 2.
    single = frames.shape[0] == 1 and frames[0].size <= _BLOCK_VALUES
    first_mask = None
    # One frame: the range of its values is the rescale of its raw range,
    # as the blocks' would give it, without another pass over the values.
    known = None
    if raw_range is not None and frames.shape[0] == 1 and frames.size:
        if not need_values:
            known = ends(0, np.array(raw_range).astype(frames.dtype))
    data_lo, data_hi = math.inf, -math.inf
    padded = below_air = 0
    background = math.inf
    for f, rows in _blocks(frames.shape):
        if need_values:
            block, values = rescaled(f, rows)
        else:
            block = values = frames[f, rows]
        if values.size == 0:
            continue
        if need_values:
            low, high = float(values.min()), float(values.max())
        else:
            low, high = known or ends(f, block)
        data_lo, data_hi = min(data_lo, low), max(data_hi, high)
        mask, below = masks(block, values)
        if single:
            first_mask = mask
        if below is not None:
            below_air += int(np.count_nonzero(below))
        if mask is not None:
            padded += int(np.count_nonzero(mask))
            rest = values[~mask] if modality != "CT" else values[:0]
            if rest.size:
                background = min(background, float(rest.min()))
    if not math.isfinite(data_lo):
        data_lo = data_hi = 0.0
    if identity and not padded and not mono1:
        return frames, slope, intercept
    fill = float(_AIR_HU) if modality == "CT" else min(0.0, background)
    if identity:
        dtype = frames.dtype
    else:
        dtype = _output_type(integral, data_lo, data_hi)
    if padded and dtype.kind in "iu" and fill < np.iinfo(dtype).min:
        dtype = _output_type(True, min(fill, data_lo), data_hi)
    lo, hi = sorted(v * slope + intercept for v in _stored_range(ds))
    if mono1:
        if dtype.kind in "iu" and float(lo + hi).is_integer():
            dtype = _output_type(True, lo, hi)
        else:
            dtype = np.dtype(np.float32)
    if below_air:
        meta["lossy_below_air_pixels"] = below_air
    if padded:
        meta["padding"] = {
            "raw_value": pad,
            "pixels": padded,
            "replaced_by": fill,
        }

    if dtype.itemsize > 4:  # float64 for values beyond float32's range
        check_budget(name, frames.shape, dtype.itemsize, max_bytes)
    # Pass 2: the values, block by block, into the output.
    same_size = dtype.itemsize == frames.dtype.itemsize
    if same_size and frames.flags.c_contiguous and frames.flags.writeable:
        out = frames.view(dtype)  # each block is read before it is written
    else:
        out = np.empty(frames.shape, dtype)
    flip = (lo + hi) if mono1 else None
    flip_exact = mono1 and dtype.kind in "iu" and work is np.int64
    plain = integral and not (lossy or mono1) and dtype.kind in "iu"
    if plain:
        # Raw values, intercepts and sums all fit the output type: add in it,
        # exactly; else in the work type.
        info = np.iinfo(dtype)
        fits = info.min <= min(raw_lo, *(b for _, b in pairs))
        fits = fits and max(raw_hi, *(b for _, b in pairs)) <= info.max
        add_type = dtype if fits else np.dtype(work)
    # MONOCHROME1 of whole numbers without padding: lo + hi - (raw + b) in
    # one exact int64 pass, straight into the output.
    flip_plain = flip_exact and integral and not lossy and padding is None
    # Frames whose every lo + hi - raw fits the type: subtracted in it.
    direct = [
        flip_plain
        and frames.dtype == dtype
        and _fits(dtype, *(int(flip) - b - v for v in (0, raw_lo, raw_hi)))
        for _, b in pairs
    ]
    for f, rows in _blocks(frames.shape):
        if flip_plain and pairs[f][0] == 1:
            offset = int(flip) - int(pairs[f][1])
            if direct[f]:
                np.subtract(dtype.type(offset), frames[f, rows], out=out[f, rows])
                continue
            np.subtract(
                offset,
                frames[f, rows],
                out=out[f, rows],
                dtype=np.int64,
                casting="unsafe",
            )
            continue
        if plain and pairs[f][0] == 1:  # HU = raw + intercept, straight in
            block, target = frames[f, rows], out[f, rows]
            # On the raw values, before writing.
            mask = first_mask if single else masks(block, block)[0]
            b = add_type.type(pairs[f][1])
            np.add(block, b, out=target, dtype=add_type, casting="unsafe")
            if padded and mask is not None and mask.any():
                target[mask] = fill
            continue
        block, values = rescaled(f, rows)
        mask, _ = masks(block, values)
        if mask is not None and mask.any():
            values = values.copy() if values is block else values
            values[mask] = fill
        if flip_exact:  # whole numbers: exact in int64, as in float64
            values = np.subtract(int(flip), values, dtype=np.int64)
        elif mono1:
            values = flip - values.astype(np.float64)
        out[f, rows] = values.astype(dtype, copy=False)
    return out, slope, intercept


def _modality_lut(
    ds: Dataset, frames: np.ndarray, name: str, modality: str, meta: dict[str, Any]
) -> tuple[np.ndarray, float, float]:
    """A Modality LUT (instead of a rescale), with padding, on the whole array."""
    pad = _padding_value(ds, name)
    padded = None
    if pad is not None:
        limit = _get(ds, "PixelPaddingRangeLimit")
        lo, hi = sorted((pad, int(limit) if limit is not None else pad))
        padded = (frames >= lo) & (frames <= hi)
    frames = np.asarray(apply_modality_lut(frames, ds))
    if padded is not None and padded.any():
        fill = _AIR_HU if modality == "CT" else frames[~padded].min(initial=0)
        if frames.dtype.kind in "iu" and fill < np.iinfo(frames.dtype).min:
            lo, hi = min(fill, frames.min()), frames.max()
            frames = _fit_int(frames.astype(np.int64), lo, hi)
        frames = np.array(frames, copy=not frames.flags.writeable)
        frames[padded] = fill
        meta["padding"] = {
            "raw_value": pad,
            "pixels": int(padded.sum()),
            "replaced_by": float(fill),
        }
    return frames, 1.0, 0.0


def _decode_object(
    ds: Dataset, name: str, max_bytes: int, max_frames: int = DEFAULT_MAX_FRAMES
) -> _Decoded:
    nframes = _check_pixel_module(ds, name, max_bytes, max_frames)
    raw = _decode(ds, name)
    single = 2 if int(_get(ds, "SamplesPerPixel") or 1) == 1 else 3
    held = raw.shape[0] if raw.ndim == single + 1 else 1
    if held != nframes:  # pydicom found another number of frames in the data
        note = (
            f"{name}: its header announces {nframes} frame(s) (NumberOfFrames), "
            f"but its pixel data holds {held}; the {held} frame(s) it holds were "
            "loaded."
        )
        meta_notes = [note]
        warn_caller(UserWarning(note))
        nframes = held
    else:
        meta_notes = []
    return _describe(ds, raw, nframes, name, max_bytes, notes=meta_notes)


def _describe(
    ds: Dataset,
    raw: np.ndarray,
    nframes: int,
    name: str,
    max_bytes: int,
    *,
    notes: list[str] | None = None,
    pairs: list[tuple[float, float]] | None = None,
    positions: list[np.ndarray | None] | None = None,
    raw_range: tuple[float, float] | None = None,
) -> _Decoded:
    """Decoded pixels of ``ds`` with their physical meaning, as ``_Decoded``.

    ``pairs`` and ``positions`` give each frame's rescale and position when
    the frames are the slices of a series, each from its own file, and
    ``ds`` the header that speaks for the series; ``raw_range`` the least
    and greatest raw value, where the caller has them already.
    """
    photometric = str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    modality = str(_get(ds, "Modality") or "OT").upper()
    meta_notes = notes or []
    meta: dict[str, Any] = {}
    for k in SAFE_HEADER_KEYWORDS:  # each looked up once
        value = _get(ds, k)
        if value not in (None, ""):
            meta[k] = _plain(value)
    meta["TransferSyntax"] = ds.file_meta.TransferSyntaxUID.name
    if meta_notes:
        meta["warnings"] = meta_notes
    sop = _get(ds, "SOPClassUID")
    if sop is not None:
        meta["SOPClass"] = sop.name

    if photometric == "PALETTE COLOR":
        try:
            rgb = np.asarray(apply_color_lut(raw, ds))
        except Exception as exc:  # descriptor or LUT data that breaks PS3.3
            raise DecodeError(
                name,
                "its palette colour lookup tables are damaged: a descriptor "
                "gives no valid number of entries, first value or 8 or 16 bits "
                "per entry, or a table holds less data than its descriptor "
                "says, so its colours cannot be known.",
                "Export the image again from its source, or as RGB.",
            ) from exc
        if rgb.dtype != np.uint8:
            # 16-bit entries span 0-65535; some writers store 8-bit values in
            # them, which a viewer must not darken to black.
            rgb = rgb if rgb.max(initial=0) < 256 else rgb >> 8
        raw = rgb.astype(np.uint8)
        meta["color_converted_from"] = photometric
    elif photometric.startswith("YBR") or photometric == "RGB":
        if photometric.startswith("YBR"):
            meta["color_converted_from"] = photometric
    color = raw.ndim == (4 if nframes > 1 else 3) and raw.shape[-1] == 3
    frames = raw if nframes > 1 else raw[np.newaxis]
    if np.issubdtype(frames.dtype, np.floating) and not np.all(np.isfinite(frames)):
        raise InvalidValuesError(
            name,
            f"holds {int(np.count_nonzero(~np.isfinite(frames)))} NaN or infinite "
            "pixel values.",
            "Fix the exporting software, or replace them (numpy.nan_to_num) and "
            "build a MedImage from the array.",
        )

    window = None
    window_source = "auto"
    if not color:
        if _get(ds, "ModalityLUTSequence"):
            frames, slope, intercept = _modality_lut(ds, frames, name, modality, meta)
        else:
            # Lossy compression smears padding and edges into values below
            # air, which no tissue has: they become air like the padding.
            frames, slope, intercept = _grey_values(
                ds,
                frames,
                nframes,
                name,
                modality,
                photometric,
                meta,
                max_bytes,
                pairs=pairs,
                raw_range=raw_range,
            )
            if pairs is not None:  # the rescale of the header that speaks
                slope, intercept = _rescale_pairs(ds, 1)[0]
        if slope != 1.0 or intercept != 0.0:
            meta["RescaleSlope"], meta["RescaleIntercept"] = slope, intercept
            meta["RescaleType"] = str(
                _lookup(ds, "RescaleType", "PixelValueTransformationSequence") or ""
            ) or ("HU" if modality == "CT" else "US")
        center = _first_number(_lookup(ds, "WindowCenter", "FrameVOILUTSequence"))
        width = _first_number(_lookup(ds, "WindowWidth", "FrameVOILUTSequence"))
        if center is not None and width and width > 0:
            window, window_source = (center, width), "header"
        elif _get(ds, "VOILUTSequence"):
            desc = _get(ds.VOILUTSequence[0], "LUTDescriptor")
            if desc and len(desc) == 3:
                n = float(desc[0] or 65536)
                window, window_source = (float(desc[1]) + n / 2, n), "header VOI LUT"
        lo, hi = (v * slope + intercept for v in _stored_range(ds))
        lo, hi = min(lo, hi), max(lo, hi)
        if photometric == "MONOCHROME1":
            if _get(ds, "ModalityLUTSequence"):
                inverted = (lo + hi) - frames.astype(np.float64)
                if frames.dtype.kind in "iu" and float(lo + hi).is_integer():
                    frames = _fit_int(inverted, lo, hi)
                else:
                    frames = inverted.astype(np.float32)
            if window is not None:
                window = ((lo + hi) - window[0], window[1])
            meta["monochrome1_inverted"] = True
            meta["PhotometricInterpretation"] = "MONOCHROME2 (from MONOCHROME1)"
        if window is not None and window[1] >= 0.9 * (hi - lo):
            # A header window over the whole stored range shows nothing in
            # particular (a washed-out film); the image's own percentiles do.
            meta["header_window"] = window
            meta["header_window_ignored"] = "it spans the whole stored value range"
            window, window_source = None, "auto"
    pixel_spacing, spacing_source = _pixel_spacing(ds)
    if positions is None:
        positions = [
            _vector(_lookup(ds, "ImagePositionPatient", "PlanePositionSequence", f), 3)
            for f in range(nframes)
        ]
    orientation = _vector(
        _lookup(ds, "ImageOrientationPatient", "PlaneOrientationSequence"), 6
    )
    gap = _first_number(_get(ds, "SpacingBetweenSlices")) or _first_number(
        _lookup(ds, "SliceThickness", "PixelMeasuresSequence")
    )
    if nframes > 1 and modality in _CINE_MODALITIES:
        meta["frame_axis"] = "time"
        frame_time = _first_number(_get(ds, "FrameTime"))
        if frame_time:
            meta["frame_time_ms"] = frame_time
    return _Decoded(
        frames=frames,
        positions=positions,
        orientation=orientation,
        pixel_spacing=pixel_spacing,
        spacing_source=spacing_source,
        window=window,
        window_source=window_source,
        meta=meta,
        slice_gap=gap if gap and gap > 0 else None,
    )


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """In-plane spacing (row, column) in mm, and the attribute it came from."""
    candidates = (
        ("PixelSpacing", _lookup(ds, "PixelSpacing", "PixelMeasuresSequence")),
        ("ImagerPixelSpacing", _get(ds, "ImagerPixelSpacing")),
        ("NominalScannedPixelSpacing", _get(ds, "NominalScannedPixelSpacing")),
    )
    for keyword, value in candidates:
        vec = _vector(value, 2) if value is not None else None
        if vec is not None and np.all(vec > 0):
            return (float(vec[0]), float(vec[1])), keyword
    for region in _get(ds, "SequenceOfUltrasoundRegions") or []:
        # Physical units code 3 is centimetres (PS3.3 C.8.5.5.1.15).
        if (
            _get(region, "PhysicalUnitsXDirection")
            == 3
            == _get(region, "PhysicalUnitsYDirection")
        ):
            dx = _first_number(_get(region, "PhysicalDeltaX"))
            dy = _first_number(_get(region, "PhysicalDeltaY"))
            if dx and dy and dx > 0 and dy > 0:
                return (abs(dy) * 10.0, abs(dx) * 10.0), "SequenceOfUltrasoundRegions"
    return None, None


class SliceGapWarning(UserWarning):
    """Slices are missing from a series: the stacked volume is short there."""


#: How far (in steps) a slice may lie from the regular grid of its series.
_GRID_TOLERANCE = 0.1


def _slice_grid(along: np.ndarray, name: str, meta: dict[str, Any]) -> float:
    """The slice spacing of sorted positions; gaps warned, off-grid refused.

    The grid step is the smallest step between neighbours (the median of
    the steps that are one grid step). A step of ``k`` grid steps means
    ``k - 1`` missing slices: a :class:`SliceGapWarning`, with the gap in
    ``meta["slice_gaps"]``. A step that is no whole number of grid steps
    (beyond :data:`_GRID_TOLERANCE`) means no single spacing places every
    slice right: a :class:`SeriesError`.
    """
    steps = np.diff(along)
    grid = float(steps.min())
    ratio = steps / grid
    multiple = np.rint(ratio)
    off = np.abs(ratio - multiple)
    if np.any(off > _GRID_TOLERANCE):
        worst = int(np.argmax(off))
        raise SeriesError(
            name,
            "its slice positions are not evenly spaced: slices are "
            f"{grid:.2f} mm apart along the slice normal, but two at "
            f"{along[worst]:.2f} and {along[worst + 1]:.2f} mm are "
            f"{steps[worst]:.2f} mm apart, not a whole number of "
            f"{grid:.2f} mm steps, so stacking them at one spacing would put "
            "slices in the wrong place (geometry, lengths and volumes wrong).",
            "Check that the folder holds one acquisition; if its spacing "
            "really varies, resample it to a regular grid first.",
        )
    spacing = float(np.median(steps[multiple == 1])) if np.any(multiple == 1) else grid
    gaps = [
        {
            "between_mm": [round(float(along[k]), 3), round(float(along[k + 1]), 3)],
            "gap_mm": round(float(steps[k]), 3),
            "missing_slices": int(multiple[k]) - 1,
        }
        for k in np.flatnonzero(multiple > 1)
    ]
    if gaps:
        missing = sum(g["missing_slices"] for g in gaps)
        where = ", and ".join(
            f"a gap of {g['gap_mm']:.1f} mm between the slices at "
            f"{g['between_mm'][0]:.1f} and {g['between_mm'][1]:.1f} mm"
            for g in gaps
        )
        message = (
            f"{name}: {missing} slice{'s' if missing > 1 else ''} missing along "
            f"the slice normal, where the slices are {spacing:.1f} mm apart: "
            f"{where}. The volume stacks its {len(along)} slices {spacing:.1f} mm "
            "apart, so lengths and volumes measured across a gap come out short "
            f"by {spacing:.1f} mm per missing slice. Find the missing file(s) for "
            "exact geometry."
        )
        meta["slice_gaps"] = gaps
        meta.setdefault("warnings", []).append(message)
        warn_caller(SliceGapWarning(message))
    return spacing


def _permute(frames: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``frames[order]``, in place where it can be: one frame of extra memory.

    Follows each cycle of the permutation, moving frames along it with one
    frame held aside, instead of making a second copy of the volume.
    """
    if not frames.flags.writeable:
        return frames[order]
    done = np.zeros(len(order), bool)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        held = frames[start].copy()
        i = start
        while True:
            done[i] = True
            j = int(order[i])
            if j == start:
                frames[i] = held
                break
            frames[i] = frames[j]
            i = j
    return frames


def _stack(parts: Sequence[_Decoded], order: np.ndarray | None) -> np.ndarray:
    """The frames of ``parts`` as one array, sorted by ``order``, copied once.

    Each part's frames are released as they are copied into the volume, so
    the working set is the volume plus one part, not two volumes (a
    concatenation, then a sorted copy).
    """
    identity = order is None or np.array_equal(order, np.arange(len(order)))
    if len(parts) == 1:
        frames = parts[0].frames
        return frames if identity else _permute(frames, order)
    n = sum(p.frames.shape[0] for p in parts)
    dtype = np.result_type(*(p.frames.dtype for p in parts))
    out = np.empty((n, *parts[0].frames.shape[1:]), dtype)
    rank = np.arange(n) if identity else np.argsort(order, kind="stable")
    start = 0
    for part in parts:
        count = part.frames.shape[0]
        out[rank[start : start + count]] = part.frames
        part.frames = part.frames[:0]  # release the part's own array
        start += count
    return out


def _assemble(
    parts: Sequence[_Decoded],
    name: str,
    modality: str,
) -> MedImage:
    """Stack decoded objects into one image, sorted along the slice normal."""
    first = parts[0]
    shapes = {p.frames.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise SeriesError(
            name,
            f"its images have different sizes {sorted(shapes)}, so they are not "
            "one volume.",
            "Put each series in a folder of its own, or pick one with series=.",
        )
    positions = [pos for p in parts for pos in p.positions]
    meta = dict(first.meta)
    color = first.frames.ndim == 4
    n = sum(p.frames.shape[0] for p in parts)
    order = None
    spacing_z = first.slice_gap
    if (
        n > 1
        and first.orientation is not None
        and all(pos is not None for pos in positions)
    ):
        normal = np.cross(first.orientation[:3], first.orientation[3:])
        along = np.array([float(np.dot(pos, normal)) for pos in positions])
        order = np.argsort(along, kind="stable")
        steps = np.diff(along[order])
        if np.all(steps > 1e-3):
            meta["sorted_by"] = "position along the slice normal"
            spacing_z = _slice_grid(along[order], name, meta)
        else:
            order = None
        if order is None and len(parts) > 1 and np.any(steps <= 1e-3):
            raise SeriesError(
                name,
                f"{int(np.sum(steps <= 1e-3)) + 1} of its {n} slices share a "
                "position, so the folder holds more than one acquisition "
                "(for example temporal phases or echoes).",
                "Split the acquisitions into folders of their own.",
            )
    elif len(parts) > 1:
        meta["sorted_by"] = "InstanceNumber (no slice positions in the headers)"
    frames = _stack(parts, order)
    in_plane = first.pixel_spacing
    meta["spacing_source"] = first.spacing_source or "unknown (1 mm assumed)"
    meta["spacing_known"] = in_plane is not None
    in_plane = in_plane or (1.0, 1.0)
    if n == 1:
        array, spacing = frames[0], in_plane
    else:
        if spacing_z is None:
            meta["slice_spacing"] = "unknown (1 mm assumed)"
        array, spacing = frames, (spacing_z or 1.0, *in_plane)
        meta["NumberOfFrames"] = n
    window = first.window
    if window is None:  # from the values, when first read (never, in a batch)
        window = (127.5, 256.0) if color and array.dtype == np.uint8 else AUTO_WINDOW
    meta["window_source"] = first.window_source if first.window else "auto"
    return MedImage(
        array=array, spacing=spacing, modality=modality, window=window, meta=meta
    )


def _fix_transfer_syntax(ds: Dataset) -> None:
    """Give a file without file meta the transfer syntax it was read with."""
    if not hasattr(ds, "file_meta"):
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little is not False
            else ExplicitVRBigEndian
        )


_SCAN_CHUNK = 4 * 1024**2
#: Files up to this size are read whole, in one call, and parsed from
#: memory (faster than pydicom's many small reads of a file).
_WHOLE_READ = 16 * 1024**2
_TRANSFER_SYNTAX_TAG = b"\x02\x00\x10\x00"
_SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS"}
_SHORT_VRS |= {b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL"}
_SHORT_VRS |= {b"US"}


def _meta_syntax(data: bytes) -> str | None:
    """The transfer syntax UID of a DICM file's meta, read from its bytes.

    None unless ``data`` has the DICM marker and its group 0002 elements are
    all well formed (explicit VR little endian, within the data); then the
    exact reader decides (pydicom's own file meta reader).
    """
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    pos, syntax = 132, None
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        vr = data[pos + 4 : pos + 6]
        if vr in _SHORT_VRS:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            value = pos + 8
        elif vr in (b"OB", b"OW", b"UN", b"UT", b"UC", b"UR", b"SQ", b"OD", b"OF"):
            if pos + 12 > len(data):
                return None
            (length,) = struct.unpack_from("<I", data, pos + 8)
            value = pos + 12
        else:
            return None
        if length == _UNDEFINED_LENGTH or value + length > len(data):
            return None
        if data[pos : pos + 4] == _TRANSFER_SYNTAX_TAG:
            try:
                syntax = data[value : value + length].decode("ascii").strip(" \0")
            except UnicodeDecodeError:
                return None
        pos = value + length
    return syntax


def _check_inflated_size(
    fp: Any,
    name: str,
    max_bytes: int,
    force: bool,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    data: bytes | None = None,
) -> bool:
    """Refuse a dataset that inflates past the budget or holds too many items.

    pydicom inflates a Deflated Explicit VR Little Endian dataset whole and
    without a limit, so a few kilobytes could claim gigabytes (a deflate
    bomb); and it builds a Python object for every sequence item, so a
    million empty items cost seconds and gigabytes. Both are counted on the
    bytes, chunk by chunk, before pydicom parses anything: inflated size
    against ``max_bytes``, Item tags against ``max_items`` (plus one
    fragment per frame and the offset table of encapsulated pixel data).
    ``data`` is the file's bytes when ``fp`` reads them from memory.

    Returns
    -------
    bool
        Whether the dataset is deflated (its bytes on disk are not its
        elements' bytes).
    """
    start = fp.tell()
    limit = max_items + max_frames + 1

    def refuse_items(items: int, *, complete: bool) -> None:
        check_count(
            name,
            "sequence items and pixel-data fragments",
            items,
            limit,
            "max_items",
            f" (max_items={max_items:,} plus one per frame)",
            complete=complete,
        )

    syntax = _meta_syntax(data) if data is not None else None
    if syntax is not None and syntax != DeflatedExplicitVRLittleEndian:
        # In memory with a plain file meta, not deflated: the items are
        # counted on the bytes as they are, in the dataset's byte order.
        if len(data) // 8 <= limit:
            return False  # an item takes 8 bytes at least: too short to hold more
        little = syntax != ExplicitVRBigEndian
        items = count_items([data], ITEM_TAG_LITTLE if little else ITEM_TAG_BIG)
        refuse_items(items, complete=True)
        return False
    read_preamble(fp, force)
    meta = _read_file_meta_info(fp)

    def chunks():
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            while block := fp.read(_SCAN_CHUNK):
                yield block
            return
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pending, size = fp.read(), 0
        while pending and not inflater.eof and size <= max_bytes:
            block = inflater.decompress(pending, _SCAN_CHUNK)
            size += len(block)
            pending = inflater.unconsumed_tail
            yield block
        if size > max_bytes:
            raise ImageTooLargeError(
                name,
                "its deflated dataset inflates to more than the "
                f"{size_text(max_bytes)} budget, so it was not read.",
                "If the file is genuine, pass a larger max_bytes= to load().",
            )

    items, tail = 0, b""
    for block in chunks():
        items += count_items([tail + block[:3]]) if tail else 0
        items += count_items([block])
        tail = block[-3:]
        if items > limit:
            break
    refuse_items(items, complete=False)
    fp.seek(start)
    return meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian


_UNDEFINED_LENGTH = 0xFFFFFFFF

_VALIDATION_LOCK = threading.Lock()
_validation_off = [0, None]  # readers inside, the mode to restore after them


@contextmanager
def _no_value_validation() -> Iterator[None]:
    """Read without pydicom's value validation, then restore the caller's mode.

    pydicom's warning for an invalid value holds the value's repr, twice: a
    damaged header that runs a 0.5 MB image into one UI element made
    18 MB of message text for a file it then refused. The reader judges
    values itself and keeps no such warning. Counted, so that concurrent
    reads restore the mode only when the last one ends.
    """
    settings = pydicom.config.settings
    with _VALIDATION_LOCK:
        if not _validation_off[0]:
            _validation_off[1] = settings.reading_validation_mode
            settings.reading_validation_mode = pydicom.config.IGNORE
        _validation_off[0] += 1
    try:
        yield
    finally:
        with _VALIDATION_LOCK:
            _validation_off[0] -= 1
            if not _validation_off[0]:
                settings.reading_validation_mode = _validation_off[1]


_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def _check_last_element(ds: Dataset) -> None:
    """Refuse a dataset whose last element holds less than its declared length.

    pydicom reads a file cut inside an element's value without a word; the
    element then holds fewer bytes than its header announced. (Pixel data
    is measured against the image size later, with a more precise message.)
    """
    if not len(ds):
        return
    tag = next(reversed(ds.keys()))
    raw = ds.get_item(tag)  # the element as read, not converted
    length = getattr(raw, "length", None)
    value = getattr(raw, "value", None)
    if (
        int(tag) not in _PIXEL_TAGS
        and isinstance(value, bytes)
        and isinstance(length, int)
        and length != _UNDEFINED_LENGTH
        and len(value) < length
    ):
        raise EOFError(f"element {tag} holds {len(value)} of its {length} bytes")


#: What the loader reads of a header, and so all that a load decodes of it:
#: the image pixel module, rescale, padding, window, geometry, the series
#: keys and the meta allow-list. Any other element keeps its raw bytes: it
#: is never converted (about 80 % of a CT header's decoding time).
LOADER_KEYWORDS = tuple(
    dict.fromkeys(
        (
            *SAFE_HEADER_KEYWORDS,
            *_PIXEL_KEYWORDS,
            "SOPClassUID",
            "SOPInstanceUID",
            "SeriesInstanceUID",
            "SeriesNumber",
            "InstanceNumber",
            "Rows",
            "Columns",
            "NumberOfFrames",
            "SamplesPerPixel",
            "PlanarConfiguration",
            "HighBit",
            "RescaleSlope",
            "RescaleIntercept",
            "RescaleType",
            "ModalityLUTSequence",
            "VOILUTSequence",
            "WindowCenter",
            "WindowWidth",
            "PixelPaddingValue",
            "PixelPaddingRangeLimit",
            "LossyImageCompression",
            "ImagePositionPatient",
            "PixelSpacing",
            "ImagerPixelSpacing",
            "NominalScannedPixelSpacing",
            "SpacingBetweenSlices",
            "SequenceOfUltrasoundRegions",
            "FrameTime",
            "PerFrameFunctionalGroupsSequence",
            "SharedFunctionalGroupsSequence",
            "ExtendedOffsetTable",
            "ExtendedOffsetTableLengths",
            "RedPaletteColorLookupTableDescriptor",
            "GreenPaletteColorLookupTableDescriptor",
            "BluePaletteColorLookupTableDescriptor",
            "AlphaPaletteColorLookupTableDescriptor",
            "RedPaletteColorLookupTableData",
            "GreenPaletteColorLookupTableData",
            "BluePaletteColorLookupTableData",
            "AlphaPaletteColorLookupTableData",
            "SegmentedRedPaletteColorLookupTableData",
            "SegmentedGreenPaletteColorLookupTableData",
            "SegmentedBluePaletteColorLookupTableData",
            "SegmentedAlphaPaletteColorLookupTableData",
        )
    )
)
_LOADER_TAGS = frozenset(int(tag_for_keyword(k)) for k in LOADER_KEYWORDS)
#: What a single file's load decodes: the loader's tags but the series keys.
_FILE_TAGS = _LOADER_TAGS - {
    int(tag_for_keyword(k))
    for k in ("SOPInstanceUID", "SeriesInstanceUID", "SeriesNumber", "InstanceNumber")
}


_NOT_DIRECT_VRS = frozenset({"SQ", *AMBIGUOUS_VR})
_SPECIFIC_CHARSET_TAG = 0x00080005


def _touch(ds: Dataset, tags: Collection[int] | None) -> None:
    """Decode the elements of ``ds`` with ``tags`` (all of them for None).

    Sequences are decoded with everything inside them, so that a damaged
    value the reader will use fails here, inside :func:`read_dataset`'s
    error handling, and not later at its first use.
    """
    if tags is None:
        for _ in ds.iterall():
            pass
        return
    charset = None
    for tag in sorted(set(tags).intersection(ds._dict)):
        elem = ds._dict[tag]
        if (
            isinstance(elem, RawDataElement)
            and elem.value is not None
            and elem.VR is not None
            and elem.VR not in _NOT_DIRECT_VRS
            and tag != _SPECIFIC_CHARSET_TAG
        ):
            # What Dataset.__getitem__ does for a plain element read from a
            # file, without its per-call overhead (explicit, unambiguous VRs).
            if charset is None:
                charset = ds.original_character_set or ds._character_set
            ds._dict[tag] = convert_raw_data_element(elem, encoding=charset, ds=ds)
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                for _ in item.iterall():
                    pass


@contextmanager
def _reader_errors(name: str) -> Iterator[None]:
    """Turn every failure of pydicom's reader into a MedImgError for ``name``."""
    try:
        yield
    except InvalidDicomError as exc:
        raise NotAnImageError(
            name,
            "is not a DICOM file (no DICM marker) nor a NIfTI, PNG, JPEG or TIFF "
            "image.",
            "Open a DICOM (.dcm), NIfTI (.nii, .nii.gz), PNG, JPEG or TIFF file.",
        ) from exc
    except (EOFError, struct.error) as exc:
        raise TruncatedFileError(
            name,
            "ends inside an element of its header, before its image data; the "
            "file was cut short.",
            "Copy or export the file again from its source.",
        ) from exc
    except MedImgError:
        raise
    except Exception as exc:  # pydicom raises many types on damaged headers
        raise damaged_header(
            name, "DICOM", exc, "Export the file again from its source."
        ) from exc


def read_dataset(
    source: str | os.PathLike | bytes | io.IOBase,
    name: str,
    *,
    force: bool = False,
    stop_before_pixels: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    touch: Collection[int] | None = None,
) -> Dataset:
    """Read a DICOM dataset, turning every reader failure into a MedImgError.

    Parameters
    ----------
    source : path, bytes or binary file
        The DICOM file.
    name : str
        Printable name for messages.
    force : bool
        Read files without the ``DICM`` preamble (raw datasets).
    stop_before_pixels : bool
        Read the header only.
    max_bytes : int
        Memory budget: a deflated dataset that inflates to more is refused.
    max_items, max_frames : int
        A file with more sequence items (at any depth) than ``max_items``,
        beside one pixel-data fragment per frame, is refused before it is
        parsed.
    touch : set of int, optional
        Tags of the top-level elements to decode now (with everything nested
        in them), so that a damaged one fails here; the others keep their
        raw bytes until they are used. Default: every element (a reader that
        walks the whole dataset, such as the de-identifier).
    """
    return _read(
        source,
        name,
        force=force,
        stop_before_pixels=stop_before_pixels,
        max_bytes=max_bytes,
        max_items=max_items,
        max_frames=max_frames,
        touch=touch,
    )[0]


def _read(
    source: Any,
    name: str,
    *,
    force: bool,
    stop_before_pixels: bool,
    max_bytes: int,
    max_items: int,
    max_frames: int,
    touch: Collection[int] | None,
) -> tuple[Dataset, int | None]:
    """:func:`read_dataset`, and where a header read stopped in the file.

    The second value is the byte offset of the pixel data element in the
    file (or at its end when it has none) for a header read of a dataset
    that is not deflated; ``None`` otherwise.
    """
    opened = None
    end = None
    try:
        with _reader_errors(name):
            if isinstance(source, _ZipMember):  # inflated here, within bounds
                source = source.read()
            if isinstance(source, str | os.PathLike):
                opened = open(source, "rb")  # closed in finally
                if os.fstat(opened.fileno()).st_size <= _WHOLE_READ:
                    source = opened.read()  # one read; parsed from memory
                else:
                    source = opened
            if isinstance(source, bytearray):
                source = bytes(source)
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
            start = fp.tell()
            deflated = _check_inflated_size(
                fp,
                name,
                max_bytes,
                force,
                max_items=max_items,
                max_frames=max_frames,
                data=source if isinstance(source, bytes) and not start else None,
            )
            with (
                warnings.catch_warnings(record=True) as caught,
                _no_value_validation(),
            ):
                warnings.simplefilter("always")
                ds = pydicom.dcmread(
                    fp, force=force, stop_before_pixels=stop_before_pixels
                )
                if stop_before_pixels and not deflated:
                    end = fp.tell() - start
                # A deflated dataset's inflated bytes would stay with it (the
                # "buffer" pydicom keeps for deferred reads, which are not used).
                if hasattr(ds, "buffer"):
                    ds.buffer = None
                _fix_transfer_syntax(ds)
                if getattr(ds, "preamble", None) is not None:  # a DICM file
                    _check_last_element(ds)
                # Decode what will be used, so that a damaged header fails here.
                _touch(ds, touch)
            if any("end of file" in str(w.message).lower() for w in caught):
                raise EOFError("end of file reached inside an element")
            if len(ds) == 0 and "TransferSyntaxUID" in ds.file_meta and not force:
                raise EOFError("nothing follows the file meta header")
    finally:
        if opened is not None:
            opened.close()
    return ds, end


def load_dicom(
    data: str | os.PathLike | bytes,
    name: str,
    max_bytes: int,
    *,
    marked: bool,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> MedImage:
    """Load one DICOM file (single- or multi-frame) into a MedImage.

    ``marked`` tells whether the file has the ``DICM`` preamble; without it
    the file is read as a raw dataset and must look like an image.

    Parameters
    ----------
    data : str, os.PathLike or bytes
        The file, or its bytes.
    name : str
        How messages name the file.
    max_bytes : int
        Memory budget in bytes, of the working set (as :func:`medimg_lab.load`).
    marked : bool
        The file starts with the 128-byte preamble and ``DICM``.
    max_frames, max_items : int
        Most frames, and most sequence items at any depth; more are refused
        before decoding.

    Returns
    -------
    MedImage
    """
    if marked:
        image = _native_file(data, name, max_bytes, max_frames, max_items)
        if image is not None:
            return image
    ds = read_dataset(
        data,
        name,
        force=not marked,
        max_bytes=max_bytes,
        max_items=max_items,
        max_frames=max_frames,
        touch=_FILE_TAGS,
    )
    if not marked and not ("Rows" in ds or any(k in ds for k in _PIXEL_KEYWORDS)):
        raise NotAnImageError(
            name,
            "is not a DICOM, NIfTI, PNG, JPEG or TIFF image.",
            "Open a DICOM (.dcm), NIfTI (.nii, .nii.gz), PNG, JPEG or TIFF file.",
        )
    modality = str(_get(ds, "Modality") or "OT").upper()
    return _assemble([_decode_object(ds, name, max_bytes, max_frames)], name, modality)


def _native_file(
    data: str | os.PathLike | bytes,
    name: str,
    max_bytes: int,
    max_frames: int,
    max_items: int,
) -> MedImage | None:
    """A plain native greyscale file read at disk speed, or None.

    The header is read up to the pixel data, and the pixel values go
    straight into the output array (the series' single-slice case). None
    for anything else, or anything wrong: the thorough reader then reads the
    file and names what is wrong.
    """
    # The header from the file's first bytes when it lies within them: the
    # pixel values are then read once, from the file, into their array.
    head = None if isinstance(data, bytes) else _file_prefix(data, _HEADER_PREFIX)
    syntax = _meta_syntax(data if isinstance(data, bytes) else head or b"")
    if syntax is not None and syntax not in _NATIVE_LITTLE:
        return None  # compressed or big endian: one parse, the thorough one
    whole = head is not None and len(head) < _HEADER_PREFIX  # the whole file
    src = head if whole else data
    header = head if head is not None and not whole else None
    ds = end = None
    for candidate in (header, src):
        if candidate is None:
            continue
        try:
            ds, end = _read(
                candidate,
                name,
                force=False,
                stop_before_pixels=True,
                max_bytes=max_bytes,
                max_items=max_items,
                max_frames=max_frames,
                touch=_FILE_TAGS,
            )
        except ImageTooLargeError:
            raise
        except MedImgError:
            continue
        if candidate is header and not _pixel_element_at(header, end):
            continue  # the header goes on past the first bytes: read it whole
        break
    else:
        return None
    ds._medimg_pixel_offset = end
    if _slice_key(ds) is None:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits, stored = int(ds.BitsAllocated), int(_get(ds, "BitsStored") or 0)
    signed = int(_get(ds, "PixelRepresentation") or 0) == 1
    check_budget(name, (1, rows, cols, 1), max(4, bits // 8), max_bytes)
    explicit = ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    raw = np.empty((rows, cols), np.dtype(f"<{'i' if signed else 'u'}{bits // 8}"))
    if not _native_pixels(src, end, explicit, raw):
        return None
    raw = native(raw)
    lo, hi = _value_range(raw)
    if stored and stored < bits and not _within_stored(lo, hi, stored, signed):
        # As pydicom: unused high bits cleared (or the sign extended).
        np.left_shift(raw, bits - stored, out=raw)
        np.right_shift(raw, bits - stored, out=raw)
        lo, hi = _value_range(raw)
    modality = str(_get(ds, "Modality") or "OT").upper()
    decoded = _describe(ds, raw, 1, name, max_bytes, raw_range=(lo, hi))
    return _assemble([decoded], name, modality)


def _value_range(raw: np.ndarray) -> tuple[int, int]:
    """The least and greatest raw value; (0, 0) for no values."""
    return (int(raw.min()), int(raw.max())) if raw.size else (0, 0)


def _within_stored(lo: int, hi: int, stored: int, signed: bool) -> bool:
    """Whether raw values in ``[lo, hi]`` already read as ``stored`` bits do.

    Then clearing the unused high bits (sign-extending a signed value) would
    change none of them.
    """
    if signed:
        return -(1 << (stored - 1)) <= lo and hi < (1 << (stored - 1))
    return 0 <= lo and hi < (1 << stored)


def _head(src: Any) -> bytes:
    """The first bytes of a member (a path, bytes or zip member), for sniffing."""
    if isinstance(src, _ZipMember):
        return src.head()
    if isinstance(src, bytes | bytearray):
        return bytes(src[:1024])
    try:
        with open(src, "rb") as fh:
            return fh.read(1024)
    except OSError:
        return b""


_NOT_DICOM = "is not a DICOM file (no DICM marker and no image header)"


#: Bytes read first of a file that may be a plain native image: its header
#: nearly always ends within them, and its pixels are then read from the file
#: straight into their array (no copy of the file in memory, no scan of it).
_HEADER_PREFIX = 64 * 1024


def _file_prefix(src: Any, size: int) -> bytes | None:
    """The first ``size`` bytes of a regular file (all of a smaller one)."""
    if not isinstance(src, str | os.PathLike):
        return None
    try:
        with open(src, "rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def _pixel_element_at(data: bytes, offset: int | None) -> bool:
    """Whether the top-level pixel data element starts at ``offset`` of ``data``."""
    return offset is not None and data[offset : offset + 4] == _PIXEL_DATA_LE


def _small_file(src: Any) -> bytes | None:
    """The bytes of a regular file of at most ``_WHOLE_READ``, in one read."""
    if not isinstance(src, str | os.PathLike):
        return None
    try:
        with open(src, "rb") as fh:
            if os.fstat(fh.fileno()).st_size <= _WHOLE_READ:
                return fh.read()
    except OSError:
        return None
    return None


def _series_members(
    members: Sequence[tuple[str, Any]],
    name: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    skipped: list[dict[str, str]] | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    touch: Collection[int] = _LOADER_TAGS,
    keep: Collection[int] | None = None,
) -> dict[str, list[tuple[str, Any, Dataset]]]:
    """The DICOM image headers of ``members``, grouped by SeriesInstanceUID.

    Members that are no DICOM image are left out; with ``skipped`` given,
    each is appended to it as ``{"file": label, "reason": ...}``. Each
    header is read once, up to its pixel data; ``touch`` names the elements
    decoded now (see :func:`read_dataset`), and ``keep``, if given, the only
    ones kept (a series of thousands of files holds only what it uses).
    """
    groups: dict[str, list[tuple[str, Any, Dataset]]] = {}
    for label, src in members:
        data = _small_file(src)
        marked = sniff(_head(src if data is None else data)) == "dicom"
        reason = None
        try:
            ds, end = _read(
                src if data is None else data,
                label,
                force=True,
                stop_before_pixels=True,
                max_bytes=max_bytes,
                max_items=max_items,
                max_frames=max_frames,
                touch=touch,
            )
            if keep is not None:  # fewer objects held: less for the collector
                ds._dict = {k: v for k, v in ds._dict.items() if k in keep}
            ds._medimg_pixel_offset = end  # where its pixels start, for one read
        except ImageTooLargeError:
            raise  # a bomb or a count past its limit stops the series
        except MedImgError as err:
            ds, reason = None, err.problem if marked else _NOT_DICOM
        if ds is not None and "Rows" not in ds:
            uid = _get(ds, "SOPClassUID") or getattr(ds, "file_meta", {}).get(
                "MediaStorageSOPClassUID"
            )
            sop = str(getattr(uid, "name", None) or "")
            if not marked and not any(k in ds for k in _PIXEL_KEYWORDS):
                reason = _NOT_DICOM
            elif sop.endswith("Image Storage"):
                reason = (
                    f"is a {sop} object without its image (no Rows): the file was "
                    "cut short or its pixel data removed"
                )
            else:
                reason = f"is a DICOM file without an image ({sop or 'no Rows'})"
        if reason is not None:
            if skipped is not None:
                skipped.append({"file": label, "reason": reason})
            continue
        key = str(_get(ds, "SeriesInstanceUID") or "unknown series")
        groups.setdefault(key, []).append((label, src, ds))
    return groups


def _skip(skipped: list[dict[str, str]], label: str, reason: str) -> None:
    skipped.append({"file": label, "reason": reason})


def _drop_duplicates(
    decoded: list[tuple[str, Dataset, _Decoded]],
    name: str,
    skipped: list[dict[str, str]],
) -> list[tuple[str, Dataset, _Decoded]]:
    """Leave out copies of a slice; refuse two different slices at one place.

    A copy carries the SOP Instance UID of a file already read, or (a slice
    sent twice) lies at the same position with the same pixels. Two slices at
    one position with different pixels are another acquisition, or a
    repeated slice: which one belongs is not known, so it is an error.
    """
    kept: list[tuple[str, Dataset, _Decoded]] = []
    by_uid: dict[str, tuple[str, _Decoded]] = {}
    for label, header, part in sorted(decoded, key=lambda it: it[0]):
        uid = str(_get(header, "SOPInstanceUID") or "")
        twin = by_uid.get(uid) if uid else None
        if twin is not None and _same_slice(twin[1], part):
            _skip(
                skipped,
                label,
                f"is a duplicate of {twin[0]} (same SOP Instance UID and pixels)",
            )
            continue
        if twin is not None:
            raise SeriesError(
                name,
                f"{twin[0]} and {label} carry the same SOP Instance UID but hold "
                "different pixels or positions, so one of them is not what its "
                "header says.",
                "Remove the wrong file, or export the series again.",
            )
        if uid:
            by_uid[uid] = (label, part)
        kept.append((label, header, part))
    first = kept[0][2]
    if first.orientation is None:
        return kept
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    result, located = [], []
    for label, header, part in kept:
        if len(part.positions) == 1 and part.positions[0] is not None:
            at = float(np.dot(part.positions[0], normal))
            located.append((at, label, header, part))
        else:
            result.append((label, header, part))
    located.sort(key=lambda it: it[0])
    groups: list[list[tuple[float, str, Dataset, _Decoded]]] = []
    for entry in located:  # runs of slices within 1 µm of the run's first
        if groups and entry[0] - groups[-1][0][0] <= 1e-3:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    for group in groups:
        at, keep_label, keep_header, keep = min(group, key=lambda it: it[1])
        result.append((keep_label, keep_header, keep))
        for _, label, _, part in sorted(group, key=lambda it: it[1])[1:]:
            if not _same_slice(keep, part):
                raise SeriesError(
                    name,
                    f"{keep_label} and {label} are both at {at:.2f} mm along the "
                    "slice normal but hold different pixels, so the folder holds "
                    "more than one acquisition (for example temporal phases or "
                    "echoes) or a repeated slice.",
                    "Split the acquisitions into folders of their own, or remove "
                    "the repeated slice.",
                )
            _skip(
                skipped,
                label,
                f"is a duplicate of {keep_label} (same position, {at:.2f} mm "
                "along the slice normal, and same pixels)",
            )
    return result


def _keep_common(
    decoded: list[tuple[str, Dataset, _Decoded]],
    key,
    describe,
    skipped: list[dict[str, str]],
) -> list[tuple[str, Dataset, _Decoded]]:
    """The images whose ``key`` more than two thirds share; the rest skipped."""
    counts = Counter(key(part) for _, _, part in decoded)
    common, count = counts.most_common(1)[0]
    if len(counts) == 1 or 3 * count <= 2 * len(decoded):
        return decoded  # no stray file: assembly judges the folder
    kept = []
    for label, header, part in decoded:
        if key(part) == common:
            kept.append((label, header, part))
        else:
            _skip(skipped, label, describe(key(part), common, count))
    return kept


def _odd_ones_out(
    decoded: list[tuple[str, Dataset, _Decoded]], skipped: list[dict[str, str]]
) -> list[tuple[str, Dataset, _Decoded]]:
    """Leave out the few images of another size or plane (a scout, a localizer).

    Only when more than two thirds of the images agree; otherwise the folder
    is not one series with a stray file, and assembly refuses it.
    """

    def size(part: _Decoded) -> str:
        return " x ".join(str(d) for d in part.frames.shape[1:3])

    def plane(part: _Decoded) -> tuple[float, ...] | None:
        o = part.orientation
        return None if o is None else tuple(np.round(o, 2).tolist())

    decoded = _keep_common(
        decoded,
        size,
        lambda odd, common, n: (
            f"is {odd} pixels where the other {n} images are {common} pixels"
        ),
        skipped,
    )
    return _keep_common(
        decoded,
        plane,
        lambda odd, common, n: (
            f"lies on another plane (image orientation {list(odd or [])}) than "
            f"the other {n} images (orientation {list(common or [])})"
        ),
        skipped,
    )


def _same_slice(a: _Decoded, b: _Decoded) -> bool:
    same_place = len(a.positions) == len(b.positions) and all(
        (p is None and q is None)
        or (p is not None and q is not None and np.allclose(p, q, atol=1e-3))
        for p, q in zip(a.positions, b.positions, strict=True)
    )
    return same_place and np.array_equal(a.frames, b.frames)


_NATIVE_LITTLE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: Elements that make a slice more than a plain greyscale slice.
_NOT_PLAIN_TAGS = tuple(
    int(tag_for_keyword(k))
    for k in (
        "ModalityLUTSequence",
        "PerFrameFunctionalGroupsSequence",
        "SharedFunctionalGroupsSequence",
        "FloatPixelData",
        "DoubleFloatPixelData",
    )
)
_KEYWORD_TAGS = {
    k: int(tag_for_keyword(k))
    for k in (
        "PixelRepresentation",
        "BitsAllocated",
        "BitsStored",
        "PhotometricInterpretation",
        "NumberOfFrames",
        "SamplesPerPixel",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "LossyImageCompression",
        "ImageOrientationPatient",
        "ImagePositionPatient",
        "RescaleSlope",
        "RescaleIntercept",
    )
}
_PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


#: What the series pass decodes of each header (grouping, choosing, sorting
#: by InstanceNumber, duplicates); the rest of a slice's header is read
#: from its raw bytes (:func:`_raw`), and the header that speaks for the
#: series is decoded whole (:data:`LOADER_KEYWORDS`).
_SERIES_TAGS = frozenset(
    int(tag_for_keyword(k))
    for k in (
        "SeriesInstanceUID",
        "SeriesNumber",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "Modality",
        "Rows",
        "Columns",
    )
)
_NUMERIC = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}


def _raw(ds: Dataset, keyword: str, signed: bool = False) -> list | None:
    """The values of a plain element read from its raw bytes, or None.

    For the few value representations a slice's geometry and pixel module
    use (US, SS, UL, SL, DS, IS, CS, UI), at a fraction of the cost of
    pydicom's conversion. None when the element is absent, empty, of
    another VR or its bytes break its VR (the thorough reader then judges
    the file). ``signed`` reads an ambiguous ``US or SS`` as SS.
    """
    tag = _KEYWORD_TAGS.get(keyword) or int(tag_for_keyword(keyword))
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    try:
        if not isinstance(elem, RawDataElement):
            value = elem.value
            if value is None or value == "":
                return None
            return list(value) if isinstance(value, list | tuple) else [value]
        vr = elem.VR or dictionary_VR(tag)
        if vr == "US or SS":
            vr = "SS" if signed else "US"
        data = elem.value
        if not data:
            return None
        if vr in _NUMERIC:
            code = _NUMERIC[vr]
            size = struct.calcsize(code)
            count = len(data) // size
            order = "<" if elem.is_little_endian else ">"
            return list(struct.unpack(f"{order}{count}{code}", data[: count * size]))
        text = data.decode("ascii").strip(" \0")
        parts = [part.strip(" \0") for part in text.split("\\")]
        if vr == "DS":
            values = [float(part) for part in parts]
            return values if all(math.isfinite(v) for v in values) else None
        if vr == "IS":
            return [int(part) for part in parts]
        if vr in ("CS", "UI"):
            return parts
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    return None


def _raw_one(ds: Dataset, keyword: str, signed: bool = False) -> Any:
    values = _raw(ds, keyword, signed)
    return values[0] if values else None


def _slice_key(ds: Dataset) -> tuple | None:
    """What the slices of a series read at once must share, or None.

    None when ``ds`` is no plain single-frame greyscale slice in a native
    little-endian file.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax not in _NATIVE_LITTLE or "PixelData" in ds:
        return None
    if getattr(ds, "_medimg_pixel_offset", None) is None:
        return None
    if any(tag in ds._dict for tag in _NOT_PLAIN_TAGS):
        return None
    signed = _raw_one(ds, "PixelRepresentation") or 0
    bits = _raw_one(ds, "BitsAllocated")
    stored = _raw_one(ds, "BitsStored") or bits
    photometric = _raw_one(ds, "PhotometricInterpretation")
    rows, cols = _get(ds, "Rows"), _get(ds, "Columns")
    plain = (
        isinstance(rows, int)
        and isinstance(cols, int)
        and rows > 0
        and cols > 0
        and signed in (0, 1)
        and bits in (8, 16, 32)
        and stored is not None
        and 1 <= stored <= bits
        and photometric in ("MONOCHROME1", "MONOCHROME2")
        and (_raw_one(ds, "NumberOfFrames") or 1) == 1
        and (_raw_one(ds, "SamplesPerPixel") or 1) == 1
    )
    if not plain:
        return None
    return (
        str(syntax),
        rows,
        cols,
        bits,
        stored,
        signed,
        photometric,
        _raw_one(ds, "PixelPaddingValue", signed == 1),
        _raw_one(ds, "PixelPaddingRangeLimit", signed == 1),
        _raw_one(ds, "LossyImageCompression"),
        str(_get(ds, "Modality") or ""),
    )


def _native_pixels(src: Any, offset: int, explicit: bool, out: np.ndarray) -> bool:
    """Read a native slice's pixel values from ``offset`` straight into ``out``.

    The element at ``offset`` must be (7FE0,0010) of a defined length that
    holds at least ``out``'s bytes; False when it is not (the slice is then
    read the thorough way, which names what is wrong).
    """
    head_size = 12 if explicit else 8
    want = out.nbytes
    if isinstance(src, str | os.PathLike):
        try:
            with open(src, "rb") as fh:
                fh.seek(offset)
                head = fh.read(head_size)
                if not _pixel_header_fits(head, explicit, want):
                    return False
                return fh.readinto(memoryview(out).cast("B")) == want
        except OSError:
            return False
    data = src.read() if isinstance(src, _ZipMember) else src
    if not isinstance(data, bytes | bytearray):
        return False
    head = bytes(data[offset : offset + head_size])
    start = offset + head_size
    if not _pixel_header_fits(head, explicit, want) or len(data) < start + want:
        return False
    out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8, want, start)
    return True


def _pixel_header_fits(head: bytes, explicit: bool, want: int) -> bool:
    if len(head) < (12 if explicit else 8) or head[:4] != _PIXEL_DATA_LE:
        return False
    if explicit:
        if head[4:6] not in (b"OB", b"OW"):
            return False
        (length,) = struct.unpack("<I", head[8:12])
    else:
        (length,) = struct.unpack("<I", head[4:8])
    return length != _UNDEFINED_LENGTH and length >= want


def _native_series(
    items: list[tuple[str, Any, Dataset]], name: str, max_bytes: int
) -> _Decoded | None:
    """The slices of a plain series read at disk speed, or None.

    A series of single-frame greyscale slices in native little-endian files,
    alike in size, plane, pixel module and padding, each at its own position,
    is sorted from its headers alone, and each file's pixel values are read
    once, straight into their place in one preallocated volume; rescale,
    padding and MONOCHROME1 then run over the volume in place. Anything else
    (compression, colour, multi-frame, duplicates, a stray slice, a damaged
    or short file) returns None, for the file-by-file reader that names it.
    """
    headers = [ds for _, _, ds in items]
    keys = {_slice_key(ds) for ds in headers}
    if len(items) < 2 or len(keys) != 1 or None in keys:
        return None
    speaker = min(  # the header that speaks for the series, as file by file
        range(len(headers)),
        key=lambda i: int(_first_number(_get(headers[i], "InstanceNumber")) or 0),
    )
    first = headers[speaker]
    orientations = [_vector(_raw(ds, "ImageOrientationPatient"), 6) for ds in headers]
    positions = [_vector(_raw(ds, "ImagePositionPatient"), 3) for ds in headers]
    if any(o is None for o in orientations) or any(p is None for p in positions):
        return None
    if np.ptp(np.asarray(orientations), axis=0).max() > 1e-6:
        return None
    uids = [str(_get(ds, "SOPInstanceUID") or "") for ds in headers]
    if len(set(uids)) != len(uids):
        return None  # copies: the thorough reader compares their pixels
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    along = np.asarray(positions) @ normal
    order = np.argsort(along, kind="stable")
    if np.any(np.diff(along[order]) <= 1e-3):
        return None  # two slices at one position
    pairs = [
        _pair(_raw_one(ds, "RescaleSlope"), _raw_one(ds, "RescaleIntercept"))
        for ds in headers
    ]
    try:
        with _reader_errors(name):  # the header that speaks, decoded whole
            _touch(first, _LOADER_TAGS)
    except MedImgError:
        return None
    if pairs[speaker] != _rescale_pairs(first, 1)[0]:
        return None  # its raw rescale reads otherwise than pydicom's
    photometric = str(first.PhotometricInterpretation).strip().upper()
    if photometric == "MONOCHROME1" and len(set(pairs)) > 1:
        return None
    rows, cols = int(first.Rows), int(first.Columns)
    bits, stored = int(first.BitsAllocated), int(_get(first, "BitsStored") or 0)
    signed = int(_get(first, "PixelRepresentation") or 0) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    check_budget(name, (len(items), rows, cols), dtype.itemsize, max_bytes)
    explicit = first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    volume = np.empty((len(items), rows, cols), dtype)
    for slot, index in enumerate(order):
        _, src, ds = items[index]
        if not _native_pixels(src, ds._medimg_pixel_offset, explicit, volume[slot]):
            return None
    volume = native(volume)
    if stored and stored < bits:  # as pydicom: unused high bits cleared or
        shift = bits - stored  # the sign extended from the stored bits
        np.left_shift(volume, shift, out=volume)
        np.right_shift(volume, shift, out=volume)
    pairs = [pairs[i] for i in order]
    if len(set(pairs)) == 1:  # one rescale: the volume as one frame, in blocks
        flat = volume.reshape(len(items) * rows, cols)
        part = _describe(first, flat, 1, name, max_bytes, pairs=pairs[:1])
        part.frames = part.frames.reshape(len(items), rows, cols)
    else:
        part = _describe(first, volume, len(items), name, max_bytes, pairs=pairs)
    part.positions = [positions[i] for i in order]
    return part


def load_series(
    members: Sequence[tuple[str, Any]],
    name: str,
    max_bytes: int,
    *,
    series: int | str | None = None,
    skipped: list[dict[str, str]] | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> MedImage:
    """Load one DICOM series from files (paths or bytes) into a volume.

    A file that cannot be read (truncated, damaged, not DICOM, not an image)
    or that duplicates another is skipped: ``meta["skipped"]`` lists each
    with its reason, and the other files load when they still form one
    consistent series. Missing slices are a :class:`SliceGapWarning`
    (``meta["slice_gaps"]``); slices that fit no regular spacing, or two
    different slices at one position, are a :class:`SeriesError`.

    Parameters
    ----------
    members : sequence of (label, path or bytes)
        Candidate files; those that are not DICOM images are skipped.
    name : str
        Printable name of the folder or archive, for messages.
    max_bytes : int
        Memory budget for the whole volume.
    series : int or str, optional
        ``SeriesNumber`` or ``SeriesInstanceUID`` of the series to load when
        the folder holds several.
    skipped : list of dict, optional
        Files already left out (special files of the folder), reported with
        the others in ``meta["skipped"]``.
    max_frames, max_items : int
        Limits on the frames of each object, the files of the series and the
        sequence items of each file.
    """
    skipped = list(skipped or [])
    check_count(name, "files", len(members), max(max_frames, 1), "max_frames")
    groups = _series_members(
        members,
        name,
        max_bytes,
        skipped=skipped,
        max_items=max_items,
        max_frames=max_frames,
        touch=_SERIES_TAGS,
        keep=_LOADER_TAGS,
    )
    if not groups:
        raise NotAnImageError(
            name,
            f"holds no DICOM image among its {len(members)} file(s)"
            + (f" ({skipped[0]['file']} {skipped[0]['reason']})" if skipped else "")
            + ".",
            "Point to a folder (or .zip) that holds the .dcm files of one series.",
        )

    def describe(items: list[tuple[str, Any, Dataset]]) -> str:
        ds = items[0][2]
        return (
            f"series {ds.get('SeriesNumber', '?')} "
            f"({ds.get('Modality', '?')}, {len(items)} image(s))"
        )

    if series is not None:
        chosen = [
            g
            for uid, g in groups.items()
            if str(series) in (uid, str(_get(g[0][2], "SeriesNumber", "")))
        ]
        if len(chosen) != 1:
            raise SeriesError(
                name,
                f"has no single series matching series={series!r}; it holds "
                + ", ".join(describe(g) for g in groups.values())
                + ".",
                "Pass one of those series numbers.",
            )
        items = chosen[0]
    elif len(groups) > 1:
        raise SeriesError(
            name,
            "holds more than one series: "
            + ", ".join(describe(g) for g in groups.values())
            + ".",
            "Pass series=<number> to load(), or point to a folder of one series.",
        )
    else:
        items = next(iter(groups.values()))
    first = items[0][2]
    try:
        rows, cols = int(first.Rows), int(first.Columns)
    except (AttributeError, TypeError, ValueError):
        rows = cols = 0
    check_budget(name, (len(items), rows, cols), 4, max_bytes)
    group = items
    modality = str(_get(first, "Modality") or "OT").upper()
    fast = _native_series(items, name, max_bytes)
    if fast is not None:
        image = _assemble([fast], name, modality)
        return _series_image(image, groups, group, skipped)
    items = sorted(
        items, key=lambda it: int(_first_number(_get(it[2], "InstanceNumber")) or 0)
    )
    decoded: list[tuple[str, Dataset, _Decoded]] = []
    failures: list[MedImgError] = []
    for label, src, header in items:
        try:
            ds = read_dataset(
                src,
                label,
                force=True,
                max_bytes=max_bytes,
                max_items=max_items,
                max_frames=max_frames,
                touch=_LOADER_TAGS,
            )
            decoded.append(
                (label, header, _decode_object(ds, label, max_bytes, max_frames))
            )
        except ImageTooLargeError:
            raise  # the budget holds for the series, not one file
        except MedImgError as err:
            failures.append(err)
            _skip(skipped, label, err.problem)
    if not decoded:
        raise failures[0]
    decoded = _drop_duplicates(_odd_ones_out(decoded, skipped), name, skipped)
    decoded.sort(key=lambda it: int(_first_number(_get(it[1], "InstanceNumber")) or 0))
    image = _assemble([part for _, _, part in decoded], name, modality)
    image.meta["series_files"] = len(decoded)
    return _series_image(image, groups, group, skipped)


def _series_image(
    image: MedImage, groups: dict, group: list, skipped: list[dict[str, str]]
) -> MedImage:
    """``image`` with what its series left out recorded in ``meta``."""
    image.meta.setdefault("series_files", len(group))
    other = sum(len(g) for g in groups.values() if g is not group)
    if other:
        image.meta["other_series_files"] = other
    if skipped:
        image.meta["skipped"] = sorted(skipped, key=lambda e: e["file"])
    if skipped or other:
        image.meta["skipped_files"] = len(skipped) + other
    return image


def folder_members(
    folder: Path, *, skipped: list[dict[str, str]] | None = None
) -> list[tuple[str, Path]]:
    """Every visible regular file below ``folder``, in a stable order.

    Named pipes, devices and sockets are never opened (reading one could
    block or never end); with ``skipped`` given, each is appended to it as
    ``{"file": label, "reason": ...}``.
    """
    members = []
    for p in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in p.parts):
            continue
        kind = special_file(p)
        if kind is not None:
            if skipped is not None:
                _skip(skipped, str(p.relative_to(folder)), special_reason(kind))
            continue
        if p.is_file():
            members.append((str(p.relative_to(folder)), p))
    return members


#: A zip member may inflate to at most this many times its compressed
#: size, once past ``_ZIP_RATIO_FLOOR`` (or a quarter of the budget, if
#: smaller): real DICOM deflates 2 to 10 times, a bomb of zeros 1000 times.
_ZIP_RATIO = 200
_ZIP_RATIO_FLOOR = 16 * 1024**2
_ZIP_CHUNK = 64 * 1024


def _zip_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: int):
    """The bytes of one member, refused as they are read past the bounds.

    The declared sizes of a zip are only claims: the inflated bytes are
    counted as they come, against the budget and against ``_ZIP_RATIO``
    times the member's compressed size, so a bomb stops after a few
    megabytes, not after gigabytes and minutes.
    """
    label = f"{name}: {info.filename}"
    floor = min(_ZIP_RATIO_FLOOR, max(budget // 4, 1024**2))
    out = io.BytesIO()
    total = 0
    try:
        with zf.open(info) as member:
            while block := member.read(_ZIP_CHUNK):
                total += len(block)
                # Compressed bytes inflated so far: read from the archive
                # less what waits in the inflater (where zipfile tells).
                left = getattr(member, "_compress_left", 0) or 0
                inflater = getattr(member, "_decompressor", None)
                waiting = len(getattr(inflater, "unconsumed_tail", b"") or b"")
                consumed = max(info.compress_size - left - waiting, 1)
                if total > budget:
                    raise ImageTooLargeError(
                        label,
                        f"inflates to more than the {size_text(budget)} budget "
                        f"(its header claims {size_text(info.file_size)}), so it "
                        "was not read further.",
                        "Upload one series at a time, or pass a larger max_bytes=.",
                    )
                if total > floor and total > _ZIP_RATIO * consumed:
                    raise ImageTooLargeError(
                        label,
                        f"inflates more than {_ZIP_RATIO} times its compressed "
                        f"size ({size_text(total)} from {size_text(consumed)}, "
                        f"of {size_text(info.compress_size)} in all), which no "
                        "image does: it is a decompression bomb, so it was not "
                        "read further.",
                        "Zip the DICOM files themselves, or open the folder.",
                    )
                out.write(block)
    except MedImgError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise TruncatedFileError(
            label,
            "its data in the zip archive is damaged: the compressed stream or "
            "its checksum breaks the zip format.",
            "Create the archive again and upload it once more.",
        ) from exc
    return out.getvalue()


def _is_archive(head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04"


class _ZipMember:
    """One file of a zip archive, inflated (within bounds) only when read.

    A series from a zip is read one member at a time: the archive's
    members are never all inflated at once beside the volume.
    """

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget):
        self.zf, self.info, self.name, self.budget = zf, info, name, budget

    def head(self) -> bytes:
        try:
            with self.zf.open(self.info) as member:
                return member.read(1024)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError):
            return b""

    def read(self) -> bytes:
        return _zip_read(self.zf, self.info, self.name, self.budget)


def _zip_infos(zf: zipfile.ZipFile, name: str, max_bytes: int) -> list:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise NotAnImageError(
            name,
            f"expands to {size_text(total)}, more than the "
            f"{size_text(max_bytes)} budget.",
            "Upload one series at a time, or pass a larger max_bytes=.",
        )
    return [i for i in infos if not Path(i.filename).name.startswith(".")]


def zip_sources(
    data: bytes,
    name: str,
    max_bytes: int,
    *,
    skipped: list[dict[str, str]] | None = None,
) -> list[tuple[str, _ZipMember]]:
    """The members of a zip archive, to be inflated one at a time when read.

    An archive inside the archive is not opened (each level would multiply
    what a few bytes can claim); with ``skipped`` given, it is listed there
    with its reason.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = []
        for info in _zip_infos(zf, name, max_bytes):
            member = _ZipMember(zf, info, name, max_bytes)
            if _is_archive(member.head()):
                if skipped is not None:
                    _skip(
                        skipped,
                        info.filename,
                        "is a zip archive inside the archive, which is not "
                        "opened: unpack it and open its series",
                    )
                continue
            members.append((info.filename, member))
        return members
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, MedImgError):
            raise
        raise TruncatedFileError(
            name,
            "is a damaged zip archive: its directory or a member's data breaks "
            "the zip format.",
            "Create the archive again and upload it once more.",
        ) from exc


def zip_members(data: bytes, name: str, max_bytes: int) -> list[tuple[str, bytes]]:
    """The files of a zip archive, refusing archives that expand past the budget.

    Each member is inflated with its bytes counted as they are read (against
    the budget and a decompression ratio); archives inside the archive are
    left out.
    """
    return [
        (label, member.read()) for label, member in zip_sources(data, name, max_bytes)
    ]
