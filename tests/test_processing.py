"""Processing: G = f * h, enhancement and smoothing, on phantoms and real images."""

from __future__ import annotations

import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab import processing as P
from medimg_lab.metrics import psnr


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


def test_convolution_by_hand():
    f = np.arange(25, dtype=np.float32).reshape(5, 5)
    h = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32)  # shift
    g = P.convolve(f, h)
    # (f * h)(x, y) = sum f(x - i, y - j) h(i, j): h at (0, +1) picks f(x, y - 1).
    np.testing.assert_array_equal(g[1:4, 1:4], f[1:4, 0:3])


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.float64])
def test_delta_kernel_is_the_identity(dtype):
    f = np.random.default_rng(0).integers(0, 200, (20, 30)).astype(dtype)
    np.testing.assert_array_equal(P.convolve(f, "identity"), f.astype(np.float64))


@pytest.mark.parametrize(
    ("name", "total"),
    [
        ("identity", 1),
        ("box", 1),
        ("gaussian", 1),
        ("sharpen", 1),
        ("laplacian", 0),
        ("sobel_x", 0),
        ("sobel_y", 0),
        ("emboss", 1),
    ],
)
def test_kernel_sums(name, total):
    assert P.kernel(name).sum() == pytest.approx(total, abs=1e-6)


def test_smoothing_kernels_keep_flat_regions_and_units():
    flat = np.full((16, 16), -1000, np.int16)  # air in HU
    for name in ("box", "gaussian", "sharpen"):
        np.testing.assert_allclose(P.convolve(flat, name), -1000, atol=1e-3)


def test_normalize_divides_by_the_sum():
    flat = np.full((8, 8), 7.0, np.float32)
    np.testing.assert_allclose(P.convolve(flat, np.ones((3, 3)), normalize=True), 7)


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd sides"):
        P.convolve(np.zeros((5, 5)), np.ones((2, 2)))


def test_equalization_flattens_the_cdf():
    skewed = np.random.default_rng(0).exponential(100, (128, 128)).astype(np.float32)
    out = P.equalize_hist(skewed, window=(500, 1000), nbins=1024)
    quantiles = np.quantile(out, [0.1, 0.25, 0.5, 0.75, 0.9])
    # The output is spread uniformly over the window's range [0, 1000].
    np.testing.assert_allclose(quantiles, [100, 250, 500, 750, 900], atol=15)
    assert np.quantile(skewed, 0.5) < 100  # the input was far from uniform


def test_equalization_on_real_ct_spreads_the_brain(ct):
    brain = (ct.array > 10) & (ct.array < 60)
    out = P.equalize_hist(ct.array, window=(40, 80))
    assert out[brain].std() > 1.5 * ct.array[brain].std()


def test_equalization_of_uint8_stays_uint8():
    img = np.random.default_rng(1).integers(100, 140, (64, 64)).astype(np.uint8)
    out = P.equalize_hist(img)
    assert out.dtype == np.uint8 and out.max() - out.min() > 200


def test_clahe_keeps_the_window_range_and_adds_local_contrast(ct):
    out = P.clahe(ct.array, window=(40, 80), clip_limit=3)
    assert out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 80
    brain = (ct.array > 10) & (ct.array < 60)
    assert out[brain].std() > np.clip(ct.array, 0, 80)[brain].std()


def test_gamma_brightens_below_one():
    img = np.linspace(0, 1000, 101, dtype=np.float32).reshape(1, 101)
    out = P.gamma(img, gamma=0.5, window=(500, 1000))
    assert out[0, 25] > img[0, 25]
    assert out[0, 0] == pytest.approx(0) and out[0, -1] == pytest.approx(1000)


def test_median_removes_salt_and_pepper():
    rng = np.random.default_rng(2)
    clean = np.full((64, 64), 100, np.int16)
    noisy = clean.copy()
    salt = rng.random(clean.shape) < 0.05
    pepper = rng.random(clean.shape) < 0.05
    noisy[salt], noisy[pepper] = 3000, -1000
    out = P.median(noisy, size=5)
    assert out.dtype == np.int16
    assert np.mean(out != clean) < 0.002


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("size", [3, 7])
def test_median_on_every_dtype_keeps_it(dtype, size):
    img = np.random.default_rng(3).integers(0, 200, (20, 20)).astype(dtype)
    out = P.median(img, size=size)
    assert out.dtype == dtype
    from scipy.ndimage import median_filter

    np.testing.assert_array_equal(out, median_filter(img, size=size, mode="mirror"))


