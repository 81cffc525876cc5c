"""DICOMweb against a real Orthanc: search, retrieval equal to load, cache, store."""

from __future__ import annotations

import threading

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import medimg_lab
from medimg_lab.archive import (
    ArchiveAuthError,
    ArchiveNotFoundError,
    ArchiveUnavailableError,
    DicomWebArchive,
    RetrievalCancelled,
)
from tests.archive.conftest import credentials, incoming_files
from tests.archive.orthanc import PASSWORD, SINGLE, USER, free_port


def _direct(seed):
    """The same files loaded directly, as a user loads a file or a folder."""
    return medimg_lab.load(seed.files[0] if len(seed.files) == 1 else seed.folder)


# -- QIDO-RS ---------------------------------------------------------------------


def test_search_finds_every_seeded_study(archive, seeds):
    found = {s.study_uid for s in archive.search_studies(limit=None)}
    assert found == {s.study_uid for s in seeds.values()}


@pytest.mark.parametrize(
    "option", ["patient_id", "accession_number", "modality", "description", "date"]
)
def test_search_studies_by_each_filter(archive, seeds, option):
    target = seeds["ct_series"]
    value = {
        "patient_id": target.patient_id,
        "accession_number": target.accession,
        "modality": "CT",
        "description": "ct_series*",
        "date": target.date,
    }[option]
    found = {s.study_uid for s in archive.search_studies(**{option: value}, limit=None)}
    truth = {
        s.study_uid
        for s in seeds.values()
        if {
            "patient_id": s.patient_id == target.patient_id,
            "accession_number": s.accession == target.accession,
            "modality": s.modality == "CT",
            "description": s.description.startswith("ct_series"),
            "date": s.date == target.date,
        }[option]
    }
    assert target.study_uid in found
    assert found == truth


def test_search_by_date_range(archive, seeds):
    found = {s.study_uid for s in archive.search_studies(date=("20200301", "20200615"))}
    truth = {s.study_uid for s in seeds.values() if "20200301" <= s.date <= "20200615"}
    assert found == truth and len(truth) >= 2
    open_end = {s.study_uid for s in archive.search_studies(date="20200901-")}
    assert open_end == {s.study_uid for s in seeds.values() if s.date >= "20200901"}


def test_search_paging(archive, seeds):
    archive.page_size = 3
    paged = [s.study_uid for s in archive.iter_studies()]
    assert len(paged) == len(set(paged)) == len(seeds)
    first = archive.search_studies(limit=4)
    second = archive.search_studies(limit=4, offset=4)
    assert len(first) == 4 and not {s.study_uid for s in first} & {
        s.study_uid for s in second
    }


def test_study_records_hide_patient_identifiers_from_repr(archive, seeds):
    study = archive.search_studies(patient_id=seeds["spine_ct"].patient_id)[0]
    assert study.patient_id == seeds["spine_ct"].patient_id
    assert study.patient_name.startswith("Test^")
    assert study.patient_id not in repr(study) and "Test^" not in repr(study)
    assert study.modalities == ("CT",) and study.instance_count == 1


def test_search_series_of_a_study_and_by_modality(archive, seeds):
    target = seeds["small_ct_rle"]
    (series,) = archive.search_series(target.study_uid)
    assert series.series_uid == target.series_uid
    assert series.instance_count == len(target.files)
    mr = {s.series_uid for s in archive.search_series(modality="MR", limit=None)}
    assert mr == {s.series_uid for s in seeds.values() if s.modality == "MR"}


def test_search_refuses_bad_filters_before_asking(archive):
    with pytest.raises(ValueError, match="date"):
        archive.search_studies(date="2020-13-45")
    with pytest.raises(ValueError, match="modality"):
        archive.search_studies(modality="C T;")
    with pytest.raises(ValueError, match="filters keys"):
        archive.search_studies(filters={"NotAKeyword": "x"})


# -- WADO-RS ---------------------------------------------------------------------


@pytest.mark.parametrize("key", [*SINGLE, "ct_series", "small_ct_rle"])
def test_retrieved_series_equals_the_files_loaded_directly(archive, seeds, key):
    """HU, MONOCHROME1, RGB, multi-frame, compression and slice order as load."""
    seed = seeds[key]
    image = archive.load_series(seed.series_uid, study_uid=seed.study_uid)
    direct = _direct(seed)
    assert image.array.dtype == direct.array.dtype
    assert np.array_equal(image.array, direct.array)
    assert image.spacing == pytest.approx(direct.spacing)
    assert image.modality == direct.modality
    # the default window is a robust percentile range: a file and a series of
    # that one file may estimate it from other samples of the same pixels
    assert image.window == pytest.approx(direct.window, rel=1e-2)
    for fact in ("PhotometricInterpretation", "monochrome1_inverted", "slice_gaps"):
        assert image.meta.get(fact) == direct.meta.get(fact)
    assert image.source is None


