"""The ilastik-style pixel classifier: feature bank, models, cache, chunks, data."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from medimg_lab import processing
from medimg_lab.errors import OutputExistsError
from medimg_lab.metrics import dice
from medimg_lab.params import parameters
from medimg_lab.segmentation.classifier import (
    FEATURES,
    PixelClassifier,
    UntrustedModelError,
    feature_bank,
    feature_names,
)

# ------------------------------------------------------------------ phantoms


def disc_phantom(size=64, radius=18, seed=0):
    """A bright disc (+4 SD) on Gaussian noise, and its true mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
    image = rng.normal(100, 10, (size, size)).astype(np.float32)
    image[disc] += 40
    return image, disc


def disc_scribbles(size=64, radius=18):
    """Strokes as one draws them: a cross inside the disc reaching its edge
    (1), two arcs just outside it and a line near the image border (2)."""
    s = np.zeros((size, size), np.uint8)
    c = size // 2
    s[c, c - radius + 1 : c + radius - 1] = 1
    s[c - radius + 1 : c + radius - 1, c] = 1
    t = np.linspace(0.3, 1.3, 40)
    for sign in (1, -1):
        s[
            np.round(c + sign * (radius + 2) * np.sin(t)).astype(int),
            np.round(c + sign * (radius + 2) * np.cos(t)).astype(int),
        ] = 2
    s[3:20, 4] = 2
    return s


