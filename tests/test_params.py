"""Parameters declared once: ranges, units and validation."""

from __future__ import annotations

import inspect
from typing import Annotated

import numpy as np
import pytest

from medimg_lab import (  # noqa: F401  (they register the operations)
    processing,
    segmentation,
)
from medimg_lab.params import (
    OPERATIONS,
    Param,
    ParamSpec,
    get_operation,
    parameters,
    validate,
)
from medimg_lab.processing import gaussian, median


def test_declarations_come_from_the_signature():
    spec = parameters(gaussian)["sigma_mm"]
    assert spec.default == 1.0 and spec.type is float
    assert (spec.param.min, spec.param.max, spec.param.unit) == (0.1, 50.0, "mm")


def test_every_processing_operation_is_registered_with_declared_params():
    names = {n for n, op in OPERATIONS.items() if op.stage == "processing"}
    assert {"gaussian", "clahe", "median", "convolve", "window_level"} <= names
    for name in names:
        for spec in OPERATIONS[name].params.values():
            assert spec.param.doc, f"{name}.{spec.name} has no description"


@pytest.mark.parametrize(
    ("fn", "values", "message"),
    [
        (gaussian, {"sigma_mm": 100}, r"sigma_mm must lie in \[0.1, 50\] mm; got 100"),
        (gaussian, {"sigma_mm": "wide"}, "must be a number"),
        (gaussian, {"sigma": 1}, "has no parameter sigma; its parameters are"),
        (median, {"size": 4}, "must be odd"),
        (median, {"size": 3.5}, "whole number"),
    ],
)
def test_validation_names_the_parameter_value_and_range(fn, values, message):
    with pytest.raises(ValueError, match=message):
        validate(fn, values)


def test_context_parameters_pass_and_operations_validate():
    assert validate(gaussian, {"sigma_mm": 2, "spacing": (1, 1)}) == {
        "sigma_mm": 2.0,
        "spacing": (1, 1),
    }
    op = get_operation("median")
    with pytest.raises(ValueError, match="odd"):
        op([[1, 2], [3, 4]], size=2)


def test_unknown_operation_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"known operations are .*gaussian"):
        get_operation("sharpen_everything")


# ------------------------------------------ one rulebook: direct calls too

# Declared functions that are not operations, with how to call them.
_CLASSIFIER = None


def _classifier():
    from medimg_lab.segmentation import PixelClassifier

    global _CLASSIFIER
    if _CLASSIFIER is None:
        rng = np.random.default_rng(0)
        image = rng.normal(0, 1, (24, 20)).astype(np.float32)
        image[6:18, 5:15] += 4
        scribbles = np.zeros(image.shape, np.int8)
        scribbles[10:14, 9], scribbles[1:23, 1] = 1, 2
        _CLASSIFIER = PixelClassifier("linear", scales_mm=(1.0,)).fit(image, scribbles)
    return _CLASSIFIER


def _declared_functions():
    """``(label, fn, call)``: every declared function and how to call it."""
    from medimg_lab import segmentation as S
    from medimg_lab.segmentation import classifier as C

    image = np.random.default_rng(1).normal(100, 20, (12, 10)).astype(np.float32)
    mask = image > 100
    required = {
        "seeds": [(3, 4)],
        "markers": (np.arange(120).reshape(12, 10) % 3).astype(np.int32),
        "other": image[::-1].copy(),
        "reference": image,
        "tiles": [image[:, ::-1].copy()],
        "model": _classifier(),
    }
    out = []
    for name, op in sorted(OPERATIONS.items()):
        first, *rest = [
            p
            for p in inspect.signature(op.fn).parameters.values()
            if p.default is p.empty
        ]
        args = [mask if first.name == "mask" else image]
        args += [required[p.name] for p in rest if p.kind != p.KEYWORD_ONLY]
        given = {p.name: required[p.name] for p in rest if p.kind == p.KEYWORD_ONLY}
        out.append(
            (
                name,
                op.fn,
                lambda fn=op.fn, a=tuple(args), g=given, **kw: fn(*a, **{**g, **kw}),
            )
        )
    out += [
        (
            "gmm_memberships",
            S.gmm_memberships,
            lambda **kw: S.gmm_memberships(image, **kw),
        ),
        ("otsu_value", S.otsu_value, lambda **kw: S.otsu_value(image, **kw)),
        ("feature_bank", C.feature_bank, lambda **kw: C.feature_bank(image, **kw)),
        ("feature_names", C.feature_names, lambda **kw: C.feature_names(**kw)),
        (
            "PixelClassifier",
            C.PixelClassifier.__init__,
            lambda **kw: C.PixelClassifier(**kw),
        ),
        (
            "PixelClassifier.uncertainty",
            C.PixelClassifier.uncertainty,
            lambda **kw: _classifier().uncertainty(**kw),
        ),
    ]
    out += _composition_and_recognition_functions()
    return out


