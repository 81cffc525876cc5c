"""Every DICOM file that ``load`` opens can be exported de-identified (issue 17).

Run over the whole corpus of :mod:`tests.io.test_corpus` (pydicom's and
pydicom-data's test files, as installed). A file the export refuses must be
one that :func:`medimg_lab.load` refuses too; every export is a Part 10 file
with a zeroed preamble that reads back.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import OrderedDict

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from test_corpus import corpus

import medimg_lab as ml
from medimg_lab.errors import MedImgError, NotAnImageError
from medimg_lab.io import deid
from medimg_lab.io.deid import deidentified_bytes, export_deidentified
from tests.helpers import dicom_file

SALT = "corpus-test-salt"


@pytest.fixture(autouse=True)
def _fresh_salt_registry(monkeypatch):
    monkeypatch.setattr(deid, "_SEEN", OrderedDict())


def test_ot_pal_8_face_loads_and_exports(tmp_path):
    """A raw dataset (no preamble, no file meta): load opens it, so must export."""
    path = dicom_file("OT-PAL-8-face.dcm")
    assert path.read_bytes()[128:132] != b"DICM"
    out = tmp_path / "face.dcm"
    report = export_deidentified(path, out, salt=SALT)
    raw = out.read_bytes()
    assert raw[:128] == bytes(128) and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.get("PatientName", "")) == ""
    assert report.burned_in_annotation  # OT without the attribute
    np.testing.assert_array_equal(ml.load(out).array, ml.load(path).array)


@pytest.mark.parametrize(
    ("name", "implicit"), [("CT_small.dcm", True), ("MR_small.dcm", False)]
)
def test_a_raw_dataset_written_here_exports_like_its_part10_file(name, implicit):
    """The same object without preamble and meta: load opens both, both export."""
    ds = pydicom.dcmread(dicom_file(name))
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, implicit
    write_dataset(buf, ds)
    raw = buf.getvalue()
    assert ml.load(raw).array.shape == ml.load(dicom_file(name)).array.shape
    out, _ = deidentified_bytes(raw, salt=SALT)
    ref, _ = deidentified_bytes(dicom_file(name), salt=SALT)
    a, b = pydicom.dcmread(io.BytesIO(out)), pydicom.dcmread(io.BytesIO(ref))
    assert a.SOPInstanceUID == b.SOPInstanceUID
    np.testing.assert_array_equal(a.pixel_array, b.pixel_array)


def test_every_corpus_file_load_opens_exports():
    exported, refused, wrong = 0, [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, path in corpus():
            try:
                raw, _ = deidentified_bytes(path, salt=SALT)
            except MedImgError as err:
                refused.append((label, path, err))
                continue
            exported += 1
            if raw[:132] != bytes(128) + b"DICM":
                wrong.append(f"{label}: preamble or DICM marker")
            elif pydicom.dcmread(io.BytesIO(raw)).PatientIdentityRemoved != "YES":
                wrong.append(f"{label}: not marked de-identified")
        loads_but_refused = []
        for label, path, err in refused:
            try:
                ml.load(path)
            except MedImgError:
                continue
            loads_but_refused.append(f"{label}: {err}")
    print(f"{exported} exported, {len(refused)} refused (load refuses them too)")
    assert exported > 150
    assert loads_but_refused == []
    assert wrong == []


@pytest.mark.parametrize(
    ("maker", "needle"),
    [
        (lambda p: ml.save(ml.data.sample("spine_ct"), p / "a.nii.gz"), "NIfTI"),
        (
            lambda p: ml.save(
                ml.data.sample("spine_ct"), p / "a.png", window="default"
            ),
            "PNG",
        ),
    ],
)
def test_images_that_are_not_dicom_are_refused_with_what_to_do(tmp_path, maker, needle):
    path = maker(tmp_path)
    with pytest.raises(NotAnImageError, match=needle) as info:
        deidentified_bytes(path, salt=SALT)
    assert "save()" in str(info.value)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(NotAnImageError, match="regular file"):
        deidentified_bytes(fifo, salt=SALT)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(NotAnImageError, match="folder"):
        deidentified_bytes(tmp_path, salt=SALT)


@pytest.mark.parametrize("seed", range(6))
def test_damaged_files_are_refused_with_a_sentence(seed, tmp_path):
    """Hostile inputs made here: a real file cut or overwritten at random."""
    rng = np.random.default_rng(seed)
    raw = bytearray(dicom_file("CT_small.dcm").read_bytes())
    if seed % 2:
        raw = raw[: int(rng.integers(140, 2000))]
    else:
        at = int(rng.integers(132, 1500))
        raw[at : at + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    try:
        out, _ = deidentified_bytes(bytes(raw), salt=SALT)
    except MedImgError as err:
        text = str(err)
        assert text.startswith("<bytes>: ")
        assert "Traceback" not in text and "Error:" not in text, text
    else:
        assert out[:132] == bytes(128) + b"DICM"
