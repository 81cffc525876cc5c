"""Property-based robustness tests of :func:`medimg_lab.load` on damaged files.

Real seed files (DICOM from pydicom's test data, a NIfTI volume and PNGs made
in memory) are cut short, have bytes flipped, have header fields overwritten
with extreme values, are relabelled with a transfer syntax their data is not
in, or are replaced by random bytes behind a format's magic number.

Every input goes through :func:`tests.fuzz.loadcheck.probe`, which loads it
with ``max_bytes=FUZZ_MAX_BYTES`` and requires that:

- ``load`` returns a MedImage with a numpy array, or raises a
  :class:`~medimg_lab.MedImgError` that a reader raised itself (an exception
  that only ``load``'s last-resort handler caught counts as a crash);
- the load's peak memory (tracemalloc, and resident-set growth on Linux) stays
  under ``PEAK_BUDGET``.

The counts per format show in the test summary (``tests/io/conftest.py``).
Examples are derandomized so that CI always runs the same inputs. The
hostile inputs of issue 17 (``tests/io/hostile.py``: bombs, huge counts,
broken page chains) go through the same probe. Inputs that
once crashed ``load`` live in ``tests/data/crashers/`` and are loaded on every
run; ``tests/fuzz/fuzz_load.py`` (``make fuzz``) fuzzes for longer.
"""

from __future__ import annotations

import gzip
import io
import itertools
import struct
import time
import tracemalloc
import zlib
from functools import cache

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.filewriter import write_file_meta_info

import medimg_lab
import medimg_lab.io
from medimg_lab import DecodeError, ImageTooLargeError
from tests.fuzz.loadcheck import (
    DICOM_SEEDS,
    FUZZ_MAX_BYTES,
    PEAK_BUDGET,
    SEEDS,
    Tally,
    crasher_files,
    nifti_volume,
    png_image,
    probe,
    seed,
    seed_format,
    sniff_format,
)
from tests.io.hostile import HOSTILE

# Damaged files make pydicom, nibabel and Pillow warn; only exceptions matter.
pytestmark = pytest.mark.filterwarnings("ignore")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DICOM_MAGIC = b"\0" * 128 + b"DICM"
GZIP_MAGIC = b"\x1f\x8b"
EXTREMES = (0, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.differing_executors,
    ],
)


def check(tally: Tally, fmt: str, data: bytes) -> None:
    """``load`` returns an image or names the problem, within the memory budget."""
    outcome = probe(data)
    tally.add(fmt, outcome)
    assert not outcome.crashed, outcome.describe(data)
    assert not outcome.hung, outcome.describe(data)
    assert not outcome.library, outcome.describe(data)
    assert outcome.peak <= PEAK_BUDGET, outcome.describe(data)


def dicom_body_start(raw: bytes) -> int:
    """Where a DICOM file's dataset begins, after its file meta group."""
    (group_length,) = struct.unpack("<I", raw[140:144])
    return 144 + group_length


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


DEFLATED_SEED = "image_dfl.dcm"


def _inner(name: str) -> bytes:
    """The bytes whose fields are mutated: the NIfTI inside the gzip stream,
    the dataset inside the deflated DICOM."""
    if name == "nifti_gz":
        return nifti_volume()
    raw = seed(name)
    if name == DEFLATED_SEED:
        start = dicom_body_start(raw)
        return raw[:start] + zlib.decompress(raw[start:], -zlib.MAX_WBITS)
    return raw


def _outer(name: str, data: bytes) -> bytes:
    if name == "nifti_gz":
        return gzip.compress(data, mtime=0)
    if name == DEFLATED_SEED:
        start = dicom_body_start(data)
        return data[:start] + _deflate(data[start:])
    return data


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
        for (group, elem), order in itertools.product(_DICOM_TAGS, "<>"):
            pos = data.find(struct.pack(f"{order}HH", group, elem))
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
    if name == DEFLATED_SEED:
        return dicom_body_start(raw)  # all of the deflate stream
    if name in DICOM_SEEDS:
        order = ">" if "bigendian" in name else "<"
        return raw.rfind(struct.pack(f"{order}HH", 0x7FE0, 0x0010))
    if name.startswith("png"):
        return raw.find(b"IDAT") + 4  # the chunk's data; its length is a field
    if name == "nifti":
        return int(struct.unpack("<f", raw[108:112])[0])
    return 10  # after the gzip member header


