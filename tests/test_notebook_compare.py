"""nbval compares printed figures within one unit of their last digit."""

from __future__ import annotations

import pytest
from nbformat import v4

from notebooks.conftest import _as_ref, same_within_last_digit


@pytest.mark.parametrize(
    ("ref", "test"),
    [
        ("accuracy 0.974", "accuracy 0.974"),
        ("accuracy 0.974", "accuracy 0.975"),  # a rounding boundary tipped over
        ("error 0.0 px", "error -0.0 px"),
        ("P = 5.173e-12", "P = 5.174e-12"),
        ("  gaussian  45.34\nmedian    46.02", "  gaussian  45.35\nmedian    46.01"),
        ("phase       0.0   0.999", "phase      -0.0   0.999"),  # a column shifts
    ],
)
def test_figures_one_unit_apart_in_the_last_digit_are_the_same(ref, test):
    assert same_within_last_digit(ref, test)


@pytest.mark.parametrize(
    ("ref", "test"),
    [
        ("accuracy 0.974", "accuracy 0.976"),  # two units: a real change
        ("accuracy 0.974", "accuracy 0.97"),  # other precision
        ("pairs accepted: 11", "pairs accepted: 12"),  # whole numbers are exact
        ("WM 0.97", "GM 0.97"),  # the words around them too
        ("0.5 mm", "0.5 mm, 0.5 mm"),
        ("a b", "ab"),  # spaces may change length, not vanish
        ("1.00", "2.00"),
    ],
)
def test_other_differences_still_fail(ref, test):
    assert not same_within_last_digit(ref, test)


def test_only_the_rounding_is_forgiven_in_nbval_outputs():
    def sanitize(text):
        return text

    ref = v4.new_output("stream", name="stdout", text="Dice 0.95\n")
    near = v4.new_output("stream", name="stdout", text="Dice 0.96\n")
    far = v4.new_output("stream", name="stdout", text="Dice 0.97\n")
    assert _as_ref(near, ref, sanitize).text == "Dice 0.95\n"
    assert _as_ref(far, ref, sanitize).text == "Dice 0.97\n"
    other = v4.new_output("stream", name="stderr", text="Dice 0.96\n")
    assert _as_ref(other, ref, sanitize).text == "Dice 0.96\n"  # another stream
    result = v4.new_output("execute_result", data={"text/plain": "0.126"})
    shown = v4.new_output("execute_result", data={"text/plain": "0.125"})
    assert _as_ref(shown, result, sanitize).data["text/plain"] == "0.126"
