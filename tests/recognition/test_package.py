"""The recognition package exports its API and runs its docstring examples."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import medimg_lab.recognition as recognition
from medimg_lab.recognition import (
    classifiers,
    datasets,
    evaluation,
    explain,
    features,
    studies,
    tissue,
)


def test_exports_exist():
    for name in recognition.__all__:
        assert hasattr(recognition, name)


@pytest.mark.parametrize(
    "module", [features, classifiers, evaluation, datasets, explain, tissue, studies]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"np": np})
    assert result.failed == 0
