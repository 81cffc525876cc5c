"""The hostile inputs of issue 17, generated small: one maker per input.

Each returns the bytes of one input and is named after what it attacks.
They are small on disk (deflated, or pages sharing one strip) and claim
large working sets, counts or decompressed sizes: the review saw each of
them use gigabytes or tens of seconds. ``tests/io/test_load_fuzz.py`` puts
every one through the fuzz probe (budget, hangs, library text).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.io.budget_cases import ct_dicom, png16_rgba, tiff_bytes

__all__ = ["HOSTILE"]


def _deflated(raw: bytes, body_chunks) -> bytes:
    """``raw``'s file meta, relabelled deflated, and the deflated chunks."""
    ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
    meta = ds.file_meta
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(raw[:128] + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=False)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    for chunk in body_chunks:
        buf.write(packer.compress(chunk))
    buf.write(packer.flush())
    return buf.getvalue()


def _ct_small() -> tuple[bytes, int]:
    raw = open(get_testdata_file("CT_small.dcm"), "rb").read()
    (group_length,) = struct.unpack("<I", raw[140:144])
    return raw, 144 + group_length


def huge_deflated_ct(side: int = 16384) -> bytes:
    """A deflated CT of ``side``² 16-bit zeros: 0.5 MB for 512 MiB of pixels."""
    raw, start = _ct_small()
    pixels = raw.rfind(b"\xe0\x7f\x10\x00")
    header = bytearray(raw[start:pixels])
    for tag in (b"\x28\x00\x10\x00", b"\x28\x00\x11\x00"):  # Rows, Columns
        at = header.find(tag)
        header[at + 8 : at + 10] = struct.pack("<H", side)
    size = side * side * 2
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, size)
    zeros = bytes(4 * 1024**2)

    def chunks():
        yield bytes(header) + element
        for _ in range(size // len(zeros)):
            yield zeros

    return _deflated(raw, chunks())


def many_frames(frames: int = 2_000_000) -> bytes:
    """A deflated DICOM of ``frames`` frames of 1 x 1 pixel."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 1
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(2 * frames)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def many_items(items: int = 1_000_000) -> bytes:
    """A deflated DICOM whose first element is a sequence of empty items."""
    raw, start = _ct_small()
    element = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)

    def chunks():
        yield element
        for _ in range(items // 10_000):
            yield item * 10_000
        yield end + raw[start:]

    return _deflated(raw, chunks())


def zip_bomb(size: int = 64 * 1024**2) -> bytes:
    """A zip of one member of ``size`` zeros (declared honestly)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("slice.dcm")
        info.compress_type = zipfile.ZIP_DEFLATED
        block = bytes(4 * 1024**2)
        with zf.open(info, "w", force_zip64=True) as fh:
            for _ in range(size // len(block)):
                fh.write(block)
    return buf.getvalue()


def nested_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner.zip", zip_bomb(32 * 1024**2))
    return buf.getvalue()


HOSTILE = {
    "deflated-16384sq-ct": huge_deflated_ct,
    "rle-24-frames-ct": lambda: ct_dicom(512, 512, frames=24, syntax="rle"),
    "tiff-100-pages-shared-strip": lambda: tiff_bytes(100, 1024, 1024),
    "png-rgba16-2048sq": lambda: png16_rgba(2048),
    "dicom-2m-frames": many_frames,
    "dicom-1m-items": many_items,
    "tiff-20000-pages": lambda: tiff_bytes(20_001, 1, 1),
    "zip-bomb": zip_bomb,
    "zip-in-zip": nested_zip,
    "tiff-next-page-past-end": lambda: tiff_bytes(1, 64, 64, next_past_end=True),
    "dicom-rescale-beyond-int64": lambda: ct_dicom(64, 64, slope="1e30"),
    "nifti-nan-sform": None,  # filled below, from test_messages
}


def _nan_sform() -> bytes:
    import nibabel as nib

    raw = bytearray(
        nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)).to_bytes()
    )
    raw[254:256] = struct.pack("<h", 1)  # sform_code
    raw[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]
    return bytes(raw)


HOSTILE["nifti-nan-sform"] = _nan_sform
