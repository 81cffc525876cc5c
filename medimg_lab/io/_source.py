"""Recognising a source: what it is, what it is called, whether it fits."""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import ImageTooLargeError, NotAnImageError, TruncatedFileError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "check_budget",
    "damaged_header",
    "display_name",
    "gunzip_limited",
    "native",
    "refuse_special_file",
    "sniff",
    "special_file",
]

#: Default memory budget for one decoded image: 2 GiB.
DEFAULT_MAX_BYTES = 2 * 1024**3

_NIFTI_MAGICS = (b"n+1\0", b"ni1\0")


def _nifti_header(head: bytes) -> bool:
    if len(head) >= 348 and struct.unpack("<i", head[:4])[0] in (348, 540):
        return head[344:348] in _NIFTI_MAGICS or head[4:8] in (b"n+2\0", b"ni2\0")
    if len(head) >= 348 and struct.unpack(">i", head[:4])[0] in (348, 540):
        return head[344:348] in _NIFTI_MAGICS or head[4:8] in (b"n+2\0", b"ni2\0")
    return False


def sniff(head: bytes) -> str | None:
    """Name the format of a file from its first bytes.

    Parameters
    ----------
    head : bytes
        At least the first 1024 bytes of the file, or all of a shorter one.

    Returns
    -------
    str or None
        ``"dicom"``, ``"nifti"``, ``"nifti-gz"``, ``"png"``, ``"jpeg"``,
        ``"tiff"``, ``"zip"``, ``"gzip"``, or ``None`` when nothing matched.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        try:
            inner = gzip.GzipFile(fileobj=io.BytesIO(head)).read(548)
        except (OSError, EOFError, zlib.error):
            inner = b""
        return "nifti-gz" if _nifti_header(inner) else "gzip"
    if _nifti_header(head):
        return "nifti"
    return None


def check_budget(
    source: str, shape: tuple[int, ...], itemsize: int, max_bytes: int
) -> None:
    """Refuse an image whose header asks for more memory than allowed.

    Parameters
    ----------
    source : str
        Printable name of the input, for the message.
    shape : tuple of int
        Dimensions announced by the header.
    itemsize : int
        Bytes per value after decoding.
    max_bytes : int
        The budget.

    Raises
    ------
    ImageTooLargeError
        If the image would need more than ``max_bytes``.
    NotAnImageError
        If a dimension is zero or negative.
    """
    dims = " x ".join(str(d) for d in shape)
    if any(int(d) <= 0 for d in shape):
        raise NotAnImageError(
            source,
            f"its header announces an image of {dims} pixels, which is empty.",
            "The file is damaged or is not an image; open another file.",
        )
    need = math.prod(int(d) for d in shape) * int(itemsize)
    if need > max_bytes:
        raise ImageTooLargeError(
            source,
            f"its header announces {dims} values of {itemsize} bytes "
            f"({need / 1024**3:.1f} GiB), more than the {max_bytes / 1024**3:.1f} "
            "GiB budget, so it was not decoded.",
            "If the file is genuine, pass a larger max_bytes= to load(), or crop "
            "or downsample it first.",
        )


def damaged_header(
    source: str, kind: str, exc: BaseException, fix: str
) -> NotAnImageError:
    """The error for a header that its reader library could not parse.

    The message is a sentence of ours; the library's exception is kept as
    the error's ``__cause__`` (for a traceback), never in the text.
    """
    error = NotAnImageError(
        source,
        f"has a damaged {kind} header: a value in it breaks the {kind} format, "
        "so its reader could not go on.",
        fix,
    )
    error.__cause__ = exc
    return error


def gunzip_limited(data: bytes, source: str, max_bytes: int) -> bytes:
    """Decompress gzip data, refusing more than ``max_bytes`` of output."""
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = dec.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise TruncatedFileError(
            source,
            "its gzip stream is damaged: the compressed data breaks the "
            "deflate format.",
            "Compress the file again, or save it uncompressed.",
        ) from exc
    if len(out) > max_bytes:
        raise ImageTooLargeError(
            source,
            f"it decompresses to more than {max_bytes / 1024**3:.1f} GiB.",
            "If the file is genuine, pass a larger max_bytes= to load().",
        )
    if not dec.eof:
        raise TruncatedFileError(
            source,
            "its gzip stream ends early; the file was cut short.",
            "Copy or download the file again.",
        )
    return out


def native(arr: np.ndarray) -> np.ndarray:
    """The array in the machine's byte order (big-endian files decode as such)."""
    arr = np.asarray(arr)
    if arr.dtype.byteorder not in ("=", "|") and arr.dtype.names is None:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def display_name(source: object) -> str:
    """A short printable name for a source, without its folder."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name or str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder.

    Reading a named pipe blocks until something writes to it, and a device
    such as ``/dev/zero`` never ends (its ``st_size`` is 0), so such a path is
    refused by its type (:func:`os.stat`, :data:`stat.S_ISREG`) before it is
    opened.

    Returns
    -------
    str or None
        ``"a named pipe (FIFO)"``, ``"a character device"``, ``"a block
        device"``, ``"a socket"`` or ``"a special file"``; ``None`` for a
        regular file, a folder, or a path that cannot be examined.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return "a special file"


def special_reason(kind: str) -> str:
    """Why a special file is not read, as a clause for a message."""
    return (
        f"is {kind}, not a regular file, so it was not read: reading it could "
        "block or never end"
    )


def refuse_special_file(path: str | os.PathLike, name: str) -> None:
    """Raise :class:`NotAnImageError` if ``path`` is a FIFO, device or socket."""
    kind = special_file(path)
    if kind is not None:
        raise NotAnImageError(
            name,
            special_reason(kind) + ".",
            "Copy the image into a regular file and open that file.",
        )
