"""The atheris harness runs and reports (atheris comes with the test extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_harness_reports_inputs_crashes_and_peak_memory(tmp_path):
    done = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_load",
            "--format=png",
            "--runs=200",
            f"--findings={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "png: 200 inputs" in done.stdout
    assert "0 unhandled exceptions" in done.stdout
    assert "0 caught only by load()'s last-resort handler" in done.stdout
    assert "0 hangs" in done.stdout
    assert "0 messages carrying library text" in done.stdout
    assert "peak memory" in done.stdout and "holds)" in done.stdout