def _composition_and_recognition_functions():
    """``(label, fn, call)`` of fusion and recognition, each a valid small call."""
    from medimg_lab.composition import fusion as F
    from medimg_lab.composition import registration as G
    from medimg_lab.composition import stitching as T2
    from medimg_lab.recognition import classifiers as K
    from medimg_lab.recognition import context as X
    from medimg_lab.recognition import datasets as D
    from medimg_lab.recognition import evaluation as E
    from medimg_lab.recognition import explain as P
    from medimg_lab.recognition import features as R
    from medimg_lab.recognition import studies as S
    from medimg_lab.recognition import tissue as T

    rng = np.random.default_rng(3)
    a = rng.normal(100, 20, (24, 20)).astype(np.float32)
    b = rng.normal(100, 20, (24, 20)).astype(np.float32)
    disc = np.hypot(*np.mgrid[-12:12, -10:10]) < 6
    labels = 1 + disc.astype(np.uint8)
    features = X.context_features(a + 60 * disc)
    context = X.context_bayes(features, labels, ("out", "in"), bins=16)
    log_e = context.log_evidence(features)
    x = rng.normal(0, 1, (40, 2))
    y = (x[:, 1] > 0).astype(np.int64)
    groups = np.arange(40) // 4
    logistic = K.make_classifier("logistic")
    fitted = K.make_classifier("logistic").fit(x, y)
    p = rng.random(40)
    patches = rng.integers(0, 255, (3, 16, 16)).astype(np.float32)
    bayes = K.GaussianBayes().fit([[0.0], [1.0], [4.0], [5.0]], [0, 0, 1, 1])

    def predict(images):
        q = images.mean(axis=(1, 2)) / 255
        return np.stack([1 - q, q], axis=1)

    return [
        ("checkerboard", F.checkerboard, lambda **kw: F.checkerboard(a, b, **kw)),
        ("color_fuse", F.color_fuse, lambda **kw: F.color_fuse(a, b, **kw)),
        ("feather", F.feather, lambda **kw: F.feather(disc, **kw)),
        ("fuse", F.fuse, lambda **kw: F.fuse(a, b, **kw)),
        (
            "multiband_blend",
            F.multiband_blend,
            lambda **kw: F.multiband_blend(a, b, disc, **kw),
        ),
        ("swipe", F.swipe, lambda **kw: F.swipe(a, b, **kw)),
        ("legend", F.legend, lambda **kw: F.legend(**kw)),
        ("register", G.register, lambda **kw: G.register(a, b, **kw)),
        ("rigid_transform", G.rigid_transform, lambda **kw: G.rigid_transform(a, **kw)),
        (
            "mutual_information",
            G.mutual_information,
            lambda **kw: G.mutual_information(a, b, **kw),
        ),
        ("cut_tiles", T2.cut_tiles, lambda **kw: T2.cut_tiles(a, **kw)),
        ("stitch", T2.stitch, lambda **kw: T2.stitch([a, b], **kw)),
        ("make_classifier", K.make_classifier, lambda **kw: K.make_classifier(**kw)),
        (
            "classify_tissues",
            X.classify_tissues,
            lambda **kw: X.classify_tissues(features, context, **kw),
        ),
        (
            "context_bayes",
            X.context_bayes,
            lambda **kw: X.context_bayes(features, labels, ("out", "in"), **kw),
        ),
        (
            "context_features",
            X.context_features,
            lambda **kw: X.context_features(a, **kw),
        ),
        ("mrf_posterior", X.mrf_posterior, lambda **kw: X.mrf_posterior(log_e, **kw)),
        (
            "lesion_slices",
            D.lesion_slices,
            lambda **kw: D.lesion_slices(**{"n": 2, "size": 32, **kw}),
        ),
        (
            "sample_patches",
            D.sample_patches,
            lambda **kw: D.sample_patches(**{"size": 8, "per_class": 1, **kw}),
        ),
        ("calibration", E.calibration, lambda **kw: E.calibration(y, p, **kw)),
        (
            "cross_validate",
            E.cross_validate,
            lambda **kw: E.cross_validate(logistic, x, y, groups, **kw),
        ),
        (
            "evaluate",
            E.evaluate,
            lambda **kw: E.evaluate(logistic, x, y, groups, **{"n_boot": 100, **kw}),
        ),
        (
            "group_splits",
            E.group_splits,
            lambda **kw: list(E.group_splits(y, groups, **kw)),
        ),
        (
            "roc_auc_ci",
            E.roc_auc_ci,
            lambda **kw: E.roc_auc_ci(y, p, **{"n_boot": 100, **kw}),
        ),
        (
            "spatial_groups",
            E.spatial_groups,
            lambda **kw: E.spatial_groups([[0, 0], [5, 9]], (12, 10), **kw),
        ),
        (
            "feature_importance",
            P.feature_importance,
            lambda **kw: P.feature_importance(fitted, x, y, names=["u", "v"], **kw),
        ),
        (
            "occlusion_map",
            P.occlusion_map,
            lambda **kw: P.occlusion_map(patches[0], predict, target=1, **kw),
        ),
        (
            "glcm_features",
            R.glcm_features,
            lambda **kw: R.glcm_features(patches, (0, 255), **kw),
        ),
        (
            "histogram_features",
            R.histogram_features,
            lambda **kw: R.histogram_features(patches, (0, 255), **kw),
        ),
        ("hog_features", R.hog_features, lambda **kw: R.hog_features(patches, **kw)),
        ("lesion_roc", S.lesion_roc, lambda **kw: S.lesion_roc(**{"n": 20, **kw})),
        ("brain_tissues", T.brain_tissues, lambda **kw: T.brain_tissues(**kw)),
        (
            "decision_boundaries",
            T.decision_boundaries,
            lambda **kw: T.decision_boundaries(bayes, (0, 5), **kw),
        ),
    ]


