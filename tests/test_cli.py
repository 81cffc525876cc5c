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


# ------------------------------------------------------------------- ops


def test_ops_lists_every_operation_from_its_declaration(capsys):
    from medimg_lab.params import OPERATIONS, operations

    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for op in OPERATIONS.values():
        assert f"  {op.name}: {op.label} [{op.role}" in out
    for stage in ("processing", "segmentation", "composition"):
        assert f"{stage} ({len(operations(stage=stage))} operations)" in out
    assert "sigma_mm         float in [0.1, 50] mm; default 1.0." in out
    assert "min_size         float in [0, 1e+06] mm² / mL (slider 0 to 1000)" in out
    assert "(slider 0 to 1000)" in out  # the slider's range beside the valid one


def test_ops_name_shows_one_operation_with_units_ranges_and_defaults(capsys):
    assert main(["ops", "register"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "  register: Register to a reference [compose; 2D image]"
    )
    assert "iterations       int in [10, 1000]; default 100." in out
    assert "reference        image file; required." in out
    assert main(["ops", "pixel_classifier", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    model, background = facts["parameters"]
    assert (background["name"], background["default"]) == ("background", None)
    assert (facts["stage"], model["type"], model["required"]) == (
        "segmentation",
        "model file",
        True,
    )


def test_ops_unknown_name_lists_close_matches_and_exits_2(capsys):
    assert main(["ops", "gausian"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: 'gausian' is not an operation. Did you mean gaussian?"
    assert main(["ops", "zzzz"]) == 2
    assert "Run medimg-lab ops to list them" in capsys.readouterr().err
