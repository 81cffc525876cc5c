"""Every sample loads offline, with provenance and license."""

from __future__ import annotations

import numpy as np
import pytest

import medimg_lab as ml

EXPECTED = {
    "head_ct": ("CT", (512, 512)),
    "spine_ct": ("CT", (128, 128)),
    "chest_xray": ("CR", (1955, 1841)),
    "tibia_xray": ("CR", None),
    "shoulder_mr": ("MR", (1024, 1024)),
    "abdomen_mr": ("MR", None),
    "perfusion_ct": ("CT", (2, 512, 512)),
    "ultrasound": ("US", (480, 640, 3)),
    "brain_mri": ("MR", None),
    "brain_mri_gm": ("MR", None),
    "brain_mri_wm": ("MR", None),
    "retina": ("OP", (1411, 1411, 3)),
}


def test_samples_are_listed_with_provenance():
    listed = ml.data.samples()
    assert [s.name for s in listed] == list(EXPECTED)
    for s in listed:
        assert s.description and s.provenance and s.license


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_sample_loads(name, expected):
    modality, shape = expected
    image = ml.data.sample(name)
    assert image.modality == modality
    if shape:
        assert image.array.shape == shape
    assert image.meta["sample"] == name and image.meta["license"]
    assert np.isfinite(image.array).all()


def test_brain_tissue_maps_are_probabilities_on_the_brain_grid():
    brain = ml.data.sample("brain_mri")
    gm, wm = ml.data.sample("brain_mri_gm"), ml.data.sample("brain_mri_wm")
    assert gm.array.shape == wm.array.shape == brain.array.shape
    assert gm.spacing == brain.spacing
    for tissue in (gm, wm):
        assert tissue.array.dtype == np.float32
        assert 0 <= tissue.array.min() and tissue.array.max() <= 1
    # White matter is brighter than gray matter on T1.
    t1 = brain.array.astype(float)
    assert t1[wm.array > 0.9].mean() > t1[gm.array > 0.9].mean() + 10


def test_sample_names_are_forgiving_and_unknown_ones_list_choices():
    assert ml.data.sample("Head CT").meta["sample"] == "head_ct"
    with pytest.raises(ValueError, match="head_ct, spine_ct"):
        ml.data.sample("knee_mr")
