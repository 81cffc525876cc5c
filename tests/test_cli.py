"""The medimg-lab command line: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from medimg_lab.cli import main
from tests.helpers import dicom_file


def test_info_prints_units_and_no_identifiers(capsys):
    assert main(["info", str(dicom_file("693_UNCR.dcm"))]) == 0
    out = capsys.readouterr().out
    assert "spacing    0.4785 x 0.4785 mm" in out
    assert "CQ500" not in out  # the sample's patient name and ID


def test_info_json(capsys):
    assert main(["info", "--json", str(dicom_file("CT_small.dcm"))]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["modality"] == "CT" and facts["shape"] == [128, 128]


def test_bad_input_exits_1_with_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 10)
    assert main(["info", str(bad)]) == 1
    assert "error: bad.dcm:" in capsys.readouterr().err


def test_usage_error_exits_2():
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_samples_lists_all(capsys):
    assert main(["samples", "-v"]) == 0
    out = capsys.readouterr().out
    assert "head_ct" in out and "license:" in out


def test_deidentify_command(tmp_path):
    out = tmp_path / "anon.dcm"
    # The console script installed beside this interpreter (the venv's bin/).
    exe = Path(sys.executable).parent / "medimg-lab"
    assert exe.exists(), "the console script is installed with the package"
    run = subprocess.run(  # noqa: S603 the installed console script, no shell
        [exe, "deidentify", str(dicom_file("CT_small.dcm")), str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert str(pydicom.dcmread(out).PatientName) == ""


def test_samples_export_writes_nifti_that_loads_back(tmp_path, capsys):
    from medimg_lab.cli import main as cli_main
    from medimg_lab.io import load as load_image

    assert cli_main(["samples", "spine_ct", "--export", str(tmp_path)]) == 0
    written = tmp_path / "spine_ct.nii.gz"
    assert f"wrote {written}" in capsys.readouterr().out
    assert load_image(written).array.shape == (128, 128)
    assert cli_main(["samples", "spine_ct", "--export", str(tmp_path)]) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["samples", "brain"]) == 1
    assert "Choose among" in capsys.readouterr().err
