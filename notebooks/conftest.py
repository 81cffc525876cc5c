"""The notebook run never changes its inputs (issue 9, item 5).

At the start of the session this records the sha256 of every file the
notebooks read: the installed sample files of :func:`medimg_lab.data.samples`
and every file under ``notebooks/``. After each notebook it checks them
again. A file that changed or went missing fails the run (exit status 1), and
the summary names the file and the notebook that changed it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__"}
_BEFORE: dict[str, str] = {}
_CHANGED: dict[str, str] = {}  # file -> the notebook after which it differed


def input_files(folder: Path = HERE) -> list[Path]:
    """The sample files and every file under ``folder``."""
    from medimg_lab import data
    from medimg_lab.errors import MedImgError

    files = []
    for s in data.samples():
        try:
            files.append(data.path(s.name))
        except MedImgError:
            continue  # a missing sample fails the notebook that loads it
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not _SKIP_DIRS & set(path.relative_to(folder).parts):
            files.append(path)
    return files


def checksums(files) -> dict[str, str]:
    """``{path: sha256}``; a missing file maps to ``"missing"``."""
    sums = {}
    for path in map(Path, files):
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        except FileNotFoundError:
            sums[str(path)] = "missing"
            continue
        sums[str(path)] = digest.hexdigest()
    return sums


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The files of ``before`` whose checksum differs in ``after``."""
    return sorted(p for p, digest in before.items() if after.get(p) != digest)


def pytest_sessionstart(session):
    _BEFORE.update(checksums(input_files()))


def pytest_runtest_teardown(item, nextitem):
    if nextitem is not None and nextitem.parent is item.parent:
        return  # still inside the same notebook
    for path in changed(_BEFORE, checksums(_BEFORE)):
        _CHANGED.setdefault(path, item.parent.name)


def pytest_sessionfinish(session, exitstatus):
    for path in changed(_BEFORE, checksums(_BEFORE)):
        _CHANGED.setdefault(path, "the session")
    if _CHANGED and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if not _BEFORE:
        return
    if not _CHANGED:
        terminalreporter.write_line(
            f"inputs unchanged: {len(_BEFORE)} files (samples and notebooks/), "
            "sha256 before and after"
        )
        return
    terminalreporter.write_sep("=", "INPUTS CHANGED BY THE RUN", red=True)
    for path, culprit in _CHANGED.items():
        terminalreporter.write_line(f"{path}: changed or removed after {culprit}")