# --------------------------------------------------------------------------
# Mutations of the seeds


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


def _flipped(name: str, raw: bytes, start: int, stop: int, data) -> bytes:
    """``raw`` with bytes flipped in ``[start, stop)``; PNG CRCs maybe mended."""
    flips = data.draw(_flips(start, stop), label="flips (offset, xor)")
    damaged = _flip(raw, flips)
    if name.startswith("png") and data.draw(st.booleans(), label="fix CRCs"):
        damaged = fix_png_crcs(damaged)
    return damaged


def test_every_seed_loads():
    for name in SEEDS:
        image = medimg_lab.load(seed(name), max_bytes=FUZZ_MAX_BYTES)
        assert isinstance(image.array, np.ndarray)
        assert image.array.size > 0
        assert _outer(name, _inner(name)) == seed(name) or name == DEFLATED_SEED
        medimg_lab.load(_outer(name, _inner(name)))
    assert all(field_offsets(name) for name in SEEDS)


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_truncated_file(name, data, fuzz_tally):
    raw = seed(name)
    cut = data.draw(st.integers(0, len(raw) - 1), label="length")
    check(fuzz_tally, seed_format(name), raw[:cut])


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_anywhere(name, data, fuzz_tally):
    raw = seed(name)
    check(fuzz_tally, seed_format(name), _flipped(name, raw, 0, len(raw), data))


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_in_header(name, data, fuzz_tally):
    # Compressed headers are damaged inside the stream as well as outside it.
    inside = name in ("nifti_gz", DEFLATED_SEED) and data.draw(
        st.booleans(), label="inside the compressed stream"
    )
    raw = _inner(name) if inside else seed(name)
    damaged = _flipped(name, raw, 0, min(len(raw), 1024), data)
    check(fuzz_tally, seed_format(name), _outer(name, damaged) if inside else damaged)


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_bytes_flipped_in_image_data(name, data, fuzz_tally):
    raw = seed(name)
    damaged = _flipped(name, raw, payload_start(name), len(raw), data)
    check(fuzz_tally, seed_format(name), damaged)


@pytest.mark.parametrize("name", SEEDS)
@FUZZ
@given(data=st.data())
def test_field_overwritten_with_extreme_value(name, data, fuzz_tally):
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
    check(fuzz_tally, seed_format(name), _outer(name, damaged))


MAGICS = {
    "png": (PNG_MAGIC, "png"),
    "dicom": (DICOM_MAGIC, "dicom"),
    "gzip": (GZIP_MAGIC, "nifti"),
    "gzip-deflate": (GZIP_MAGIC + b"\x08\x00", "nifti"),
    # NIfTI-1: sizeof_hdr 348 first, "n+1" at 344 (written over the random tail).
    "nifti": (struct.pack("<i", 348), "nifti"),
}


@pytest.mark.parametrize("kind", list(MAGICS))
@settings(FUZZ, max_examples=120)
@given(tail=st.binary(min_size=0, max_size=2048))
def test_random_bytes_behind_magic(kind, tail, fuzz_tally):
    magic, fmt = MAGICS[kind]
    data = magic + tail
    if kind == "nifti" and len(data) >= 348:
        data = data[:344] + b"n+1\0" + data[348:]
    check(fuzz_tally, fmt, data)


# --------------------------------------------------------------------------
# Wrong transfer syntaxes: the file meta says one encoding, the data is another


TRANSFER_SYNTAXES = (
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HTJ2KLossless,
    uid.RLELossless,
    uid.MPEG2MPML,
    uid.HEVCMP51,
    "1.2.840.10008.5.1.4.1.1.2",  # a UID, but a SOP class (CT Image Storage)
    "1.2.3.4.5",  # not a registered UID
    "",  # empty
    "JPEG please",  # not a UID
)


