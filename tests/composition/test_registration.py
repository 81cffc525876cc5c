"""Registration recovers known motions of real sample images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from medimg_lab.composition.registration import (
    Registration,
    akaze_available,
    mutual_information,
    ncc,
    register,
    rigid_transform,
)
from medimg_lab.data import sample
from medimg_lab.image import MedImage

# (dy, dx) in pixels, rotation in degrees: sub-pixel, whole, rotated.
CASES = [((0.0, 0.0), 0.0), ((2.3, -1.7), 0.0), ((-5.6, 3.4), 6.0), ((4.25, 7.5), -9.0)]


def _image(name: str) -> MedImage:
    if name == "brain_mri":
        mri = sample("brain_mri")
        return MedImage(mri.array[95].astype(np.float32), mri.spacing[1:], "MR")
    if name == "shoulder_mr":
        mr = sample("shoulder_mr")
        small = cv2.resize(mr.array, (512, 512), interpolation=cv2.INTER_AREA)
        return MedImage(small, tuple(2 * s for s in mr.spacing), "MR")
    if name == "chest_xray":
        cxr = sample("chest_xray")
        small = cv2.resize(
            cxr.array.astype(np.float32), (460, 489), interpolation=cv2.INTER_AREA
        )
        return MedImage(small, (4.0, 4.0), "DX")
    return sample(name)


@pytest.fixture(scope="module")
def images():
    names = ("head_ct", "brain_mri", "shoulder_mr", "chest_xray")
    return {name: _image(name) for name in names}


def _noisy(image: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Gaussian noise of ``fraction`` of the image's robust range."""
    lo, hi = np.percentile(image, (1, 99))
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, fraction * (hi - lo), image.shape).astype(np.float32)
    return image + noise


def _errors(reg: Registration, shift_px, rotation, spacing):
    shift_err = np.abs(np.subtract(reg.shift_mm, np.multiply(shift_px, spacing)))
    return shift_err / np.asarray(spacing), abs(reg.rotation_deg - rotation)


@pytest.mark.parametrize("method", ["phase", "ecc"])
@pytest.mark.parametrize("name", ["head_ct", "brain_mri", "shoulder_mr", "chest_xray"])
def test_recovers_known_rigid_motion(images, name, method):
    image = images[name]
    worst = (0.0, 0.0)
    for i, (shift_px, rotation) in enumerate(CASES):
        shift_mm = tuple(np.multiply(shift_px, image.spacing))
        moving = rigid_transform(image, shift_mm=shift_mm, rotation_deg=rotation)
        moving = _noisy(moving, 0.02, seed=i)
        reg = register(image, moving, method=method)
        px, deg = _errors(reg, shift_px, rotation, image.spacing)
        print(
            f"{method} {name} {shift_px} {rotation:+.0f}°: {px.max():.3f} px {deg:.3f}°"
        )
        worst = (max(worst[0], px.max()), max(worst[1], deg))
        assert px.max() < 0.5 and deg < 0.5
        assert abs(reg.scale - 1) < 1e-9  # rigid: no zoom
    print(f"worst {method} {name}: {worst[0]:.3f} px, {worst[1]:.3f}°")


@pytest.mark.parametrize(
    "method",
    [
        "orb",
        "sift",
        "akaze",
    ],
)
def test_features_recover_rigid_motion(images, method):
    image = images["chest_xray"]
    for shift_px, rotation in CASES[1:]:
        shift_mm = tuple(np.multiply(shift_px, image.spacing))
        moving = rigid_transform(image, shift_mm=shift_mm, rotation_deg=rotation)
        reg = register(image, _noisy(moving, 0.01, seed=1), method=method)
        px, deg = _errors(reg, shift_px, rotation, image.spacing)
        print(f"{method} {shift_px} {rotation:+.0f}°: {px.max():.3f} px {deg:.3f}°")
        assert px.max() < 1.0 and deg < 1.0


def test_features_accept_a_different_shape(images):
    image = images["chest_xray"]
    moving = rigid_transform(image, shift_mm=(8.0, -12.0), rotation_deg=3.0)
    reg = register(image, moving[20:-30, 10:], method="orb")
    # the crop's first pixel is pixel (x, y) = (10, 20) of the moved image, which
    # came from T^-1(q) = R^-1 (q - c - t) + c of the fixed one (t in pixels)
    h, w = image.shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    a = np.radians(3.0)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    expected = np.linalg.solve(rot, np.array([10.0, 20.0]) - c - [-3.0, 2.0]) + c
    corner = reg.matrix @ [0.0, 0.0, 1.0]
    assert reg.resampled.shape == image.shape
    assert reg.moving_shape == (h - 50, w - 10)
    np.testing.assert_allclose(corner, expected, atol=1.0)
    assert abs(reg.rotation_deg) < 4  # about the fixed centre: includes the crop