def _bad_values(spec):
    """Values outside ``spec``'s declaration, each a different rule broken."""
    p = spec.param
    if p.choices is not None:
        return ["no such choice", 3]
    if spec.type is bool:
        return ["yes", 1]
    if spec.type not in (int, float):
        return []
    bad = ["wide", float("nan"), [1]]
    step = p.step or 1
    if p.max is not None:
        bad.append(p.max + step if spec.type is int else p.max * 1.5 + 1)
    if p.min is not None:
        bad.append(p.min if getattr(p, "exclusive_min", False) else p.min - step)
    if spec.type is int:
        bad.append((p.min or 0) + 0.5)
        if p.odd:
            bad.append((p.min or 0) + 1)
    return bad


_CASES = [
    pytest.param(fn, call, spec.name, value, id=f"{label}-{spec.name}-{value!r}")
    for label, fn, call in _declared_functions()
    for spec in parameters(fn).values()
    for value in _bad_values(spec)
]


@pytest.mark.parametrize(("fn", "call", "name", "value"), _CASES)
def test_direct_calls_refuse_what_the_declaration_refuses(fn, call, name, value):
    with pytest.raises(ValueError) as declared:
        validate(fn, {name: value})
    with pytest.raises(ValueError) as direct:
        call(**{name: value})
    assert str(direct.value) == str(declared.value)
    assert name in str(direct.value)


_RECIPE_CASES = [
    case
    for case in _CASES
    if case.values[0].__name__ in OPERATIONS
    and OPERATIONS[case.values[0].__name__].stage in ("processing", "segmentation")
]


@pytest.mark.parametrize(("fn", "call", "name", "value"), _RECIPE_CASES)
def test_recipes_refuse_with_the_same_sentence(fn, call, name, value):
    from medimg_lab.recipe import Recipe, RecipeError

    with pytest.raises(ValueError) as direct:
        call(**{name: value})
    extra = {"region_grow": {"seeds": [[3, 4]]}, "watershed": {"markers": [[1]]}}
    params = {name: value, **extra.get(fn.__name__, {})}
    with pytest.raises(RecipeError) as recipe:
        Recipe([{"op": fn.__name__, "params": params}])
    assert str(direct.value) in str(recipe.value)