def test_sigma_mm_respects_anisotropic_spacing():
    delta = np.zeros((9, 41, 41), np.float32)
    delta[4, 20, 20] = 1
    out = P.gaussian(delta, sigma_mm=2.0, spacing=(4.0, 1.0, 0.5))

    def sd_px(profile):
        x = np.arange(profile.size) - profile.size // 2
        return np.sqrt((profile * x**2).sum() / profile.sum())

    assert sd_px(out[:, 20, 20]) == pytest.approx(2.0 / 4.0, rel=0.15)
    assert sd_px(out[4, :, 20]) == pytest.approx(2.0 / 1.0, rel=0.05)
    assert sd_px(out[4, 20, :]) == pytest.approx(2.0 / 0.5, rel=0.05)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)


def test_gaussian_keeps_float32_and_hu(ct):
    out = P.gaussian(ct.array, sigma_mm=1.0, spacing=ct.spacing)
    assert out.dtype == np.float32
    inside = out[200:300, 200:300]
    assert -100 < inside.mean() < 200  # still Hounsfield units
    assert P.gaussian(ct.array.astype(np.float64), sigma_mm=1).dtype == np.float64


def test_input_is_never_modified(ct):
    before = ct.array.copy()
    for op in (P.gaussian, P.clahe, P.equalize_hist, P.median, P.sobel, P.bilateral):
        op(ct.array)
    np.testing.assert_array_equal(ct.array, before)


def test_sobel_is_units_per_mm():
    ramp = np.tile(np.arange(32, dtype=np.float32) * 10, (32, 1))  # 10 HU per px
    out = P.sobel(ramp, spacing=(0.5, 0.5))
    np.testing.assert_allclose(out[5:-5, 5:-5], 20)  # 10 HU / 0.5 mm


def test_canny_finds_the_edge_of_a_disc():
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 15**2).astype(np.float32) * 100
    edges = P.canny(disc, sigma_mm=1.0)
    radius = np.hypot(*(np.nonzero(edges) - np.array([[32], [32]])))
    assert edges.dtype == bool and edges.sum() > 50
    assert np.abs(radius - 15).max() <= 2


def test_bilateral_and_nlm_and_diffusion_denoise_a_phantom():
    rng = np.random.default_rng(4)
    clean = np.zeros((64, 64), np.float32)
    clean[16:48, 16:48] = 100
    noisy = clean + rng.normal(0, 10, clean.shape).astype(np.float32)
    score = {
        name: psnr(clean, out, data_range=100)
        for name, out in {
            "noisy": noisy,
            "gaussian": P.gaussian(noisy, sigma_mm=1.0),
            "median": P.median(noisy, size=3),
            "bilateral": P.bilateral(noisy, sigma_mm=1.5, sigma_range=30),
            "nlm": P.non_local_means(noisy, h=10, window=(50, 160)),
            "diffusion": P.anisotropic_diffusion(noisy, iterations=15, kappa=30),
        }.items()
    }
    assert score["gaussian"] > score["noisy"] + 1
    assert score["median"] > score["noisy"] + 3
    # Edge-preserving smoothers beat plain blurring on a sharp-edged phantom.
    for name in ("bilateral", "nlm", "diffusion"):
        assert score[name] > score["median"] + 3, name


