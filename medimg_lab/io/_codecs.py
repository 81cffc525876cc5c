"""JPEG-LS and JPEG 2000 frames decoded straight through imagecodecs.

pydicom's decoder plugins run each frame through a general pipeline: a
runner, its options, the plugin's call and a copy into the output. For a
small JPEG-LS file that pipeline costs several times the decode itself
(0.6 ms around CharLS's 0.2 ms on the corpus's 16-bit near-lossless file),
and pylibjpeg-openjpeg decodes JPEG 2000 on one thread, where OpenJPEG can
use every core. imagecodecs binds the same libraries (CharLS, OpenJPEG)
and gives OpenJPEG its threads.

:func:`decode_frames` decodes the one-sample (greyscale) frames of those
syntaxes and turns them into exactly what pydicom's ``pixel_array`` gives:
the dataset's Bits Allocated and Pixel Representation, with pydicom's sign
correction where a codestream's signedness or precision differs from the
header's (``tests/io/test_decoders.py`` compares both bit for bit on every
such file of the corpus, and on generated signed ones). Anything else
(colour, a codestream of another size, frames of mixed precision, a decoder
error) returns None, and pydicom decodes it as before.

Threads: :func:`decode_threads` is the number OpenJPEG uses, every core this
process may run on unless :func:`set_decode_threads` said otherwise. Batch
worker processes set it to 1 (``medimg_lab._worker_settings``): there the
cores are shared by the workers.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes

__all__ = [
    "decode_frames",
    "decode_threads",
    "encoded_frames",
    "j2k_siz",
    "jpeg_segment",
    "one_decode_thread",
    "set_decode_threads",
]

#: Threads given to OpenJPEG when not set: every core this process may use,
#: up to this many.
MAX_DECODE_THREADS = 8

_threads: int | None = None


def decode_threads() -> int:
    """Threads OpenJPEG decodes a JPEG 2000 frame with."""
    if _threads is not None:
        return _threads
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DECODE_THREADS))


def set_decode_threads(threads: int | None) -> int | None:
    """Set the threads OpenJPEG decodes with; None returns to every core.

    Returns
    -------
    int or None
        The setting it replaces, to hand back here when done.
    """
    global _threads
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise ValueError(f"threads must be 1 or more, not {threads!r}")
    previous, _threads = _threads, None if threads is None else int(threads)
    return previous


@contextmanager
def one_decode_thread() -> Iterator[None]:
    """OpenJPEG on one thread meanwhile, where the cores are shared otherwise."""
    previous = set_decode_threads(1)
    try:
        yield
    finally:
        set_decode_threads(previous)


def encoded_frames(ds: Dataset, frames: int) -> Iterator[bytes]:
    """The encoded frames of ``ds``, pydicom's warnings silenced meanwhile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from generate_frames(ds.PixelData, number_of_frames=frames)


def jpeg_segment(frame: bytes, markers: Collection[int], size: int) -> int | None:
    """Where the first of ``markers`` starts in a JPEG or JPEG-LS frame.

    Walks the marker segments after SOI; None when none of ``markers``
    comes before the data ends or stops being markers, or when fewer than
    ``size`` bytes of its segment are there.
    """
    pos = 2  # after SOI
    while pos + size <= len(frame) and frame[pos] == 0xFF:
        marker = frame[pos + 1]
        if marker in markers:
            return pos
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", frame[pos + 2 : pos + 4])
        pos += 2 + length
    return None


def j2k_siz(frame: bytes, size: int) -> int | None:
    """The start of a JPEG 2000 codestream's SIZ segment, with ``size`` bytes."""
    pos = frame.find(b"\xff\x51", 0, 256)  # SIZ, right after SOC
    return None if pos < 0 or pos + size > len(frame) else pos


def _jpeg_ls_precision(frame: bytes) -> int | None:
    """The sample precision in a JPEG-LS frame header (SOF55), in bits."""
    pos = jpeg_segment(frame, (0xF7,), 5)
    return None if pos is None else frame[pos + 4]


def _j2k_precision(frame: bytes) -> tuple[int, bool] | None:
    """(precision in bits, signed) of a JPEG 2000 codestream's one component."""
    pos = j2k_siz(frame, 41)
    if pos is None:
        return None
    (components,) = struct.unpack(">H", frame[pos + 38 : pos + 40])
    if components != 1:
        return None
    ssiz = frame[pos + 40]
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80)


def _codec():
    try:
        import imagecodecs
    except ImportError:  # optional at run time: pydicom's plugins decode
        return None
    return imagecodecs


def decode_frames(ds: Dataset, syntax: UID, frames: int) -> np.ndarray | None:
    """The frames of ``ds`` as pydicom's ``pixel_array`` gives them, or None.

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset with encapsulated JPEG-LS or JPEG 2000 pixel data.
    syntax : pydicom.uid.UID
        Its transfer syntax.
    frames : int
        The frames it holds.

    Returns
    -------
    numpy.ndarray or None
        (rows, columns) for one frame, (frames, rows, columns) for more; None
        where this path does not apply or its decoder refused the data.
    """
    j2k = syntax in JPEG2000TransferSyntaxes
    if not (j2k or syntax in JPEGLSTransferSyntaxes):
        return None
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    if str(ds.get("PhotometricInterpretation", "")) not in (
        "MONOCHROME1",
        "MONOCHROME2",
    ):
        return None
    codec = _codec()
    if codec is None:
        return None
    # pydicom's own checks of the pixel module (its runner's validation):
    # a header it would refuse is left to it, to be refused there.
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        representation = int(ds.PixelRepresentation)
    except (AttributeError, TypeError, ValueError):
        return None
    if (
        allocated not in (8, 16, 32)
        or not 1 <= stored <= allocated
        or representation not in (0, 1)
        or not (0 < rows < 2**16 and 0 < cols < 2**16 and frames >= 1)
    ):
        return None
    signed = representation == 1
    kind = "i" if signed else "u"
    out = np.empty((frames, rows, cols), f"{kind}{allocated // 8}")
    precision = None
    coded_signed = signed
    held = 0
    try:
        for index, frame in enumerate(encoded_frames(ds, frames)):
            if index >= frames:
                return None
            if j2k:
                info = _j2k_precision(frame)
                if info is None:
                    return None
                bits, coded_signed = info
                decoded = codec.jpeg2k_decode(frame, numthreads=decode_threads())
            else:
                bits = _jpeg_ls_precision(frame)
                decoded = codec.jpegls_decode(frame)
            if bits is None or precision not in (None, bits):
                return None  # frames of mixed precision: pydicom's way
            precision = bits
            if (
                decoded.shape != (rows, cols)
                or decoded.dtype.kind not in "ui"
                or decoded.dtype.itemsize > out.itemsize
            ):
                return None
            # pydicom reads the decoded bytes with the header's signedness in
            # the decoder's container, then widens them to Bits Allocated.
            out[index] = decoded.view(f"{kind}{decoded.dtype.itemsize}")
            held = index + 1
    except Exception:  # the decoder refused the data: pydicom's plugins try
        return None
    if held != frames or precision is None:
        return None
    shift = 8 * out.itemsize - precision
    if shift > 0 and (signed if not j2k else coded_signed != signed):
        np.left_shift(out, shift, out=out)
        np.right_shift(out, shift, out=out)
    return out[0] if frames == 1 else out