def ball_phantom(shape=(24, 40, 40), seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    ball = (
        ((zz - shape[0] / 2) / 9) ** 2
        + ((yy - shape[1] / 2) / 12) ** 2
        + ((xx - shape[2] / 2) / 12) ** 2
    ) < 1
    image = rng.normal(0, 10, shape).astype(np.float32) + 50 * ball
    scribbles = np.zeros(shape, np.uint8)
    c = (shape[0] // 2, shape[1] // 2, shape[2] // 2)
    scribbles[c[0], c[1] - 4 : c[1] + 4, c[2]] = 1
    scribbles[c[0] - 3, c[1], c[2] - 4 : c[2] + 4] = 1
    scribbles[c[0], 2:30, 2] = 2
    scribbles[3, 5, 5:35] = 2
    scribbles[shape[0] - 2, 35, 5:35] = 2
    return image, scribbles, ball


# -------------------------------------------------------------- feature bank


def test_feature_bank_shape_dtype_and_names_2d():
    image = np.zeros((20, 30), np.int16)
    bank = feature_bank(image, scales_mm=(1, 2))
    names = feature_names(scales_mm=(1, 2))
    assert bank.shape == (len(names), 20, 30) == (17, 20, 30)
    assert bank.dtype == np.float32
    assert names[:3] == ["intensity", "gaussian σ=1 mm", "gaussian σ=2 mm"]
    assert "Hessian λ2 σ=2 mm" in names
    assert "structure tensor λ1 σ=1 mm" in names


def test_feature_bank_volume_has_as_many_features_as_an_image():
    volume = np.zeros((6, 12, 14), np.float32)
    bank = feature_bank(volume, scales_mm=(0.5, 1, 2, 4))
    assert bank.shape == (33, 6, 12, 14)
    assert len(feature_names()) == 33


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_feature_bank_is_float32_and_intensity_keeps_units(dtype):
    image = (np.arange(16 * 16).reshape(16, 16) % 200).astype(dtype)
    bank = feature_bank(image, scales_mm=(1,), features=("intensity", "gaussian"))
    assert bank.dtype == np.float32
    np.testing.assert_array_equal(bank[0], image.astype(np.float32))


def test_feature_subset_and_order_follow_features():
    names = feature_names(scales_mm=(2, 1), features=("hessian", "intensity"))
    assert names == [
        "intensity",
        "Hessian λ1 σ=1 mm",
        "Hessian λ1 σ=2 mm",
        "Hessian λ2 σ=1 mm",
        "Hessian λ2 σ=2 mm",
    ]
    bank = feature_bank(np.zeros((8, 8)), scales_mm=(2, 1), features=("hessian",))
    assert bank.shape == (4, 8, 8)


def test_gaussian_feature_honours_anisotropic_spacing():
    rng = np.random.default_rng(1)
    volume = rng.normal(0, 1, (12, 20, 24)).astype(np.float32)
    spacing = (4.0, 1.0, 1.0)
    bank = feature_bank(volume, scales_mm=(1, 2), spacing=spacing)
    names = feature_names(scales_mm=(1, 2))
    for sigma in (1, 2):
        expected = processing.gaussian(volume, sigma_mm=sigma, spacing=spacing)
        got = bank[names.index(f"gaussian σ={sigma} mm")]
        np.testing.assert_allclose(got, expected, atol=1e-6)
    isotropic = feature_bank(volume, scales_mm=(1, 2), spacing=(1, 1, 1))
    assert not np.allclose(isotropic[names.index("gaussian σ=2 mm")], got)


def test_pyramid_scales_stay_close_to_the_exact_filter():
    rng = np.random.default_rng(2)
    image = ndimage.zoom(rng.normal(0, 1, (32, 32)), 8, order=1).astype(np.float32)
    kwargs = dict(scales_mm=(4, 8), features=("gaussian", "hessian"))
    fast = feature_bank(image, **kwargs)
    exact = feature_bank(image, pyramid=False, **kwargs)
    np.testing.assert_allclose(
        fast[1], processing.gaussian(image, sigma_mm=8), atol=0.01 * exact[1].std()
    )
    for f, e in zip(fast, exact, strict=True):
        assert np.corrcoef(f.ravel(), e.ravel())[0, 1] > 0.99


def test_volume_pyramid_scales_stay_close_to_the_exact_filter():
    rng = np.random.default_rng(4)
    volume = ndimage.zoom(rng.normal(0, 1, (6, 12, 12)), 6, order=1)
    volume = volume.astype(np.float32)
    kwargs = dict(scales_mm=(2, 6), spacing=(3, 1, 1))
    fast, exact = (
        feature_bank(volume, **kwargs),
        feature_bank(volume, pyramid=False, **kwargs),
    )
    names = feature_names(scales_mm=(2, 6))
    g6 = names.index("gaussian σ=6 mm")
    np.testing.assert_allclose(fast[g6], exact[g6], atol=0.01 * exact[g6].std())
    np.testing.assert_array_equal(fast[:g6], exact[:g6])  # 2 mm: full resolution
    for name, f, e in zip(names, fast, exact, strict=True):
        # λ2 of the structure tensor, a small difference of large numbers, is
        # the least faithful on this texture
        least = 0.9 if name.startswith("structure tensor λ2") else 0.99
        assert np.corrcoef(f.ravel(), e.ravel())[0, 1] > least, name


def test_derivatives_are_in_units_per_mm():
    # f = 3 x (mm) along columns, 0.5 mm pixels: the gradient is 3 units/mm
    spacing = (0.5, 0.5)
    x_mm = np.arange(40) * spacing[1]
    image = np.tile(3 * x_mm, (40, 1)).astype(np.float32)
    names = feature_names(scales_mm=(1,))
    bank = feature_bank(image, scales_mm=(1,), spacing=spacing)
    inner = (slice(10, 30), slice(10, 30))
    grad = bank[names.index("gradient magnitude σ=1 mm")][inner]
    np.testing.assert_allclose(grad, 3, rtol=1e-4)
    np.testing.assert_allclose(bank[names.index("LoG σ=1 mm")][inner], 0, atol=1e-3)
    st = bank[names.index("structure tensor λ1 σ=1 mm")][inner]
    np.testing.assert_allclose(st, 9, rtol=1e-3)  # (units/mm)²


def test_hessian_eigenvalues_of_a_quadric():
    # f = 0.5 x² - y² (mm): Hessian diag(1, -2) per mm², sorted λ1 ≥ λ2
    spacing = (0.8, 0.5)
    y = (np.arange(48) - 24.0)[:, None] * spacing[0]
    x = (np.arange(48) - 24.0)[None, :] * spacing[1]
    image = (0.5 * x**2 - y**2).astype(np.float32)
    names = feature_names(scales_mm=(1,))
    bank = feature_bank(image, scales_mm=(1,), spacing=spacing)
    inner = (slice(16, 32), slice(16, 32))
    np.testing.assert_allclose(bank[names.index("Hessian λ1 σ=1 mm")][inner], 1, 1e-3)
    np.testing.assert_allclose(bank[names.index("Hessian λ2 σ=1 mm")][inner], -2, 1e-3)
    np.testing.assert_allclose(bank[names.index("LoG σ=1 mm")][inner], -1, rtol=1e-3)


def test_dog_is_the_band_between_consecutive_scales():
    image = np.random.default_rng(3).normal(0, 1, (32, 32)).astype(np.float32)
    names = feature_names(scales_mm=(1, 2))
    bank = feature_bank(image, scales_mm=(1, 2))
    g1, g2 = (bank[names.index(f"gaussian σ={s} mm")] for s in (1, 2))
    np.testing.assert_allclose(bank[names.index("DoG σ=2 mm")], g1 - g2, atol=1e-6)
    np.testing.assert_allclose(bank[names.index("DoG σ=1 mm")], image - g1, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scales_mm=()), "at least one scale"),
        (dict(scales_mm=(0.01,)), r"scales_mm must lie in \[0.1, 20\] mm; got 0.01"),
        (dict(scales_mm=(1, 1)), "distinct"),
        (dict(features=("gaussian", "sobel")), "unknown feature 'sobel'; choose"),
        (dict(spacing=(1, 0)), "spacing must give 2 positive values"),
    ],
)
def test_feature_bank_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        feature_bank(np.zeros((8, 8)), **kwargs)


