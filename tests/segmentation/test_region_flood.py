"""Region growing floods from its seeds: the same masks as labelling every
component and keeping the seeds' ones (the method it replaced), on real
images of several shapes and dtypes, and on hostile inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from scipy import ndimage

import medimg_lab as ml
from medimg_lab import segmentation as S
from medimg_lab.display import auto_window
from medimg_lab.segmentation import region


def _labelled(candidate, seeds, connectivity):
    """The replaced method: label every component, keep the seeds' ones."""
    structure = ndimage.generate_binary_structure(candidate.ndim, connectivity)
    labels, _ = ndimage.label(candidate, structure)
    keep = {int(labels[s]) for s in seeds} - {0}
    return np.isin(labels, list(keep)) if keep else np.zeros_like(candidate)


def _reference(
    image,
    seeds,
    *,
    method="tolerance",
    tolerance=None,
    multiplier=2.5,
    iterations=4,
    connectivity=1,
):
    """region_grow as it was before flooding (float32 copy + labelling)."""
    seeds = [tuple(s) for s in seeds]
    values = image.astype(np.float32, copy=False)
    seed_values = np.array([values[s] for s in seeds], dtype=np.float64)
    if method == "tolerance":
        if tolerance is None:
            tolerance = 0.1 * auto_window(image)[1]
        candidate = np.abs(values - seed_values.mean()) <= tolerance
        return _labelled(candidate, seeds, connectivity)
    grown_region = np.zeros(image.shape, bool)
    for s in seeds:
        grown_region[tuple(slice(max(v - 1, 0), v + 2) for v in s)] = True
    for _ in range(iterations):
        inside = values[grown_region]
        mean, sd = float(inside.mean()), float(inside.std())
        sd = max(sd, 1e-6 * max(1.0, abs(mean)))
        candidate = np.abs(values - mean) <= multiplier * sd
        grown = _labelled(candidate, seeds, connectivity)
        if np.array_equal(grown, grown_region) or not grown.any():
            break
        grown_region = grown
    return grown_region


@pytest.fixture(scope="module")
def images():
    """Real images: 2D square and non-square, 3D isotropic and anisotropic
    (every other slice of the MNI volume: 2 mm along z), int, uint8, float."""
    brain = ml.data.sample("brain_mri").array
    chest = ml.data.sample("chest_xray").array
    return {
        "head CT 512² int16": ml.data.sample("head_ct").array,
        "spine CT 128²": ml.data.sample("spine_ct").array,
        "chest film crop 700×450": chest[600:1300, 500:950],
        "brain MRI 3D uint8": brain[30:160, 40:200, 30:170],
        "brain MRI 2 mm z": brain[20:170:2, 30:210, 20:180],
        "gray matter 3D float": ml.data.sample("brain_mri_gm").array[
            40:150, 50:190, 40:160
        ],
    }


def _seeds(image, count, seed):
    rng = np.random.default_rng(seed)
    lo = [n // 4 for n in image.shape]
    hi = [3 * n // 4 for n in image.shape]
    return [
        tuple(int(rng.integers(a, b)) for a, b in zip(lo, hi, strict=True))
        for _ in range(count)
    ]


@pytest.mark.parametrize(
    "name",
    [
        "head CT 512² int16",
        "spine CT 128²",
        "chest film crop 700×450",
        "brain MRI 3D uint8",
        "brain MRI 2 mm z",
        "gray matter 3D float",
    ],
)
def test_tolerance_growing_equals_the_labelling_method(images, name):
    image = images[name]
    width = auto_window(image)[1]
    cases = 0
    for k, (fraction, nseeds) in enumerate([(None, 1), (0.05, 1), (0.2, 3), (0.1, 9)]):
        seeds = _seeds(image, nseeds, seed=k)
        tolerance = None if fraction is None else fraction * width
        for connectivity in range(1, image.ndim + 1):
            expected = _reference(
                image, seeds, tolerance=tolerance, connectivity=connectivity
            )
            got = S.region_grow(
                image, seeds, tolerance=tolerance, connectivity=connectivity
            )
            assert got.dtype == bool and got.shape == image.shape
            np.testing.assert_array_equal(got, expected)
            cases += expected.any()
    assert cases > 0  # the seeds did grow regions


@pytest.mark.parametrize(
    "name",
    ["head CT 512² int16", "brain MRI 2 mm z", "gray matter 3D float", "spine CT 128²"],
)
def test_confidence_growing_equals_the_labelling_method(images, name):
    image = images[name]
    for k, (multiplier, iterations) in enumerate([(2.5, 4), (1.0, 2), (4.0, 6)]):
        seeds = _seeds(image, 2, seed=10 + k)
        expected = _reference(
            image,
            seeds,
            method="confidence",
            multiplier=multiplier,
            iterations=iterations,
        )
        got = S.region_grow(
            image,
            seeds,
            method="confidence",
            multiplier=multiplier,
            iterations=iterations,
        )
        np.testing.assert_array_equal(got, expected)


def test_many_seeds_in_separate_regions_all_grow():
    """More separate seeded regions than floods made one by one (the rest by
    one labelling): every seeded disc, no unseeded one."""
    rng = np.random.default_rng(3)
    image = rng.normal(0, 2, (120, 200)).astype(np.float32)
    centers = [(20 + 40 * (i // 5), 20 + 40 * (i % 5)) for i in range(15)]
    yy, xx = np.mgrid[:120, :200]
    for cy, cx in centers:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] += 100
    seeds = centers[: region._MAX_FLOODS * 2 + 1]
    got = S.region_grow(image, seeds, tolerance=20)
    np.testing.assert_array_equal(got, _reference(image, seeds, tolerance=20))
    labels, _ = ndimage.label(got)
    assert len(set(labels[c] for c in seeds)) == len(seeds)
    assert not any(got[c] for c in centers[len(seeds) :])


@pytest.mark.parametrize("dtype", ["binary", np.int8, np.uint16, np.int32, np.float64])
def test_hostile_dtypes_equal_the_labelling_method(dtype):
    rng = np.random.default_rng(5)
    if dtype == "binary":
        image = (rng.random((40, 60)) > 0.4).astype(np.uint8)
    elif np.dtype(dtype).kind == "f":
        image = rng.normal(0, 1e3, (20, 30, 40)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, (50, 70), endpoint=True).astype(dtype)
    seeds = _seeds(image, 3, seed=6)
    for tolerance in (0, 0.3 * float(np.ptp(image.astype(np.float64))), None):
        expected = _reference(image, seeds, tolerance=tolerance)
        np.testing.assert_array_equal(
            S.region_grow(image, seeds, tolerance=tolerance), expected
        )


def test_constant_image_grows_everywhere_and_leaves_it_unchanged():
    image = np.full((30, 40), 7, np.int16)
    before = image.copy()
    assert S.region_grow(image, [(3, 4)], tolerance=0).all()
    assert S.region_grow(image, [(3, 4)], method="confidence").all()
    np.testing.assert_array_equal(image, before)


def test_one_seed_floods_without_labelling_every_component(images, monkeypatch):
    """The work is the seeds' region, not every component of the volume."""

    def refuse(*args, **kwargs):
        raise AssertionError("ndimage.label called: every component labelled")

    monkeypatch.setattr(scipy.ndimage, "label", refuse)
    image = images["brain MRI 2 mm z"]
    seed = tuple(n // 2 for n in image.shape)
    assert S.region_grow(image, [seed]).any()
    assert S.region_grow(image, [seed], method="confidence").any()