def test_volumes_are_filtered_slice_by_slice():
    vol = np.random.default_rng(5).normal(0, 1, (3, 20, 20)).astype(np.float32)
    ops = (
        P.median,
        P.sobel,
        lambda v: P.clahe(v, window=(0, 4)),
        lambda v: P.bilateral(v, sigma_range=0.5),
    )
    for op in ops:
        np.testing.assert_allclose(op(vol)[1], op(vol[1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "noise", [P.add_gaussian_noise, P.add_poisson_noise, P.add_speckle_noise]
)
def test_noise_is_seeded(noise):
    img = np.full((32, 32), 100, np.float32)
    a, b, c = noise(img, seed=1), noise(img, seed=1), noise(img, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.dtype == np.float32


def test_gaussian_noise_has_the_stated_sd():
    out = P.add_gaussian_noise(np.zeros((200, 200), np.float32), sigma=25, seed=0)
    assert out.std() == pytest.approx(25, rel=0.02)


def test_poisson_noise_falls_with_counts():
    img = np.tile(np.linspace(0, 1000, 64, dtype=np.float32), (64, 1))
    few = P.add_poisson_noise(img, counts=50, seed=0)
    many = P.add_poisson_noise(img, counts=50000, seed=0)
    assert np.abs(few - img).mean() > 5 * np.abs(many - img).mean()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: P.gaussian(np.zeros((4, 4)), sigma_mm=0),
            r"^gaussian: sigma_mm must lie in \[0.1, 50\] mm; got 0$",
        ),
        (lambda: P.gaussian(np.zeros((4, 4)), spacing=(1,)), "spacing must give 2"),
        (lambda: P.median(np.zeros((4, 4)), size=4), "odd"),
        (lambda: P.canny(np.zeros((4, 4)), low=0.5, high=0.2), "low <= high"),
        (lambda: P.gamma(np.zeros((4, 4)), gamma=0), r"gamma must lie in \[0.1, 5\]"),
        (lambda: P.gaussian(np.zeros((2, 2, 2, 2))), "2D .* or a 3D"),
        (lambda: P.kernel("blur"), "box, gaussian"),
        (
            lambda: P.anisotropic_diffusion(np.ones((4, 4)), step=0.5),
            r"step must lie in \[0.01, 0.25\]; got 0.5",
        ),
        (
            lambda: P.bilateral(np.ones((4, 4)), sigma_range=0),
            r"sigma_range must lie in \(0, inf\) image units; got 0",
        ),
        (lambda: P.median(np.zeros((4, 4)), size=21), r"size must lie in \[3, 15\]"),
    ],
)
def test_bad_parameters_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------ one border rule: "mirror"

_DTYPES = [np.uint8, np.uint16, np.int16, np.float32]


def _as(dtype, hu: np.ndarray) -> np.ndarray:
    """A CT crop in ``dtype``: HU, HU + 1024 for uint16, windowed for uint8."""
    if dtype == np.uint8:
        return P.window_level(hu, center=40, width=400)
    if dtype == np.uint16:
        return (hu.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16)
    return hu.astype(dtype)


@pytest.fixture(scope="module")
def crops():
    """Real slices with structure at every border, square and not."""
    ct, spine = ml.data.sample("head_ct"), ml.data.sample("spine_ct")
    return {
        "ct-edge": (ct.array[180:217, 40:93], ct.spacing),  # skull at the borders
        "spine": (spine.array[30:94, 30:94], spine.spacing),
        "thin": (ct.array[250:253, 100:140], (0.48, 1.3)),  # anisotropic
    }


# filter, its parameters, and how far (px) it reaches at those parameters.
_FILTERS = {
    "convolve": (
        lambda a, sp: P.convolve(a, np.arange(15, dtype=np.float32).reshape(3, 5)),
        2,
    ),
    "gaussian": (lambda a, sp: P.gaussian(a, sigma_mm=1.5, spacing=sp), 16),
    "unsharp_mask": (lambda a, sp: P.unsharp_mask(a, sigma_mm=1.0, spacing=sp), 12),
    "sobel": (lambda a, sp: P.sobel(a, spacing=sp), 1),
    "median3": (lambda a, sp: P.median(a, size=3), 1),
    "median5": (lambda a, sp: P.median(a, size=5), 2),
    "median9": (lambda a, sp: P.median(a, size=9), 4),
    "bilateral": (
        lambda a, sp: P.bilateral(a, sigma_mm=1.0, sigma_range=40.0, spacing=sp),
        6,
    ),
    "non_local_means": (
        lambda a, sp: P.non_local_means(
            a, h=30.0, patch=3, search=7, window=(500.0, 3000.0)
        ),
        4,
    ),
    "anisotropic_diffusion": (
        lambda a, sp: P.anisotropic_diffusion(a, iterations=5, kappa=50.0),
        5,
    ),
}


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("name", list(_FILTERS))
def test_every_filter_mirrors_its_borders(crops, name, dtype):
    """Output at the border = the filter on the image padded as d c b | a b c d."""
    fn, reach = _FILTERS[name]
    for image, spacing in (crops[k] for k in ("ct-edge", "thin")):
        image = _as(dtype, image)
        out = fn(image, spacing)
        padded = np.pad(image, reach + 1, mode="reflect")  # numpy's name for it
        inner = (slice(reach + 1, -(reach + 1)),) * 2
        expected = fn(padded, spacing)[inner]
        scale = float(np.ptp(out.astype(np.float64))) or 1.0
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * scale)
        assert out.dtype == expected.dtype


