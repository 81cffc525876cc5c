"""What the viewer and the dashboards draw, computed by medimg_lab.display
without a UI: plane <-> voxel mapping, resampling for display, the label
overlay (and its tables for the page), seam lines, measurement marks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medimg_lab import composition, data, display

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def brain():
    return data.sample("brain_mri")


# ---------------------------------------------------------- plane <-> voxel
@pytest.mark.parametrize("name", display.PLANES)
def test_plane_to_voxel_is_the_pixel_that_plane_shows(brain, name):
    volume, spacing = brain.array, brain.spacing
    axis = display.PLANES.index(name)
    for _ in range(25):
        index = int(RNG.integers(0, volume.shape[axis]))
        shown, _ = display.plane(volume, spacing, name, index)
        row, col = (int(RNG.integers(0, n)) for n in shown.shape)
        voxel = display.plane_to_voxel(volume.shape, name, index, row, col)
        assert volume[voxel] == shown[row, col]
        assert display.voxel_to_plane(volume.shape, name, voxel) == (row, col, index)


def test_voxel_to_plane_inverts_every_voxel_of_a_small_anisotropic_volume():
    shape = (4, 5, 7)
    for name, voxel in itertools.product(display.PLANES, np.ndindex(shape)):
        row, col, index = display.voxel_to_plane(shape, name, voxel)
        assert display.plane_to_voxel(shape, name, index, row, col) == voxel


def test_plane_names_are_checked():
    with pytest.raises(ValueError, match="plane must be one of axial"):
        display.plane_to_voxel((3, 3, 3), "oblique", 0, 0, 0)
    with pytest.raises(ValueError, match="plane must be one of axial"):
        display.voxel_to_plane((3, 3, 3), "Axial ", (0, 0, 0))


# ----------------------------------------------------------- for display
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_resample_labels_repeats_each_label_by_an_integer_factor(factor):
    labels = RNG.integers(0, 5, (7, 11))
    out = display.resample_labels(labels, (7 * factor, 11 * factor))
    np.testing.assert_array_equal(
        out, np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
    )


def test_resample_labels_takes_the_label_at_each_pixel_centre():
    labels = np.arange(12).reshape(3, 4)
    out = display.resample_labels(labels, (2, 5))  # shrink rows, grow cols
    rows = ((np.arange(2) + 0.5) / 2 * 3).astype(int)
    cols = ((np.arange(5) + 0.5) / 5 * 4).astype(int)
    np.testing.assert_array_equal(out, labels[np.ix_(rows, cols)])
    assert set(np.unique(out)) <= set(np.unique(labels))


def test_resample_plane_makes_square_physical_pixels(brain):
    coronal, spacing = display.plane(brain.array, (2.0, 1.0, 1.0), "coronal", 100)
    rows, cols = coronal.shape  # 2 mm rows, 1 mm columns
    out = display.resample_plane(coronal, spacing, (cols, rows * 2))
    assert out.shape == (rows * 2, cols)
    # a horizontal band keeps its height in mm: twice the rows at 1 mm
    band = np.zeros_like(coronal, dtype=np.float32)
    band[40:50] = 1
    tall = display.resample_plane(band, spacing, (cols, rows * 2))
    assert (tall[:, 0] > 0.5).sum() == pytest.approx(20, abs=2)


def test_resample_plane_fits_square_pixels_to_the_box_and_never_enlarges():
    xray = data.sample("chest_xray").array  # 1955 x 1841, uint16
    out = display.resample_plane(xray, (0.2, 0.2), (512, 512), box=512)
    assert max(out.shape) == 512 and out.dtype == xray.dtype
    small = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(
        display.resample_plane(small, (1.0, 1.0), (40, 30), box=512), small
    )


# ------------------------------------------------------------------ overlay
def test_overlay_equals_composition_blend_on_a_real_image():
    """display writes the composite formula itself (it imports no stage):
    bit for bit composition.blend's result."""
    ct = data.sample("head_ct")
    grey = display.apply_window(ct.array, 40, 80)
    labels = np.zeros(grey.shape, np.int32)
    labels[100:300, 120:260] = 1
    labels[350:420, 50:500] = 3
    for alpha in (0.0, 0.25, 0.4, 0.9, 1.0):
        out = display.overlay(grey, labels, alpha)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        palette = display.label_colors(3)
        inside = labels > 0
        expected = rgb.copy()
        expected[inside] = composition.blend(
            palette[labels[inside]], rgb[inside], alpha
        )
        np.testing.assert_array_equal(out, expected)


