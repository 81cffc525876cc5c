"""Property-based robustness tests of :func:`medimg_lab.load` on damaged files.

Real seed files (DICOM from pydicom's test data, a NIfTI volume and PNGs made
in memory) are cut short, have bytes flipped, have header fields overwritten
with extreme values, or are replaced by random bytes behind a format's magic
number. Whatever happens, ``load`` may only raise a
:class:`~medimg_lab.MedImgError`; a successful load returns a MedImage with a
numpy array. Headers that announce absurd image sizes are refused before
anything is allocated.

Examples are derandomized so that CI always runs the same inputs. Inputs that
once crashed ``load`` live in ``tests/data/crashers/`` and are loaded on every
run.
"""

from __future__ import annotations

import gzip
import io
import struct
import time
import tracemalloc
import zlib
from functools import cache
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

import medimg_lab
from medimg_lab import ImageTooLargeError, MedImage, MedImgError

# Damaged files make pydicom, nibabel and Pillow warn; only exceptions matter.
pytestmark = pytest.mark.filterwarnings("ignore")

CRASHERS = Path(__file__).resolve().parents[1] / "data" / "crashers"

DICOM_SEEDS = (
    "CT_small.dcm",
    "MR_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "OBXXXX1A.dcm",
)
OTHER_SEEDS = ("nifti", "nifti_gz", "png8", "png16")
SEEDS = DICOM_SEEDS + OTHER_SEEDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DICOM_MAGIC = b"\0" * 128 + b"DICM"
GZIP_MAGIC = b"\x1f\x8b"
EXTREMES = (0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------
# Seeds


def _nifti_volume() -> bytes:
    """A small int16 volume (10 x 9 x 8) with a gradient, as NIfTI-1 bytes."""
    arr = (np.arange(10 * 9 * 8, dtype=np.int16).reshape(10, 9, 8) * 7) - 1000
    return nib.Nifti1Image(arr, np.eye(4)).to_bytes()


def _png(depth: int) -> bytes:
    yy, xx = np.mgrid[0:24, 0:32]
    if depth == 8:
        img = ((yy * 32 + xx) % 256).astype(np.uint8)
    else:
        img = ((yy * 32 + xx) * 83).astype(np.uint16)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@cache
def seed(name: str) -> bytes:
    """The bytes of a seed file; every one of them loads."""
    if name in DICOM_SEEDS:
        return Path(get_testdata_file(name)).read_bytes()
    if name == "nifti":
        return _nifti_volume()
    if name == "nifti_gz":
        return gzip.compress(_nifti_volume(), mtime=0)
    if name == "png8":
        return _png(8)
    if name == "png16":
        return _png(16)
    raise KeyError(name)


def _inner(name: str) -> bytes:
    """The bytes whose fields are mutated: the NIfTI inside the gzip stream."""
    return _nifti_volume() if name == "nifti_gz" else seed(name)


def _outer(name: str, data: bytes) -> bytes:
    return gzip.compress(data, mtime=0) if name == "nifti_gz" else data


# --------------------------------------------------------------------------
# Where the header fields are


_DICOM_TAGS = (
    (0x0002, 0x0000),  # FileMetaInformationGroupLength
    (0x0002, 0x0010),  # TransferSyntaxUID
    (0x0028, 0x0002),  # SamplesPerPixel
    (0x0028, 0x0004),  # PhotometricInterpretation
    (0x0028, 0x0006),  # PlanarConfiguration
    (0x0028, 0x0008),  # NumberOfFrames
    (0x0028, 0x0010),  # Rows
    (0x0028, 0x0011),  # Columns
    (0x0028, 0x0100),  # BitsAllocated
    (0x0028, 0x0101),  # BitsStored
    (0x0028, 0x0102),  # HighBit
    (0x0028, 0x0103),  # PixelRepresentation
    (0x0028, 0x1052),  # RescaleIntercept
    (0x0028, 0x1053),  # RescaleSlope
    (0x7FE0, 0x0010),  # PixelData
)
# Start-of-frame markers of the JPEG family: SOF0, SOF1, SOF3, JPEG-LS SOF55.
_JPEG_SOF = (b"\xff\xc0", b"\xff\xc1", b"\xff\xc3", b"\xff\xf7")
_J2K_SIZ = b"\xff\x51"
_ITEM = b"\xfe\xff\x00\xe0"

_NIFTI_FIELDS = (
    0,  # sizeof_hdr
    *range(40, 56, 2),  # dim[0..7]
    68,  # intent_code
    70,  # datatype
    72,  # bitpix
    74,  # slice_start
    *range(76, 108, 4),  # pixdim[0..7]
    108,  # vox_offset
    112,  # scl_slope
    116,  # scl_inter
    120,  # slice_end
    122,  # slice_code, xyzt_units
    252,  # qform_code
    254,  # sform_code
    256,  # quatern_b
    280,  # srow_x
    344,  # magic
    348,  # extension flag
)


def _png_chunks(data: bytes) -> list[int]:
    """Offsets of the chunks of a PNG, as far as its structure holds."""
    offsets, pos = [], 8
    while pos + 12 <= len(data):
        offsets.append(pos)
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 12 + length
    return offsets


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so that readers look past the checksums."""
    out = bytearray(data)
    for pos in _png_chunks(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(out[pos + 4 : end]))
    return bytes(out)


@cache
def field_offsets(name: str) -> tuple[int, ...]:
    """Offsets of the size, type and length fields of a seed's header(s)."""
    data = _inner(name)
    found: set[int] = set()
    if name in DICOM_SEEDS:
        for group, elem in _DICOM_TAGS:
            pos = data.find(struct.pack("<HH", group, elem))
            if pos >= 0:
                # Length (implicit VR, explicit VR short and long forms) and value.
                found.update((pos + 4, pos + 6, pos + 8, pos + 12))
        pos = data.find(_ITEM)
        for _ in range(4):  # offset table and first fragments: their lengths
            if pos < 0:
                break
            found.add(pos + 4)
            pos = data.find(_ITEM, pos + 8)
        for marker in _JPEG_SOF:
            pos = data.find(marker)
            if pos >= 0:  # length, precision, rows, columns, components
                found.update((pos + 2, pos + 4, pos + 5, pos + 7, pos + 9))
        pos = data.find(_J2K_SIZ)
        if pos >= 0:  # Lsiz, Rsiz, Xsiz, Ysiz, offsets, tile sizes, Csiz
            found.update(pos + k for k in (2, 4, 6, 10, 14, 18, 22, 26, 38, 40))
    elif name in ("nifti", "nifti_gz"):
        found.update(_NIFTI_FIELDS)
    else:
        found.update((8, 16, 20, 24, 26, 28))  # IHDR length, size, depth, ...
        found.update(_png_chunks(data))  # every chunk's length
    return tuple(sorted(p for p in found if p + 4 <= len(data)))


@cache
def payload_start(name: str) -> int:
    """Where a seed's image data begins: pixel data, IDAT, voxels, deflate."""
    raw = seed(name)
    if name in DICOM_SEEDS:
        return raw.rfind(struct.pack("<HH", 0x7FE0, 0x0010))
    if name.startswith("png"):
        return raw.find(b"IDAT") + 4  # the chunk's data; its length is a field
    if name == "nifti":
        return int(struct.unpack("<f", raw[108:112])[0])
    return 10  # after the gzip member header


# --------------------------------------------------------------------------
# The property


def assert_loads_or_refuses(data: bytes) -> None:
    """``load`` returns a MedImage with a numpy array, or raises a MedImgError."""
    try:
        image = medimg_lab.load(data)
    except MedImgError:
        return
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # e.g. a Rust panic, which is no Exception
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        raise AssertionError(
            f"load() of {len(data)} damaged bytes (starting {data[:16]!r}) raised "
            f"{kind}, not a MedImgError: {str(exc)[:300]}"
        ) from exc
    assert isinstance(image, MedImage)
    assert isinstance(image.array, np.ndarray)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, mask in flips:
        out[pos % len(out)] ^= mask
    return bytes(out)


def _flips(start: int, end: int):
    """1 to 8 (offset, xor mask) pairs with offsets in ``[start, end)``."""
    return st.lists(
        st.tuples(st.integers(start, end - 1), st.integers(1, 255)),
        min_size=1,
        max_size=8,
    )


def test_every_seed_loads():
    for name in SEEDS:
        image = medimg_lab.load(seed(name))
        assert isinstance(image.array, np.ndarray)
        assert image.array.size > 0
    assert all(field_offsets(name) for name in SEEDS)


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_truncated_file(name, data):
    raw = seed(name)
    cut = data.draw(st.integers(0, len(raw) - 1), label="length")
    assert_loads_or_refuses(raw[:cut])


def _flipped(name: str, raw: bytes, start: int, stop: int, data) -> bytes:
    """``raw`` with bytes flipped in ``[start, stop)``; PNG CRCs maybe mended."""
    flips = data.draw(_flips(start, stop), label="flips (offset, xor)")
    damaged = _flip(raw, flips)
    if name.startswith("png") and data.draw(st.booleans(), label="fix CRCs"):
        damaged = fix_png_crcs(damaged)
    return damaged


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_anywhere(name, data):
    raw = seed(name)
    assert_loads_or_refuses(_flipped(name, raw, 0, len(raw), data))


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_in_header(name, data):
    # The NIfTI header is damaged inside the gzip stream as well as outside it.
    inside = name == "nifti_gz" and data.draw(st.booleans(), label="inside gzip")
    raw = _inner(name) if inside else seed(name)
    damaged = _flipped(name, raw, 0, min(len(raw), 1024), data)
    assert_loads_or_refuses(_outer(name, damaged) if inside else damaged)


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_in_image_data(name, data):
    raw = seed(name)
    assert_loads_or_refuses(_flipped(name, raw, payload_start(name), len(raw), data))


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_field_overwritten_with_extreme_value(name, data):
    raw = _inner(name)
    width = data.draw(st.sampled_from((2, 4)), label="width")
    offset = data.draw(
        st.one_of(
            st.sampled_from(field_offsets(name)),
            st.integers(0, min(len(raw), 1024) - width),
            st.integers(0, len(raw) - width),
        ),
        label="offset",
    )
    value = data.draw(st.sampled_from(EXTREMES), label="value") % (1 << (8 * width))
    order = data.draw(st.sampled_from(("little", "big")), label="byte order")
    damaged = bytearray(raw)
    damaged[offset : offset + width] = value.to_bytes(width, order)
    damaged = bytes(damaged)
    if name.startswith("png"):
        damaged = fix_png_crcs(damaged)
    assert_loads_or_refuses(_outer(name, damaged))


MAGICS = {
    "png": PNG_MAGIC,
    "dicom": DICOM_MAGIC,
    "gzip": GZIP_MAGIC,
    "gzip-deflate": GZIP_MAGIC + b"\x08\x00",
    # NIfTI-1: sizeof_hdr 348 first, "n+1" at 344 (written over the random tail).
    "nifti": struct.pack("<i", 348),
}


@pytest.mark.parametrize("kind", list(MAGICS))
@settings(FUZZ, max_examples=120)
@given(tail=st.binary(min_size=0, max_size=2048))
def test_random_bytes_behind_magic(kind, tail):
    data = MAGICS[kind] + tail
    if kind == "nifti" and len(data) >= 348:
        data = data[:344] + b"n+1\0" + data[348:]
    assert_loads_or_refuses(data)


# --------------------------------------------------------------------------
# Absurd sizes are refused before anything is allocated


def _huge_dicom(name: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 10000
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _huge_png() -> bytes:
    data = bytearray(_png(8))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(data[12:29]))
    return bytes(data)


def _huge_nifti(compressed: bool) -> bytes:
    data = bytearray(_nifti_volume())
    data[40:48] = struct.pack("<4h", 3, 30000, 30000, 3000)
    return gzip.compress(bytes(data), mtime=0) if compressed else bytes(data)


HUGE = {
    "dicom-uncompressed": lambda: _huge_dicom("CT_small.dcm"),
    "dicom-jpeg2000": lambda: _huge_dicom("emri_small_jpeg_2k_lossless.dcm"),
    "png": _huge_png,
    "nifti": lambda: _huge_nifti(False),
    "nifti-gz": lambda: _huge_nifti(True),
}


@pytest.mark.parametrize("kind", list(HUGE))
def test_huge_header_refused_without_allocating(kind):
    data = HUGE[kind]()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = time.perf_counter()
        with pytest.raises(ImageTooLargeError) as info:
            medimg_lab.load(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024**2, f"peak traced memory {peak / 1024**2:.1f} MB"
    assert elapsed < 2.0, f"refusing took {elapsed:.2f} s"
    assert "budget" in str(info.value) or "too large" in str(info.value)


# --------------------------------------------------------------------------
# Inputs that once crashed load()


def _crashers() -> list[Path]:
    return sorted(CRASHERS.glob("*.bin")) if CRASHERS.is_dir() else []


@pytest.mark.parametrize("path", _crashers(), ids=lambda p: p.stem)
def test_known_crashers_raise_only_medimg_errors(path):
    # rle-run-overrun-panic.bin: pydicom's MR_small_RLE.dcm with one byte of
    # its RLE pixel data changed (offset 2986, 0xFD -> 0xF9: a replicate run of
    # 4 becomes 8). The pylibjpeg-rle decoder panics ("index out of bounds: the
    # len is 8192 but the index is 8193"); PyO3 raises that as
    # pyo3_runtime.PanicException, a BaseException that `except Exception`
    # in load() does not catch.
    assert_loads_or_refuses(path.read_bytes())