@pytest.mark.parametrize("dtype", [*_DTYPES, np.float64])
@pytest.mark.parametrize("size", [3, 5, 7, 9, 15])
def test_median_is_scipys_mirror_median_for_every_size_and_dtype(crops, dtype, size):
    from scipy.ndimage import median_filter

    for image, _ in crops.values():
        image = _as(dtype, image)
        out = P.median(image, size=size)
        assert out.dtype == image.dtype
        np.testing.assert_array_equal(
            out, median_filter(image, size=size, mode=P.BORDER_MODE)
        )


@pytest.mark.parametrize("shape", [(1, 6), (2, 9), (5, 3), (3, 4, 2)])
@pytest.mark.parametrize("dtype", _DTYPES)
def test_median_borders_on_images_smaller_than_the_window(shape, dtype):
    from scipy.ndimage import median_filter

    image = np.random.default_rng(6).integers(0, 250, shape).astype(dtype)
    footprint = (1,) * (image.ndim - 2) + (7, 7)
    np.testing.assert_array_equal(
        P.median(image, size=7), median_filter(image, size=footprint, mode="mirror")
    )


@pytest.mark.parametrize("dtype", _DTYPES)
def test_linear_filters_are_scipys_with_mode_mirror(crops, dtype):
    from scipy import ndimage

    image, spacing = crops["ct-edge"]
    image = _as(dtype, image)
    f = image.astype(np.float64)
    scale = float(np.ptp(f)) or 1.0
    h = np.arange(15, dtype=np.float64).reshape(3, 5) - 7
    np.testing.assert_allclose(
        P.convolve(image, h),
        ndimage.convolve(f, h, mode="mirror"),
        atol=1e-5 * scale * np.abs(h).sum(),
    )
    sigma = [1.5 / s for s in spacing]
    np.testing.assert_allclose(
        P.gaussian(image, sigma_mm=1.5, spacing=spacing),
        ndimage.gaussian_filter(f, sigma, mode="mirror", truncate=4.0),
        atol=2e-3 * scale,
    )
    gx = ndimage.sobel(f, axis=1, mode="mirror") / (8 * spacing[1])
    gy = ndimage.sobel(f, axis=0, mode="mirror") / (8 * spacing[0])
    np.testing.assert_allclose(
        P.sobel(image, spacing=spacing), np.hypot(gx, gy), rtol=1e-4, atol=1e-4 * scale
    )


def test_gaussian_mirrors_along_the_slices_too():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    vol = rng.normal(0, 100, (5, 12, 9)).astype(np.float32)
    vol[0] += 500  # a bright first slice: the z border matters
    spacing = (2.0, 0.8, 1.1)
    out = P.gaussian(vol, sigma_mm=2.0, spacing=spacing)
    expected = ndimage.gaussian_filter(
        vol.astype(np.float64), [2.0 / s for s in spacing], mode="mirror"
    )
    np.testing.assert_allclose(out, expected, atol=2e-3 * float(np.ptp(vol)))


