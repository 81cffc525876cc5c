"""Shared fixtures: real sample files, read from installed packages."""

from __future__ import annotations

import pytest

from tests.helpers import dicom_file


@pytest.fixture
def dcm():
    """``dcm(name)`` gives the path of a real DICOM test file."""
    return dicom_file


_SUMMARY: dict[str, list[str]] = {}


@pytest.fixture(scope="session")
def summary_line():
    """``summary_line(title, text)`` adds a line to pytest's terminal summary.

    For figures a reader must see in a normal run (``-q`` too), such as the
    identifiers the PHI scan looked for.
    """

    def add(title: str, text: str) -> None:
        lines = _SUMMARY.setdefault(title, [])
        if text not in lines:
            lines.append(text)

    return add


def pytest_terminal_summary(terminalreporter):
    for title, lines in _SUMMARY.items():
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)