def test_ecc_recovers_a_known_affine(images):
    image = images["head_ct"].array.astype(np.float32)
    truth = np.array([[1.03, 0.04, -3.5], [-0.02, 0.97, 2.25], [0.0, 0.0, 1.0]])
    moving = cv2.warpAffine(image, truth[:2], image.shape[::-1], borderValue=-1024.0)
    reg = register(
        image, _noisy(moving, 0.02, seed=3), method="ecc", transform="affine"
    )
    # the matrix maps moving pixels onto fixed ones: the inverse of the motion
    expected = np.linalg.inv(truth)[:2]
    h, w = image.shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1.0]])
    err = np.abs(corners @ (reg.matrix - expected).T).max()
    print(f"ecc affine: worst corner error {err:.3f} px")
    assert err < 0.5
    assert reg.transform == "affine"


def test_phase_refuses_affine_naming_the_methods_that_can():
    image = np.random.default_rng(0).random((64, 64))
    with pytest.raises(ValueError, match="'ecc' or 'orb'"):
        register(image, image, method="phase", transform="affine")


def test_similarity_recovers_scale(images):
    image = images["head_ct"]
    moving = rigid_transform(image, shift_mm=(1.0, 2.0), rotation_deg=4.0, scale=1.06)
    for method in ("phase", "ecc"):
        reg = register(image, moving, method=method, transform="similarity")
        print(f"{method} similarity: scale {reg.scale:.4f} rot {reg.rotation_deg:.3f}")
        assert abs(reg.scale - 1.06) < 0.005 and abs(reg.rotation_deg - 4.0) < 0.5


# ------------------------------------------------------------ across contrasts


@pytest.fixture(scope="module")
def t1(images):
    return images["brain_mri"].array


def test_mi_peaks_at_true_alignment_across_contrasts(t1):
    inverted = t1.max() - t1
    gamma = t1.max() * (t1 / t1.max()) ** 0.4
    shifts = np.arange(-4, 5)
    for other in (inverted, gamma):
        moving = rigid_transform(other, shift_mm=(0.0, 2.0))
        mi = [
            mutual_information(t1, rigid_transform(moving, shift_mm=(0.0, -2.0 + s)))
            for s in shifts
        ]
        assert shifts[int(np.argmax(mi))] == 0
        assert mi[4] > 1.5 * max(mi[0], mi[-1])
    assert ncc(t1, inverted) < -0.99  # NCC reads the inverted image as anti-aligned
    assert mutual_information(t1, inverted) == pytest.approx(
        mutual_information(t1, t1), rel=0.02
    )


def test_ecc_registers_a_gamma_mapped_copy(t1):
    gamma = t1.max() * (t1 / t1.max()) ** 0.4
    moving = rigid_transform(gamma, shift_mm=(1.6, -2.3), rotation_deg=5.0)
    reg = register(t1, moving, method="ecc")
    print(f"ecc gamma T1: {reg.shift_mm} {reg.rotation_deg:.3f}°, MI {reg.mi:.3f}")
    np.testing.assert_allclose(reg.shift_mm, (1.6, -2.3), atol=0.5)
    assert abs(reg.rotation_deg - 5.0) < 0.5


def test_registration_raises_mi(t1):
    gamma = t1.max() * (t1 / t1.max()) ** 0.4
    moving = rigid_transform(gamma, shift_mm=(3.0, -2.0), rotation_deg=-6.0)
    reg = register(t1, moving, method="ecc")
    before = mutual_information(t1, moving)
    print(f"MI before {before:.3f}, after {reg.mi:.3f} nats")
    assert reg.mi > 1.5 * before


# ------------------------------------------------------------------ quality


def test_ncc_of_identical_and_negative_images(t1):
    assert ncc(t1, t1) == pytest.approx(1.0)
    assert ncc(t1, -t1) == pytest.approx(-1.0)
    assert ncc(t1, 3 * t1 + 7) == pytest.approx(1.0)


def test_mi_of_an_image_with_itself_is_its_entropy(t1):
    counts, _ = np.histogram(t1, bins=64, range=(t1.min(), t1.max()))
    p = counts[counts > 0] / counts.sum()
    entropy = -(p * np.log(p)).sum()
    assert mutual_information(t1, t1) == pytest.approx(entropy, rel=1e-9)
    assert mutual_information(t1, t1, normalized=True) == pytest.approx(1.0)


