"""Uploads on every dashboard: size and type checked first, names never paths."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pytest
from medimg_lab.widgets.dashboards import _base as _dashboard
from medimg_lab.widgets.dashboards.compare import CompareDashboard
from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard
from medimg_lab.widgets.dashboards.viewer import ViewerDashboard

from medimg_lab.errors import NotAnImageError
from tests.helpers import dicom_file

DASHBOARDS = {
    "viewer": ViewerDashboard,
    "segmentation": SegmentationDashboard,
    "compare": CompareDashboard,
}


@pytest.fixture(scope="module", params=list(DASHBOARDS))
def dash(request):
    return DASHBOARDS[request.param]()


def _files_under(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


def test_oversized_upload_is_refused_before_it_is_parsed(dash, monkeypatch):
    opened = []
    monkeypatch.setattr(_dashboard, "load", lambda payload: opened.append(payload))
    monkeypatch.setattr(_dashboard, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(ValueError, match="the limit is"):
        dash.load_bytes(dicom_file("CT_small.dcm").read_bytes(), "big.dcm")
    assert opened == []  # never handed to a parser
    assert dash.message.startswith("big.dcm is ")


def test_unknown_type_is_refused_by_content_not_name(dash):
    noise = np.random.default_rng(3).bytes(4096)
    with pytest.raises(NotAnImageError):
        dash.load_bytes(noise, "scan.dcm")  # a DICOM name, not DICOM content
    assert "is not a DICOM, NIfTI, PNG, JPEG or TIFF image" in dash.message


def test_a_name_is_never_a_path(dash, tmp_path, monkeypatch):
    """A path-like name opens the bytes it came with; nothing is read or written."""
    monkeypatch.chdir(tmp_path)
    decoy = tmp_path / "secret.dcm"
    decoy.write_bytes(b"not an image")
    before = _files_under(tmp_path)
    payload = dicom_file("CT_small.dcm").read_bytes()
    for name in ("../../../etc/passwd", str(decoy), "/dev/zero", "a\\b\\..\\c.dcm"):
        image = dash.load_bytes(payload, name)
        assert image.array.shape == (128, 128)  # CT_small, not the decoy
    assert _files_under(tmp_path) == before
    assert decoy.read_bytes() == b"not an image"
    assert not os.path.exists("etc")


def test_a_name_is_shown_escaped(dash):
    name = "<img src=x onerror=alert(1)>.dcm"
    with pytest.raises(NotAnImageError):
        dash.load_bytes(b"\x00" * 400, name)
    html = dash._message.value
    assert "<img" not in html and "&lt;img" in html


def _sources(dash):
    return list(getattr(dash, "_sources", {"": dash._source}).values())


def test_the_upload_button_shows_no_count_and_the_file_its_name(dash):
    """FileUpload's own text is "Upload file (0)": hidden, the name shown beside."""
    from test_viewer_dashboard import choose

    for source in _sources(dash):
        source.load_sample("head_ct")  # a sample: no file name shown
        assert "medimg-upload" in source._upload._dom_classes
        (own,) = [
            c
            for c in source._upload._dom_classes
            if c != "medimg-upload" and not c.startswith("medimg-max-bytes-")
        ]
        want = source._upload.description
        assert f'.{own}::after {{ content: "{want}"; }}' in source._upload_style.value
        assert source._file_name.value == ""
    source = _sources(dash)[-1]
    name = 'CT "small" <b>&amp;.dcm'
    choose(source, name, dicom_file("CT_small.dcm").read_bytes())
    try:
        assert source.file_name == name
        shown = source._file_name.value
        assert html.escape(name) in shown and "<b>" not in shown
        assert source._upload.value == ()  # the same file can be chosen again
    finally:
        source.load_sample("head_ct")
    assert source._file_name.value == ""


def test_the_file_name_stays_when_the_next_upload_fails(dash):
    from test_viewer_dashboard import choose

    source = _sources(dash)[0]
    choose(source, "first.dcm", dicom_file("CT_small.dcm").read_bytes())
    try:
        choose(source, "noise.dcm", np.random.default_rng(3).bytes(5000))
        assert source.file_name == "first.dcm"  # the image shown is still that one
        assert "noise.dcm" in dash.message
    finally:
        source.load_sample("head_ct")
