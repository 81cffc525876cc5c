"""What a value's unit means, in words a reader can act on (MedImage.unit_note)."""

import numpy as np
import pytest

from medimg_lab import MedImage, data


def _image(modality, **meta):
    return MedImage(
        np.zeros((4, 6), np.int16), (0.5, 0.8), modality=modality, meta=meta
    )


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("head_ct", "HU (Hounsfield units)"),
        ("brain_mri", "MR signal intensity"),
        ("chest_xray", "X-ray detector values"),
        ("perfusion_ct", "perfusion map of cerebral blood flow"),
        ("brain_mri_gm", "probability (0 to 1)"),
        ("retina", "RGB level (0 to 255"),
    ],
)
def test_each_sample_says_what_its_unit_is(name, words):
    image = data.sample(name)
    assert image.unit_note.startswith(image.unit)
    assert words in image.unit_note


def test_a_ct_without_a_hu_rescale_says_so():
    note = _image("CT", RescaleType="US", ImageType=["DERIVED", "PRIMARY"]).unit_note
    assert note == "a.u. (CT values; rescale type unspecified, not HU)"
    note = _image("CT", RescaleType="").unit_note
    assert "rescale type not stated, not HU" in note


@pytest.mark.parametrize(
    "meta",
    [
        {"ImageType": None},
        {"ImageType": []},
        {"ImageType": ["ORIGINAL"]},
        {"ImageType": [None, 3, b"x", ""]},
        {"ImageType": "DERIVED\\PRIMARY\\PERFUSION"},
        {"RescaleType": None},
    ],
)
def test_hostile_headers_still_give_a_sentence(meta):
    for modality in ("CT", "MR", "XX", ""):
        note = _image(modality, **meta).unit_note
        assert note.startswith(("HU", "a.u. (")) and note.endswith(")")


def test_image_type_as_one_backslash_string():
    meta = {"ImageType": "DERIVED\\PRIMARY\\PERFUSION\\RCBV", "RescaleType": "US"}
    assert "perfusion map of cerebral blood volume" in _image("CT", **meta).unit_note