def test_series_order_follows_positions_not_instance_numbers(archive, seeds):
    seed = seeds["ct_series"]
    image = archive.load_series(seed.series_uid)  # study found by a search
    assert image.array.shape[0] == seed.extra["slices"]
    assert image.spacing[0] == pytest.approx(seed.extra["z_mm"])
    # slice i was rolled by 3*i columns: consecutive slices differ by a roll of 3
    assert np.array_equal(np.roll(image.array[0], 3, axis=1), image.array[1])


def test_cache_hit_costs_no_transfer(archive, seeds):
    seed = seeds["ct_series"]
    first = archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert first.instances_cached == 0 and first.bytes_received > 0
    asked: list[str] = []
    archive._session.hooks["response"].append(lambda r, **kw: asked.append(r.url))
    again = archive.retrieve_series(seed.series_uid)  # no study UID: none needed
    assert again.bytes_received == 0 and asked == []  # no request at all
    assert again.instances_cached == len(seed.files) == len(again.paths)
    assert again.study_uid == seed.study_uid
    listed = archive.retrieve_series(seed.series_uid, refresh=True)
    assert listed.bytes_received == 0
    assert len(asked) == 2 and all(
        "/instances" not in u.split("?")[0][-10:] or "?" in u for u in asked
    )
    assert not any(u.endswith(seed.series_uid) for u in asked)  # no WADO-RS


def test_an_evicted_instance_is_fetched_alone(archive, seeds):
    seed = seeds["small_ct_rle"]
    first = archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    first.paths[3].unlink()  # as an eviction by another process would
    again = archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert again.instances_cached == len(seed.files) - 1
    assert again.instances_received == 1


def test_instance_listing_pages(archive, seeds):
    seed = seeds["small_ct_rle"]
    archive.page_size = 7  # 24 instances: pages of 7, 7, 7 and 3
    asked: list[str] = []
    archive._session.hooks["response"].append(lambda r, **kw: asked.append(r.url))
    uids = archive.instance_uids(seed.study_uid, seed.series_uid)
    assert sorted(uids) == sorted(
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
        for f in seed.files
    )
    assert len(asked) == 4


def test_tqdm_bar_in_scripts(archive, seeds):
    import io

    from medimg_lab.archive import TqdmProgress

    seed = seeds["small_ct_rle"]
    out = io.StringIO()
    with TqdmProgress("small CT", file=out) as bar:
        archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid, progress=bar)
    assert f"{len(seed.files)}/{len(seed.files)}" in out.getvalue()
    assert "KiB" in out.getvalue() or "MiB" in out.getvalue()


def test_progress_counts_bytes_and_instances(archive, seeds):
    seed = seeds["small_ct_rle"]
    seen = []
    archive.retrieve_series(
        seed.series_uid, study_uid=seed.study_uid, progress=seen.append
    )
    done = [p.instances_done for p in seen]
    received = [p.bytes_received for p in seen]
    assert done == sorted(done) and received == sorted(received)
    assert done[-1] == seen[-1].instances_total == len(seed.files)
    on_disk = sum(f.stat().st_size for f in seed.files)
    assert received[-1] >= 0.9 * on_disk


