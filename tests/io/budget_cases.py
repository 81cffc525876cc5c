"""Hostile inputs for the working-set budget, made here, small on disk.

Each maker writes one file into a folder and returns its name. The inputs
are scaled to a 64 MiB budget (``MAX_BYTES``): every one of them is admitted
by the header check (its decoded output fits the budget), so what is tested
is the working set of decoding it, which must stay under 1.5 x the budget.
``python -m tests.io.budget_cases FOLDER`` runs them all in a fresh process
(see :func:`measure`) and prints one JSON line per input: the peak resident
set growth and the tracemalloc peak of its ``load``.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

MAX_BYTES = 64 * 1024**2
#: What one load may add to the resident set: 1.5 x the budget, beside the
#: imported libraries (measured after a warm-up load of every format), and
#: 4 MiB of allocator and codec state.
ALLOWED = int(1.5 * MAX_BYTES) + 4 * 1024**2


def tiff_bytes(
    pages: int,
    height: int,
    width: int,
    *,
    fill: int = 0,
    next_past_end: bool = False,
) -> bytes:
    """A grey 8-bit TIFF whose ``pages`` all point to one deflated strip.

    A few kilobytes that decode to ``pages * height * width`` bytes. With
    ``next_past_end``, the last page links to a next page past the end of
    the file.
    """
    strip = zlib.compress(bytes([fill]) * (height * width), 9)
    out = bytearray(b"II*\0" + struct.pack("<I", 0))
    strip_at = len(out)
    out += strip
    if len(out) % 2:
        out += b"\0"
    tags = [
        (256, 4, width),  # ImageWidth
        (257, 4, height),  # ImageLength
        (258, 3, 8),  # BitsPerSample
        (259, 3, 8),  # Compression: deflate
        (262, 3, 1),  # PhotometricInterpretation: black is zero
        (273, 4, strip_at),  # StripOffsets
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, len(strip)),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(tags) + 4
    first = len(out)
    struct.pack_into("<I", out, 4, first)
    for k in range(pages):
        here = first + k * ifd_size
        last = k == pages - 1
        nxt = (10**9 if next_past_end else 0) if last else here + ifd_size
        out += struct.pack("<H", len(tags))
        for tag, kind, value in tags:
            out += struct.pack("<HHII", tag, kind, 1, value)
        out += struct.pack("<I", nxt)
    return bytes(out)


def png16_rgba(side: int) -> bytes:
    """A ``side``² RGBA PNG of 16 bits per sample, a few kilobytes."""
    import cv2

    image = np.empty((side, side, 4), np.uint16)
    image[..., 0], image[..., 1], image[..., 2], image[..., 3] = 1000, 2000, 3000, 65535
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()


def ct_dicom(
    rows: int,
    cols: int,
    *,
    frames: int = 1,
    intercept: str = "-1024",
    slope: str = "1",
    syntax: str = "deflate",
    value: int = 1000,
) -> bytes:
    """CT_small.dcm grown to ``frames`` x ``rows`` x ``cols`` of one value."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    if frames > 1:
        ds.NumberOfFrames = frames
    arr = np.full(
        (frames, rows, cols) if frames > 1 else (rows, cols), value, np.uint16
    )
    if syntax == "rle":
        ds.compress(RLELossless, arr, encoding_plugin="pylibjpeg")
    else:
        ds.PixelData = arr.tobytes()
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def nifti_gz(shape: tuple[int, int, int]) -> bytes:
    """A .nii.gz of int16 sevens, reoriented on load (a flipped x axis)."""
    import gzip

    import nibabel as nib

    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    raw = nib.Nifti1Image(np.full(shape, 7, np.int16), affine).to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0)


