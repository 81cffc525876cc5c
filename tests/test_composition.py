"""I = I1·M + I2·(1−M)."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab.composition import blend


def test_blend_by_hand():
    i1 = np.array([[10.0, 10.0], [10.0, 10.0]])
    i2 = np.array([[0.0, 2.0], [4.0, 6.0]])
    m = np.array([[1.0, 0.0], [0.5, 0.25]])
    expected = i1 * m + i2 * (1 - m)
    np.testing.assert_allclose(blend(i1, i2, m), expected)


def test_binary_mask_selects():
    i1, i2 = np.full((3, 3), 7, np.uint8), np.zeros((3, 3), np.uint8)
    mask = np.eye(3, dtype=bool)
    out = blend(i1, i2, mask)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.eye(3) * 7)


def test_float32_stays_float32_and_rgb_takes_a_grey_mask():
    i1 = np.ones((2, 2, 3), np.float32)
    out = blend(i1, np.zeros_like(i1), np.full((2, 2), 0.5, np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.5)


@pytest.mark.parametrize("mask", [np.full((2, 2), 1.5), np.full((2, 2), -0.1)])
def test_mask_out_of_range(mask):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(np.zeros((2, 2)), np.zeros((2, 2)), mask)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        blend(np.zeros((2, 2)), np.zeros((3, 3)), 0.5)
