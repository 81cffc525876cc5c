"""Zip archives: inflated bytes are counted as they are read.

The archive's declared sizes are claims; a member is refused once it
inflates more than 200 times its compressed size (past the first 16 MiB, or
a quarter of the budget), before the DICOM reader ever sees it. An archive
inside the archive is not opened. The hostile archives are written here,
streamed, and are a few hundred kilobytes.
"""

from __future__ import annotations

import io
import shutil
import zipfile

import pydicom
import pytest

import medimg_lab as ml
from medimg_lab.io.dicom import zip_members
from tests.fuzz.loadcheck import library_text
from tests.helpers import dicom_file

MAX_BYTES = 64 * 1024**2


def zeros_member(zf: zipfile.ZipFile, name: str, size: int) -> None:
    block = bytes(1024**2)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as fh:
        for _ in range(size // len(block)):
            fh.write(block)


def bomb_zip(size: int = 60 * 1024**2) -> bytes:
    """One member of ``size`` zeros: under the declared-size check."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zeros_member(zf, "slice.dcm", size)
    return buf.getvalue()


def test_bomb_member_is_refused_as_it_inflates(monkeypatch):
    data = bomb_zip()
    assert len(data) < 1024**2
    real = pydicom.dcmread

    def parse(fp, *args, **kwargs):
        head = fp.read(200) if hasattr(fp, "read") else b""
        assert any(head), "pydicom was handed the bomb's zeros"
        fp.seek(0)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", parse)
    with pytest.raises(ml.MedImgError) as info:
        ml.load(data, max_bytes=MAX_BYTES)
    message = str(info.value)
    assert "decompression bomb" in message and "slice.dcm" in message, message
    assert library_text(message) == []


def test_zip_members_refuses_the_bomb_too():
    with pytest.raises(ml.ImageTooLargeError, match="200 times"):
        zip_members(bomb_zip(), "upload.zip", MAX_BYTES)


def test_archive_inside_the_archive_is_not_opened(tmp_path):
    inner = bomb_zip(32 * 1024**2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner.zip", inner)
        zf.write(dicom_file("CT_small.dcm"), "ct.dcm")
    image = ml.load(buf.getvalue(), max_bytes=MAX_BYTES)
    assert image.array.shape == (128, 128)
    reasons = {e["file"]: e["reason"] for e in image.meta["skipped"]}
    assert "archive inside the archive" in reasons["inner.zip"]


def test_genuine_series_zip_loads_member_by_member(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(3):
        ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k}"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0, 0, 5.0 * k]
        ds.save_as(folder / f"{k}.dcm")
    archive = shutil.make_archive(str(tmp_path / "series"), "zip", folder)
    data = open(archive, "rb").read()
    image = ml.load(data, max_bytes=MAX_BYTES)
    assert image.array.shape == (3, 128, 128)
    assert image.spacing[0] == pytest.approx(5.0)
