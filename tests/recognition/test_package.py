"""The recognition package exports its API (test_doctests.py runs its examples)."""

from __future__ import annotations

import medimg_lab.recognition as recognition


def test_exports_exist():
    for name in recognition.__all__:
        assert hasattr(recognition, name)