def relabelled(raw: bytes, syntax: str, body: bytes | None = None) -> bytes:
    """A DICOM file whose TransferSyntaxUID is ``syntax``, its dataset unchanged.

    ``body`` replaces the dataset bytes after the file meta group.
    """
    meta = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    buf.write(raw[:128] + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=False)
    buf.write(raw[dicom_body_start(raw) :] if body is None else body)
    return buf.getvalue()


def test_relabelling_keeps_the_dataset():
    raw = seed("CT_small.dcm")
    again = relabelled(raw, uid.ExplicitVRLittleEndian)
    assert again == raw or len(again) == len(raw) + 2  # UID padded to even length
    image = medimg_lab.load(again)
    np.testing.assert_array_equal(image.array, medimg_lab.load(raw).array)


def _transfer_syntax_vr_damaged(raw: bytes) -> bytes:
    """``raw`` with the VR of its TransferSyntaxUID made unknown ("uI"): its
    VR and length are then read as a 4-byte length of about 1.3 MB, and the
    rest of the file, image included, runs into the UID's text."""
    at = raw.index(b"\x02\x00\x10\x00UI")
    return raw[: at + 4] + b"uI" + raw[at + 6 :]


@pytest.mark.parametrize("name", DICOM_SEEDS)
@pytest.mark.parametrize("mode", ["warn", "raise"])
def test_image_read_as_one_text_element_is_refused_within_budget(
    name, mode, fuzz_tally
):
    """Found by the fuzz test: OBXXXX1A.dcm (0.5 MB) so damaged allocated
    16.7 MiB alone and 24.2 MiB in the whole suite, over the 16 MiB budget:
    pydicom's warnings for the invalid UID each held its value's repr. The
    caller's own validation mode comes back after the load."""
    settings = pydicom.config.settings
    before = settings.reading_validation_mode
    settings.reading_validation_mode = getattr(pydicom.config, mode.upper())
    try:
        check(fuzz_tally, "dicom", _transfer_syntax_vr_damaged(seed(name)))
        assert settings.reading_validation_mode == getattr(pydicom.config, mode.upper())
    finally:
        settings.reading_validation_mode = before


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES, ids=str)
def test_wrong_transfer_syntax(syntax, fuzz_tally):
    for name in DICOM_SEEDS:
        check(fuzz_tally, "dicom", relabelled(seed(name), syntax))


@pytest.mark.parametrize("name", DICOM_SEEDS)
@FUZZ
@given(data=st.data())
def test_wrong_transfer_syntax_and_damaged_pixels(name, data, fuzz_tally):
    raw = relabelled(
        seed(name), data.draw(st.sampled_from(TRANSFER_SYNTAXES), label="syntax")
    )
    start = raw.rfind(b"\xe0\x7f\x10\x00")  # pixel data, little endian
    if start < 0 or data.draw(st.booleans(), label="anywhere"):
        start = dicom_body_start(raw)
    check(fuzz_tally, "dicom", _flipped(name, raw, start, len(raw), data))


# --------------------------------------------------------------------------
# The memory budget: absurd sizes are refused before anything is allocated


def _huge_dicom(name: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 10000
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _huge_png() -> bytes:
    data = bytearray(png_image(8))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(data[12:29]))
    return bytes(data)


def _huge_nifti(compressed: bool) -> bytes:
    data = bytearray(nifti_volume())
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


@pytest.mark.parametrize("name", SEEDS)
def test_budget_smaller_than_the_image_is_refused(name):
    # Every reader checks the announced size against max_bytes before it
    # decodes: a seed that loads is refused with a budget of one byte less
    # than its values.
    data = seed(name)
    size = medimg_lab.load(data).array.size
    outcome = probe(data, max_bytes=size - 1)
    assert isinstance(outcome.error, ImageTooLargeError), outcome.error
    assert outcome.kind == "refused", outcome.describe(data)


