"""PNG, JPEG and TIFF reading and PNG writing, keeping the bit depth.

OpenCV decodes (16-bit PNG and TIFF stay 16-bit, multi-page TIFF becomes a
stack); Pillow reads the header first so that the size is checked against the
memory budget before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .. import display
from ..errors import (
    DecodeError,
    ImageTooLargeError,
    InvalidValuesError,
    TruncatedFileError,
)
from ..image import MedImage
from ._source import DEFAULT_MAX_FRAMES, check_budget, check_count, damaged_header

__all__ = ["TiffPageWarning", "load_raster", "save_png"]


class TiffPageWarning(UserWarning):
    """A TIFF's chain of pages is broken after an intact page.

    The pages before the break were loaded.
    """


@dataclass(frozen=True)
class _Layout:
    """What a decoded raster will be: pages, size, bands, bytes per sample."""

    fmt: str
    pages: int
    height: int
    width: int
    bands: int  # 1 (grey) or 3 (RGB, after dropping alpha)
    itemsize: int  # bytes per sample of the decoded array
    alpha: bool  # an alpha channel is dropped
    warnings: tuple[str, ...] = ()


def _sample_bytes(bits: int) -> int:
    """Bytes per sample of the array OpenCV decodes ``bits`` into."""
    for size in (1, 2, 4):
        if bits <= 8 * size:
            return size
    return 8


# PNG colour types (PNG spec 11.2.2): bands of the decoded image, alpha.
_PNG_COLOR = {0: (1, False), 2: (3, False), 3: (3, False), 4: (1, True), 6: (3, True)}


def _png_layout(data: bytes, name: str) -> _Layout:
    """The size, bit depth and colour type of a PNG, from its IHDR chunk."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise TruncatedFileError(
            name,
            "its PNG data does not start with an IHDR chunk; it is cut short or "
            "damaged.",
            "Copy or export the file again.",
        )
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    if color not in _PNG_COLOR or depth not in (1, 2, 4, 8, 16):
        raise DecodeError(
            name,
            f"its PNG header gives colour type {color} with bit depth {depth}, "
            "which the PNG standard does not define.",
            "Save the image again as an 8- or 16-bit PNG.",
        )
    bands, alpha = _PNG_COLOR[color]
    itemsize = 2 if depth == 16 and color != 3 else 1
    return _Layout("PNG", 1, height, width, bands, itemsize, alpha)


_TIFF_CODES = {1: "B", 3: "H", 4: "I", 16: "Q"}
_TIFF_WANTED = (256, 257, 258, 262, 277)


