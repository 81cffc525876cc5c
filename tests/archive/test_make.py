"""``make test`` brings the real archive: Debian's Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_installs_orthanc_when_missing():
    makefile = (ROOT / "Makefile").read_text()
    assert "orthanc" in re.search(r"^test:(.*)$", makefile, re.M)[1].split()
    recipe = re.search(r"^orthanc:.*\n((?:\t.*\n)+)", makefile, re.M)[1]
    assert "apt-get install" in recipe and "orthanc orthanc-dicomweb" in recipe
    assert 'id -u)" = 0' in recipe  # only as root, like the chromium target


def test_make_orthanc_finds_the_installed_one():
    out = subprocess.run(  # noqa: S603 make on the repository's own Makefile
        ["make", "--no-print-directory", "-C", str(ROOT), "orthanc"],  # noqa: S607 make from PATH
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("orthanc: ") and "1." in out.stdout
