"""The Studies panel against a real Orthanc: search, open, cancel, send back, failures.

One Orthanc per module (loopback only, :mod:`medimg_lab.archive.testing`),
seeded with the single-instance samples and two multi-slice CT series: a
512 x 512 one at 2.5 mm and a 128 x 96 RLE one at 0.66 mm (non-square,
anisotropic). The archive is configured the way a clinician's server is:
through ``MEDIMG_ARCHIVE_*`` variables, the password in a file.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard
from medimg_lab.widgets.dashboards.viewer import ViewerDashboard
from medimg_lab.widgets.studies import NOT_CONFIGURED, StudiesPanel

import medimg_lab
from medimg_lab.archive import DicomWebArchive
from medimg_lab.archive.testing import (
    Orthanc,
    files_of,
    free_port,
    seed_all,
    seeded_orthanc,
)

SERIES = ("ct_series", "small_ct_rle")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studies-seeds")
    return seed_all(folder, ct_slices=12, rle_slices=10)


@pytest.fixture(scope="module")
def orthanc(seeds, tmp_path_factory):
    storage = tmp_path_factory.mktemp("studies-orthanc")
    with seeded_orthanc(storage, files_of(seeds)) as server:
        yield server


@pytest.fixture
def configured(orthanc, tmp_path, monkeypatch):
    """The environment of a server whose archive is this Orthanc."""
    for key, value in orthanc.environment(cache=tmp_path / "cache").items():
        monkeypatch.setenv(key, value)
    return tmp_path / "cache"


@pytest.fixture
def unconfigured(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MEDIMG_ARCHIVE")]:
        monkeypatch.delenv(key)


def _no_traceback(text: str) -> None:
    assert text
    assert "Traceback" not in text
    assert 'File "' not in text


# ------------------------------------------------------------------ unconfigured
def test_unconfigured_panel_says_how_to_configure(unconfigured):
    panel = StudiesPanel()
    assert not panel.configured
    assert panel.message == NOT_CONFIGURED
    assert "MEDIMG_ARCHIVE_URL" in panel.message
    assert panel.message.count(". ") == 0  # one sentence
    assert list(panel.children) == [panel._message]
    with pytest.raises(ValueError, match="MEDIMG_ARCHIVE_URL"):
        panel.search()


def test_unconfigured_dashboards_keep_working(unconfigured):
    viewer = ViewerDashboard(sample="spine_ct")
    assert viewer.studies.message == NOT_CONFIGURED
    viewer.load_sample("chest_xray")
    assert viewer.image.modality in ("CR", "DX")
    assert viewer.message == ""
    seg = SegmentationDashboard(sample="spine_ct")
    assert seg.studies.message == NOT_CONFIGURED
    seg.preset = "bone"
    assert seg.measurements.shape[0] >= 1


def test_a_broken_configuration_is_a_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIMG_ARCHIVE_URL", "http://127.0.0.1:9/dicom-web")
    monkeypatch.setenv("MEDIMG_ARCHIVE_USER", "someone")
    monkeypatch.setenv("MEDIMG_ARCHIVE_PASSWORD_FILE", str(tmp_path / "missing"))
    panel = StudiesPanel()
    assert not panel.configured
    _no_traceback(panel.message)
    assert "MEDIMG_ARCHIVE_PASSWORD_FILE" in panel.message


# ------------------------------------------------------------------ search
def test_search_by_each_filter(configured, seeds):
    panel = StudiesPanel()
    assert panel.configured
    ct = seeds["ct_series"]
    cases = [
        {"patient_id": ct.patient_id},
        {"accession_number": ct.accession},
        {"description": "ct_series"},  # matches anywhere
        {"patient_name": f"Patient{ct.patient_id[-3:]}"},
    ]
    for filters in cases:
        panel.set_filters(**filters)
        found = panel.search()
        assert [s.study_uid for s in found] == [ct.study_uid], filters
    text = panel._study_list.options[0][0]
    # the clinician's own archive: the patient's name and ID are listed
    assert ct.patient_id in text and f"Patient{ct.patient_id[-3:]}" in text
    assert [s.series_uid for s in panel.series] == [ct.series_uid]
    assert panel._series_list.value == ct.series_uid


def test_search_by_modality_and_date_range(configured, seeds):
    import datetime as dt

    panel = StudiesPanel()
    panel.set_filters(modality="ct")
    cts = {s.study_uid for s in seeds.values() if s.modality == "CT"}
    assert {s.study_uid for s in panel.search()} == cts
    day = seeds["small_ct_rle"].date
    date = dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    panel.set_filters(date_from=date, date_to=date)
    want = {s.study_uid for s in seeds.values() if s.date == day}
    assert {s.study_uid for s in panel.search()} == want
    panel.set_filters(patient_id="NOBODY-999")
    assert panel.search() == []
    assert panel.message == "0 studies found."
    assert panel._open_button.disabled


# ------------------------------------------------------------------ open
@pytest.mark.parametrize("key", SERIES)
def test_open_series_in_the_viewer_equals_loading_the_files(configured, seeds, key):
    seed = seeds[key]
    dash = ViewerDashboard(sample="spine_ct")
    panel = dash.studies
    panel.set_filters(patient_id=seed.patient_id)
    panel.search()
    panel._open_button.click()  # as the page does: a thread, the bar moving
    opened = panel.wait()
    assert opened is not None, panel.message
    truth = medimg_lab.load(seed.folder)
    assert dash.image is opened.image
    np.testing.assert_array_equal(dash.image.array, truth.array)
    np.testing.assert_allclose(dash.image.spacing, truth.spacing, rtol=1e-6)
    assert dash.image.array.shape[0] == seed.extra["slices"]
    assert panel.instances_done == panel.instances_total == seed.extra["slices"]
    assert panel.bytes_received > 0
    assert panel._bar.value == panel._bar.max == seed.extra["slices"]
    assert "instances" in panel._bar_text.value and "received" in panel._bar_text.value
    assert dash._opened.value.startswith("Open: CT series")
    # again: everything from the cache, nothing transferred
    again = panel.open_series()
    assert again.bytes_received == 0
    assert again.instances_cached == seed.extra["slices"]
    np.testing.assert_array_equal(again.image.array, truth.array)
    # the cached files are the export's DICOM behind the image
    assert len(dash._source.dicom_files()) == seed.extra["slices"]


def test_cancel_keeps_nothing_half_written_and_opening_again_resumes(configured, seeds):
    seed = seeds["ct_series"]
    dash = ViewerDashboard(sample="spine_ct")
    before = dash.image
    panel = dash.studies
    panel.set_filters(patient_id=seed.patient_id)
    panel.search()
    # cancel as the first bytes arrive (in the receiving thread)
    panel.observe(lambda c: panel.cancel() if c["new"] else None, "bytes_received")
    panel.open_series(wait=False)
    assert panel.wait() is None
    assert "cancelled" in panel.message and "resumes" in panel.message
    assert dash.image is before
    assert not panel.busy and not panel._open_button.disabled
    incoming = Path(configured) / ".incoming"
    assert not incoming.exists() or not list(incoming.iterdir())
    panel.unobserve_all("bytes_received")
    opened = panel.open_series()
    np.testing.assert_array_equal(
        opened.image.array, medimg_lab.load(seed.folder).array
    )


# ------------------------------------------------------------------ send back
def test_send_seg_and_sr_back_and_find_them_beside_the_images(
    configured, seeds, tmp_path
):
    seed = seeds["small_ct_rle"]
    dash = SegmentationDashboard(sample="spine_ct")
    panel = dash.studies
    # a sample is not in the archive: nothing to send it beside
    with pytest.raises(ValueError, match="open a series from the archive"):
        panel.send_results()
    assert "archive" in dash.message
    panel.set_filters(patient_id=seed.patient_id)
    panel.search()
    panel.open_series()
    dash.preset = "bone"
    labels = dash.labels
    assert labels.any()
    stored = panel.send_results()
    assert len(stored) == 2
    assert "Stored 2 object(s) (SEG, SR)" in panel.message
    modalities = sorted(s.modality for s in panel.series)
    assert modalities == ["CT", "SEG", "SR"]
    # the SEG comes back through the archive and loads onto its source
    seg = next(s for s in panel.series if s.modality == "SEG")
    with DicomWebArchive(
        os.environ["MEDIMG_ARCHIVE_URL"], cache=tmp_path / "c2", retries=0
    ) as client:
        got = client.retrieve_series(seg.series_uid, study_uid=seed.study_uid)
    back = medimg_lab.load(got.paths[0])
    assert back.array.shape == labels.shape
    np.testing.assert_array_equal(back.array > 0, labels > 0)


def test_export_offers_seg_and_sr_deidentified(configured, seeds):
    import io
    import zipfile

    import pydicom

    seed = seeds["small_ct_rle"]
    dash = SegmentationDashboard(sample="spine_ct")
    dash.studies.set_filters(patient_id=seed.patient_id)
    dash.studies.search()
    dash.studies.open_series()
    dash.preset = "bone"
    dash._export_buttons["dicom"].click()
    assert "ready" in dash.message, dash.message
    data = dash.export_dicom()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["measurements.dcm", "segmentation.dcm"]
        objects = [pydicom.dcmread(io.BytesIO(z.read(n))) for n in z.namelist()]
    for ds in objects:
        assert str(ds.PatientID) != seed.patient_id
        assert "Patient" not in str(ds.PatientName)
        assert ds.StudyInstanceUID != seed.study_uid
    pair = dash.export_pair()
    with zipfile.ZipFile(io.BytesIO(pair)) as z:
        names = [n for n in z.namelist() if n.startswith("image/")]
        images = [pydicom.dcmread(io.BytesIO(z.read(n))) for n in names]
    assert len(images) == seed.extra["slices"]
    # one salt per image opened: the de-identified SEG references the
    # pair's de-identified images, instance by instance
    seg = next(ds for ds in objects if ds.Modality == "SEG")
    assert {seg.StudyInstanceUID} == {ds.StudyInstanceUID for ds in images}
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {ds.SOPInstanceUID for ds in images}


def test_export_of_a_nifti_image_says_why_no_seg(unconfigured, brain_mri):
    dash = SegmentationDashboard(brain_mri)
    dash._export_buttons["dicom"].click()
    assert "did not come from DICOM" in dash.message
    _no_traceback(dash.message)


# ------------------------------------------------------------------ failures
def test_wrong_password_is_a_sentence(orthanc, tmp_path, monkeypatch):
    env = orthanc.environment(cache=tmp_path / "cache")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    env["MEDIMG_ARCHIVE_PASSWORD_FILE"] = str(wrong)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    panel = StudiesPanel()
    panel._search_button.click()  # the page's click: nothing raised
    _no_traceback(panel.message)
    assert "credentials" in panel.message.lower() or "401" in panel.message
    assert panel.studies == []


def test_server_down_is_a_sentence(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    archive = DicomWebArchive(url, cache=tmp_path, credentials=None, retries=0)
    panel = StudiesPanel(archive=archive)
    panel._search_button.click()
    _no_traceback(panel.message)
    assert "127.0.0.1" in panel.message


def test_a_server_that_never_answers_is_a_timeout_sentence(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        archive = DicomWebArchive(
            f"http://127.0.0.1:{port}/dicom-web",
            cache=tmp_path,
            credentials=None,
            retries=0,
            timeout_s=1,
        )
        panel = StudiesPanel(archive=archive)
        panel._search_button.click()
        _no_traceback(panel.message)
        assert "1 s" in panel.message or "time" in panel.message.lower()
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


def test_orthanc_stopping_mid_retrieval_is_a_sentence(seeds, tmp_path):
    server = Orthanc(tmp_path / "dying").start()
    try:
        seed = seeds["ct_series"]
        server.upload(seed.files)
        archive = DicomWebArchive(
            server.url,
            cache=tmp_path / "cache",
            credentials=None,
            env_prefix="MEDIMG_TEST_UNSET",
            retries=0,
            timeout_s=5,
        )
        # no credentials: the panel says the archive refused them
        panel = StudiesPanel(archive=archive)
        panel._search_button.click()
        _no_traceback(panel.message)
        archive = DicomWebArchive(
            server.url,
            cache=tmp_path / "cache",
            credentials=_credentials(server),
            retries=0,
            timeout_s=5,
        )
        # One instance cached, the rest evicted: the retrieval asks for each
        # missing instance on its own, so the server dies between two requests
        # (a series asked whole may already sit in the socket's buffers).
        first = archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
        for path in first.paths[1:]:
            path.unlink()
        panel = StudiesPanel(archive=archive)
        panel.set_filters(patient_id=seed.patient_id)
        panel.search()
        panel.observe(lambda c: server.kill() if c["new"] else None, "bytes_received")
        panel.open_series(wait=False)
        assert panel.wait() is None
        _no_traceback(panel.message)
        assert panel._bar.bar_style == "danger"
        incoming = tmp_path / "cache" / ".incoming"
        assert not incoming.exists() or not list(incoming.iterdir())
    finally:
        server.stop()


def _credentials(server):
    from medimg_lab.archive import Credentials

    user, password = next(iter(server.users.items()))
    return Credentials.from_environment(
        environ={"MEDIMG_ARCHIVE_USER": user, "MEDIMG_ARCHIVE_PASSWORD": password}
    )