#: name -> (maker, what the load must do); sizes fit the 64 MiB budget.
CASES = {
    # 60 pages of 1024² sharing one strip: 60 MiB decoded (was decoded page
    # list + np.stack: twice that).
    "tiff-shared-strip.tif": lambda: tiff_bytes(60, 1024, 1024),
    # 2800² RGBA 16-bit: 45 MiB as RGB 16-bit, 90 MiB with the decoder's
    # copy (was charged as 8-bit RGB, 22 MiB, and decoded with alpha, twice
    # over, then copied to RGB).
    "rgba16.png": lambda: png16_rgba(2800),
    # 3968² CT, 12-bit, integral rescale: 60 MiB charged at 4 bytes a value,
    # decoded to int16 (was an int64 rescale beside the raw array).
    "ct-deflated.dcm": lambda: ct_dicom(3968, 3968),
    # 15 RLE frames of 1024², integral rescale to int16.
    "ct-rle.dcm": lambda: ct_dicom(1024, 1024, frames=15, syntax="rle"),
    # 7 frames of 1448² with a non-integral slope: float32 output, 56 MiB.
    "ct-float.dcm": lambda: ct_dicom(1448, 1448, frames=7, slope="0.5"),
    # 260 x 400 x 200 int16, 40 MiB, and its reoriented copy (was three
    # copies from an upload: the inflated bytes, the voxels, the copy).
    "volume.nii.gz": lambda: nifti_gz((260, 400, 200)),
}


def write_cases(folder: Path) -> dict[str, int]:
    """Write every case into ``folder``; return each file's size in bytes."""
    sizes = {}
    for name, make in CASES.items():
        data = make()
        (folder / name).write_bytes(data)
        sizes[name] = len(data)
    return sizes


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(key)


def measure(folder: Path, names: list[str], max_bytes: int = MAX_BYTES) -> None:
    """Load each file once and print its peak memory growth, as JSON lines.

    Run in a fresh process with a fixed glibc mmap threshold (see
    :func:`run`), so that what one load frees goes back to the system and
    does not hide the next load's peak.
    """
    import os
    import tracemalloc
    import warnings

    if os.environ.get("BUDGET_ROOT"):  # another checkout of the package
        sys.path.insert(0, os.environ["BUDGET_ROOT"])
    import medimg_lab as ml

    warnings.simplefilter("ignore")
    warm = folder / "warm"
    warm.mkdir(exist_ok=True)
    small = {
        "w.tif": tiff_bytes(2, 8, 8),
        "w.png": png16_rgba(8),
        "w1.dcm": ct_dicom(8, 8),
        "w2.dcm": ct_dicom(8, 8, frames=2, syntax="rle"),
        "w3.dcm": ct_dicom(8, 8, frames=2, slope="0.5"),
        "w4.nii.gz": nifti_gz((4, 4, 4)),
    }
    for name, data in small.items():
        (warm / name).write_bytes(data)
        ml.load(warm / name, max_bytes=max_bytes)
    tracemalloc.start()
    for name in names:
        base = _status("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak resident set starts again from here
        tracemalloc.reset_peak()
        traced_base = tracemalloc.get_traced_memory()[0]
        try:
            image = ml.load(folder / name, max_bytes=max_bytes)
            outcome = {
                "loaded": list(image.array.shape),
                "dtype": str(image.array.dtype),
            }
            del image
        except ml.MedImgError as exc:
            outcome = {"refused": str(exc)}
        peak = _status("VmHWM") - base
        traced = tracemalloc.get_traced_memory()[1] - traced_base
        print(json.dumps({"name": name, "rss": peak, "traced": traced, **outcome}))
        sys.stdout.flush()


def run(folder: Path, names: list[str], root: Path | None = None) -> dict[str, dict]:
    """Run :func:`measure` in a fresh interpreter; return its lines by name."""
    import os
    import subprocess

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")])
    if root:
        env["BUDGET_ROOT"] = str(root)
    done = subprocess.run(  # noqa: S603 this interpreter, this module
        [sys.executable, "-m", "tests.io.budget_cases", str(folder), *names],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    lines = [
        json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")
    ]
    return {line["name"]: line for line in lines}


if __name__ == "__main__":
    measure(Path(sys.argv[1]), sys.argv[2:])
