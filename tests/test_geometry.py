"""medimg_lab.geometry, without a UI: what the rulers, ROIs, brushes and the
compare dashboard's B-on-A grid show, against truths built by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medimg_lab import data
from medimg_lab.geometry import (
    box_statistics,
    brush_pixels,
    disc_mask,
    distance_mm,
    onto_grid,
    slice_onto,
)
from medimg_lab.image import MedImage

RNG = np.random.default_rng(18)


@pytest.fixture(scope="module")
def spine_ct():
    return data.sample("spine_ct")


@pytest.fixture(scope="module")
def brain_mri():
    return data.sample("brain_mri")


# ----------------------------------------------------------------- distance
@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0), (0.488, 0.488), (0.7, 1.9), (2.5, 0.5, 0.8)]
)
def test_distance_is_the_length_between_physical_points(spacing):
    for _ in range(20):
        p = RNG.integers(0, 300, len(spacing))
        q = RNG.integers(0, 300, len(spacing))
        where_p = [i * s for i, s in zip(p, spacing, strict=True)]
        where_q = [i * s for i, s in zip(q, spacing, strict=True)]
        assert distance_mm(p, q, spacing) == pytest.approx(math.dist(where_p, where_q))


def test_distance_refuses_mismatched_points_and_bad_spacing():
    with pytest.raises(ValueError, match="p and q"):
        distance_mm((0, 0), (1, 2, 3), (1.0, 1.0))
    for bad in [(1.0,), (0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0)]:
        with pytest.raises(ValueError, match="spacing must be 2 positive"):
            distance_mm((0, 0), (1, 1), bad)


# ------------------------------------------------------------------ ROI box
def _stats_by_mask(array, p, q):
    """The same statistics through a boolean mask: an independent route."""
    grid = np.indices(array.shape[: len(p)])
    inside = np.ones(array.shape[: len(p)], bool)
    for axis, (a, b) in enumerate(zip(p, q, strict=True)):
        inside &= (grid[axis] >= min(a, b)) & (grid[axis] <= max(a, b))
    values = array[inside].astype(np.float64)
    return values, int(inside.sum())


@pytest.mark.parametrize("sample", ["spine_ct", "chest_xray", "abdomen_mr"])
def test_box_statistics_of_real_images(sample):
    image = data.sample(sample)
    rows, cols = image.array.shape
    for _ in range(5):
        p = (int(RNG.integers(0, rows)), int(RNG.integers(0, cols)))
        q = (int(RNG.integers(0, rows)), int(RNG.integers(0, cols)))
        stats = box_statistics(image.array, p, q, image.spacing)
        values, count = _stats_by_mask(image.array, p, q)
        assert stats["pixels"] == count
        assert stats["area_mm2"] == pytest.approx(count * np.prod(image.spacing))
        assert stats["mean"] == pytest.approx(values.mean())
        assert stats["sd"] == pytest.approx(values.std())
        assert (stats["min"], stats["max"]) == (values.min(), values.max())


def test_box_statistics_in_a_plane_of_an_anisotropic_volume(brain_mri):
    volume = brain_mri.array
    spacing = (2.0, 1.0, 0.5)  # pretend anisotropic: the area uses the plane's two
    p, q = (40, 30, 100), (90, 30, 60)  # a coronal rectangle (row index fixed)
    stats = box_statistics(volume, p, q, spacing, normal=1)
    values, count = _stats_by_mask(volume, p, q)
    assert stats["pixels"] == count == 51 * 41
    assert stats["area_mm2"] == pytest.approx(count * 2.0 * 0.5)
    assert stats["mean"] == pytest.approx(values.mean())
    with pytest.raises(ValueError, match="different planes across axis 1"):
        box_statistics(volume, (40, 30, 100), (90, 31, 60), spacing, normal=1)


def test_box_statistics_refuses_corners_outside(spine_ct):
    with pytest.raises(ValueError, match="inside the image of shape"):
        box_statistics(spine_ct.array, (0, 0), (128, 5), spine_ct.spacing)
    with pytest.raises(ValueError, match="inside the image of shape"):
        box_statistics(spine_ct.array, (-1, 0), (5, 5), spine_ct.spacing)


# --------------------------------------------------------------- brush, disc
@pytest.mark.parametrize(
    ("radius", "spacing"),
    [(3.0, (1.0, 1.0)), (5.0, (0.488, 0.488)), (4.0, (0.6, 1.7)), (10.0, (2.0, 0.5))],
)
def test_a_brush_dab_is_a_disc_in_mm(radius, spacing):
    shape, centre = (80, 90), (40, 37)
    rows, cols, owner = brush_pixels([centre], radius, spacing, shape)
    got = np.zeros(shape, bool)
    got[rows, cols] = True
    yy, xx = np.indices(shape)
    d = np.hypot((yy - centre[0]) * spacing[0], (xx - centre[1]) * spacing[1])
    inside, outside = d <= radius - 1e-9, d > radius + 1e-9
    assert got[inside].all() and not got[outside].any()
    assert (owner == 0).all()
    np.testing.assert_array_equal(disc_mask(shape, centre, radius, spacing), got)


def test_a_stroke_owns_its_pixels_and_stays_inside():
    points = [(0, 0), (10, 10), (19, 29)]
    rows, cols, owner = brush_pixels(points, 2.0, (1.0, 1.0), (20, 30))
    assert rows.min() >= 0 and cols.min() >= 0 and rows.max() < 20 and cols.max() < 30
    for k, (r, c) in enumerate(points):
        mine = owner == k
        assert np.hypot(rows[mine] - r, cols[mine] - c).max() <= 2.0
    # a corner point keeps the quarter disc inside the image
    assert (owner == 0).sum() == 6


def test_a_brush_is_never_smaller_than_its_pixel():
    rows, cols, _ = brush_pixels([(5, 5)], 0.0, (3.0, 3.0), (10, 10))
    assert list(zip(rows, cols, strict=True)) == [(5, 5)]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="radius_mm must be a finite length"):
            brush_pixels([(5, 5)], bad, (1.0, 1.0), (10, 10))


# ---------------------------------------------------------- onto another grid
def _disc(shape, spacing, centre_mm, radius_mm):
    """A disc phantom whose centre lies ``centre_mm`` from the grid's centre."""
    yy, xx = np.indices(shape, dtype=np.float64)
    cy, cx = ((n - 1) / 2 for n in shape)
    y, x = (yy - cy) * spacing[0], (xx - cx) * spacing[1]
    inside = np.hypot(y - centre_mm[0], x - centre_mm[1]) <= radius_mm
    return inside.astype(np.float32) * 100.0


