"""Every registered operation, over the dtypes it accepts, 2D and 3D where declared.

Each operation of :data:`medimg_lab.params.OPERATIONS` runs on a real CT
slice (spine CT, cropped non-square, with anisotropic spacing) and a real
volume (brain MRI, 4 slices of 2 mm), as uint8, uint16, int16, float32 and
float64 grey values (clean-ups: bool and 0/1 masks). Each run checks that
the inputs are not mutated, the output's shape, its dtype (float32 in gives
float32 out; labels are integers or bool), its units (operations that keep
units stay in the input's value range and are not rescaled; through a
recipe, the result image keeps the unit only then), and that dimensions the
declaration does not list and boolean images are refused with a sentence.
The registry itself is checked: one explicit table, complete without
importing the stage modules, and matching the functions declared with
``@operation``.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import medimg_lab
from medimg_lab import data
from medimg_lab._files import sha256_of
from medimg_lab.image import MedImage
from medimg_lab.params import (
    _TABLE,
    OPERATIONS,
    Operation,
    get_operation,
    operation,
    operations,
)
from medimg_lab.recipe import Recipe
from medimg_lab.segmentation import PixelClassifier
from medimg_lab.segmentation.region import marker_points

GREY = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
MASKS = (bool, np.uint8)


@pytest.fixture(scope="module")
def grey() -> dict[int, tuple[np.ndarray, tuple[float, ...]]]:
    """Real values in HU-like units: a 2D slice and a 3D volume, with spacing."""
    spine = data.sample("spine_ct").array[24:88, 10:90].astype(np.float64)
    brain = data.sample("brain_mri").array[80:88:2, 70:134, 60:140].astype(np.float64)
    return {
        2: (spine, (0.661, 1.322)),  # 64 x 80, anisotropic
        3: (brain * 4.0 - 200.0, (2.0, 1.0, 1.0)),  # 4 x 64 x 80
    }


def _as(values: np.ndarray, dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip((values + 1000) / 10, 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(values + 1024, 0, 65535).astype(np.uint16)
    return values.astype(dtype)


def _inputs(op: Operation, image: np.ndarray) -> dict:
    """What each operation needs besides its image, made from the image."""
    shape = image.shape
    needs: dict = {}
    if op.seeded == "seeds":
        needs["seeds"] = [tuple(n // 2 for n in shape)]
    if op.seeded == "markers":
        markers = np.zeros(shape, np.int32)
        markers[..., 2:6, 2:6] = 1
        markers[..., 30:34, 40:44] = 2
        needs["markers"] = marker_points(markers)  # as a recipe holds them
    if op.name == "pixel_classifier":
        scribbles = np.zeros(shape, np.uint8)
        scribbles[..., 30:34, 40:44], scribbles[..., 2:6, 2:6] = 1, 2
        needs["model"] = PixelClassifier(
            "forest", n_estimators=4, scales_mm=(1.0,)
        ).fit(image, scribbles)
    if op.name in ("fuse", "blend"):
        needs["other"] = np.ascontiguousarray(image[..., ::-1])
    if op.name == "blend":
        needs["mask"] = image > np.median(image)
    if op.name == "register":
        needs["reference"] = np.roll(image, 2, axis=-1)
    if op.name == "stitch":  # the image is image[:, :-20]: 40 columns overlap
        needs["tiles"] = [image[:, 20:].copy()]
    return needs


CASES = [
    pytest.param(op.name, ndim, dtype, id=f"{op.name}-{ndim}D-{np.dtype(dtype).name}")
    for op in OPERATIONS.values()
    for ndim in op.ndim
    for dtype in (MASKS if op.input == "mask" else GREY)
]


@pytest.mark.parametrize(("name", "ndim", "dtype"), CASES)
def test_every_operation_over_its_dtypes_and_dimensions(name, ndim, dtype, grey):
    op = OPERATIONS[name]
    values, spacing = grey[ndim]
    if op.input == "mask":
        image = _as(values, np.float64) > np.median(values)
        image = image if dtype is bool else image.astype(dtype)
    else:
        image = _as(values, dtype)
    if name == "stitch":
        image = image[:, :-20]
    needs = _inputs(op, image if name != "stitch" else _as(values, dtype))
    before = {k: np.copy(v) for k, v in needs.items() if isinstance(v, np.ndarray)}
    original = image.copy()

    out = np.asarray(op.run(image, needs, spacing=spacing))

    np.testing.assert_array_equal(image, original)  # not mutated
    for key, value in before.items():
        np.testing.assert_array_equal(needs[key], value)
    if name == "stitch":
        assert out.shape[0] == image.shape[0] and out.shape[1] >= image.shape[1]
    else:
        assert out.shape == image.shape
    # dtype
    assert not (image.dtype == np.float32 and out.dtype == np.float64)
    if op.role == "cleanup":
        assert out.dtype == bool
    elif op.role == "method":
        assert out.dtype.kind in "bui"
    elif op.keeps_units:
        allowed = {image.dtype, np.dtype(np.float32)}
        if image.dtype == np.float64:
            allowed = {np.dtype(np.float64), np.dtype(np.float32)}
        assert out.dtype in allowed
    # units: values stay in the input's range, not rescaled (8-bit grey
    # levels range over 0-255: the contrast operations may use all of it)
    if op.keeps_units and op.role in ("process", "compose"):
        lo, hi = float(image.min()), float(image.max())
        if image.dtype == np.uint8:
            lo, hi = 0.0, 255.0
        span = hi - lo
        finite = out[np.isfinite(out)]
        assert finite.min() >= lo - span and finite.max() <= hi + span
        assert np.ptp(finite) >= 0.05 * span


@pytest.mark.parametrize(
    "name",
    [op.name for op in operations() if op.role in ("process", "method", "cleanup")],
)
def test_a_recipe_keeps_the_unit_only_where_the_operation_does(name, grey, tmp_path):
    op = OPERATIONS[name]
    values, spacing = grey[2]
    image = MedImage(values.astype(np.int16), spacing, "CT")
    needs = _inputs(op, image.array)
    if "model" in needs:  # a recipe names the model's file, by digest
        path = needs["model"].save(tmp_path / "model.skops")
        needs["model"] = {"path": str(path), "sha256": sha256_of(path)}
    steps = [{"op": name, "params": needs}]
    if op.role == "cleanup":
        steps.insert(0, {"op": "threshold_otsu", "params": {}})
    result = Recipe(steps).apply(image)
    unit = result.image.unit
    if op.role == "process":
        assert (unit == "HU") == op.keeps_units
    else:  # the image is the input's, the labels are the result
        assert unit == "HU" and result.labels.shape == image.array.shape


@pytest.mark.parametrize(
    "name", [op.name for op in OPERATIONS.values() if op.ndim == (2,)]
)
def test_dimensions_not_declared_are_refused_with_a_sentence(name, grey):
    op = OPERATIONS[name]
    volume = _as(grey[3][0], np.float32)
    with pytest.raises(ValueError, match=r"2D"):
        op.run(volume, _inputs(op, volume), spacing=grey[3][1])


@pytest.mark.parametrize(
    "name", [op.name for op in OPERATIONS.values() if op.input == "image"]
)
def test_a_boolean_image_is_refused_before_the_function_runs(name, grey):
    op = OPERATIONS[name]
    values = grey[2][0]
    mask = values > np.median(values)
    message = rf"{name}: image must hold grey values \(numbers\); got a boolean mask"
    with pytest.raises(ValueError, match=message):
        op.fn(mask, **_inputs(op, values.astype(np.float32)))
    with pytest.raises(ValueError, match=message):
        op(mask, **_inputs(op, values.astype(np.float32)))


# -------------------------------------------------------------- registry


def test_the_table_holds_exactly_the_declared_operations():
    declared = {}
    for info in pkgutil.walk_packages(medimg_lab.__path__, "medimg_lab."):
        if ".widgets" in info.name:
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            op = getattr(value, "operation", None)
            if isinstance(op, Operation) and value.__module__ == info.name:
                declared[op.name] = info.name
    assert declared == _TABLE
    assert list(OPERATIONS) == list(_TABLE)


def test_operations_per_stage_and_role():
    stages = {s: len(operations(stage=s)) for s in ("processing", "segmentation")}
    assert stages == {"processing": 16, "segmentation": 15}
    assert {op.name for op in operations(stage="composition")} == {
        "rigid_transform",
        "register",
        "blend",
        "fuse",
        "stitch",
    }
    assert [op.name for op in operations(role="cleanup")] == [
        "fill_holes",
        "keep_largest",
        "remove_small",
        "binary_open",
        "binary_close",
    ]
    seeded = {op.name: op.seeded for op in OPERATIONS.values() if op.seeded}
    assert seeded == {"region_grow": "seeds", "watershed": "markers"}


def test_registry_is_complete_without_importing_the_stage_modules():
    code = (
        "import sys\n"
        "from medimg_lab.params import OPERATIONS, _TABLE\n"
        "assert 'medimg_lab.composition.steps' not in sys.modules\n"
        "assert len(OPERATIONS) == len(_TABLE) and 'stitch' in OPERATIONS\n"
        "op = OPERATIONS['stitch']\n"
        "assert 'medimg_lab.composition.steps' in sys.modules\n"
        "print(op.stage, len(list(OPERATIONS.values())))\n"
    )
    done = subprocess.run(  # noqa: S603  (this interpreter, our code)
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["composition", str(len(_TABLE))]


def test_declaring_an_operation_registers_nothing():
    @operation("processing", "Identity")
    def identity_for_this_test(image):
        return image

    assert identity_for_this_test.operation.name == "identity_for_this_test"
    assert "identity_for_this_test" not in OPERATIONS
    with pytest.raises(ValueError, match="unknown operation 'identity_for_this_test'"):
        get_operation("identity_for_this_test")
    with pytest.raises(ValueError, match="did you mean 'gaussian'"):
        get_operation("gausian")


def test_operations_refuse_unknown_stages_and_roles():
    with pytest.raises(ValueError, match="stage must be one of processing"):
        operation("scale", "x")
    with pytest.raises(ValueError, match="role must be one of process, method"):
        operation("processing", "x", role="other")
