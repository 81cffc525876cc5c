"""DIMSE against a real Orthanc, run inside a private network namespace.

Orthanc's DICOM port binds every interface, so it is only ever opened inside
``unshare -rn`` (a network namespace with nothing but its own loopback):
tests/archive/netns_dimse.py runs Orthanc and the DIMSE client there, and
this test checks what it found. The other DIMSE tests use a pynetdicom SCP
bound to 127.0.0.1 (tests/archive/test_dimse.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_c_find_c_get_c_store_against_orthanc_in_a_private_namespace(seeds, tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to give Orthanc a private network"
    chosen = [seeds["small_ct_rle"], seeds["head_ct_j2k"], seeds["mr_jpegls"]]
    out = subprocess.run(  # noqa: S603 our own script in a namespace of our own
        [
            unshare,
            "-rn",
            sys.executable,
            "-m",
            "tests.archive.netns_dimse",
            str(tmp_path),
            *(str(s.folder) for s in chosen),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(s.study_uid for s in chosen) == found["studies"]
    for seed in chosen:
        got = found["series"][seed.folder.name]
        assert got["series_uid"] == seed.series_uid
        assert got["instances"] == len(seed.files)
        assert got["equal"], seed.key
        assert got["spacing"] == pytest.approx(got["direct_spacing"])
        assert got["by_patient"] == [seed.study_uid]
    assert found["stored_found"]
