"""The difference view's window: faint at a perfect registration, saturated 1 mm off.

The truths are built here: a real image moved by the compare dashboard's demo
motion (4 mm down, 3 mm right, 5°, resampled linearly as the dashboard makes
B), then undone exactly (a perfect registration) or undone with 1 mm left
over (a misregistration). The window must show the first as a faint grey
and the second as saturated rims.
"""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab import data
from medimg_lab.composition import difference, rigid_transform
from medimg_lab.composition.fusion import difference_caption, difference_window
from medimg_lab.display import apply_window

MOTION = ((4.0, 3.0), 5.0)  # medimg_lab.widgets.dashboards.compare.DEMO_MOTION


def _head():
    ct = data.sample("head_ct")
    return ct.array.astype(np.float32), ct.spacing


def _cases():
    """(name, image, spacing): square and not, isotropic and not, CT and MR."""
    head, spacing = _head()
    yield "head CT 512² 0.48 mm", head, spacing
    spine = data.sample("spine_ct")
    yield "spine CT 128²", spine.array.astype(np.float32), spine.spacing
    brain = data.sample("brain_mri")
    middle = brain.array[brain.array.shape[0] // 2].astype(np.float32)
    yield "brain MR 233x197", middle, brain.spacing[1:]
    rows = (2 * spacing[0], spacing[1])  # every other row: 0.96 x 0.48 mm
    yield "head CT 256x512 anisotropic", head[::2], rows


CASES = list(_cases())


def _pair(image, spacing, off_mm=(0.0, 0.0)):
    """A, and B (A moved) undone with ``off_mm`` left over; their overlap."""
    (dy, dx), turn = MOTION
    moved = rigid_transform(
        image, shift_mm=(dy, dx), rotation_deg=turn, spacing=spacing
    )
    undo = {
        "shift_mm": (dy + off_mm[0], dx + off_mm[1]),
        "rotation_deg": turn,
        "spacing": spacing,
        "inverse": True,
    }
    back = rigid_transform(moved, interpolation="cubic", **undo)
    ones = np.ones(image.shape, np.float32)
    inside = rigid_transform(
        rigid_transform(ones, shift_mm=(dy, dx), rotation_deg=turn, spacing=spacing),
        fill=0.0,
        **undo,
    )
    return moved, back, inside > 0.999


def _saturated(diff, window, where) -> float:
    """The share of the overlap's pixels shown black or white."""
    shown = apply_window(diff, *window)[where]
    return float(np.mean((shown == 0) | (shown == 255)))


@pytest.mark.parametrize(("name", "image", "spacing"), CASES, ids=[c[0] for c in CASES])
def test_a_perfect_registration_is_faint_and_1_mm_off_is_saturated(
    name, image, spacing
):
    moved, back, overlap = _pair(image, spacing)
    window = difference_window(image, moved, spacing=spacing)
    assert window[0] == 0.0 and window[1] > 0
    half = window[1] / 2
    perfect = difference(image, back)
    assert _saturated(perfect, window, overlap) < 0.0005, name
    faint = np.percentile(np.abs(perfect[overlap]), 99)
    assert faint < 0.3 * half, (name, faint, half)  # near mid-grey
    for off in ((1.0, 0.0), (0.0, -1.0), (0.71, 0.71)):
        _, back, overlap = _pair(image, spacing, off)
        off_by_1mm = difference(image, back)
        share = _saturated(off_by_1mm, window, overlap)
        assert share > 0.004, (name, off, share)
        assert np.percentile(np.abs(off_by_1mm[overlap]), 99) > 0.7 * half


def test_the_windows_of_today_showed_rims_at_a_perfect_registration():
    """The cause, measured: a display window (head CT 40/100: 0 ± 50 HU), or
    the 99.5th percentile of the difference itself, saturates the residue of
    interpolation along the skull at a perfect registration."""
    image, spacing = _head()
    moved, _, overlap = _pair(image, spacing)
    (dy, dx), turn = MOTION
    linear = rigid_transform(
        moved, shift_mm=(dy, dx), rotation_deg=turn, spacing=spacing, inverse=True
    )
    residue = difference(image, linear)
    assert _saturated(residue, (0.0, 100.0), overlap) > 0.005
    span = np.percentile(np.abs(residue), 99.5)
    assert _saturated(residue, (0.0, 2 * span), overlap) > 0.001
    assert (
        _saturated(residue, difference_window(image, moved, spacing=spacing), overlap)
        == 0
    )


def test_the_window_is_in_the_images_unit_and_follows_their_contrast():
    image, spacing = _head()
    c, width = difference_window(image, image, spacing=spacing)
    c10, width10 = difference_window(10 * image, 10 * image, spacing=spacing)
    assert c == c10 == 0.0
    assert width10 == pytest.approx(10 * width, rel=0.02)  # two digits
    assert difference_window(image + 1000, image + 1000, spacing=spacing) == (c, width)
    wider = difference_window(image, image, spacing=spacing, misregistration_mm=3.0)
    assert wider[1] > width  # a larger misregistration at the edge: a wider window


def test_a_step_edge_gives_its_height():
    rng = np.random.default_rng(0)
    for height in (1.0, 37.0, 1500.0):
        step = np.zeros((40, 60), np.float32)
        step[:, 30:] = height
        step += rng.normal(0, height * 1e-4, step.shape).astype(np.float32)
        # 1 mm at 0.5 mm per pixel: 2 of 59 column pairs differ by the height
        half = difference_window(step, step, spacing=(0.5, 0.5))[1] / 2
        assert half == pytest.approx(height, rel=0.02)


def test_anisotropic_spacing_shifts_by_mm_not_pixels():
    # a ramp of 100 per column (pixels 0.25 mm wide) and 100 per row (4 mm)
    rows, cols = np.mgrid[0:32, 0:48].astype(np.float32)
    ramp = 100 * rows + 100 * cols
    half = difference_window(ramp, ramp, spacing=(4.0, 0.25))[1] / 2
    assert half == pytest.approx(400.0)  # 1 mm = 4 columns; rows give 25


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"misregistration_mm": 0.0}, "misregistration_mm"),
        ({"misregistration_mm": -1.0}, "misregistration_mm"),
        ({"misregistration_mm": 50.0}, "misregistration_mm"),
        ({"spacing": (0.5,)}, "spacing"),
        ({"spacing": (0.5, -1.0)}, "spacing"),
    ],
)
def test_bad_options_are_refused_by_name(kwargs, words):
    image = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match=words):
        difference_window(image, image, **kwargs)


