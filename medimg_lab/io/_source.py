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
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_ITEMS",
    "ITEM_TAG_BIG",
    "ITEM_TAG_LITTLE",
    "check_budget",
    "check_count",
    "count_items",
    "count_tag",
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
#: Default limit on the frames of one DICOM object and the pages of a TIFF.
#: A cine or enhanced multi-frame study rarely holds more than a few
#: thousand; a whole-slide image may, and passes ``max_frames=``.
DEFAULT_MAX_FRAMES = 10_000
#: Default limit on the sequence items of one DICOM file, at any depth. An
#: enhanced object holds about ten per frame (its functional groups).
DEFAULT_MAX_ITEMS = 100_000

#: The Item tag (FFFE,E000), little and big endian: every sequence item and
#: every fragment of encapsulated pixel data starts with one.
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")
ITEM_TAG_LITTLE = _ITEM_TAGS[:1]
ITEM_TAG_BIG = _ITEM_TAGS[1:]

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


def size_text(n: float) -> str:
    """A byte count as people read it: ``"2.0 GiB"``, ``"64 MiB"``, ``"512 bytes"``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def check_budget(
    source: str,
    shape: tuple[int, ...],
    itemsize: int,
    max_bytes: int,
    *,
    extra: int = 0,
    why: str = "",
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
    extra : int
        Bytes the decoder needs beside the output (its own copy of the
        image, a batch of pages): the output must fit ``max_bytes`` and the
        two together 1.5 x ``max_bytes``, the stated peak of one load.
    why : str
        What ``extra`` is, for the message.

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
    if need > max_bytes or need + extra > 1.5 * max_bytes:
        working = ""
        if extra:
            working = (
                f", and decoding it takes {size_text(need + extra)} {why}, more "
                f"than 1.5 x the budget"
            )
        raise ImageTooLargeError(
            source,
            f"its header announces {dims} values of {itemsize} bytes "
            f"({size_text(need)}{working}); the budget is {size_text(max_bytes)}, "
            "so it was not decoded.",
            "If the file is genuine, pass a larger max_bytes= to load(), or crop "
            "or downsample it first.",
        )


def count_items(chunks, tags: tuple[bytes, ...] = _ITEM_TAGS) -> int:
    """How many Item tags the byte ``chunks`` of a DICOM file hold, at most.

    Counted on the bytes, before any parsing: each sequence item and each
    pixel-data fragment starts with an Item tag, so the count bounds the
    items a reader would build (a value that happens to hold the same four
    bytes only makes it larger). Chunks are joined across their boundaries.
    ``tags``: the Item tag in the byte orders the dataset may be read in
    (default both).
    """
    count, tail = 0, b""
    for chunk in chunks:
        window = tail + bytes(chunk[:3]) if tail else b""
        for tag in tags:
            count += window.count(tag) + count_tag(chunk, tag)
        tail = bytes(chunk[-3:])
    return count


#: Bytes compared at once by :func:`count_tag`: its index array stays at
#: 8 bytes a candidate of this many, a few MiB at worst.
_COUNT_STEP = 256 * 1024


def count_tag(data: bytes, tag: bytes) -> int:
    """How often the 4-byte ``tag`` occurs in ``data``, as ``data.count(tag)``.

    The DICOM item tags cannot overlap themselves, so every occurrence is
    counted once either way; numpy compares the first byte over the whole
    buffer and checks the other three at the few candidates, several times
    faster than a substring search over pixel data.
    """
    view = np.frombuffer(data, np.uint8)
    if len(tag) != 4 or view.size < 4:
        return bytes(data).count(tag)
    first, rest = tag[0], tag[1:]
    total = 0
    last = view.size - 3  # the last position where a tag can start
    for start in range(0, last, _COUNT_STEP):
        stop = min(start + _COUNT_STEP, last)
        at = np.flatnonzero(view[start:stop] == first) + start
        if at.size:
            hit = view[at + 1] == rest[0]
            hit &= view[at + 2] == rest[1]
            hit &= view[at + 3] == rest[2]
            total += int(np.count_nonzero(hit))
    return total


def check_count(
    source: str,
    what: str,
    count: int,
    limit: int,
    option: str,
    unit: str = "",
    *,
    complete: bool = True,
) -> None:
    """Refuse an input that holds more ``what`` than ``limit``, before the work.

    Raises
    ------
    ImageTooLargeError
        Naming the count, the limit and the ``option`` of :func:`load` that
        raises it for a real large study.
    """
    if count > limit:
        raise ImageTooLargeError(
            source,
            f"holds {'' if complete else 'at least '}{count:,} {what}, more than "
            f"the limit of {limit:,}{unit}, so it was not read further.",
            f"If it is a real large study, pass a larger {option}= to load().",
        )


def check_limit(value: object, option: str) -> int:
    """``value`` as a positive whole number, or a ValueError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{option} must be a positive whole number; got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{option} must be at least 1; got {value!r}")
    return int(value)


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
    """Decompress gzip data, refusing more than ``max_bytes`` of output.

    The inflated bytes are counted first, a megabyte at a time and thrown
    away, so that a bomb is refused with a megabyte of memory; then the
    stream is inflated once into a buffer of its known size.
    """
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    size, pending = 0, data
    try:
        while pending and not dec.eof and size <= max_bytes:
            size += len(dec.decompress(pending, 1024**2))
            pending = dec.unconsumed_tail
    except zlib.error as exc:
        raise TruncatedFileError(
            source,
            "its gzip stream is damaged: the compressed data breaks the "
            "deflate format.",
            "Compress the file again, or save it uncompressed.",
        ) from exc
    if size > max_bytes:
        raise ImageTooLargeError(
            source,
            f"it decompresses to more than the {size_text(max_bytes)} budget.",
            "If the file is genuine, pass a larger max_bytes= to load().",
        )
    if not dec.eof:
        raise TruncatedFileError(
            source,
            "its gzip stream ends early; the file was cut short.",
            "Copy or download the file again.",
        )
    # One buffer of the known size: no growing and joining of blocks.
    return zlib.decompress(data, 16 + zlib.MAX_WBITS, bufsize=max(size, 1))


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