def _centroid_mm(image, spacing):
    yy, xx = np.indices(image.shape, dtype=np.float64)
    cy, cx = ((n - 1) / 2 for n in image.shape)
    w = image / image.sum()
    return ((w * (yy - cy)).sum() * spacing[0], (w * (xx - cx)).sum() * spacing[1])


@pytest.mark.parametrize(
    ("shape", "spacing", "target_shape", "target_spacing"),
    [
        ((128, 128), (1.0, 1.0), (200, 160), (0.5, 0.75)),  # finer, non-square
        ((160, 100), (0.6, 1.4), (96, 128), (1.0, 1.0)),  # anisotropic to square
        ((256, 256), (0.5, 0.5), (64, 80), (2.0, 2.0)),  # coarser, cropped field
    ],
)
def test_onto_grid_keeps_positions_in_mm(shape, spacing, target_shape, target_spacing):
    centre, radius = (-6.0, 9.0), 12.0
    phantom = _disc(shape, spacing, centre, radius)
    out = onto_grid(phantom, spacing, target_shape, target_spacing, fill=0.0)
    assert out.shape == target_shape and out.dtype == np.float32
    cy, cx = _centroid_mm(out, target_spacing)
    assert cy == pytest.approx(centre[0], abs=0.5 * max(spacing))
    assert cx == pytest.approx(centre[1], abs=0.5 * max(spacing))
    area = (out > 50).sum() * np.prod(target_spacing)
    assert area == pytest.approx(math.pi * radius**2, rel=0.08)


def test_onto_grid_pads_with_fill_and_keeps_a_grid_it_is_on(spine_ct):
    plane = spine_ct.array
    same = onto_grid(plane, spine_ct.spacing, plane.shape, spine_ct.spacing, fill=-1)
    np.testing.assert_array_equal(same, plane.astype(np.float32))
    big = onto_grid(plane, (1.0, 1.0), (200, 300), (1.0, 1.0), fill=-1024.0)
    assert (big[:, :50] == -1024).all() and (big[:30] == -1024).all()
    np.testing.assert_array_equal(big[36:164, 86:214], plane.astype(np.float32))
    assert not np.shares_memory(plane, big)


def test_onto_grid_refuses_a_volume_and_bad_spacing(spine_ct):
    with pytest.raises(ValueError, match="plane must be a 2D image"):
        onto_grid(np.zeros((2, 3, 4)), (1, 1), (3, 4), (1, 1), fill=0)
    with pytest.raises(ValueError, match="target_spacing must be 2 positive"):
        onto_grid(spine_ct.array, (1, 1), (3, 4), (0, 1), fill=0)


def _height_phantom(n, dz, rows=12, cols=10):
    """Every slice holds its height in mm from the volume's centre."""
    z = (np.arange(n) - (n - 1) / 2) * dz
    return np.broadcast_to(z[:, None, None], (n, rows, cols)).astype(np.float32)


@pytest.mark.parametrize(
    ("n_a", "dz_a", "n_b", "dz_b"), [(30, 2.0, 61, 1.0), (9, 3.0, 20, 1.25)]
)
def test_slice_onto_reads_b_at_the_height_of_a(n_a, dz_a, n_b, dz_b):
    a = MedImage(np.zeros((n_a, 12, 10), np.float32), (dz_a, 1.0, 1.0))
    b = MedImage(_height_phantom(n_b, dz_b), (dz_b, 1.0, 1.0))
    reach = (n_b - 1) / 2 * dz_b
    for k in range(n_a):
        height = (k - (n_a - 1) / 2) * dz_a
        plane = slice_onto(b, a, k)
        assert plane.shape == (12, 10)
        if abs(height) <= reach:
            np.testing.assert_allclose(plane, height, atol=1e-4)
        elif abs(height) > reach + dz_b / 2:  # B does not reach: its minimum
            assert (plane == b.array.min()).all()


def test_slice_onto_with_2d_images_and_a_bad_slice(spine_ct, brain_mri):
    assert slice_onto(spine_ct, brain_mri, 3).shape == brain_mri.array.shape[1:]
    middle = brain_mri.array[brain_mri.array.shape[0] // 2]
    got = slice_onto(brain_mri, MedImage(middle, brain_mri.spacing[1:]), 0)
    np.testing.assert_array_equal(got, middle.astype(np.float32))
    with pytest.raises(ValueError, match="k must be a slice of the reference"):
        slice_onto(spine_ct, brain_mri, brain_mri.array.shape[0])