def test_overlay_table_gives_overlay_bit_for_bit():
    ct = data.sample("spine_ct")
    grey = display.apply_window(ct.array, 40, 400)
    labels = RNG.integers(0, 13, grey.shape)  # more labels than colours
    labels[:20] = 0
    index, table = display.overlay_table(labels, 0.6)
    drawn = table[np.maximum(index, 1) - 1, grey]
    drawn[index == 0] = np.repeat(grey[index == 0][:, None], 3, axis=-1)
    np.testing.assert_array_equal(drawn, display.overlay(grey, labels, 0.6))
    assert display.overlay_table(np.zeros((4, 4), int), 0.5) is None


def test_probability_image_is_grey_with_a_background_colour():
    p = np.linspace(0, 1, 11).reshape(1, 11)
    background = np.zeros_like(p, bool)
    background[0, 0] = True
    shown = display.probability_image(p, background=background, color=(1, 2, 3))
    assert shown.dtype == np.uint8 and shown.shape == (1, 11, 3)
    np.testing.assert_array_equal(shown[0, 0], (1, 2, 3))
    np.testing.assert_array_equal(shown[0, 1:, 0], np.floor(p[0, 1:] * 255 + 0.5))


# --------------------------------------------------------------- seam lines
def test_seam_lines_follow_where_the_owning_tile_changes():
    seams = np.full((60, 90), -1)
    seams[:, :50] = 0
    seams[:, 40:] = 1  # tile 1 owns from column 40
    seams[:, 85:] = -1  # no tile
    lines = display.seam_lines(seams)
    assert lines.dtype == np.int32 and lines.shape == seams.shape
    cols = np.nonzero(lines.any(axis=0))[0]
    assert set(cols) == {39, 40, 41}  # both sides of the seam, width 1; none
    # where a tile meets the uncovered area (column 85): that is no seam
    assert (lines[:, 39] == 1).all() and (lines[:, 41] == 2).all()
    assert (lines[:, 85:] == 0).all()  # nothing drawn off the mosaic
    wide = display.seam_lines(seams, width_px=3)
    assert set(np.nonzero(wide.any(axis=0))[0]) >= set(range(37, 44))


def test_seam_lines_of_a_stitched_mosaic():
    ct = data.sample("spine_ct")
    tiles, _ = composition.cut_tiles(ct.array, grid=(2, 2), overlap=0.35, seed=0)
    result = composition.stitch(tiles, spacing=ct.spacing)
    lines = display.seam_lines(result.seams)
    drawn = lines > 0
    assert 0 < drawn.mean() < 0.2
    assert set(np.unique(lines[drawn]) - 1) <= set(np.unique(result.seams[drawn]))


# -------------------------------------------------------------------- marks
def test_draw_mark_in_a_coronal_plane_stays_on_its_slice(brain):
    labels = np.zeros(brain.array.shape, np.uint8)
    p, q = (40, 100, 30), (150, 100, 160)  # (slice, row, col): coronal row 100
    out = display.draw_mark(labels, p, q, kind="box", label=2, plane_name="coronal")
    assert labels.max() == 0  # not mutated
    where = np.argwhere(out == 2)
    assert (where[:, 1] == 100).all()
    assert {tuple(p), tuple(q)} <= set(map(tuple, where))
    assert where[:, 0].min() == 40 and where[:, 0].max() == 150
    assert where[:, 2].min() == 30 and where[:, 2].max() == 160
    # the same drawn on the shown plane: display.plane of the result
    shown, _ = display.plane(out, brain.spacing, "coronal", 100)
    r0, c0, _ = display.voxel_to_plane(out.shape, "coronal", p)
    assert shown[r0, c0] == 2


def test_draw_mark_line_across_slices_marks_the_segment():
    labels = np.zeros((20, 30, 40), np.uint8)
    out = display.draw_mark(labels, (2, 5, 5), (12, 25, 35), kind="line", label=1)
    where = np.argwhere(out == 1)
    assert len(where) == 31  # one voxel per step of the longest axis
    assert where[:, 0].min() == 2 and where[:, 0].max() == 12


def test_draw_mark_in_2d_and_a_bad_kind():
    labels = np.zeros((50, 60), np.uint8)
    dot = display.draw_mark(labels, (25, 30), kind="dot", label=1, thickness=2)
    assert dot[25, 30] == 1 and dot.sum() == np.count_nonzero(dot)
    assert np.ptp(np.argwhere(dot), axis=0).max() == 8  # radius 2 x thickness
    line = display.draw_mark(labels, (0, 0), (49, 59), kind="line", label=3)
    assert line[0, 0] == 3 and line[49, 59] == 3
    with pytest.raises(ValueError, match="kind must be one of dot, line, box"):
        display.draw_mark(labels, (0, 0), (1, 1), kind="circle", label=1)