def test_hostile_images_are_refused_with_a_sentence():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (24, 32)).astype(np.float32)
    holed = noise.copy()
    holed[3, 4] = np.nan
    with pytest.raises(ValueError, match="i2 must be finite"):
        difference_window(noise, holed)
    with pytest.raises(ValueError, match="same shape"):
        difference_window(noise, noise[:, :-1])
    with pytest.raises(ValueError, match="2D"):
        difference_window(np.stack([noise] * 3), np.stack([noise] * 3))
    with pytest.raises(ValueError, match="numbers"):
        difference_window(noise.astype(str), noise.astype(str))


def test_flat_tiny_and_integer_images_get_a_window():
    flat = np.full((8, 8), -1024, np.int16)
    assert difference_window(flat, flat) == (0.0, 2.0)
    one = np.ones((1, 1), np.float32)
    assert difference_window(one, one) == (0.0, 2.0)
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 4096, (50, 70), dtype=np.uint16)
    c, width = difference_window(counts, counts)
    assert c == 0.0 and 2000 < width / 2 < 4096  # |a - b| of uniform 0..4095


def test_the_caption_says_window_unit_and_grey_scale():
    text = difference_caption((0.0, 1120.0), "HU")
    assert text.startswith("difference A − B, window ±560 HU (mid-grey = equal")
    assert "white: A brighter" in text and "values in" not in text
    brain = data.sample("brain_mri")
    text = difference_caption((0.0, 102.0), brain.unit, note=brain.unit_note)
    assert "window ±51 a.u." in text
    assert text.endswith(
        "values in a.u. (MR signal intensity: relative, no absolute scale)"
    )
    text = difference_caption((0.0, 0.05), "a.u.", names=("I1", "I2"))
    assert text.startswith("difference I1 − I2, window ±0.025 a.u.")