def _bomb_nifti() -> bytes:
    """A 100 kB .nii.gz that inflates to 64 MiB: a 720-voxel volume and zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(nifti_volume())]
    zeros = bytes(1024**2)
    out += [packer.compress(zeros) for _ in range(64)]
    return b"".join([*out, packer.flush()])


def _bomb_dicom() -> bytes:
    """A deflated DICOM file (60 kB) whose dataset inflates to 64 MiB."""
    raw = seed("CT_small.dcm")
    body = raw[dicom_body_start(raw) :]
    # A private OB element after the pixel data: 64 MiB of zeros.
    extra = struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, 64 * 1024**2)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [packer.compress(body + extra)]
    zeros = bytes(1024**2)
    out += [packer.compress(zeros) for _ in range(64)]
    return relabelled(
        raw, uid.DeflatedExplicitVRLittleEndian, b"".join([*out, packer.flush()])
    )


BOMBS = {"nifti-gz": _bomb_nifti, "dicom-deflate": _bomb_dicom}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_decompression_bomb_refused_within_budget(kind):
    data = BOMBS[kind]()
    assert len(data) < 200_000
    outcome = probe(data)
    assert isinstance(outcome.error, ImageTooLargeError), outcome.describe(data)
    assert outcome.kind == "refused", outcome.describe(data)
    assert outcome.peak <= PEAK_BUDGET, outcome.describe(data)


# --------------------------------------------------------------------------
# The last-resort handler and the inputs that once crashed load()


class FakePanic(BaseException):
    """Like pyo3_runtime.PanicException: a BaseException, not an Exception."""


@pytest.mark.parametrize("exc", [KeyError("Rows"), FakePanic("index out of bounds")])
def test_a_reader_crash_still_leaves_load_as_a_medimg_error(monkeypatch, exc):
    def crash(*args, **kwargs):
        raise exc

    monkeypatch.setattr(medimg_lab.io, "load_raster", crash)
    with pytest.raises(DecodeError, match="could not be read"):
        medimg_lab.load(seed("png8"))


def test_a_reader_crash_is_counted_as_a_crash(monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("Rows")

    monkeypatch.setattr(medimg_lab.io, "load_raster", crash)
    outcome = probe(seed("png8"))
    assert outcome.kind == "net"
    assert "KeyError" in outcome.describe(seed("png8"))


@pytest.mark.parametrize("path", crasher_files(), ids=lambda p: p.stem)
def test_known_crashers_raise_only_medimg_errors(path, fuzz_tally):
    # rle-run-overrun-panic.bin: pydicom's MR_small_RLE.dcm with one byte of
    # its RLE pixel data changed (offset 2986, 0xFD -> 0xF9: a replicate run of
    # 4 becomes 8). The pylibjpeg-rle decoder panics ("index out of bounds: the
    # len is 8192 but the index is 8193"); PyO3 raises that as
    # pyo3_runtime.PanicException, a BaseException that `except Exception`
    # in load() does not catch.
    # jpeg-sof-height-zero.bin: pydicom's SC_rgb_jpeg_dcmtk.dcm with the
    # image height in its JPEG start-of-frame set to 0 (offset 1856, 0x64 ->
    # 0x00; the DICOM header still says 100 x 100). A height of 0 means "given
    # later by a DNL marker": pylibjpeg-libjpeg grew its buffers until the
    # machine ran out of memory (23 GB). The codestream size is now checked
    # against Rows and Columns before decoding.
    data = path.read_bytes()
    check(fuzz_tally, sniff_format(data), data)


# --------------------------------------------------------------------------
# The hostile inputs of issue 17, through the same probe


@pytest.fixture(scope="module")
def hostile_inputs():
    return {name: make() for name, make in HOSTILE.items()}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_within_budget_in_a_sentence(name, hostile_inputs, fuzz_tally):
    # Each is refused (or loads) under the 8 MiB fuzz budget without a
    # crash, a hang, library text, or a peak over 1.5 x the budget.
    data = hostile_inputs[name]
    assert len(data) < 3 * 1024**2, len(data)
    check(fuzz_tally, sniff_format(data), data)
