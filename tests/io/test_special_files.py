"""Special files (FIFOs, devices) are refused by their type, never opened.

A FIFO blocks its reader until something writes to it, and ``/dev/zero``
never ends (its ``st_size`` is 0): ``load`` and ``batch.discover`` must look
at the type (``os.stat``, ``stat.S_ISREG``) before they open anything. Each
test runs the call in a thread (or, for ``/dev/zero``, a child process) so
that today's blocking code fails the test instead of hanging the suite; a
FIFO is unblocked afterwards by opening its writing end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import warnings

import pytest

import medimg_lab as ml
from medimg_lab import batch
from tests.helpers import dicom_file

#: How long a call that must not touch the file may take before it counts
#: as blocked (a hang detector, not a timing assertion: the refusal is a stat).
HANG = 60.0


def run_unblocked(fn, fifos=()):
    """Run ``fn`` in a thread; a call still blocked after HANG seconds fails.

    Returns what ``fn`` returned or raises what it raised. The FIFOs are
    opened for writing afterwards, so that a reader stuck in one gets EOF.
    """
    result: dict = {}

    def target():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result["value"] = fn()
            result["warnings"] = [str(w.message) for w in caught]
        except BaseException as exc:  # handed to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    blocked = thread.is_alive()
    for fifo in fifos:
        try:  # give a stuck reader its EOF
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    thread.join(HANG)
    assert not blocked, f"{fn} blocked on a special file"
    if "error" in result:
        raise result["error"]
    return result["value"], result["warnings"]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "scan.dcm"
    os.mkfifo(path)
    return path


def test_load_refuses_a_fifo_by_its_type(fifo):
    with pytest.raises(ml.NotAnImageError) as info:
        run_unblocked(lambda: ml.load(fifo), [fifo])
    message = str(info.value)
    assert message.startswith("scan.dcm:")
    assert "named pipe (FIFO)" in message and "regular file" in message


def test_load_refuses_dev_zero_in_a_child_process():
    code = (
        "import medimg_lab as ml\n"
        "try:\n"
        "    ml.load('/dev/zero')\n"
        "except ml.NotAnImageError as e:\n"
        "    print('REFUSED', e)\n"
    )
    done = subprocess.run(  # noqa: S603 this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG * 2,
        check=False,
    )
    assert done.stdout.startswith("REFUSED zero:"), done.stdout + done.stderr
    assert "character device" in done.stdout


def test_folder_series_skips_a_fifo_and_reports_it(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(dicom_file("CT_small.dcm"), folder / "a.dcm")
    os.mkfifo(folder / "pipe")
    image, _ = run_unblocked(lambda: ml.load(folder), [folder / "pipe"])
    assert image.array.shape == (128, 128)
    reasons = {e["file"]: e["reason"] for e in image.meta["skipped"]}
    assert "named pipe (FIFO)" in reasons["pipe"]


def test_discover_skips_a_fifo_and_warns(tmp_path):
    shutil.copy(dicom_file("CT_small.dcm"), tmp_path / "a.dcm")
    os.mkfifo(tmp_path / "b.dcm")
    items, caught = run_unblocked(
        lambda: batch.discover(tmp_path), [tmp_path / "b.dcm"]
    )
    assert [item.path for item in items] == [str(tmp_path / "a.dcm")]
    assert any("b.dcm" in w and "named pipe (FIFO)" in w for w in caught), caught


def test_discover_skips_a_named_special_file(tmp_path, fifo):
    items, caught = run_unblocked(lambda: batch.discover([fifo]), [fifo])
    assert items == []
    assert any(str(fifo) in w for w in caught)