@pytest.mark.parametrize("dtype", _DTYPES)
def test_canny_gradients_are_mirrored_at_the_border(crops, dtype):
    """Canny's edges come from scipy's mirror-mode Sobel of the smoothed levels."""
    import cv2
    from scipy import ndimage

    for image, _ in crops.values():
        image = _as(dtype, image)
        window = (40.0, 400.0)
        edges = P.canny(image, sigma_mm=1.0, low=0.1, high=0.3, window=window)
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
        unit = np.clip((image.astype(np.float32) - lo) / (hi - lo), 0, 1)
        levels = np.clip(np.rint(P.gaussian(unit, sigma_mm=1.0) * 255), 0, 255)
        gx = ndimage.sobel(levels, axis=1, mode="mirror").astype(np.int16)
        gy = ndimage.sobel(levels, axis=0, mode="mirror").astype(np.int16)
        top = float(np.hypot(gx, gy).max()) or 1.0
        expected = cv2.Canny(gx, gy, 0.1 * top, 0.3 * top, L2gradient=True) > 0
        assert edges.any()
        np.testing.assert_array_equal(edges, expected)


def test_diffusion_with_mirrored_neighbours_keeps_the_integral():
    """No flux leaves through a mirrored border (Neumann, pixels as grid nodes).

    Mirroring about the edge pixel puts the boundary half a cell inside it,
    so the conserved quantity is the trapezoidal mean (edge pixels weigh 1/2).
    """
    rng = np.random.default_rng(8)
    image = rng.normal(0, 5, (20, 30)).astype(np.float32)
    image[:, :3] += 100  # a bright band along the left border
    weights = np.ones(image.shape)
    for edge in (0, -1):
        weights[edge] *= 0.5
        weights[:, edge] *= 0.5

    def mean(a):
        return float((weights * a).sum() / weights.sum())

    out = P.anisotropic_diffusion(image, iterations=20, kappa=200.0, step=0.2)
    assert mean(out) == pytest.approx(mean(image), rel=1e-5)
    assert out[:, 0].mean() < image[:, 0].mean() - 10  # the band spread out


def test_clahe_fills_overhanging_tiles_by_mirroring():
    """Tiles that overhang the image see it mirrored, as every filter here."""
    ct = ml.data.sample("head_ct")
    image = P.window_level(ct.array[100:133, 300:349], center=40, width=400)
    tiles = 8  # 33 x 49 px: the last tiles overhang by 7 px

    def padded(mode):
        extra = [(0, -n % tiles) for n in image.shape]
        out = P.clahe(np.pad(image, extra, mode=mode), tiles=tiles)
        return out[: image.shape[0], : image.shape[1]]

    out = P.clahe(image, tiles=tiles)
    np.testing.assert_array_equal(out, padded("reflect"))  # numpy's "mirror"
    assert not np.array_equal(out, padded("symmetric"))  # scipy's "reflect"
    assert not np.array_equal(out, padded("edge"))  # scipy's "nearest"


# ------------------------------------------------------------ coarse_preview


@pytest.mark.parametrize(
    ("name", "spacing"), [("head_ct", None), ("chest_xray", (0.4, 0.2))]
)
def test_coarse_preview_runs_on_a_coarser_grid_with_physical_lengths(name, spacing):
    image = ml.data.sample(name).array
    if name == "chest_xray":
        image = image[:700, :450]  # non-square, anisotropic spacing given
    sp = spacing or (1.0, 1.0)
    seen = {}

    def run(array, spacing):
        seen["shape"], seen["spacing"] = array.shape, spacing
        return P.gaussian(array, sigma_mm=2.0, spacing=spacing)

    out = P.coarse_preview(run, image, factor=2, spacing=spacing)
    rows, cols = image.shape
    assert out.shape == image.shape and out.dtype == np.float32
    assert seen["shape"] == (round(rows / 2), round(cols / 2))
    np.testing.assert_allclose(
        seen["spacing"],
        (sp[0] * rows / seen["shape"][0], sp[1] * cols / seen["shape"][1]),
    )
    full = P.gaussian(image, sigma_mm=2.0, spacing=spacing)
    span = float(np.ptp(full))
    # a smooth result survives the coarser grid: close to the full one
    assert np.median(np.abs(out - full)) < 0.02 * span
    np.testing.assert_array_equal(
        P.coarse_preview(run, image, factor=1, spacing=spacing), full
    )