def test_mi_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 512, 512))
    assert mutual_information(a, b) < 0.01
    assert mutual_information(a, a) > 3.0


def test_quality_measures_honour_the_mask(t1):
    mask = np.zeros(t1.shape, bool)
    mask[50:150, 40:160] = True
    other = np.where(mask, t1, np.random.default_rng(0).random(t1.shape))
    assert ncc(t1, other, mask) == pytest.approx(1.0)
    assert ncc(t1, other) < 0.99


def test_quality_measures_reject_bad_input(t1):
    with pytest.raises(ValueError, match="same shape"):
        ncc(t1, t1[1:])
    with pytest.raises(ValueError, match="bins"):
        mutual_information(t1, t1, bins=1)
    with pytest.raises(ValueError, match="mask"):
        ncc(t1, t1, mask=np.ones(t1.shape, np.uint8))


# -------------------------------------------------------- spacing, matrices


def test_shift_mm_honours_anisotropic_spacing(images):
    ct = images["head_ct"].array.astype(np.float32)
    spacing = (0.5, 1.0)
    moving = rigid_transform(
        ct, shift_mm=(2.0, -3.0), rotation_deg=4.0, spacing=spacing
    )
    for method in ("phase", "ecc"):
        reg = register(ct, moving, method=method, spacing=spacing)
        print(f"{method} anisotropic: {reg.shift_mm} {reg.rotation_deg:.3f}°")
        np.testing.assert_allclose(reg.shift_mm, (2.0, -3.0), atol=0.25)
        assert abs(reg.rotation_deg - 4.0) < 0.5
    shifted = rigid_transform(ct, shift_mm=(2.0, -3.0), spacing=spacing)
    reg = register(ct, shifted, spacing=spacing, transform="translation")
    np.testing.assert_allclose(reg.matrix[:, 2], (3.0, -4.0), atol=0.1)  # x, y px
    np.testing.assert_allclose(reg.matrix_mm[:, 2], (3.0, -2.0), atol=0.05)


def test_matrix_maps_moving_onto_fixed(images):
    image = images["head_ct"]
    moving = rigid_transform(image, shift_mm=(5.0, -4.0), rotation_deg=7.0)
    reg = register(image, moving, method="ecc")
    again = cv2.warpAffine(
        moving, reg.matrix, image.shape[::-1], borderValue=float(moving.min())
    )
    np.testing.assert_allclose(again, reg.resampled, atol=1e-3)
    inside = reg.overlap & (np.abs(image.array) < 3000)
    assert np.median(np.abs(reg.resampled - image.array)[inside]) < 15  # HU
    assert reg.ncc > 0.98


def test_rigid_transform_conventions():
    x = np.zeros((9, 9), np.float32)
    x[4, 6] = 1  # two columns right of the centre
    # counter-clockwise on screen: right of centre goes up (smaller row)
    turned = rigid_transform(x, rotation_deg=90.0, interpolation="nearest")
    assert np.argwhere(turned == 1).tolist() == [[2, 4]]
    moved = rigid_transform(x, shift_mm=(2.0, -3.0), spacing=(1.0, 1.5))
    assert np.argwhere(moved == 1).tolist() == [[6, 4]]
    assert rigid_transform(x).dtype == np.float32
    assert rigid_transform(x.astype(np.float64)).dtype == np.float64


# ---------------------------------------------------- apply, dtypes, inputs


def test_apply_keeps_label_values(images):
    image = images["head_ct"]
    labels = np.zeros(image.shape, np.int32)
    labels[200:300, 150:260] = 3
    labels[100:140, 300:380] = 70000
    moving = rigid_transform(image, shift_mm=(4.0, 6.0), rotation_deg=8.0)
    moved_labels = rigid_transform(
        labels,
        shift_mm=(4.0, 6.0),
        rotation_deg=8.0,
        spacing=image.spacing,
        interpolation="nearest",
        fill=0,
    )
    reg = register(image, moving, method="ecc")
    back = reg.apply(moved_labels, interpolation="nearest", fill=0)
    assert back.dtype == np.int32
    assert set(np.unique(back)) == {0, 3, 70000}
    assert (back == labels).mean() > 0.995
    mask = reg.apply(moved_labels == 3, interpolation="nearest")
    assert mask.dtype == bool and (mask == (labels == 3)).mean() > 0.995
    with pytest.raises(ValueError, match="moving image's shape"):
        reg.apply(labels[1:])
    with pytest.raises(ValueError, match="nearest"):
        reg.apply(labels == 3)


