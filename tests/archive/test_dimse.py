"""DIMSE (C-ECHO, C-FIND, C-GET, C-STORE) against a pynetdicom SCP on 127.0.0.1.

Orthanc's DICOM port cannot be bound to loopback only, so DIMSE is tested
against a pynetdicom SCP that listens on 127.0.0.1 (tests/archive/scp.py).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from pydicom.uid import generate_uid

import medimg_lab
from medimg_lab.archive import (
    ArchiveAuthError,
    ArchiveUnavailableError,
    DimseArchive,
    RetrievalCancelled,
    open_archive,
)
from tests.archive.conftest import incoming_files
from tests.archive.orthanc import free_port


def test_echo(dimse):
    dimse.echo()


def test_find_studies_by_filters(dimse, seeds):
    everything = dimse.search_studies()
    assert {s.study_uid for s in everything} == {s.study_uid for s in seeds.values()}
    target = seeds["ct_series"]
    assert [
        s.study_uid for s in dimse.search_studies(patient_id=target.patient_id)
    ] == [target.study_uid]
    assert [
        s.study_uid for s in dimse.search_studies(accession_number=target.accession)
    ] == [target.study_uid]
    ct = {s.study_uid for s in dimse.search_studies(modality="CT")}
    assert ct == {s.study_uid for s in seeds.values() if s.modality == "CT"}
    ranged = {s.study_uid for s in dimse.search_studies(date=("20200301", "20200615"))}
    assert ranged == {
        s.study_uid for s in seeds.values() if "20200301" <= s.date <= "20200615"
    }
    described = dimse.search_studies(description="small_ct*")
    assert [s.study_uid for s in described] == [seeds["small_ct_rle"].study_uid]
    assert len(dimse.search_studies(limit=3, offset=2)) == 3


def test_find_series_of_a_study(dimse, seeds):
    target = seeds["small_ct_rle"]
    (series,) = dimse.search_series(target.study_uid)
    assert series.series_uid == target.series_uid
    assert series.instance_count == len(target.files)
    assert series.modality == "CT"


@pytest.mark.parametrize(
    "key", ["chest_cr", "head_ct_j2k", "mr_jpegls", "small_ct_rle"]
)
def test_c_get_equals_the_files_loaded_directly(dimse, seeds, key):
    seed = seeds[key]
    image = dimse.load_series(seed.series_uid, study_uid=seed.study_uid)
    direct = medimg_lab.load(seed.files[0] if len(seed.files) == 1 else seed.folder)
    assert np.array_equal(image.array, direct.array)
    assert image.spacing == pytest.approx(direct.spacing)
    assert image.modality == direct.modality
    # the default window is a robust percentile range: a file and a series of
    # that one file may estimate it from other samples of the same pixels
    assert image.window == pytest.approx(direct.window, rel=1e-2)


def test_cache_hit_sends_no_c_get(dimse, scp, seeds):
    seed = seeds["small_ct_rle"]
    first = dimse.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert first.instances_cached == 0 and first.bytes_received > 0
    gets = scp.gets
    again = dimse.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert scp.gets == gets
    assert again.bytes_received == 0 and again.instances_cached == len(seed.files)


def test_cancel_then_resume_fetches_only_the_missing(dimse, scp, seeds):
    seed = seeds["small_ct_rle"]
    stop = threading.Event()

    def progress(p):
        if p.instances_done >= 5:
            stop.set()

    with pytest.raises(RetrievalCancelled):
        dimse.retrieve_series(
            seed.series_uid, study_uid=seed.study_uid, progress=progress, cancel=stop
        )
    assert incoming_files(dimse.cache) == []
    kept = len(dimse.cache)
    assert 5 <= kept < len(seed.files)
    resumed = dimse.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert resumed.instances_cached == kept
    assert resumed.instances_received == len(seed.files) - kept


def test_store_then_find_and_retrieve(dimse, seeds, tmp_path):
    import pydicom

    ds = pydicom.dcmread(seeds["mr_rle"].files[0])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["dimse stored series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["dimse store"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "stored.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert dimse.store([path]) == [ds.SOPInstanceUID]
    found = dimse.search_series(ds.StudyInstanceUID)
    assert ds.SeriesInstanceUID in {s.series_uid for s in found}
    image = dimse.load_series(ds.SeriesInstanceUID, study_uid=ds.StudyInstanceUID)
    assert np.array_equal(image.array, medimg_lab.load(seeds["mr_rle"].files[0]).array)


def test_wrong_called_ae_is_rejected(scp, tmp_path):
    archive = DimseArchive(
        "127.0.0.1", scp.port, called_ae="NOT-THE-SCP", cache=tmp_path
    )
    with pytest.raises(ArchiveAuthError, match="rejected the association"):
        archive.echo()


def test_refused_connection(tmp_path):
    archive = DimseArchive("127.0.0.1", free_port(), cache=tmp_path, timeout_s=2)
    with pytest.raises(ArchiveUnavailableError, match="could not be reached"):
        archive.echo()


def test_open_archive_reads_a_dimse_url(scp, tmp_path):
    archive = open_archive(
        f"dimse://{scp.ae_title}@127.0.0.1:{scp.port}", cache=tmp_path
    )
    assert isinstance(archive, DimseArchive) and archive.called_ae == scp.ae_title
    archive.echo()
    with pytest.raises(ValueError, match="dimse://AE@host:port"):
        open_archive("dimse://127.0.0.1", cache=tmp_path)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"called_ae": "A" * 17}, "AE title of 1 to 16"),
        ({"calling_ae": ""}, "AE title of 1 to 16"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_options_name_themselves(tmp_path, options, expected):
    with pytest.raises(ValueError, match=expected):
        DimseArchive("127.0.0.1", 104, cache=tmp_path, **options)