def test_coarse_preview_keeps_masks_masks_and_refuses_bad_input():
    image = ml.data.sample("spine_ct").array
    mask = P.coarse_preview(lambda a, s: a > 100, image, factor=3)
    assert mask.dtype == bool and mask.shape == image.shape
    assert 0.9 < (mask == (image > 100)).mean() <= 1.0
    for factor in (0, 1.5, True):
        with pytest.raises(ValueError, match="factor"):
            P.coarse_preview(lambda a, s: a, image, factor=factor)
    with pytest.raises(ValueError, match="2D"):
        P.coarse_preview(lambda a, s: a, np.zeros((2, 8, 8)), factor=2)


@pytest.mark.parametrize("size", [3, 5])
def test_median_of_int16_extremes_is_scipys(size):
    """int16 goes to OpenCV's median directly: the full range, both ends."""
    from scipy.ndimage import median_filter

    rng = np.random.default_rng(8)
    image = rng.integers(-32768, 32767, (61, 37), endpoint=True).astype(np.int16)
    image[::7, ::5] = -32768
    image[3::11, 2::3] = 32767
    np.testing.assert_array_equal(
        P.median(image, size=size), median_filter(image, size=size, mode="mirror")
    )


def _clahe_float_passes(image, lo, hi, clip_limit=2.0, tiles=8):
    """CLAHE as it was computed before the one-pass conversions."""
    import cv2

    engine = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    unit = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    levels = np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)
    slices = [levels] if levels.ndim == 2 else list(levels)
    out = np.stack([engine.apply(s) for s in slices]).reshape(levels.shape)
    out = out.astype(np.float32) / 255 * np.float32(hi - lo) + np.float32(lo)
    return out.astype(image.dtype if image.dtype.kind == "f" else np.float32)


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("head_ct", None),
        ("spine_ct", None),
        ("shoulder_mr", None),
        ("shoulder_mr", np.uint16),
        ("chest_xray", np.uint16),
        ("brain_mri", None),
    ],
)
def test_clahe_equals_the_float_passes_for_many_windows(name, dtype):
    """The one-pass level conversion and table back into units are exact:
    the same output as the float arithmetic, for integer and fractional
    windows, windows beyond the values, 2D and 3D, int16/uint16/uint8/float."""
    image = ml.data.sample(name).array
    if image.ndim == 3:
        image = image[80:84]
    if name == "chest_xray":
        image = image[:640, :480]
    if dtype is not None:
        image = np.clip(image, 0, None).astype(dtype)
    center, width = ml.display.auto_window(image)
    windows = [
        (40.0, 80.0),
        (center, width),
        (round(center), round(width)),
        (center + 0.37, width * 0.61),
        (center, 3.0),
        (-5000.0, 100.0),
    ]
    for window in windows:
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
        out = P.clahe(image, window=window)
        np.testing.assert_array_equal(out, _clahe_float_passes(image, lo, hi))
        assert out.dtype == (image.dtype if image.dtype.kind == "f" else np.float32)


@pytest.mark.parametrize(
    "layout",
    ["wide", "fortran", "transposed", "strided"],
)
def test_clahe_levels_of_any_layout_equal_the_float_passes(layout):
    """The 8-bit levels of CLAHE's fast path take any memory layout and any
    width: OpenCV reads a 3D array as channels (at most 512) and refuses
    other layouts (a loaded suite run saw its error on the brain MRI)."""
    rng = np.random.default_rng(7)
    volume = rng.integers(-200, 900, (3, 40, 600), dtype=np.int16)
    arr = {
        "wide": volume,
        "fortran": np.asfortranarray(volume),
        "transposed": volume.transpose(2, 1, 0),
        "strided": volume[:, ::2, ::3],
    }[layout]
    lo, hi = 40.0 - 200.0, 40.0 + 200.0
    expected = np.rint(P._to_unit(arr, lo, hi) * 255).astype(np.uint8)
    np.testing.assert_array_equal(P._levels_8bit(arr, lo, hi), expected)
