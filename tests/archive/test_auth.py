"""Credentials come from the environment or a file and never show their secret."""

from __future__ import annotations

import pytest

from medimg_lab.archive import Credentials, configured_archive
from medimg_lab.archive.query import date_range, study_filters


def test_no_variables_no_credentials():
    assert Credentials.from_environment(environ={}) is None


def test_token_wins_over_basic_and_hides(tmp_path):
    creds = Credentials.from_environment(
        environ={
            "MEDIMG_ARCHIVE_TOKEN": "tok-123",
            "MEDIMG_ARCHIVE_USER": "u",
            "MEDIMG_ARCHIVE_PASSWORD": "pw-456",
        }
    )
    assert creds.kind == "bearer"
    assert "tok-123" not in repr(creds) and "tok-123" not in creds.describe()


def test_basic_from_a_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("pw-789\n")
    creds = Credentials.from_environment(
        environ={
            "MEDIMG_ARCHIVE_USER": "alice",
            "MEDIMG_ARCHIVE_PASSWORD_FILE": str(secret),
        }
    )
    assert (creds.kind, creds.user) == ("basic", "alice")
    assert creds.requests_auth().password == "pw-789"  # noqa: S105 a test secret
    assert "pw-789" not in repr(creds)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MEDIMG_ARCHIVE_USER": "alice"}, "neither MEDIMG_ARCHIVE_PASSWORD"),
        ({"MEDIMG_ARCHIVE_PASSWORD": "x"}, "MEDIMG_ARCHIVE_USER is not"),
        ({"MEDIMG_ARCHIVE_TOKEN_FILE": "/nonexistent/token"}, "cannot be read"),
    ],
)
def test_incomplete_variables_say_what_to_set(environ, expected):
    with pytest.raises(ValueError, match=expected):
        Credentials.from_environment(environ=environ)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"\xff\xfe\x00", "not UTF-8"), (b"x" * 70000, "64 KiB")],
)
def test_bad_secret_files(tmp_path, content, expected):
    path = tmp_path / "secret"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected):
        Credentials.from_file(path)


def test_configured_archive_reads_its_url(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDIMG_ARCHIVE_URL", raising=False)
    assert configured_archive() is None
    monkeypatch.setenv("MEDIMG_ARCHIVE_URL", "http://127.0.0.1:9/dicom-web")
    archive = configured_archive(cache=tmp_path, env_prefix="MEDIMG_TEST_UNSET")
    assert archive.url == "http://127.0.0.1:9/dicom-web"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("20200315", "20200315"),
        ("2020-03-15", "20200315"),
        (("20200101", "20201231"), "20200101-20201231"),
        (("20200101", None), "20200101-"),
        ((None, "20201231"), "-20201231"),
        ("20200101-", "20200101-"),
    ],
)
def test_date_ranges(given, expected):
    assert date_range(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2020-02-30", "not a calendar date"),
        (("20201231", "20200101"), "starts after"),
        ("yesterday", "YYYYMMDD"),
    ],
)
def test_bad_dates_are_named(given, expected):
    with pytest.raises(ValueError, match=expected):
        study_filters(date=given)
