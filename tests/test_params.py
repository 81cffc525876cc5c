"""Parameters declared once: ranges, units and validation."""

from __future__ import annotations

import pytest

from medimg_lab import processing  # noqa: F401  (registers the operations)
from medimg_lab.params import OPERATIONS, get_operation, parameters, validate
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
