"""Cohorts by query (issue 19, item 3) against a real Orthanc and a loopback SCP.

A module Orthanc of its own (the tests store SEG/SR and delete a series,
which the session's Orthanc must not see) holds three CT series of 2020
(from CT_small: 6x96x128 at 2.5 mm, 5x128x96 RLE at 0.66 mm, one 80x112
2D slice), one CT
series of 2019 and one MR series: the query
``ModalitiesInStudy=CT&StudyDate=20200101-20201231`` must find the three.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file

from medimg_lab import batch
from medimg_lab.archive import DicomWebArchive, cohort
from medimg_lab.archive.testing import _restamp, seed_ct_series, seeded_orthanc
from medimg_lab.cli import main
from medimg_lab.io import load
from medimg_lab.recipe import Recipe
from tests.archive.conftest import credentials
from tests.archive.orthanc import PASSWORD, USER
from tests.archive.scp import LoopbackSCP

STEPS = [
    {"op": "threshold_range", "params": {"low": 100.0, "high": 3000.0}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]
QUERY = "?ModalitiesInStudy=CT&StudyDate=20200101-20201231"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort-seeds")
    found = {
        "ct_a": seed_ct_series(
            folder, "cohort_ct_a", 40, slices=6, crop=(96, 128), source="CT_small.dcm"
        ),
        "ct_b": seed_ct_series(
            folder,
            "cohort_ct_b",
            41,
            slices=5,
            z_mm=0.66,
            crop=(128, 96),
            source="CT_small.dcm",
            rle=True,
        ),
        "ct_2d": seed_ct_series(
            folder, "cohort_ct_2d", 42, slices=1, crop=(80, 112), source="CT_small.dcm"
        ),
        "ct_2019": seed_ct_series(
            folder, "cohort_ct_2019", 43, slices=3, crop=(64, 64)
        ),
    }
    for path in found["ct_2019"].files:  # outside the query's date range
        ds = pydicom.dcmread(path)
        ds.StudyDate = "20190615"
        ds.save_as(path, enforce_file_format=True)
    mr = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm", download=False))
    _restamp(mr, "cohort_mr", 44)
    mr.StudyDate = "20200615"
    (folder / "mr").mkdir()
    mr.save_as(folder / "mr" / "mr.dcm", enforce_file_format=True)
    found["mr"] = folder / "mr" / "mr.dcm"
    return found


def _files(seeds) -> list[Path]:
    return [f for k, s in seeds.items() if k != "mr" for f in s.files] + [seeds["mr"]]


@pytest.fixture(scope="module")
def server(seeds, tmp_path_factory):
    with seeded_orthanc(
        tmp_path_factory.mktemp("cohort-orthanc"), _files(seeds)
    ) as orthanc:
        yield orthanc


@pytest.fixture
def env(server, monkeypatch):
    """Credentials in the environment, as workers read them."""
    for key, value in server.environment().items():
        monkeypatch.setenv(key, value)
    return server


def _query(server) -> str:
    return server.url.replace("http://", "dicomweb://") + QUERY


def _truth(seeds, keys=("ct_a", "ct_b", "ct_2d")) -> dict:
    """recipe.apply on each series loaded directly from its files: uid -> result."""
    recipe = Recipe(STEPS)
    return {seeds[k].series_uid: recipe.apply(load(seeds[k].folder)) for k in keys}


def _records(out: Path) -> dict:
    found = {}
    for path in (out / "items").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["archive_series"]["series_uid"]] = record
    return found


def _check_equal_to_direct(out: Path, seeds) -> None:
    records = _records(out)
    for uid, expected in _truth(seeds).items():
        record = records[uid]
        assert record["status"] == "ok", record.get("reason")
        mask = load(record["outputs"]["mask"]).array
        assert mask.shape == expected.labels.shape
        assert np.array_equal(mask > 0, np.asarray(expected.labels) > 0)
        for key, value in expected.measurements.items():
            if isinstance(value, float):
                assert record["measurements"][key] == pytest.approx(
                    value, rel=1e-6, abs=1e-9, nan_ok=True
                ), key


def test_parse_query_forms_and_refusals():
    q = cohort.parse_query(
        "dicomweb://pacs:8042/dicom-web?ModalitiesInStudy=CT&StudyDate=20200101-20201231"
        "&SeriesDescription=axial*"
    )
    assert q.archive == "http://pacs:8042/dicom-web"
    assert q.study == {"ModalitiesInStudy": "CT", "StudyDate": "20200101-20201231"}
    assert q.series == {"SeriesDescription": "axial*"}
    assert cohort.parse_query("dicomwebs://pacs/dw?Modality=MR").archive == (
        "https://pacs/dw"
    )
    assert cohort.parse_query("https://pacs/dw/?Modality=MR").archive == (
        "https://pacs/dw"
    )
    d = cohort.parse_query("dimse://PACS@10.0.0.5:104?Modality=CT")
    assert d.archive == "dimse://PACS@10.0.0.5:104" and d.series == {"Modality": "CT"}
    hostile = {
        "ftp://pacs/x?Modality=CT": "cohort query is",
        "dicomweb://u:secret@pacs/dw?Modality=CT": "password",
        "dicomweb://pacs/dw?Modality=CT&Modality=MR": "Modality twice",
        "dicomweb://pacs/dw?NotAKeyword=1": "NotAKeyword",
        "dicomweb://pacs/dw?StudyDate=2020-13-45": "StudyDate",
        "dicomweb://pacs/dw?Modality=": "empty",
    }
    for text, words in hostile.items():
        with pytest.raises(ValueError, match=words):
            cohort.parse_query(text)
    with pytest.raises(ValueError, match="given alone"):
        batch.run(Recipe(STEPS), [__file__, "dicomweb://pacs/dw?Modality=CT"], "x")


def test_cohort_by_query_resumes_and_equals_direct(env, seeds, tmp_path):
    query, out, cache = _query(env), tmp_path / "out", tmp_path / "cache"
    found = cohort.cohort_items(query, cache=cache)
    expected = {seeds[k].series_uid for k in ("ct_a", "ct_b", "ct_2d")}
    assert {item.series for item in found} == expected

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        batch.run(
            Recipe(STEPS),
            query,
            out,
            client="serial",
            progress=stop_after_two,
            cache=cache,
        )
    first = _records(out)
    assert len(first) == 2
    stamps = {p: p.stat().st_mtime_ns for p in (out / "items").glob("*.json")}
    result = batch.run(
        Recipe(STEPS), query, out, client="serial", progress=False, cache=cache
    )
    table = result.table
    assert len(table) == 3 and (table["status"] == "ok").all()
    assert int(table["resumed"].sum()) == 2  # the two done before, not again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    _check_equal_to_direct(out, seeds)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["query"]["query"] == query
    assert provenance["query"]["study_filters"]["StudyDate"] == "20200101-20201231"
    by_series = {e["archive_series"]["series_uid"]: e for e in provenance["inputs"]}
    for key in ("ct_a", "ct_b", "ct_2d"):
        entry = by_series[seeds[key].series_uid]
        truth = {
            pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f
            for f in seeds[key].files
        }
        assert {i["sop_instance_uid"] for i in entry["instances"]} == set(truth)
        cached = cohort.archive_for(env.url, str(cache)).cache
        for instance in entry["instances"]:
            assert instance["sha256"] == cached.digest(instance["sop_instance_uid"])
    again = batch.run(
        Recipe(STEPS), query, out, client="serial", progress=False, cache=cache
    )
    assert bool(again.table["resumed"].all())


def test_store_then_query_finds_seg_and_sr(env, seeds, tmp_path):
    query, out, cache = _query(env), tmp_path / "out", tmp_path / "cache"
    code = main(["run", _recipe(tmp_path), query, "--out", str(out), "--store",
                 "--cache", str(cache), "--serial", "-q"])  # fmt: skip
    assert code == 0
    with DicomWebArchive(
        env.url, cache=tmp_path / "check", credentials=credentials()
    ) as archive:
        for key in ("ct_a", "ct_b", "ct_2d"):
            seed = seeds[key]
            modalities = sorted(
                s.modality for s in archive.search_series(seed.study_uid)
            )
            assert modalities == ["CT", "SEG", "SR"]
            seg = next(s for s in archive.search_series(seed.study_uid, modality="SEG"))
            labels = load(archive.retrieve_series(seg.series_uid).paths[0])
            record = _records(out)[seed.series_uid]
            mask = load(record["outputs"]["mask"]).array
            assert np.array_equal(np.asarray(labels.array) > 0, mask > 0)
            assert set(record["stored"]) >= {
                str(pydicom.dcmread(record["outputs"]["seg"]).SOPInstanceUID)
            }
    # The stored SEG and SR are not members of the cohort: a re-run resumes.
    again = batch.run(
        Recipe(STEPS), query, out, client="serial", progress=False, store=True,
        cache=cache,
    )  # fmt: skip
    assert len(again.table) == 3 and bool(again.table["resumed"].all())


def _recipe(tmp_path) -> str:
    return str(Recipe(STEPS).save(tmp_path / "recipe.json"))


def _orthanc_id(server, series_uid: str) -> str:
    r = requests.post(
        f"{server.rest}/tools/lookup",
        data=series_uid,
        auth=(USER, PASSWORD),
        timeout=30,
    )
    r.raise_for_status()
    return next(x["ID"] for x in r.json() if x["Type"] == "Series")


def test_failed_series_is_recorded_the_rest_complete_and_rerun_retries(
    env, seeds, tmp_path
):
    query, out, cache = _query(env), tmp_path / "out", tmp_path / "cache"
    items = cohort.cohort_items(query, cache=cache)
    last = items[-1]  # serial runs them in this order
    gone = next(
        s for s in seeds.values() if getattr(s, "series_uid", "") == last.series
    )

    def delete_last(done, total):
        if done == 1:  # deleted on the archive after the query found it
            r = requests.delete(
                f"{env.rest}/series/{_orthanc_id(env, last.series)}",
                auth=(USER, PASSWORD),
                timeout=30,
            )
            r.raise_for_status()

    try:
        result = batch.run(
            Recipe(STEPS),
            query,
            out,
            client="serial",
            progress=delete_last,
            cache=cache,
        )
        failed = result.failed
        assert list(failed["id"]) == [last.id]
        assert "holds no instance" in failed["reason"].iloc[0]
        assert "Traceback" not in failed["reason"].iloc[0]
        assert int((result.table["status"] == "ok").sum()) == 2
        assert (
            json.loads((out / "provenance.json").read_text())["counts"]["failed"] == 1
        )
    finally:
        env.upload(gone.files)  # back on the archive
    again = batch.run(
        Recipe(STEPS), query, out, client="serial", progress=False, cache=cache
    )
    assert (again.table["status"] == "ok").all()
    resumed = dict(zip(again.table["id"], again.table["resumed"], strict=True))
    assert resumed[last.id] is False or not resumed[last.id]
    assert sum(resumed.values()) == 2
    _check_equal_to_direct(out, seeds)


def test_workers_retrieve_their_own_series(env, seeds, tmp_path, monkeypatch):
    """Spawned local workers retrieve; this process only searches."""
    query, out, cache = _query(env), tmp_path / "out", tmp_path / "cache"

    def not_here(self):
        raise AssertionError("the client process retrieved a series")

    monkeypatch.setattr(cohort.ArchiveSeries, "fetch", not_here)
    result = batch.run(
        Recipe(STEPS), query, out, client="processes", workers=2, progress=False,
        cache=cache,
    )  # fmt: skip
    assert (result.table["status"] == "ok").all(), result.failed["reason"].tolist()
    assert len(result.table) == 3
    held = sum(1 for _ in (cache / "instances").rglob("*.dcm"))
    assert held == sum(len(seeds[k].files) for k in ("ct_a", "ct_b", "ct_2d"))
    _check_equal_to_direct(out, seeds)


def test_dimse_cohort_with_c_store(seeds, tmp_path):
    store = tmp_path / "scp-store"
    store.mkdir()
    scp = LoopbackSCP(_files(seeds), store_dir=store).start()
    try:
        query = f"dimse://{scp.ae_title}@127.0.0.1:{scp.port}{QUERY}"
        out = tmp_path / "out"
        result = batch.run(
            Recipe(STEPS), query, out, client="serial", progress=False, store=True,
            cache=tmp_path / "cache",
        )  # fmt: skip
        assert (result.table["status"] == "ok").all(), result.failed["reason"].tolist()
        assert len(result.table) == 3
        _check_equal_to_direct(out, seeds)
        kinds = sorted(
            str(pydicom.dcmread(p, stop_before_pixels=True).Modality)
            for p in store.glob("*.dcm")
        )
        assert kinds == ["SEG"] * 3 + ["SR"] * 3
    finally:
        scp.stop()
    assert os.path.isdir(out / "dicom")


def test_store_options_need_a_query(tmp_path):
    for options in ({"store": True}, {"cache": tmp_path / "cache"}):
        with pytest.raises(ValueError, match="cohort query"):
            batch.run(Recipe(STEPS), __file__, tmp_path / "out", **options)


def test_c_store_of_a_class_the_peer_refuses_is_a_sentence(tmp_path):
    """An SCP that takes SEG only: storing an SR beside a SEG names the SR's class."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE
    from pynetdicom import sop_class as sc

    from medimg_lab.archive import ArchiveResponseError, DimseArchive

    ae = AE(ae_title="SEG-ONLY")
    ae.add_supported_context(sc.SegmentationStorage)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    try:
        made = []
        for sop_class, modality in (
            (sc.Comprehensive3DSRStorage, "SR"),
            (sc.SegmentationStorage, "SEG"),
        ):
            ds = pydicom.Dataset()
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = generate_uid()
            ds.Modality = modality
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            made.append(ds)
        archive = DimseArchive(
            "127.0.0.1",
            server.server_address[1],
            called_ae="SEG-ONLY",
            cache=tmp_path / "cache",
            timeout_s=10,
        )
        with pytest.raises(ArchiveResponseError, match="accepted no storage of") as err:
            archive.store(made)
        assert "Comprehensive 3D SR" in str(err.value)
    finally:
        server.shutdown()