def test_inputs_are_not_mutated_and_float32_stays(images):
    fixed = images["brain_mri"].array.copy()
    moving = rigid_transform(fixed, shift_mm=(1.0, 1.0))
    f0, m0 = fixed.copy(), moving.copy()
    reg = register(fixed, moving, method="phase")
    np.testing.assert_array_equal(fixed, f0)
    np.testing.assert_array_equal(moving, m0)
    assert reg.resampled.dtype == np.float32
    integer = register(fixed.astype(np.int16), moving.astype(np.int16))
    assert integer.resampled.dtype == np.float32


# ------------------------------------------------------------------ errors


def test_volume_is_refused_with_the_fix(images):
    volume = sample("brain_mri").array[90:92]
    with pytest.raises(ValueError, match="slice by slice"):
        register(volume, volume)


def test_rgb_is_refused_with_the_fix():
    rgb = MedImage(np.zeros((32, 32, 3), np.uint8), (1.0, 1.0))
    with pytest.raises(ValueError, match="RGB"):
        register(rgb, rgb)


def test_shape_mismatch_is_refused_for_phase_and_ecc(t1):
    for method in ("phase", "ecc"):
        with pytest.raises(ValueError, match="'orb' or 'akaze'"):
            register(t1, t1[2:], method=method)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "sift2"}, "method must be one of"),
        ({"transform": "bspline"}, "transform must be one of"),
        ({"levels": 0}, "levels must lie"),
        ({"spacing": (1.0, -1.0)}, "spacing"),
        ({"ratio": 1.5}, "ratio"),
    ],
)
def test_bad_options_are_refused(t1, kwargs, match):
    with pytest.raises(ValueError, match=match):
        register(t1, t1, **kwargs)


def test_nan_and_constant_images_are_refused(t1):
    bad = t1.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        register(t1, bad)
    with pytest.raises(ValueError, match="constant"):
        register(t1, np.zeros_like(t1))


def test_different_spacings_are_refused(images):
    ct = images["head_ct"]
    other = MedImage(ct.array, (1.0, 1.0))
    with pytest.raises(ValueError, match="same spacing"):
        register(ct, other)


def test_missing_akaze_names_the_fix(t1, monkeypatch):
    import cv2

    assert akaze_available()  # the contrib build the project depends on
    monkeypatch.delattr(cv2, "AKAZE_create", raising=False)
    monkeypatch.delattr(cv2, "xfeatures2d", raising=False)
    assert not akaze_available()
    with pytest.raises(ValueError, match="opencv-contrib"):
        register(t1, t1, method="akaze")


def test_inverse_undoes_the_motion_register_reports(images):
    ct = images["head_ct"]
    moved = rigid_transform(ct, shift_mm=(3.0, -5.0), rotation_deg=7.0)
    found = register(ct, moved, method="ecc")
    back = rigid_transform(
        moved,
        shift_mm=found.shift_mm,
        rotation_deg=found.rotation_deg,
        spacing=ct.spacing,
        inverse=True,
    )
    inner = (slice(100, 400), slice(100, 400))
    assert ncc(back[inner], ct.array[inner]) > 0.99
    assert ncc(moved[inner], ct.array[inner]) < 0.9


@pytest.mark.parametrize("contrast", ["inverted", "gamma"])
def test_mutual_information_registers_across_contrasts(t1, contrast):
    """T1 against its inverted or gamma-mapped copy, moved by a known motion."""
    image = t1
    rng = np.random.default_rng(5)
    for shift, rotation in (((3.5, -4.2), 6.0), ((-2.0, 5.0), -9.0)):
        moved = rigid_transform(image, shift_mm=shift, rotation_deg=rotation)
        lo, hi = float(moved.min()), float(moved.max())
        unit = (moved - lo) / (hi - lo)
        other = 1 - unit if contrast == "inverted" else unit**0.4
        other = other + rng.normal(0, 0.01, other.shape).astype(np.float32)
        found = register(image, other.astype(np.float32), method="mi")
        shift_err = np.abs(np.subtract(found.shift_mm, shift)).max()
        angle_err = abs(found.rotation_deg - rotation)
        print(f"mi, {contrast}: {shift_err:.3f} mm, {angle_err:.3f}°")
        assert shift_err < 0.5 and angle_err < 0.5


def test_mutual_information_refuses_affine(t1):
    with pytest.raises(ValueError, match="method 'mi' supports transform"):
        register(t1, t1, method="mi", transform="affine")