def test_every_operation_and_declared_function_is_checked():
    assert len(_CASES) > 150  # every number, choice and flag has its bad values
    labels = {label for label, _, _ in _declared_functions()}
    assert set(OPERATIONS) <= labels


@pytest.mark.parametrize(
    ("fn", "call"),
    [pytest.param(fn, call, id=label) for label, fn, call in _declared_functions()],
)
def test_declared_defaults_pass_their_own_declaration(fn, call):
    for spec in parameters(fn).values():
        if spec.default is inspect.Parameter.empty:  # required: no default
            continue
        assert spec.check(spec.default) == spec.default, spec.name


def test_numpy_scalars_are_numbers_and_come_out_as_python_ones():
    image = np.random.default_rng(2).integers(0, 255, (9, 11)).astype(np.uint8)
    np.testing.assert_array_equal(
        median(image, size=np.int64(5)), median(image, size=5)
    )
    np.testing.assert_array_equal(
        gaussian(image, sigma_mm=np.float32(2.0)), gaussian(image, sigma_mm=2.0)
    )
    assert validate(median, {"size": np.int32(7)}) == {"size": 7}
    assert type(validate(gaussian, {"sigma_mm": np.float32(2)})["sigma_mm"]) is float
    with pytest.raises(ValueError, match="size must be a number; got True"):
        median(image, size=True)
    with pytest.raises(ValueError, match="must be a number"):
        median(image, size=np.array([3]))


def test_values_given_by_position_are_checked_too():
    from medimg_lab.segmentation import PixelClassifier

    with pytest.raises(ValueError, match="PixelClassifier: model must be one of"):
        PixelClassifier("knn")


def test_wrapping_keeps_name_signature_hints_and_identity():
    import pickle
    import typing

    assert OPERATIONS["gaussian"].fn is gaussian
    assert gaussian.__name__ == "gaussian" and "Gaussian" in gaussian.__doc__
    sig = inspect.signature(gaussian)
    assert list(sig.parameters) == ["image", "sigma_mm", "spacing"]
    assert sig.parameters["sigma_mm"].default == 1.0
    hints = typing.get_type_hints(gaussian, include_extras=True)
    assert typing.get_origin(hints["sigma_mm"]) is typing.Annotated
    assert parameters(gaussian) == parameters(gaussian.__wrapped__)
    shipped = pickle.loads(pickle.dumps(gaussian))  # noqa: S301 our own bytes
    assert shipped is gaussian  # as dask ships it to workers


def test_the_declaration_is_the_rule_the_issue_named():
    image = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError) as direct:
        gaussian(image, sigma_mm=80)
    assert str(direct.value) == "gaussian: sigma_mm must lie in [0.1, 50] mm; got 80"


def test_exclusive_minimum_refuses_the_bound_itself():
    spec = ParamSpec("sd", float, 1.0, Param(0, unit="HU", exclusive_min=True))
    assert spec.check(1e-9) == 1e-9
    with pytest.raises(ValueError, match=r"^sd must lie in \(0, inf\) HU; got 0$"):
        spec.check(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"min": 0, "max": 10, "slider": (5, 20)},
        {"min": 0, "max": 10, "slider": (-1, 5)},
        {"min": 0, "max": 10, "slider": (6, 5)},
        {"min": 0, "exclusive_min": True, "slider": (0, 5)},
        {"min": 5, "max": 1},
        {"exclusive_min": True},
    ],
)
def test_inconsistent_declarations_are_refused(bad):
    with pytest.raises(ValueError, match="Param: "):
        Param(**bad)


def test_slider_range_and_valid_range_are_declared_apart():
    from medimg_lab.widgets.controls import controls_for

    from medimg_lab.segmentation import remove_small

    spec = parameters(remove_small)["min_size"]
    assert spec.param.slider is not None
    lo, hi = spec.param.slider
    assert spec.param.max > hi  # valid beyond what the slider offers
    slider = controls_for(remove_small)["min_size"]
    assert (slider.min, slider.max) == (lo, hi)
    mask = np.zeros((40, 50), bool)
    mask[2:38, 2:48] = True  # 1656 mm², beyond the slider
    assert remove_small(mask, min_size=1500.0).any()
    assert not remove_small(mask, min_size=2 * hi).any()
    with pytest.raises(ValueError, match=r"min_size must lie in \[0, 1e\+06\]"):
        remove_small(mask, min_size=2e6)