def test_feature_bank_rejects_nan_and_4d():
    with pytest.raises(ValueError, match="NaN"):
        feature_bank(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="2D"):
        feature_bank(np.zeros((2, 3, 4, 5)))


# ---------------------------------------------------------------- the models


@pytest.mark.parametrize("model", ["forest", "svm", "linear"])
def test_disc_on_noise_is_found_by_every_model(model):
    image, disc = disc_phantom()
    clf = PixelClassifier(model, scales_mm=(1, 2, 4)).fit(image, disc_scribbles())
    labels = clf.predict()
    score = dice(labels == 1, disc)
    print(f"{model}: Dice {score:.3f} against the disc")
    assert score >= 0.95, f"{model} reached Dice {score:.3f} < 0.95"
    assert labels.dtype == np.uint8
    assert list(clf.classes) == [1, 2]


def test_probabilities_and_uncertainty():
    image, _ = disc_phantom()
    clf = PixelClassifier(scales_mm=(1, 2, 4)).fit(image, disc_scribbles())
    proba = clf.predict_proba()
    assert proba.shape == (2, *image.shape) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(clf.classes[proba.argmax(0)], clf.predict())
    p = proba[0].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nan_to_num(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2)
    expected = {"entropy": entropy, "margin": 1 - np.abs(2 * p - 1)}
    for kind, want in expected.items():
        u = clf.uncertainty(kind=kind)
        assert u.shape == image.shape and u.dtype == np.float32
        assert 0 <= u.min() and u.max() <= 1
        np.testing.assert_allclose(u, want, atol=1e-5)
    # 0 where the classifier is sure, 1 where both classes are equally likely
    assert clf.uncertainty()[(p > 0.999) | (p < 0.001)].max() < 0.02


def test_region_prediction_equals_the_crop_of_the_whole():
    image, _ = disc_phantom()
    clf = PixelClassifier(scales_mm=(1, 2)).fit(image, disc_scribbles())
    whole = clf.predict_proba()
    region = np.s_[10:40, 25:60]
    np.testing.assert_array_equal(
        clf.predict_proba(region=region), whole[:, 10:40, 25:60]
    )
    assert clf.predict(region=region).shape == (30, 35)


def test_predict_on_another_image():
    image, _ = disc_phantom()
    other, other_disc = disc_phantom(seed=5)
    clf = PixelClassifier(scales_mm=(1, 2, 4)).fit(image, disc_scribbles())
    assert dice(clf.predict(other) == 1, other_disc) >= 0.95
    assert clf.feature_computations == 2


def test_linear_weights_are_u_equals_sum_a_i_f_i():
    image, disc = disc_phantom()
    clf = PixelClassifier("linear", scales_mm=(1, 2)).fit(image, disc_scribbles())
    n = len(clf.feature_names)
    assert clf.weights.shape == (1, n) and clf.intercept.shape == (1,)
    a, b = clf.weights_in_feature_units
    features = feature_bank(image, scales_mm=(1, 2))
    u = np.tensordot(a[0], features, axes=1) + b[0]  # u = Σ a_i f_i + b
    np.testing.assert_allclose(clf.decision_function()[0], u, rtol=1e-4, atol=1e-3)
    # Two classes: u is the log-odds of classes[1] (background) over classes[0].
    labels = clf.predict()
    np.testing.assert_array_equal(labels == 2, u > 0)
    assert dice(labels == 1, disc) >= 0.95


def test_linear_model_with_three_classes_has_one_row_per_class():
    image, _ = disc_phantom()
    scribbles = disc_scribbles()
    scribbles[60, 40:60] = 3
    clf = PixelClassifier("linear", scales_mm=(1,)).fit(image, scribbles)
    assert clf.weights.shape == (3, len(clf.feature_names))
    assert clf.decision_function().shape == (3, *image.shape)