def _ifd_tags(
    data: bytes, block: bytes, order: str, big: bool
) -> dict[int, int | tuple[int, ...]]:
    """Width, length, bits per sample, photometric and samples of one IFD."""
    record = order + ("HHQ8s" if big else "HHI4s")
    inline = 8 if big else 4
    tags: dict[int, int | tuple[int, ...]] = {}
    for tag, kind, values, field in struct.iter_unpack(record, block):
        code = _TIFF_CODES.get(kind)
        if tag not in _TIFF_WANTED or code is None:
            continue
        size = struct.calcsize(code)
        if size * values > inline:  # the values lie elsewhere
            (where,) = struct.unpack(order + ("Q" if big else "I"), field)
            field = data[where : where + size * min(values, 16)]
        take = min(values, len(field) // size, 16)
        if take < 1:
            continue
        got = struct.unpack(order + code * take, field[: take * size])
        tags[tag] = got if tag == 258 else got[0]
    return tags


def _tiff_layout(data: bytes, name: str, max_pages: int) -> _Layout:
    """Walk a TIFF's chain of pages (IFDs) without decoding any of them.

    Each page's size, samples and bits per sample are read from its tags.
    The walk stops, refusing the file, past ``max_pages``. A link that
    points past the end of the file, or back to an earlier page, ends the
    chain after the intact pages, with a warning.
    """
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = struct.unpack(order + "H", data[2:4])
    big = magic == 43
    if big:
        count_fmt, entry_size, off_fmt, head = "Q", 20, "Q", 16
        (first,) = struct.unpack(order + "Q", data[8:16])
    else:
        count_fmt, entry_size, off_fmt, head = "H", 12, "I", 8
        (first,) = struct.unpack(order + "I", data[4:8])
    count_size = struct.calcsize(count_fmt)
    off_size = struct.calcsize(off_fmt)
    pages: list[dict[int, int | tuple[int, ...]]] = []
    notes: list[str] = []
    seen: set[int] = set()
    previous: bytes | None = None
    tags: dict[int, int | tuple[int, ...]] = {}
    offset = first
    while offset:
        if offset in seen:
            notes.append(
                f"{name}: page {len(pages)} of the TIFF links back to an earlier "
                f"page; the {len(pages)} page(s) before the loop were loaded."
            )
            break
        if offset < head or offset + count_size > len(data):
            if not pages:
                raise TruncatedFileError(
                    name,
                    "its first TIFF page (IFD) lies past the end of the file; the "
                    "file is cut short.",
                    "Copy or export the file again.",
                )
            notes.append(
                f"{name}: page {len(pages)} of the TIFF links to a next page at "
                f"byte {offset:,}, past the end of the {len(data):,}-byte file; "
                f"the {len(pages)} intact page(s) were loaded."
            )
            break
        seen.add(offset)
        check_count(
            name, "pages", len(pages) + 1, max_pages, "max_frames", complete=False
        )
        (n,) = struct.unpack(order + count_fmt, data[offset : offset + count_size])
        entries = offset + count_size
        end = entries + n * entry_size
        if end + off_size > len(data):
            if not pages:
                raise TruncatedFileError(
                    name,
                    "its first TIFF page (IFD) runs past the end of the file; the "
                    "file is cut short.",
                    "Copy or export the file again.",
                )
            notes.append(
                f"{name}: page {len(pages) + 1} of the TIFF runs past the end of "
                f"the file; the {len(pages)} intact page(s) were loaded."
            )
            break
        block = data[entries:end]
        if block != previous:  # pages written alike share their tags
            tags = _ifd_tags(data, block, order, big)
            previous = block
        pages.append(tags)
        (offset,) = struct.unpack(order + off_fmt, data[end : end + off_size])
    first_tags = pages[0]
    width, height = int(first_tags.get(256, 0)), int(first_tags.get(257, 0))
    bits = first_tags.get(258, (1,))
    samples = int(first_tags.get(277, len(bits) if isinstance(bits, tuple) else 1))
    bits = max(bits) if isinstance(bits, tuple) and bits else 1
    palette = first_tags.get(262) == 3
    for number, tags in enumerate(pages[1:], start=2):
        other = (tags.get(256), tags.get(257), tags.get(258), tags.get(277))
        if other != (
            first_tags.get(256),
            first_tags.get(257),
            first_tags.get(258),
            first_tags.get(277),
        ):
            raise DecodeError(
                name,
                f"its TIFF page {number} is {tags.get(256)} x {tags.get(257)} "
                f"pixels of {tags.get(258)} bits, but page 1 is {width} x {height} "
                f"of {first_tags.get(258)} bits, so its pages are not one volume.",
                "Save each page as a file of its own, or open one page at a time.",
            )
    bands = 3 if palette or samples >= 3 else 1
    itemsize = 1 if palette else _sample_bytes(int(bits))
    return _Layout(
        "TIFF",
        len(pages),
        height,
        width,
        bands,
        itemsize,
        samples in (2, 4),
        tuple(notes),
    )


def _header(data: bytes, name: str, max_bytes: int, max_pages: int) -> _Layout:
    """Check the announced size against the budget, by real sample size.

    PNG and TIFF are measured from their own headers (bit depth, samples,
    pages): Pillow's mode says "RGBA" for a 16-bit RGBA PNG, which decodes
    to twice the bytes.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                mode, fmt = im.mode, str(im.format)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            name,
            "its header announces an image too large to decode safely.",
            "If the file is genuine, downsample it before loading.",
        ) from exc
    except Exception as exc:
        raise damaged_header(
            name, "image", exc, "Save the image again as PNG or TIFF."
        ) from exc
    if data.startswith(b"\x89PNG"):
        layout = _png_layout(data, name)
    elif data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        try:
            layout = _tiff_layout(data, name, max_pages)
        except struct.error as exc:
            raise TruncatedFileError(
                name,
                "its TIFF page directory ends before its entries; the file is cut "
                "short.",
                "Copy or export the file again.",
            ) from exc
    else:
        bands = 1 if mode in ("1", "L", "P", "I", "I;16", "F") else 3
        layout = _Layout(fmt, 1, height, width, bands, 1, False)
    page = layout.height * layout.width * layout.bands * layout.itemsize
    if layout.pages > 1:  # streamed: a batch of pages, decoded twice over
        extra = 2 * page * min(layout.pages, _batch(page, max_bytes))
        why = "with the batch of pages being decoded"
    else:  # OpenCV's decoder holds a copy of the image beside the array
        extra, why = page, "with the decoder's own copy"
    check_budget(
        name,
        (layout.pages, layout.height, layout.width, layout.bands),
        layout.itemsize,
        max_bytes,
        extra=extra,
        why=why,
    )
    return layout


def _check_png_chunks(data: bytes, name: str) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file.

    OpenCV reserves a chunk's declared length before it reads it, so a
    damaged length field (4 GiB) would cost gigabytes of memory.
    """
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise TruncatedFileError(
                name,
                f"its PNG chunk {kind.decode('latin-1')!r} announces {length} bytes "
                "but the file ends before them; it is cut short or damaged.",
                "Copy or export the file again.",
            )
        if kind == b"IEND":
            return
        pos += 12 + length
    raise TruncatedFileError(
        name,
        "its PNG data ends without an IEND chunk; it is cut short.",
        "Copy or export the file again.",
    )


#: Pages decoded per call of OpenCV when a TIFF is streamed: at most this
#: many bytes of pages beside the preallocated volume.
_PAGE_BATCH_BYTES = 16 * 1024**2


def _flags(layout: _Layout) -> int:
    """OpenCV flags that decode straight to the output: RGB, alpha dropped."""
    if layout.bands == 3:
        return cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH
    if layout.alpha:
        return cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH
    return cv2.IMREAD_UNCHANGED


def _batch(page: int, max_bytes: int) -> int:
    """Pages of ``page`` bytes decoded per call when a TIFF is streamed.

    At most 16 MiB and an eighth of the budget, or one page.
    """
    return max(1, min(_PAGE_BATCH_BYTES, max_bytes // 8) // max(page, 1))


def _decode_pages(
    buf: np.ndarray, layout: _Layout, flags: int, max_bytes: int
) -> np.ndarray | None:
    """Decode a multi-page TIFF into one preallocated array, a batch at a time."""
    page = layout.height * layout.width * layout.bands * layout.itemsize
    batch = _batch(page, max_bytes)
    out = None
    for start in range(0, layout.pages, batch):
        stop = min(start + batch, layout.pages)
        ok, planes = cv2.imdecodemulti(buf, flags, None, (start, stop))
        if not ok or len(planes) != stop - start:
            return None
        for k, plane in enumerate(planes):
            if out is None:
                out = np.empty((layout.pages, *plane.shape), plane.dtype)
            if plane.shape != out.shape[1:] or plane.dtype != out.dtype:
                return None
            out[start + k] = plane
        del planes
    return out


def load_raster(
    data: bytes, name: str, max_bytes: int, *, max_pages: int = DEFAULT_MAX_FRAMES
) -> MedImage:
    """Load PNG, JPEG or TIFF bytes into a MedImage, keeping the bit depth.

    The decoded size is charged by its real sample size (a 16-bit RGBA PNG
    as 3 bands of 2 bytes), decoded straight to RGB without its alpha, and
    a multi-page TIFF is streamed into one preallocated volume.

    Parameters
    ----------
    data : bytes
        The file's bytes.
    name : str
        How messages name the file.
    max_bytes : int
        Memory budget in bytes (as :func:`medimg_lab.load`).
    max_pages : int
        Most pages of a TIFF; more are refused before decoding.

    Returns
    -------
    MedImage
    """
    if data.startswith(b"\x89PNG"):
        _check_png_chunks(data, name)
    layout = _header(data, name, max_bytes, max_pages)
    fmt, pages = layout.fmt, layout.pages
    buf = np.frombuffer(data, dtype=np.uint8)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        flags = _flags(layout)
        if pages > 1:
            arr = _decode_pages(buf, layout, flags, max_bytes)
        else:
            arr = cv2.imdecode(buf, flags)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except (OSError, SyntaxError) as exc:
            raise TruncatedFileError(
                name,
                f"its {fmt} data could not be decoded; the file is cut short or "
                "damaged.",
                "Copy or export the file again.",
            ) from exc
        raise DecodeError(
            name,
            f"its {fmt} data could not be decoded.",
            "Save it again as an 8- or 16-bit PNG.",
        )
    meta: dict[str, Any] = {
        "format": fmt,
        "spacing_known": False,
        "spacing_source": "unknown (1 mm assumed)",
    }
    if layout.alpha:
        meta["alpha_dropped"] = True
    for note in layout.warnings:
        meta.setdefault("warnings", []).append(note)
        warnings.warn(TiffPageWarning(note), stacklevel=3)
    spatial = 2 if pages == 1 else 3
    if arr.ndim == spatial + 1 and arr.shape[-1] == 4:  # a decoder kept alpha
        meta["alpha_dropped"] = True
        arr = np.ascontiguousarray(arr[..., :3])
    if arr.ndim == spatial + 1 and arr.shape[-1] == 3:
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(
            arr[..., 0], arr[..., 2]
        ):
            arr = np.ascontiguousarray(arr[..., 0])
            meta["grey_from_equal_rgb"] = True
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidValuesError(
            name,
            f"holds {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values.",
            "Replace them (numpy.nan_to_num) and save the image again.",
        )
    if arr.ndim not in (spatial, spatial + 1):
        raise DecodeError(
            name,
            f"decoded to an unexpected shape {arr.shape}.",
            "Save it again as a grey or RGB PNG.",
        )
    window = (127.5, 256.0) if arr.dtype == np.uint8 else display.auto_window(arr)
    return MedImage(
        array=arr, spacing=(1.0,) * spatial, modality="OT", window=window, meta=meta
    )


def save_png(image: MedImage, path: Path, window: tuple[float, float] | None) -> None:
    """Write a 2D MedImage as PNG, 8- or 16-bit grey or 8-bit RGB.

    Parameters
    ----------
    image : MedImage
        2D; a volume is refused.
    path : pathlib.Path
    window : (center, width), optional
        Write the 8-bit display rendering of this window (in the image's
        units); None writes the values, which must be unsigned 8 or 16 bits.
    """
    arr = image.array
    if image.is_volume:
        raise ValueError(
            f"PNG holds one 2D image; this image is a volume of shape {arr.shape}. "
            "Save a slice (image.array[i]) or save as .nii.gz."
        )
    if window is not None:
        arr = display.apply_window(arr, *window)
    elif arr.dtype not in (np.uint8, np.uint16) or (
        image.is_color and arr.dtype != np.uint8
    ):
        raise ValueError(
            f"PNG stores unsigned 8- or 16-bit values; this image is {arr.dtype} "
            f"({image.modality}). Pass window=(center, width) or window='default' "
            "to save a display rendering, or save as .nii.gz to keep the values."
        )
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise ValueError(f"PNG encoding failed for shape {arr.shape}")
    Path(path).write_bytes(buf.tobytes())
