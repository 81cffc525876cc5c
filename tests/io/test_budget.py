"""The budget bounds the working set of a load, not only the header's sums.

Hostile inputs from ``budget_cases`` (a few kilobytes each on disk) are
loaded in a fresh process under a 64 MiB budget; the growth of its peak
resident set (``/proc/self/status`` VmHWM, reset before each load) and the
tracemalloc peak must stay under 1.5 x the budget plus 4 MiB (the imported
libraries are loaded before the measurement). Each of these inputs needed
2 to 5.5 x its budget before: int64 rescales beside the raw array, decoded
page lists stacked into a second copy, a 16-bit RGBA PNG charged as 8-bit
RGB and copied twice.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from tests.helpers import dicom_file
from tests.io import budget_cases
from tests.io.budget_cases import ALLOWED, CASES, MAX_BYTES, ct_dicom, png16_rgba


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("budget")
    sizes = budget_cases.write_cases(folder)
    assert max(sizes.values()) < 1024**2  # small on disk
    return budget_cases.run(folder, list(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_one_load_stays_within_one_and_a_half_budgets(peaks, name):
    line = peaks[name]
    assert "loaded" in line, line  # the header check admits it: it fits
    mib = {k: round(line[k] / 1024**2, 1) for k in ("rss", "traced")}
    assert line["rss"] <= ALLOWED, (name, mib)
    assert line["traced"] <= ALLOWED, (name, mib)


def dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_integral_rescale_decodes_in_the_output_type():
    # 12-bit raw values, intercept -1024: the HU (1976) are exact, in the
    # smallest type that holds them (the working set is test_one_load_...).
    data = ct_dicom(40, 56, intercept="-1024", value=3000)
    image = ml.load(data)
    assert image.array.dtype == np.uint16
    assert image.array.shape == (40, 56)
    assert np.all(image.array == 3000 - 1024)


@pytest.mark.parametrize("slope", ["1e20", "-3e25", "1e300"])
def test_rescale_beyond_int64_loads_as_float(slope):
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    raw = ds.pixel_array.astype(np.float64)
    ds.RescaleSlope, ds.RescaleIntercept = slope, "7"
    image = ml.load(dicom_bytes(ds))
    assert image.array.dtype.kind == "f"
    assert np.all(np.isfinite(image.array))
    expected = raw * float(slope) + 7
    np.testing.assert_allclose(image.array, expected, rtol=1e-6)


def test_per_frame_rescales_and_monochrome1_in_one_pass():
    # Two frames of known raw values with different integral rescales, then
    # MONOCHROME1: value = lo + hi - (raw * slope + intercept), lo..hi the
    # stored range under the first frame's rescale.
    ds = pydicom.dcmread(dicom_bytes_of(ct_dicom(6, 7, frames=2, value=100)))
    ds.PhotometricInterpretation = "MONOCHROME1"
    del ds.RescaleSlope, ds.RescaleIntercept
    groups = []
    for slope, intercept in ((2, -10), (3, 5)):
        item = pydicom.Dataset()
        item.RescaleSlope, item.RescaleIntercept = slope, intercept
        item.RescaleType = "US"
        frame = pydicom.Dataset()
        frame.PixelValueTransformationSequence = [item]
        groups.append(frame)
    ds.PerFrameFunctionalGroupsSequence = groups
    image = ml.load(dicom_bytes(ds))
    lo, hi = 0 * 2 - 10, 4095 * 2 - 10
    expected = np.array([lo + hi - (100 * 2 - 10), lo + hi - (100 * 3 + 5)])
    assert image.array.dtype.kind in "iu"
    np.testing.assert_array_equal(image.array[:, 0, 0], expected)
    assert image.meta["monochrome1_inverted"]


def dicom_bytes_of(data: bytes):
    return io.BytesIO(data)


@pytest.mark.parametrize("side", [64, 95])
def test_png_is_charged_by_its_real_sample_size(side):
    # A 16-bit RGBA PNG decodes to 3 bands of 2 bytes, and OpenCV holds a
    # copy while it decodes: 2 x side² x 6 bytes. A budget that fits that
    # within 1.5 x admits it; one byte less is refused before decoding.
    data = png16_rgba(side)
    out = side * side * 6
    image = ml.load(data, max_bytes=int(np.ceil(2 * out / 1.5)))
    assert image.array.shape == (side, side, 3)
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array[0, 0], [3000, 2000, 1000])
    assert image.meta["alpha_dropped"]
    with pytest.raises(ml.ImageTooLargeError, match="2 bytes"):
        ml.load(data, max_bytes=int(np.ceil(2 * out / 1.5)) - 2)


def test_budget_caps_grey_png_by_depth():
    image = np.full((50, 70), 40000, np.uint16)
    data = cv2.imencode(".png", image)[1].tobytes()
    need = 50 * 70 * 2
    assert ml.load(data, max_bytes=need * 2).array.dtype == np.uint16
    with pytest.raises(ml.ImageTooLargeError):
        ml.load(data, max_bytes=need - 1)


def test_the_stated_budget_is_small_in_these_tests():
    assert MAX_BYTES == 64 * 1024**2
    assert ALLOWED == 96 * 1024**2 + 4 * 1024**2