def _complete(cache) -> list[str]:
    """UIDs of cached instances, each checked to be whole (pixels decode)."""
    uids = []
    for path in sorted((cache.folder / "instances").glob("*/*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.size == ds.Rows * ds.Columns * ds.get(
            "SamplesPerPixel", 1
        )
        uids.append(str(ds.SOPInstanceUID))
    return uids


@pytest.mark.parametrize("how", ["event", "callback"])
def test_cancel_leaves_nothing_half_written_and_resumes(archive, seeds, how):
    seed = seeds["small_ct_rle"]
    event = threading.Event()

    def progress(p):
        if p.instances_done >= 4:
            event.set()
        return not (how == "callback" and p.instances_done >= 4)

    with pytest.raises(RetrievalCancelled, match="Retrieve again to resume"):
        archive.retrieve_series(
            seed.series_uid,
            study_uid=seed.study_uid,
            progress=progress,
            cancel=event if how == "event" else None,
        )
    assert incoming_files(archive.cache) == []
    kept = _complete(archive.cache)
    assert 4 <= len(kept) < len(seed.files)
    resumed = archive.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    assert resumed.instances_cached == len(kept)
    assert np.array_equal(
        archive.load_series(seed.series_uid).array, _direct(seed).array
    )


def test_a_server_that_stops_mid_retrieval(seeds, tmp_path, orthanc):
    """Killed mid-stream: a clear error, nothing half-written; a resume completes."""
    from tests.archive.orthanc import Orthanc, seed_ct_series

    seed = seed_ct_series(tmp_path / "files", "stopping_ct", 40, slices=40)
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        server.upload(seed.files)
        client = DicomWebArchive(
            server.url,
            cache=tmp_path / "cache",
            credentials=credentials(),
            retries=0,
            chunk_bytes=64 * 1024,
        )

        def pull_the_plug(p):
            if p.instances_done >= 2:
                server.kill()

        with pytest.raises(ArchiveUnavailableError) as caught:
            client.retrieve_series(
                seed.series_uid, study_uid=seed.study_uid, progress=pull_the_plug
            )
        message = str(caught.value)
        assert "closed the connection in the middle of series" in message
        assert "resumes" in message and "Traceback" not in message
        assert incoming_files(client.cache) == []
        kept = _complete(client.cache)
        assert 2 <= len(kept) < len(seed.files)
        with pytest.raises(ArchiveUnavailableError, match="could not be reached"):
            client.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
    finally:
        server.stop()
    again = Orthanc(tmp_path / "orthanc").start()  # the same storage, a new port
    try:
        client = DicomWebArchive(
            again.url, cache=tmp_path / "cache", credentials=credentials()
        )
        resumed = client.retrieve_series(seed.series_uid, study_uid=seed.study_uid)
        assert resumed.instances_cached == len(kept)
        assert resumed.instances_received == len(seed.files) - len(kept)
        image = client.load_series(seed.series_uid, study_uid=seed.study_uid)
        assert np.array_equal(image.array, _direct(seed).array)
    finally:
        again.kill()  # temporary storage: no clean stop needed


def test_unknown_series_is_not_found(archive, seeds):
    unknown = generate_uid(entropy_srcs=["no such series"])
    with pytest.raises(ArchiveNotFoundError, match="holds no series"):
        archive.load_series(unknown)
    with pytest.raises(ArchiveNotFoundError, match="no instance"):
        archive.retrieve_series(unknown, study_uid=seeds["spine_ct"].study_uid)


# -- credentials -----------------------------------------------------------------


@pytest.mark.parametrize("who", ["wrong password", "unknown user", "none"])
def test_wrong_credentials(orthanc, tmp_path, who):
    creds = {
        "wrong password": credentials(password="not-the-password"),  # noqa: S106 a wrong test password
        "unknown user": credentials(user="nobody"),
        "none": None,
    }[who]
    client = DicomWebArchive(
        orthanc.url, cache=tmp_path, credentials=creds, env_prefix="MEDIMG_TEST_UNSET"
    )
    with pytest.raises(ArchiveAuthError) as caught:
        client.search_studies()
    message = str(caught.value)
    assert "HTTP 401" in message and "MEDIMG_ARCHIVE_USER" in message
    assert "not-the-password" not in message


def test_credentials_from_a_file_named_in_the_environment(
    orthanc, tmp_path, monkeypatch, seeds
):
    secret = tmp_path / "archive-password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("MEDIMG_ARCHIVE_USER", USER)
    monkeypatch.setenv("MEDIMG_ARCHIVE_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("MEDIMG_ARCHIVE_PASSWORD", raising=False)
    monkeypatch.delenv("MEDIMG_ARCHIVE_TOKEN", raising=False)
    monkeypatch.delenv("MEDIMG_ARCHIVE_TOKEN_FILE", raising=False)
    client = DicomWebArchive(orthanc.url, cache=tmp_path / "cache")
    assert len(client.search_studies(limit=None)) == len(seeds)
    assert "PASSWORD_FILE" in repr(client) and secret.read_text().strip() not in repr(
        client
    )


def test_url_with_credentials_is_refused(orthanc, tmp_path):
    with pytest.raises(ValueError, match="must not hold a user name or password"):
        DicomWebArchive(orthanc.url.replace("://", "://u:secret@"), cache=tmp_path)


def test_refused_connection(tmp_path):
    client = DicomWebArchive(
        f"http://127.0.0.1:{free_port()}/dicom-web",
        cache=tmp_path,
        retries=1,
        backoff_s=0.01,
        env_prefix="MEDIMG_TEST_UNSET",
    )
    with pytest.raises(ArchiveUnavailableError, match="could not be reached"):
        client.search_studies()


# -- STOW-RS ---------------------------------------------------------------------


@pytest.mark.parametrize("as_file", [False, True])
def test_store_then_search_and_retrieve(archive, seeds, tmp_path, as_file):
    ds = pydicom.dcmread(seeds["mr_rle"].files[0])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["stored series", str(as_file)])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["stored sop", str(as_file)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = "stored_by_the_test"
    item = ds
    if as_file:
        item = tmp_path / "stored.dcm"
        ds.save_as(item, enforce_file_format=True)
    assert archive.store([item]) == [ds.SOPInstanceUID]
    found = archive.search_series(ds.StudyInstanceUID, description="stored_by*")
    assert ds.SeriesInstanceUID in {s.series_uid for s in found}
    image = archive.load_series(ds.SeriesInstanceUID, study_uid=ds.StudyInstanceUID)
    assert np.array_equal(image.array, medimg_lab.load(seeds["mr_rle"].files[0]).array)
