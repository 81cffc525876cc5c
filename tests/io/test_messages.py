"""Every refusal is a sentence of ours: the file, what is wrong, what would work.

The hostile inputs are made here, small. Each message must name the file,
carry no library text (no exception class names, no "Error:", no phrases of
NumPy, nibabel, pydicom or Pillow), and keep the library's exception as its
``__cause__``, so that a traceback still shows it.
"""

from __future__ import annotations

import io
import struct
import zipfile

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel import cifti2

import medimg_lab as ml
from medimg_lab.io.models import load_trusted
from tests.fuzz.loadcheck import library_text
from tests.helpers import dicom_file


def dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def check_sentence(error: BaseException, name: str, *, chained: bool = True) -> None:
    message = str(error)
    assert isinstance(error, ml.MedImgError), repr(error)
    assert message.startswith(f"{name}:"), message
    assert library_text(message) == [], message
    assert error.problem.endswith(".") and error.fix.endswith("."), message
    if chained:
        assert error.__cause__ is not None, message
        assert not isinstance(error.__cause__, ml.MedImgError), message


def test_library_text_is_recognised():
    # The checker itself: the messages the review saw are caught.
    seen = (
        "could not be read (OverflowError: Python int too large to convert to C long)",
        "LinAlgError: SVD did not converge",
        "Alias 'uint0' was removed in NumPy 2.0",
        "AttributeError: 'Cifti2Header' object has no attribute 'get_data_shape'",
    )
    for text in seen:
        assert library_text(text), text
    assert library_text("a.dcm: holds no pixel data. Open an image.") == []


def test_palette_with_zero_bits_per_entry(tmp_path):
    ds = pydicom.dcmread(dicom_file("OT-PAL-8-face.dcm"), force=True)
    entries, first, _ = ds.RedPaletteColorLookupTableDescriptor
    ds.RedPaletteColorLookupTableDescriptor = [entries, first, 0]
    path = tmp_path / "palette.dcm"
    path.write_bytes(dicom_bytes(ds))
    with pytest.raises(ml.DecodeError) as info:
        ml.load(path)
    check_sentence(info.value, "palette.dcm")
    assert "palette" in info.value.problem


def nifti_with_nan_sform() -> bytes:
    raw = bytearray(
        nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)).to_bytes()
    )
    raw[254:256] = struct.pack("<h", 1)  # sform_code: scanner
    raw[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]
    return bytes(raw)


def test_nifti_whose_sform_holds_nan(tmp_path):
    path = tmp_path / "nan.nii"
    path.write_bytes(nifti_with_nan_sform())
    with pytest.raises(ml.MedImgError) as info:
        ml.load(path)
    check_sentence(info.value, "nan.nii", chained=False)
    assert "NaN" in info.value.problem and "affine" in info.value.problem


def test_cifti2_file_is_named_for_what_it_is(tmp_path):
    model = cifti2.Cifti2BrainModel(
        index_offset=0,
        index_count=3,
        model_type="CIFTI_MODEL_TYPE_SURFACE",
        brain_structure="CIFTI_STRUCTURE_CORTEX_LEFT",
        n_surface_vertices=10,
        vertex_indices=cifti2.Cifti2VertexIndices([0, 1, 2]),
    )
    matrix = cifti2.Cifti2Matrix()
    matrix.append(
        cifti2.Cifti2MatrixIndicesMap(
            (0,), "CIFTI_INDEX_TYPE_SCALARS", maps=[cifti2.Cifti2NamedMap("a")]
        )
    )
    matrix.append(
        cifti2.Cifti2MatrixIndicesMap(
            (1,), "CIFTI_INDEX_TYPE_BRAIN_MODELS", maps=[model]
        )
    )
    image = cifti2.Cifti2Image(
        np.zeros((1, 3), np.float32), cifti2.Cifti2Header(matrix)
    )
    path = tmp_path / "thickness.dscalar.nii"
    image.to_filename(path)
    with pytest.raises(ml.MedImgError) as info:
        ml.load(path)
    check_sentence(info.value, "thickness.dscalar.nii", chained=False)
    assert "CIFTI-2" in info.value.problem


@pytest.mark.parametrize(
    "damage",
    ["cut", "gzip", "dicom-header"],
)
def test_damaged_inputs_keep_the_library_error_as_the_cause(damage):
    raw = dicom_file("CT_small.dcm").read_bytes()
    if damage == "cut":
        pos = raw.find(b"\x08\x00\x70\x00")  # Manufacturer: cut in its value
        data = raw[: pos + 11]
        kind = ml.TruncatedFileError
    elif damage == "gzip":
        import gzip

        noise = np.random.default_rng(0).integers(0, 4000, (16, 16, 16))
        nifti = nib.Nifti1Image(noise.astype(np.int16), np.eye(4)).to_bytes()
        packed = bytearray(gzip.compress(nifti, mtime=0))
        packed[-8:-4] = b"\0\0\0\0"  # the stream's CRC-32
        data = bytes(packed)
        kind = ml.MedImgError
    else:
        data = bytearray(raw)
        pos = data.find(b"\x28\x00\x10\x00")  # Rows: give it a 3-byte value
        data[pos + 4 : pos + 8] = b"US\x03\x00"
        data = bytes(data)
        kind = ml.MedImgError
    with pytest.raises(kind) as info:
        ml.load(data)
    check_sentence(info.value, f"<{len(data)} bytes>")


def test_skops_array_of_pickled_objects_is_untrusted(tmp_path):
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump({"format": "demo", "weights": np.arange(4.0)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    array = next(n for n in members if n.endswith(".npy"))
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    members[array] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(ml.UntrustedModelError) as info:
        load_trusted(path, trusted=[], format="demo", saved_by="save_demo")
    check_sentence(info.value, str(path))
    assert "pickled" in info.value.problem