def test_forest_feature_importances():
    image, _ = disc_phantom()
    clf = PixelClassifier(scales_mm=(1, 2)).fit(image, disc_scribbles())
    importances = clf.feature_importances
    assert importances.shape == (len(clf.feature_names),)
    assert importances.sum() == pytest.approx(1)
    with pytest.raises(ValueError, match="model='linear' only"):
        _ = clf.weights


# --------------------------------------------------------------------- cache


def test_retrain_reuses_the_cached_features():
    image, _ = disc_phantom()
    scribbles = disc_scribbles()
    clf = PixelClassifier(scales_mm=(1, 2)).fit(image, scribbles)
    clf.predict()
    assert clf.feature_computations == 1
    scribbles[40:50, 20] = 1  # a new stroke
    clf.fit(image, scribbles)
    clf.predict()
    clf.predict(image.copy())  # same content, another array: still cached
    assert clf.feature_computations == 1
    clf.fit(image, scribbles, spacing=(2, 2))  # other spacing: other features
    assert clf.feature_computations == 2


def test_volume_retrain_reuses_the_cached_slices():
    volume, scribbles, _ = ball_phantom()
    clf = PixelClassifier(scales_mm=(1, 2), chunk_slices=4).fit(volume, scribbles)
    first = clf.feature_computations
    assert first >= 1
    more = scribbles.copy()
    more[12, 18:22, 25] = 1  # new voxels on an already scribbled slice
    clf.fit(volume, more)
    clf.predict(region=np.s_[12:13])  # the scribbled slice, as a viewer shows it
    assert clf.feature_computations == first
    more[16, 18:22, 25] = 1  # a slice never seen: one more slab
    clf.fit(volume, more)
    assert clf.feature_computations == first + 1


def test_cache_budget_keeps_the_last_bank():
    image, _ = disc_phantom()
    other, _ = disc_phantom(seed=1)
    clf = PixelClassifier(scales_mm=(1,), cache_mb=0).fit(image, disc_scribbles())
    clf.fit(image, disc_scribbles())
    assert clf.feature_computations == 1
    clf.predict(other)
    clf.predict()  # the first bank was dropped to stay within 0 MB
    assert clf.feature_computations == 3


# -------------------------------------------------------------------- chunks


def test_chunked_volume_prediction_equals_unchunked():
    volume, scribbles, ball = ball_phantom()
    kwargs = dict(scales_mm=(1, 2, 4), n_estimators=20)  # 4 mm: on the pyramid
    whole = PixelClassifier(chunk_slices=volume.shape[0], **kwargs)
    chunked = PixelClassifier(chunk_slices=3, **kwargs)
    p_whole = whole.fit(volume, scribbles).predict_proba()
    p_chunked = chunked.fit(volume, scribbles).predict_proba()
    assert whole.feature_computations < chunked.feature_computations
    np.testing.assert_allclose(p_chunked, p_whole, atol=1e-6)
    assert dice(chunked.predict() == 1, ball) >= 0.9


def test_volume_region_prediction_equals_the_crop():
    volume, scribbles, _ = ball_phantom()
    clf = PixelClassifier(scales_mm=(1, 2), chunk_slices=5).fit(volume, scribbles)
    whole = clf.predict_proba()
    region = np.s_[7:13, 5:30]
    np.testing.assert_allclose(
        clf.predict_proba(region=region), whole[:, 7:13, 5:30], atol=1e-6
    )


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "scribbles, match",
    [
        (np.zeros((64, 64), np.uint8), "scribbles label no pixel"),
        (np.ones((64, 64), np.uint8), "only class 1; at least two classes"),
        (np.zeros((32, 64), np.uint8), r"scribbles must have the image's shape"),
        (np.full((64, 64), -1, np.int16), "scribbles must be >= 0"),
        (np.zeros((64, 64), np.float32), "integer array"),
    ],
)
def test_fit_errors(scribbles, match):
    image, _ = disc_phantom()
    with pytest.raises(ValueError, match=match):
        PixelClassifier().fit(image, scribbles)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(model="knn"), "model must be one of 'forest', 'svm', 'linear'; got"),
        (dict(n_estimators=0), r"n_estimators must lie in \[1, 500\] trees; got 0"),
        (dict(max_depth=0.5), "max_depth must be a whole number"),
        (dict(features=("hog",)), "unknown feature 'hog'"),
        (dict(scales_mm=(50,)), r"scales_mm must lie in \[0.1, 20\] mm"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelClassifier(**kwargs)


def test_use_before_fit_and_bad_region():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="call fit"):
        PixelClassifier().predict(np.zeros((8, 8)))
    image, _ = disc_phantom()
    clf = PixelClassifier(scales_mm=(1,), n_estimators=5).fit(image, disc_scribbles())
    with pytest.raises(ValueError, match="region must"):
        clf.predict(region=(slice(0, 10, 2),))
    with pytest.raises(ValueError, match="region must"):
        clf.predict(region=np.s_[0:10, 0:10, 0:10])


