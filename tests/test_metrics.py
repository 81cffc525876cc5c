"""Metrics against hand-computed values, with anisotropic spacing."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab import metrics as M


@pytest.fixture
def pair():
    a = np.zeros((6, 6), bool)
    b = np.zeros((6, 6), bool)
    a[1:4, 1:4] = True  # 9 px
    b[2:5, 1:4] = True  # 9 px, 6 shared
    return a, b


def test_overlap_by_hand(pair):
    a, b = pair
    assert M.dice(a, b) == pytest.approx(2 * 6 / 18)
    assert M.iou(a, b) == pytest.approx(6 / 12)
    assert M.sensitivity(a, b) == pytest.approx(6 / 9)
    assert M.specificity(a, b) == pytest.approx((36 - 12) / (36 - 9))


def test_empty_masks_agree_and_undefined_rates_say_so():
    empty = np.zeros((3, 3), bool)
    assert M.dice(empty, empty) == 1.0 and M.iou(empty, empty) == 1.0
    with pytest.raises(ValueError, match="reference mask is empty"):
        M.sensitivity(empty, empty)
    with pytest.raises(ValueError, match="two non-empty masks"):
        M.hausdorff(empty, np.ones((3, 3), bool))


def test_hausdorff_of_shifted_squares_honours_anisotropic_spacing(pair):
    a, b = pair  # b is a shifted down by one row
    assert M.hausdorff(a, b) == pytest.approx(1.0)
    assert M.hausdorff(a, b, spacing=(2.5, 0.5)) == pytest.approx(2.5)
    # Shift along columns instead: now the column spacing counts.
    c = np.roll(a, 1, axis=1)
    assert M.hausdorff(a, c, spacing=(2.5, 0.5)) == pytest.approx(0.5)


def test_hausdorff95_ignores_one_stray_voxel():
    a = np.zeros((40, 40), bool)
    a[10:30, 10:30] = True
    b = a.copy()
    b[0, 39] = True  # one far-away voxel
    assert M.hausdorff(a, b) > 10
    assert M.hausdorff95(a, b) == pytest.approx(0.0)


def test_average_surface_distance_by_hand():
    # Two concentric squares 2 px apart. Inner surface points are 2 px from the
    # outer surface. Of the outer surface's 28 points, 16 face an inner edge
    # (2 px), 8 sit next to a corner (sqrt(5) px) and 4 are corners (sqrt(8)).
    inner = np.zeros((20, 20), bool)
    inner[8:12, 8:12] = True
    outer = np.zeros((20, 20), bool)
    outer[6:14, 6:14] = True
    asd = M.average_surface_distance(inner, outer, spacing=(0.5, 0.5))
    inner_pts, outer_pts = 12, 28
    outer_sum = 16 * 2 + 8 * np.sqrt(5) + 4 * np.sqrt(8)
    expected = 0.5 * (inner_pts * 2 + outer_sum) / (inner_pts + outer_pts)
    assert asd == pytest.approx(expected)


def test_3d_spheres_hausdorff_is_the_radius_difference():
    z, y, x = np.mgrid[:41, :41, :41] - 20
    r = np.sqrt(z**2 + y**2 + x**2)
    assert M.hausdorff(r <= 10, r <= 14) == pytest.approx(4.0, abs=0.5)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        M.dice(np.zeros((2, 2)), np.zeros((3, 3)))


# ------------------------------------------------ what each figure means
def test_every_merit_names_a_figure_that_exists():
    from medimg_lab.composition import registration
    from medimg_lab.recognition import evaluation

    for name in M.MERITS:
        owners = (M, registration, evaluation)
        alias = {"auc": "roc_auc_ci", "mi": "mutual_information"}.get(name, name)
        known = any(hasattr(m, alias) for m in owners)
        assert known, name
        assert M.MERITS[name].good


def test_describe_gives_unit_and_what_is_good():
    assert M.describe("psnr", 41.26) == (
        "PSNR 41.3 dB (higher is closer; above 40 dB hard to see)"
    )
    assert M.describe("hausdorff", 2.0).startswith("Hausdorff 2.00 mm (0 is")
    assert "not defined here" in M.describe("ncc", float("nan"))
    with pytest.raises(ValueError, match="name must be one of ncc, mi"):
        M.describe("NCC", 1.0)


def test_mi_is_shown_as_a_share_of_its_top():
    from medimg_lab import data
    from medimg_lab.composition.registration import mutual_information

    a = data.sample("head_ct").array.astype(float)
    b = np.roll(a, 7, axis=1)
    top = min(mutual_information(a, a), mutual_information(b, b))
    same = M.describe("mi", mutual_information(a, a), best=top)
    moved = M.describe("mi", mutual_information(a, b), best=top)
    assert "(100 % of its top" in same
    share = int(moved.split("(")[1].split(" %")[0])
    assert 0 < share < 100
