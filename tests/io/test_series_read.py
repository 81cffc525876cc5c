"""A folder series loads at disk speed, with the same values (issue 20, item 2).

Before, every file of a series was parsed twice (a header pass, then a full
read), each parse decoded every header element (about 80 % of the header
time), and each slice was decoded into an array of its own before the
volume was stacked from them: two volumes at the peak. Now each header is
read once, up to its pixel data, decoding only the elements the series
needs; the pixel values of a plain series go straight into one
preallocated volume. These tests count the parses and the decoded elements,
measure the peak memory, and check that the values are those of the
file-by-file reader and of the known truth, on series of several shapes:
square and not, isotropic and not, on a tilted plane, signed and unsigned,
with unused high bits set, MONOCHROME1, padding, a rescale per slice,
implicit VR, compressed (the file-by-file path) and from a zip.
"""

from __future__ import annotations

import io
import random
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pydicom
import pydicom.dataset
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

import medimg_lab as ml
from medimg_lab.io import dicom
from tests.helpers import dicom_file, whole_window


@dataclass
class Case:
    """A series to write: geometry, pixel module and the truth per slice."""

    slices: int
    rows: int
    cols: int
    step_mm: float = 2.5
    pixel_mm: tuple[float, float] = (0.7, 0.7)
    tilt_deg: float = 0.0
    signed: bool = True
    stored: int = 16
    photometric: str = "MONOCHROME2"
    slopes: tuple[float, ...] = (1.0,)
    intercept: float = -1024.0
    padding: int | None = None
    syntax: str = ExplicitVRLittleEndian
    high_bits: bool = False  # garbage in the unused high bits


CASES = {
    "square-isotropic": Case(12, 64, 64, step_mm=0.7),
    "non-square-anisotropic": Case(9, 48, 80, step_mm=3.0, pixel_mm=(0.9, 0.6)),
    "tilted-implicit": Case(7, 40, 56, tilt_deg=17.0, syntax=ImplicitVRLittleEndian),
    "unsigned-12-bit-high-bits": Case(
        8, 32, 48, signed=False, stored=12, high_bits=True
    ),
    "signed-12-bit-high-bits": Case(8, 32, 48, stored=12, high_bits=True),
    "padding-air": Case(6, 40, 40, padding=-2000),
    "monochrome1": Case(
        6, 36, 52, signed=False, photometric="MONOCHROME1", intercept=0.0
    ),
    "rescale-per-slice": Case(8, 30, 44, slopes=(0.5, 1.25, 2.0, 0.75), intercept=3),
}


def raw_slices(case: Case, rng) -> np.ndarray:
    """Stored values: ``stored`` bits, plus garbage above them if asked."""
    lo, hi = (
        (-(2 ** (case.stored - 1)), 2 ** (case.stored - 1) - 1)
        if case.signed
        else (0, 2**case.stored - 1)
    )
    values = rng.integers(
        max(lo, -1500), min(hi, 3000) + 1, (case.slices, case.rows, case.cols)
    )
    dtype = np.int16 if case.signed else np.uint16
    stored = values.astype(dtype)
    if case.padding is not None:
        stored[:, :3, :] = case.padding  # a band outside the field of view
    if case.high_bits:  # bits above BitsStored hold noise, as some scanners write
        noise = rng.integers(0, 2 ** (16 - case.stored), stored.shape).astype(np.uint16)
        stored = (stored.view(np.uint16) & (2**case.stored - 1)) | (
            noise << case.stored
        )
        stored = stored.view(dtype)
    return stored


def truth(case: Case, stored: np.ndarray) -> np.ndarray:
    """The values a reader must give: the stored bits (sign-extended), rescaled,
    padding as air, MONOCHROME1 turned around."""
    raw = stored.view(np.uint16).astype(np.int64) & (2**case.stored - 1)
    if case.signed:
        raw = np.where(raw >= 2 ** (case.stored - 1), raw - 2**case.stored, raw)
    slopes = np.array([case.slopes[k % len(case.slopes)] for k in range(case.slices)])
    values = raw * slopes[:, None, None] + case.intercept
    if case.padding is not None:
        values[:, :3, :] = -1024
    if case.photometric == "MONOCHROME1":
        values = (2**case.stored - 1) - values
    return values


