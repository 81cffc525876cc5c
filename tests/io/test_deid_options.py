"""De-identification options (issue 17, item 3).

The preamble is cleared; the Modified Dates option moves dates and times
together, alike in every file of a study; the salt comes from a file or an
environment variable, never the command line; exporting files of one study
without a shared salt warns.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import warnings
from collections import OrderedDict

import pydicom
import pytest
from pydicom.dataset import Dataset

from medimg_lab.cli import main
from medimg_lab.errors import NotFoundError
from medimg_lab.io import deid
from medimg_lab.io.deid import (
    SALT_ENV,
    UnsharedSaltWarning,
    deidentified_bytes,
    deidentify,
    export_deidentified,
    read_salt,
)
from tests.helpers import dicom_file

SALT = "options-test-salt"
SHIFT = -37
#: Four files of one US study, of different sizes and encodings: 240x320 RGB,
#: 480x640 (two instances, explicit and implicit VR) and JPEG 2000.
STUDY = ("examples_rgb_color.dcm", "US1_UNCR.dcm", "US1_UNCI.dcm", "US1_J2KR.dcm")
#: Files with a StudyDate and StudyTime: square, non-square, multi-frame.
TIMED = (
    "CT_small.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "eCT_Supplemental.dcm",
    "US1_UNCR.dcm",
)


@pytest.fixture(autouse=True)
def _fresh_salt_registry(monkeypatch):
    monkeypatch.setattr(deid, "_SEEN", OrderedDict())
    monkeypatch.delenv(SALT_ENV, raising=False)


def read(raw: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(raw))


def instant(date: str, time: str) -> dt.datetime:
    """A DA and TM pair as one datetime (fraction kept)."""
    whole, _, frac = str(time).partition(".")
    base = dt.datetime.strptime(str(date) + whole.ljust(6, "0"), "%Y%m%d%H%M%S")
    return base + dt.timedelta(microseconds=int(frac.ljust(6, "0")[:6] or 0))


# ---------------------------------------------------------------- preamble
@pytest.mark.parametrize("name", ["CT_small.dcm", "US1_UNCR.dcm", "MR_small.dcm"])
def test_the_preamble_is_cleared(name):
    raw = bytearray(dicom_file(name).read_bytes())
    secret = b"Preamble: Doe^Jane MRN 7654321 "
    raw[:128] = (secret * 5)[:128]
    out, _ = deidentified_bytes(bytes(raw), salt=SALT)
    assert out[:128] == bytes(128)
    assert out[128:132] == b"DICM"
    assert b"7654321" not in out


def test_deidentify_clears_the_preamble_in_memory():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.preamble = b"II*\0" + b"\x7f" * 124  # a TIFF header, say
    out, _ = deidentify(ds, salt=SALT)
    assert out.preamble == bytes(128)
    assert ds.preamble[:4] == b"II*\0"  # the input is not changed


# ------------------------------------------------------------ dates, times
def test_the_shift_has_a_part_of_a_day_so_times_move():
    _, report = deidentified_bytes(
        dicom_file("CT_small.dcm"), salt=SALT, date_shift_days=SHIFT
    )
    assert report.date_shift.days == SHIFT
    assert 0 < report.date_shift.seconds < 86400


@pytest.mark.parametrize("name", TIMED)
def test_a_date_and_its_time_move_as_one_instant(name):
    src = pydicom.dcmread(dicom_file(name))
    raw, report = deidentified_bytes(dicom_file(name), salt=SALT, date_shift_days=SHIFT)
    out = read(raw)
    before = instant(src.StudyDate, src.StudyTime)
    after = instant(out.StudyDate, out.StudyTime)
    assert after - before == report.date_shift
    assert out.StudyTime != src.StudyTime
    assert len(out.StudyTime) == len(str(src.StudyTime))  # precision kept
    if src.get("ContentDate") and src.get("ContentTime"):
        content = instant(out.ContentDate, out.ContentTime)
        assert content - instant(src.ContentDate, src.ContentTime) == report.date_shift


@pytest.mark.parametrize("name", ["CT_small.dcm", "RG1_UNCR.dcm"])
def test_datetime_moves_with_date_and_time(name):
    """Known truth: one instant written as DA+TM, as DT and in a nested item."""
    ds = pydicom.dcmread(dicom_file(name))
    ds.StudyDate, ds.StudyTime = "20201231", "235959.250000"
    ds.AcquisitionDateTime = "20201231235959.250000"
    item = Dataset()
    item.ObservationDateTime = "20201231235959.250000"
    ds.ReferencedSeriesSequence = [item]
    out, report = deidentify(ds, salt=SALT, date_shift_days=SHIFT)
    truth = dt.datetime(2020, 12, 31, 23, 59, 59, 250000) + report.date_shift
    assert instant(out.StudyDate, out.StudyTime) == truth
    assert out.AcquisitionDateTime == truth.strftime("%Y%m%d%H%M%S.%f")
    nested = out.ReferencedSeriesSequence[0].ObservationDateTime
    assert nested == truth.strftime("%Y%m%d%H%M%S.%f")


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_an_exact_shift_rolls_dates_over_and_keeps_precision():
    ds = Dataset()
    ds.StudyDate, ds.StudyTime = "20201231", "235959.5"
    ds.SeriesDate, ds.SeriesTime = "20201231", "2359"  # minutes only
    ds.AcquisitionDateTime = "202012312359"  # minutes only
    ds.ContentDate, ds.ContentTime = "1996.10.29", "15:18:59"  # ACR-NEMA forms
    ds.FrameAcquisitionDateTime = "20200101120000+0100"  # a UTC offset
    out, _ = deidentify(ds, salt=SALT, date_shift=dt.timedelta(minutes=2))
    assert (out.StudyDate, out.StudyTime) == ("20210101", "000159.5")
    assert (out.SeriesDate, out.SeriesTime) == ("20210101", "0001")
    assert out.AcquisitionDateTime == "202101010001"
    assert (out.ContentDate, out.ContentTime) == ("19961029", "152059")
    assert out.FrameAcquisitionDateTime == "20200101120200"  # offset dropped


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_invalid_dates_and_times_are_emptied_not_kept():
    ds = Dataset()
    ds.StudyDate, ds.StudyTime = "20040230", "101010"  # no 30 February
    ds.SeriesTime = "2561"
    ds.AcquisitionDateTime = "notadate"
    out, _ = deidentify(ds, salt=SALT, date_shift_days=3)
    assert (out.StudyDate, out.StudyTime, out.SeriesTime) == ("", "", "")
    assert out.AcquisitionDateTime == ""


def test_the_birth_date_is_emptied_even_when_shifting():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.PatientBirthDate, ds.PatientBirthTime = "19600214", "0830"
    out, _ = deidentify(ds, salt=SALT, date_shift_days=SHIFT)
    assert out.PatientBirthDate == ""
    assert "PatientBirthTime" not in out


def test_without_a_shift_no_input_date_or_time_survives():
    for name in TIMED:
        src = pydicom.dcmread(dicom_file(name))
        dated = {str(e.value) for e in src.iterall() if e.VR in ("DA", "DT", "TM")}
        out = read(deidentified_bytes(dicom_file(name), salt=SALT)[0])
        kept = {str(e.value) for e in out.iterall() if e.VR in ("DA", "DT", "TM")}
        assert kept & dated <= {""}, name


def test_files_of_one_study_move_alike():
    outs, shifts = [], set()
    for name in STUDY:
        raw, report = deidentified_bytes(
            dicom_file(name), salt=SALT, date_shift_days=SHIFT
        )
        outs.append(read(raw))
        shifts.add(report.date_shift)
    assert len(shifts) == 1
    assert len({(o.StudyDate, o.StudyTime) for o in outs}) == 1
    assert len({o.StudyInstanceUID for o in outs}) == 1
    other = read(
        deidentified_bytes(dicom_file(STUDY[0]), salt="another", date_shift_days=SHIFT)[
            0
        ]
    )
    assert other.StudyTime != outs[0].StudyTime  # the part of a day is keyed


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"date_shift_days": True}, TypeError, "date_shift_days"),
        ({"date_shift_days": "3"}, TypeError, "date_shift_days"),
        ({"date_shift_days": 2.5}, TypeError, "date_shift_days"),
        ({"date_shift_days": 10**9}, ValueError, "date_shift_days"),
        ({"date_shift": 3}, TypeError, "date_shift"),
        ({"date_shift_days": 1, "date_shift": dt.timedelta(1)}, ValueError, "one"),
        ({"salt": ""}, ValueError, "salt"),
        ({"salt": 1234}, TypeError, "salt"),
    ],
)
def test_bad_options_are_refused_with_their_name(kwargs, error, needle):
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    with pytest.raises(error, match=needle):
        deidentify(ds, **{"salt": SALT} | kwargs)


# -------------------------------------------------------------------- salt
def test_the_salt_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(SALT_ENV, "  environment-secret\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsharedSaltWarning)
        outs = [deidentified_bytes(dicom_file(n)) for n in STUDY[1:3]]
    first, second = (read(raw) for raw, _ in outs)
    assert all(report.salt_shared for _, report in outs)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    explicit = read(
        deidentified_bytes(dicom_file(STUDY[1]), salt="environment-secret")[0]
    )
    assert explicit.StudyInstanceUID == first.StudyInstanceUID


def test_read_salt_reads_a_file(tmp_path):
    path = tmp_path / "salt"
    path.write_text("  file-secret\n")
    assert read_salt(path) == "file-secret"


def test_read_salt_refuses_empty_missing_and_folders(tmp_path):
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        read_salt(tmp_path / "empty")
    with pytest.raises(NotFoundError, match="missing"):
        read_salt(tmp_path / "missing")
    with pytest.raises(ValueError, match="regular file"):
        read_salt(tmp_path)


def test_cli_takes_the_salt_from_a_file(tmp_path, capsys):
    (tmp_path / "salt").write_text("cli-file-secret\n")
    for k, name in enumerate(STUDY[1:3]):
        args = ["deidentify", str(dicom_file(name)), str(tmp_path / f"{k}.dcm")]
        assert main([*args, "--salt-file", str(tmp_path / "salt")]) == 0
    first, second = (pydicom.dcmread(tmp_path / f"{k}.dcm") for k in range(2))
    assert first.StudyInstanceUID == second.StudyInstanceUID
    api = read(deidentified_bytes(dicom_file(STUDY[1]), salt="cli-file-secret")[0])
    assert api.StudyInstanceUID == first.StudyInstanceUID
    assert "no salt" not in capsys.readouterr().err


def test_cli_takes_the_salt_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(SALT_ENV, "cli-env-secret")
    out = tmp_path / "a.dcm"
    assert main(["deidentify", str(dicom_file(STUDY[1])), str(out)]) == 0
    api = read(deidentified_bytes(dicom_file(STUDY[1]), salt="cli-env-secret")[0])
    assert pydicom.dcmread(out).StudyInstanceUID == api.StudyInstanceUID
    assert "no salt" not in capsys.readouterr().err


def test_cli_refuses_a_salt_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "a.dcm"
    args = ["deidentify", str(dicom_file("CT_small.dcm")), str(out)]
    assert main([*args, "--salt", "visible-in-ps"]) == 1
    err = capsys.readouterr().err
    assert "--salt-file" in err and SALT_ENV in err
    assert "visible-in-ps" not in err
    assert not out.exists()


def test_cli_help_offers_no_salt_argument(capsys):
    with pytest.raises(SystemExit):
        main(["deidentify", "--help"])
    text = capsys.readouterr().out
    assert "--salt-file" in text and SALT_ENV in text
    assert re.search(r"--salt(?!-file)\b", text) is None


def test_cli_without_a_salt_says_so(tmp_path, capsys):
    out = tmp_path / "a.dcm"
    assert main(["deidentify", str(dicom_file("CT_small.dcm")), str(out)]) == 0
    assert "no salt given" in capsys.readouterr().err


# ----------------------------------------------------------------- warning
def test_two_files_of_a_study_without_a_salt_warn():
    first = read(deidentified_bytes(dicom_file(STUDY[0]))[0])
    with pytest.warns(UnsharedSaltWarning, match="salt") as caught:
        second = read(deidentified_bytes(dicom_file(STUDY[3]))[0])
    # The warning is true: the two files no longer share their study.
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert caught[0].filename == __file__  # it points at the caller
    assert STUDY[3] in str(caught[0].message)


def test_a_salted_file_after_an_unsalted_one_of_its_study_warns(tmp_path):
    export_deidentified(dicom_file(STUDY[1]), tmp_path / "a.dcm")
    with pytest.warns(UnsharedSaltWarning):
        export_deidentified(dicom_file(STUDY[2]), tmp_path / "b.dcm", salt=SALT)


def test_a_shared_salt_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsharedSaltWarning)
        for name in STUDY:
            deidentified_bytes(dicom_file(name), salt=SALT)
        for name in STUDY:  # a second release with its own salt: meant
            deidentified_bytes(dicom_file(name), salt="second-release")


def test_one_file_without_a_salt_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsharedSaltWarning)
        deidentified_bytes(dicom_file("CT_small.dcm"))
        deidentified_bytes(dicom_file(STUDY[0]))  # another study


def test_the_warning_class_is_a_user_warning_exported_by_medimg_lab():
    assert issubclass(UnsharedSaltWarning, UserWarning)
    assert "UnsharedSaltWarning" in deid.__all__


def test_the_option_shifts_every_table_date_but_birth_and_gps():
    """Column "Rtn. Long. Modif. Dates Opt." of Table E.1-1: C, except three."""
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.AdmittingDate, ds.AdmittingTime = "20040118", "2330"  # X in the basic profile
    ds.GPSTimeStamp = "20040118101500"
    out, report = deidentify(ds, salt=SALT, date_shift_days=SHIFT)
    moved = instant(out.AdmittingDate, out.AdmittingTime)
    truth = instant("20040118", "2330") + report.date_shift
    assert moved == truth.replace(second=0, microsecond=0)  # minutes kept
    assert "GPSTimeStamp" not in out
    plain, _ = deidentify(ds, salt=SALT)
    assert "AdmittingDate" not in plain and "AdmittingTime" not in plain