def test_parameters_are_declared_once():
    specs = parameters(PixelClassifier.__init__)
    assert specs["model"].param.choices == ("forest", "svm", "linear")
    assert specs["n_estimators"].default == 50
    assert specs["scales_mm"].param.unit == "mm"
    assert specs["max_depth"].optional
    assert set(FEATURES) >= {"gaussian", "gradient", "log", "dog", "structure"}


# --------------------------------------------------------------- persistence


@pytest.mark.parametrize("model", ["forest", "svm", "linear"])
def test_save_and_load(tmp_path, model):
    image, _ = disc_phantom()
    clf = PixelClassifier(model, scales_mm=(1, 2), n_estimators=10)
    clf.fit(image, disc_scribbles())
    path = clf.save(tmp_path / "clf.skops")
    loaded = PixelClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict(image), clf.predict())
    assert loaded.feature_names == clf.feature_names


def test_save_never_overwrites_without_being_asked(tmp_path):
    image, _ = disc_phantom()
    clf = PixelClassifier("linear", scales_mm=(1,)).fit(image, disc_scribbles())
    path = clf.save(tmp_path / "clf.skops")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        clf.save(path)
    assert path.read_bytes() == before
    clf.save(path, overwrite=True)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_load_refuses_untrusted_types(tmp_path):
    import os

    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    sio.dump({"format": "x", "estimator": FunctionTransformer(func=os.system)}, path)
    with pytest.raises(UntrustedModelError, match="types that are not trusted: posix"):
        PixelClassifier.load(path)
    sio.dump({"format": "x", "estimator": KNeighborsClassifier()}, path)
    with pytest.raises(UntrustedModelError, match="not a classifier saved by"):
        PixelClassifier.load(path)
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(UntrustedModelError, match="is not a skops file"):
        PixelClassifier.load(tmp_path / "junk.skops")


# ------------------------------------------------------------ real data: MNI

WM_DICE_MIN = 0.85


def mni_scribbles(wm, gm, slices=(50, 80, 110), blobs=10, seed=0):
    """A small fixed scribble set from the reference maps.

    On three axial slices, ``blobs`` 3×3 patches per class centred on points
    drawn (seeded) from eroded cores: white matter (map > 0.9), gray matter
    (map > 0.7) and "other" (both maps < 0.1 within 6 mm of the brain: CSF
    and background). At most 90 voxels per class per slice.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(wm.shape, np.uint8)
    for z in slices:
        brain = (wm[z] + gm[z]) > 0.5
        near = ndimage.binary_dilation(brain, iterations=6)
        pools = {
            1: wm[z] > 0.9,
            2: gm[z] > 0.7,
            3: (wm[z] < 0.1) & (gm[z] < 0.1) & near,
        }
        for label, pool in pools.items():
            ys, xs = np.nonzero(ndimage.binary_erosion(pool))
            for i in rng.choice(len(ys), blobs, replace=False):
                out[z, ys[i] - 1 : ys[i] + 2, xs[i] - 1 : xs[i] + 2] = label
    return out


def test_mni152_white_matter_from_a_few_scribbles():
    from medimg_lab.data import sample

    t1 = sample("brain_mri")
    wm = sample("brain_mri_wm").array
    gm = sample("brain_mri_gm").array
    scribbles = mni_scribbles(wm, gm)
    counts = {c: int((scribbles == c).sum()) for c in (1, 2, 3)}
    assert max(counts.values()) <= 270

    start = time.perf_counter()
    clf = PixelClassifier("forest").fit(t1, scribbles)  # spacing from the MedImage
    labels = clf.predict()  # the whole 189×233×197 volume, in slabs
    seconds = time.perf_counter() - start

    wm_dice = dice(labels == 1, wm > 0.5)
    gm_dice = dice(labels == 2, gm > 0.5)
    print(
        f"MNI152 T1, forest from {counts} scribbled voxels on 3 slices: "
        f"white-matter Dice {wm_dice:.3f}, gray-matter Dice {gm_dice:.3f} "
        f"(whole volume, {seconds:.1f} s)"
    )
    assert wm_dice >= WM_DICE_MIN, (
        f"white-matter Dice {wm_dice:.3f} < {WM_DICE_MIN} (gray matter {gm_dice:.3f})"
    )