def write(folder, case: Case, seed: int = 0) -> np.ndarray:
    """Write ``case`` as shuffled single-frame files; return the truth."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stored = raw_slices(case, rng)
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    for attr in ("PixelPaddingValue", "WindowCenter", "WindowWidth"):
        if attr in template:
            delattr(template, attr)
    tilt = np.deg2rad(case.tilt_deg)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    normal = np.cross(row, col)
    origin = np.array([-20.0, 7.5, 40.0])
    order = list(range(case.slices))
    random.Random(seed).shuffle(order)  # noqa: S311 file order, not security
    for n, k in enumerate(order):
        ds = template.copy()
        ds.file_meta.TransferSyntaxUID = case.syntax
        ds.Rows, ds.Columns = case.rows, case.cols
        ds.BitsAllocated, ds.BitsStored = 16, case.stored
        ds.HighBit = case.stored - 1
        ds.PixelRepresentation = int(case.signed)
        ds.PhotometricInterpretation = case.photometric
        ds.PixelData = stored[k].tobytes()
        ds.ImageOrientationPatient = [*row, *col]
        ds.ImagePositionPatient = [float(v) for v in origin + k * case.step_mm * normal]
        ds.PixelSpacing = list(case.pixel_mm)
        ds.SliceThickness = case.step_mm
        ds.RescaleSlope = case.slopes[k % len(case.slopes)]
        ds.RescaleIntercept = case.intercept
        if case.padding is not None:
            ds.add_new("PixelPaddingValue", "SS" if case.signed else "US", case.padding)
        ds.InstanceNumber = case.slices - n  # unrelated to the position
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(
            folder / f"IM{n:03d}.dcm",
            implicit_vr=case.syntax == ImplicitVRLittleEndian,
            little_endian=True,
            enforce_file_format=True,
        )
    return truth(case, stored)


def file_by_file(monkeypatch, source):
    """The image the thorough reader gives (each file read and decoded alone)."""
    with monkeypatch.context() as patch:
        patch.setattr(dicom, "_native_series", lambda *args: None)
        return ml.load(source)


@pytest.mark.parametrize("name", sorted(CASES))
def test_series_values_are_the_truth_and_the_file_by_file_readers(
    tmp_path, monkeypatch, name
):
    case = CASES[name]
    expected = write(tmp_path / name, case)
    image = ml.load(tmp_path / name)
    np.testing.assert_allclose(image.array, expected, rtol=1e-6, atol=1e-4)
    assert image.spacing == pytest.approx((case.step_mm, *case.pixel_mm), abs=1e-6)
    thorough = file_by_file(monkeypatch, tmp_path / name)
    assert image.array.dtype == thorough.array.dtype
    np.testing.assert_array_equal(image.array, thorough.array)
    assert image.spacing == thorough.spacing
    assert image.window == pytest.approx(thorough.window)
    # The same meta; padding is counted over the whole series, not one file.
    ours, theirs = dict(image.meta), dict(thorough.meta)
    assert ours.pop("padding", None) is not None or theirs.pop("padding", None) is None
    theirs.pop("padding", None)
    assert ours == theirs


def test_padding_is_counted_over_the_whole_series(tmp_path):
    case = CASES["padding-air"]
    write(tmp_path / "s", case)
    image = ml.load(tmp_path / "s")
    assert image.meta["padding"]["pixels"] == case.slices * 3 * case.cols
    assert image.meta["padding"]["replaced_by"] == -1024


def count_calls(monkeypatch, module, name):
    calls = Counter()
    original = getattr(module, name)

    def counting(*args, **kwargs):
        source = args[0] if args else None
        calls[
            getattr(source, "name", None)
            or len(getattr(source, "getbuffer", lambda: b"")())
        ] += 1
        calls["all"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.mark.parametrize("name", ["square-isotropic", "non-square-anisotropic"])
def test_each_file_is_parsed_once(tmp_path, monkeypatch, name):
    case = CASES[name]
    write(tmp_path / "s", case)
    calls = count_calls(monkeypatch, pydicom, "dcmread")
    image = ml.load(tmp_path / "s")
    assert image.array.shape == (case.slices, case.rows, case.cols)
    assert calls["all"] == case.slices  # one header parse per file, no second read


def test_only_the_needed_header_elements_are_decoded(tmp_path, monkeypatch):
    case = CASES["non-square-anisotropic"]
    write(tmp_path / "s", case)
    header = pydicom.dcmread(next((tmp_path / "s").iterdir()), stop_before_pixels=True)
    elements = len(list(header.iterall()))
    calls = count_calls(monkeypatch, pydicom.dataset, "convert_raw_data_element")
    ml.load(tmp_path / "s")
    per_file = calls["all"] / case.slices
    # The series keys of each file, and the meta allow-list of one header:
    # not every element of every header (more than all of them, before).
    assert per_file < 0.2 * elements, (per_file, elements)


def test_the_volume_is_read_into_one_preallocated_array(tmp_path):
    case = Case(48, 256, 256)  # 6 MiB of int16 values
    write(tmp_path / "s", case)
    ml.load(tmp_path / "s")  # warm: imports, caches
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        image = ml.load(tmp_path / "s")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    volume = image.array.nbytes
    # One volume, its headers and a block of work; not a volume of slices
    # beside the stacked one (2 x before).
    assert peak < 1.25 * volume + 2 * 1024**2, (peak / volume, volume)


def test_a_compressed_series_reads_file_by_file_with_the_same_values(tmp_path):
    case = CASES["non-square-anisotropic"]
    expected = write(tmp_path / "plain", case)
    (tmp_path / "rle").mkdir()
    for path in sorted((tmp_path / "plain").iterdir()):
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(tmp_path / "rle" / path.name)
    image = ml.load(tmp_path / "rle")
    np.testing.assert_allclose(image.array, expected, atol=1e-4)
    np.testing.assert_array_equal(image.array, ml.load(tmp_path / "plain").array)


def test_a_series_from_a_zip_reads_the_same(tmp_path):
    case = CASES["tilted-implicit"]
    expected = write(tmp_path / "s", case)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((tmp_path / "s").iterdir()):
            zf.write(path, f"study/{path.name}")
    image = ml.load(buffer.getvalue())
    np.testing.assert_allclose(image.array, expected, atol=1e-4)


def test_the_series_window_comes_from_a_subsample_close_to_the_whole(tmp_path):
    # Columns of different values: a stride that divides the row length
    # would see a few columns only.
    case = Case(64, 128, 128, intercept=0.0)
    write(tmp_path / "s", case)
    image = ml.load(tmp_path / "s")
    whole = whole_window(image.array)
    sample = ml.display.window_sample(image.array)
    assert sample.size <= 2 * ml.display.WINDOW_SAMPLE
    assert image.window[1] == pytest.approx(whole[1], rel=0.01)
    assert image.window[0] == pytest.approx(whole[0], abs=0.01 * whole[1])
    columns = np.tile(np.arange(128, dtype=np.int16), (64, 128, 1))
    picked = np.unique(ml.display.window_sample(columns, 4096))
    assert picked.size == 128  # every column is sampled