def test_sliders_never_offer_an_excluded_minimum():
    from medimg_lab.widgets.controls import control_for

    spec = ParamSpec("sd", float, 1.0, Param(0, 10, 0.5, exclusive_min=True))
    slider = control_for(spec)
    assert slider.min > 0
    spec.check(slider.min)


def _public_callables():
    """Every public function and method of every ``medimg_lab`` module."""
    import importlib
    import pkgutil

    import medimg_lab

    seen = {}
    for info in pkgutil.walk_packages(medimg_lab.__path__, "medimg_lab."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", "") != info.name:
                continue
            if inspect.isfunction(obj):
                seen[f"{info.name}.{name}"] = obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and (
                        attr == "__init__" or not attr.startswith("_")
                    ):
                        seen[f"{info.name}.{name}.{attr}"] = member
    return seen


def test_every_declaration_in_the_package_holds_on_direct_calls():
    """The one rulebook: no function declares a range that a direct call skips."""
    unchecked = sorted(
        name
        for name, fn in _public_callables().items()
        if parameters(fn) and not getattr(fn, "_declared", False)
    )
    assert not unchecked, "declared but not checked on direct calls: " + ", ".join(
        unchecked
    )


def _declared_in_medimg_lab():
    """``(label, fn)`` of every declared function and method of medimg_lab."""
    import importlib
    import pkgutil

    import medimg_lab

    out, seen = [], set()
    for info in pkgutil.walk_packages(medimg_lab.__path__, "medimg_lab."):
        if ".widgets" in info.name:
            continue
        module = importlib.import_module(info.name)
        functions = []
        for value in vars(module).values():
            if getattr(value, "__module__", None) != info.name:
                continue
            if inspect.isclass(value):
                functions += [v for v in vars(value).values() if inspect.isfunction(v)]
            elif inspect.isfunction(value):
                functions.append(value)
        for fn in functions:
            raw = inspect.unwrap(fn)
            if getattr(fn, "_declared", False) and id(raw) not in seen:
                seen.add(id(raw))
                out.append((f"{info.name}.{fn.__qualname__}", fn))
    return out


def _rechecks(functions) -> list[str]:
    """Hand re-checks: an ``if`` in a declared function that raises and tests
    one declared parameter against constants only (what the declaration says).

    Checks that relate a parameter to another one or to the data (``low <=
    high``, ``connectivity > image.ndim``) are not re-checks.
    """
    import ast
    import textwrap

    found = []
    for label, fn in functions:
        declared = set(parameters(fn))
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
        for node in ast.walk(tree):
            if not isinstance(node, ast.If) or not any(
                isinstance(n, ast.Raise) for s in node.body for n in ast.walk(s)
            ):
                continue
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            nones = any(
                isinstance(n, ast.Constant) and n.value is None
                for n in ast.walk(node.test)
            )
            if len(names) == 1 and names <= declared and not nones:
                found.append(f"{label}: {ast.unparse(node.test)}")
    return found


def test_no_function_re_checks_what_it_declares():
    assert _rechecks(_declared_in_medimg_lab()) == []


def test_the_re_check_finder_finds_one():
    from medimg_lab.params import declared

    @declared
    def register_like(
        image,
        *,
        iterations: Annotated[int, Param(10, 1000, 10, "", "iterations")] = 100,
        low: Annotated[float, Param(0, 1, 0.1, "", "low")] = 0.1,
        high: Annotated[float, Param(0, 1, 0.1, "", "high")] = 0.3,
    ):
        if not 1 <= iterations <= 100_000:  # another rulebook
            raise ValueError("iterations must lie in [1, 100000]")
        if not low <= high:  # a relation: not a re-check
            raise ValueError("low must not exceed high")
        return image

    assert _rechecks([("register_like", register_like)]) == [
        "register_like: not 1 <= iterations <= 100000"
    ]
