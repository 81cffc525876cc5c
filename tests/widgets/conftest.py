"""Sample studies shared by the widget tests (each read once per module)."""

from __future__ import annotations

import pytest

from medimg_lab import data


@pytest.fixture(scope="module")
def head_ct():
    return data.sample("head_ct")


@pytest.fixture(scope="module")
def brain_mri():
    return data.sample("brain_mri")


@pytest.fixture(scope="module")
def chest_xray():
    return data.sample("chest_xray")
