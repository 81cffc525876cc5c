"""The notebook run never changes its inputs (issue 9, item 5).

At the start of the session this records the sha256 of every file the
notebooks read: the installed sample files of :func:`medimg_lab.data.samples`
and every file under ``notebooks/``. After each notebook it checks them
again. A file that changed or went missing fails the run (exit status 1), and
the summary names the file and the notebook that changed it.

Printed figures are compared within one unit of their last digit
(:func:`same_within_last_digit`): a figure rounded at the precision its method
has can still sit on a rounding boundary, and another CPU's last bits (other
SIMD kernels in OpenCV, NumPy and OpenBLAS) tip it over. Every other character,
and every whole number, must match exactly.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell

HERE = Path(__file__).resolve().parent
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__"}
_BEFORE: dict[str, str] = {}
_CHANGED: dict[str, str] = {}  # file -> the notebook after which it differed


_DECIMAL = re.compile(r"-?\d+\.\d+")
_SPACES = re.compile(r" +")


def same_within_last_digit(ref: str, test: str) -> bool:
    """Whether ``test`` reads as ``ref``, decimals within one unit of their last digit.

    The text between the numbers, and the number of decimals of each, must
    be the same, but for the length of runs of spaces (a table's columns
    shift when a minus sign comes or goes); ``-0.0`` and ``0.0`` are one
    number.
    """
    if ref == test:
        return True
    ref, test = _SPACES.sub(" ", ref), _SPACES.sub(" ", test)  # a column's padding
    if _DECIMAL.split(ref) != _DECIMAL.split(test):
        return False
    for a, b in zip(_DECIMAL.findall(ref), _DECIMAL.findall(test), strict=True):
        places = len(a.partition(".")[2])
        if places != len(b.partition(".")[2]):
            return False
        if abs(float(a) - float(b)) > 1.01 * 10.0**-places:
            return False
    return True


def _as_ref(test, ref, sanitize):
    """``test``, with ``ref``'s text where the two differ only in rounding."""

    def close(a, b) -> bool:
        return (
            isinstance(a, str)
            and isinstance(b, str)
            and (same_within_last_digit(sanitize(a), sanitize(b)))
        )

    kind = test.get("output_type")
    if kind != ref.get("output_type"):
        return test
    if kind == "stream":
        if test.get("name") == ref.get("name") and close(ref.text, test.text):
            test = copy.deepcopy(test)
            test.text = ref.text
        return test
    plain = "text/plain"
    ours, theirs = test.get("data", {}).get(plain), ref.get("data", {}).get(plain)
    if ours != theirs and close(theirs, ours):
        test = copy.deepcopy(test)
        test.data[plain] = theirs
    return test


def _compare_within_rounding(original):
    def compare_outputs(self, test, ref, skip_compare=None):
        paired = zip(test, ref, strict=False)  # a missing output fails below
        test = [_as_ref(t, r, self.sanitize) for t, r in paired] + list(
            test[len(ref) :]
        )
        return original(self, test, ref, skip_compare)

    compare_outputs.__doc__ = original.__doc__
    compare_outputs.within_rounding = True
    return compare_outputs


if not hasattr(IPyNbCell.compare_outputs, "within_rounding"):  # imported once more
    IPyNbCell.compare_outputs = _compare_within_rounding(IPyNbCell.compare_outputs)


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
