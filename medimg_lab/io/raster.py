"""PNG, JPEG and TIFF reading and PNG writing, keeping the bit depth.

OpenCV decodes (16-bit PNG and TIFF stay 16-bit, multi-page TIFF becomes a
stack); Pillow reads the header first so that the size is checked against the
memory budget before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import warnings
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
from ._source import check_budget, damaged_header

__all__ = ["load_raster", "save_png"]

_BYTES_PER_SAMPLE = {"1": 1, "L": 1, "P": 1, "RGB": 1, "RGBA": 1, "LA": 1, "CMYK": 1}


def _header(data: bytes, name: str, max_bytes: int) -> tuple[str, int]:
    """Check the announced size; return the format and the number of pages."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                pages = int(getattr(im, "n_frames", 1) or 1)
                mode, fmt = im.mode, im.format
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
    itemsize = _BYTES_PER_SAMPLE.get(mode, 4)
    bands = 3 if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr") else 1
    check_budget(name, (pages, height, width, bands), itemsize, max_bytes)
    return str(fmt), pages


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


def load_raster(data: bytes, name: str, max_bytes: int) -> MedImage:
    """Load PNG, JPEG or TIFF bytes into a MedImage, keeping the bit depth."""
    if data.startswith(b"\x89PNG"):
        _check_png_chunks(data, name)
    fmt, pages = _header(data, name, max_bytes)
    buf = np.frombuffer(data, dtype=np.uint8)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        if pages > 1:
            ok, planes = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
            arr = np.stack(planes) if ok and planes else None
        else:
            arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
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
    spatial = 2 if pages == 1 else 3
    if arr.ndim == spatial + 1 and arr.shape[-1] in (3, 4):
        if arr.shape[-1] == 4:
            meta["alpha_dropped"] = True
            arr = arr[..., :3]
        arr = np.ascontiguousarray(arr[..., ::-1])  # OpenCV's BGR to RGB
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
    """Write a 2D MedImage as PNG, 8- or 16-bit grey or 8-bit RGB."""
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
