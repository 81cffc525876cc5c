"""Batch runs on a local Dask cluster: results, faults, resume, worker loss."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

import medimg_lab
from medimg_lab import batch
from medimg_lab.cli import main
from medimg_lab.io import SliceGapWarning, load
from medimg_lab.recipe import Recipe
from tests.helpers import dicom_file, disc_png

STEPS = [
    {"op": "gaussian", "params": {"sigma_mm": 1.0}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


@pytest.fixture
def cohort(tmp_path):
    """A mixed folder: PNG discs, a CT DICOM, a corrupt file and a text file."""
    folder = tmp_path / "cohort"
    (folder / "discs").mkdir(parents=True)
    for k in range(6):
        disc_png(folder / "discs" / f"disc{k}.png", 8 + 2 * k, k)
    shutil.copy(dicom_file("CT_small.dcm"), folder / "ct.dcm")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            processes=True,
        ) as local,
        Client(local) as client,
    ):
        yield client


def test_discover_groups_series_and_keeps_everything_else(cohort, tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    for k in range(3):
        shutil.copy(dicom_file("CT_small.dcm"), series / f"s{k}.dcm")
    items = batch.discover([cohort, series])
    ids = [item.id for item in items]
    assert len(ids) == len(set(ids)) == 10
    assert "discs__disc0" in ids and "broken" in ids and "notes.txt" in ids
    (grouped,) = [item for item in items if item.series]
    assert len(grouped.files) == 3
    with pytest.raises(Exception, match="matches no file"):
        batch.discover([str(tmp_path / "*.nope")])


def test_a_mixed_folder_on_a_local_cluster(cohort, tmp_path, cluster):
    recipe = Recipe(STEPS)
    out = tmp_path / "out"
    result = batch.run(recipe, cohort, out, client=cluster, progress=False)
    table = result.table.set_index("id")
    assert len(table) == 9
    failed = table[table["status"] == "failed"]
    assert set(failed.index) == {"broken", "notes.txt"}
    assert all(failed["reason"].str.len() > 10)
    for ident in ("discs__disc0", "discs__disc5", "ct"):
        row = table.loc[ident]
        assert row["status"] == "ok"
        expected = recipe.apply(load(row["input"]))
        saved = load(row["mask"]).array
        np.testing.assert_array_equal(saved, expected.labels.astype(saved.dtype))
        assert row["area_mm2"] == pytest.approx(expected.measurements["area_mm2"])
    assert (out / "results.csv").exists() and (out / "results.parquet").exists()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["recipe"] == recipe.to_dict()
    assert provenance["counts"] == {"studies": 9, "ok": 7, "failed": 2, "resumed": 0}
    assert len(provenance["inputs"][0]["sha256"]) == 64
    assert provenance["versions"]["dask"]


def test_a_rerun_skips_finished_work_and_force_redoes_it(cohort, tmp_path):
    recipe = Recipe(STEPS)
    out = tmp_path / "out"
    batch.run(recipe, cohort, out, client="serial", progress=False)
    again = batch.run(recipe, cohort, out, client="serial", progress=False)
    ok = again.table[again.table["status"] == "ok"]
    assert ok["resumed"].all() and len(ok) == 7
    disc_png(cohort / "discs" / "disc0.png", 20, 99)  # one input changes
    third = batch.run(recipe, cohort, out, client="serial", progress=False)
    changed = third.table.set_index("id").loc["discs__disc0"]
    assert not changed["resumed"]
    assert third.table["resumed"].sum() == 6
    forced = batch.run(recipe, cohort, out, client="serial", force=True, progress=False)
    assert not forced.table["resumed"].any()


def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    from dask.distributed import Client, LocalCluster

    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(160):
        disc_png(folder / f"d{k:03d}.png", 6 + k % 20, k)
    out = tmp_path / "out"
    recipe = Recipe(STEPS)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as local,
        Client(local) as client,
    ):
        victim = next(iter(client.scheduler_info()["workers"]))
        outcome = {}

        def go():
            outcome["result"] = batch.run(
                recipe, folder, out, client=client, progress=False
            )

        runner = threading.Thread(target=go)
        runner.start()
        deadline = time.monotonic() + 60
        while not (out / "items").exists() or not any((out / "items").iterdir()):
            assert time.monotonic() < deadline, "no study finished in 60 s"
            time.sleep(0.05)
        assert runner.is_alive()  # the run is still going: the kill is mid-run
        client.run(os._exit, 1, workers=[victim], on_error="ignore")
        runner.join(timeout=120)
        assert not runner.is_alive()
        assert victim not in client.scheduler_info()["workers"]
    table = outcome["result"].table
    assert len(table) == 160 and (table["status"] == "ok").all()
    assert all(os.path.exists(path) for path in table["mask"])


def test_cli_run_and_its_exit_codes(cohort, tmp_path, capsys):
    recipe_file = Recipe(STEPS).save(tmp_path / "recipe.json")
    out = tmp_path / "out"
    code = main(
        ["run", str(recipe_file), str(cohort), "--out", str(out), "--serial", "-q"]
    )
    assert code == 3  # finished, two studies failed
    err = capsys.readouterr().err
    assert "broken.png" in err and "notes.txt" in err
    code = main(
        [
            "run",
            str(recipe_file),
            str(cohort / "discs"),
            "--out",
            str(out),
            "--serial",
            "-q",
        ]
    )
    assert code == 0
    assert (
        main(["run", str(tmp_path / "missing.json"), str(cohort), "--out", str(out)])
        == 1
    )
    assert main(["recipes", "validate", str(recipe_file)]) == 0
    assert "valid: 4 steps" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"schema_version": 1, "steps": [{"op": "sharpen", "params": {}}]})
    )
    assert main(["recipes", "validate", str(bad)]) == 1
    assert "sharpen" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["run", str(recipe_file)])
    assert usage.value.code == 2


def test_threads_in_one_process_give_the_same_table(cohort, tmp_path):
    recipe = Recipe(STEPS)
    threads = batch.run(
        recipe, cohort, tmp_path / "t", client="threads", workers=2, progress=False
    )
    serial = batch.run(recipe, cohort, tmp_path / "s", client="serial", progress=False)
    columns = ["id", "status", "area_mm2"]
    assert threads.table[columns].equals(serial.table[columns])
    assert threads.dashboard.startswith("http://127.0.0.1:")


def test_an_unexpected_error_in_one_study_is_recorded_and_the_run_goes_on(
    cohort, tmp_path, monkeypatch
):
    """A library error that is not a bad-input error (cv2.error, IndexError...)."""
    recipe = Recipe(STEPS)
    real_apply = Recipe.apply

    def flaky(self, image):
        if image.array.shape == (128, 128):  # the CT slice
            raise IndexError("index 128 is out of bounds")
        return real_apply(self, image)

    monkeypatch.setattr(Recipe, "apply", flaky)
    result = batch.run(
        recipe, cohort, tmp_path / "out", client="serial", progress=False
    )
    row = result.table.set_index("id").loc["ct"]
    assert row["status"] == "failed" and row["reason"].startswith("IndexError")
    assert (result.table["status"] == "ok").sum() == 6


def test_an_output_folder_inside_the_inputs_is_not_read_back(cohort):
    recipe = Recipe(STEPS)
    first = batch.run(
        recipe, cohort, cohort / "results", client="serial", progress=False
    )
    again = batch.run(
        recipe, cohort, cohort / "results", client="serial", progress=False
    )
    assert len(first.table) == len(again.table) == 9


# ------------------------------------------- issue 15: bad slices, checksums
def _sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _write_ct_series(folder, n=6, step=2.5):
    """``n`` slices of the spine CT, shifted a pixel each, ``step`` mm apart."""
    folder.mkdir(parents=True)
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    raw = template.pixel_array
    paths = []
    for k in range(n):
        ds = template.copy()
        ds.PixelData = np.roll(raw, k, axis=1).astype("<i2").tobytes()
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, step * k]
        ds.InstanceNumber = k + 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        paths.append(folder / f"IM{k}.dcm")
        ds.save_as(paths[-1])
    return paths


def test_a_series_with_a_bad_slice_is_analysed_and_its_row_says_so(tmp_path):
    paths = _write_ct_series(tmp_path / "cohort" / "series")
    raw = paths[2].read_bytes()
    paths[2].write_bytes(raw[: len(raw) - 5000])  # a middle slice, cut short
    shutil.copyfile(paths[4], paths[4].with_name("IM4_copy.dcm"))  # a duplicate
    with pytest.warns(SliceGapWarning, match="1 slice missing"):
        result = batch.run(
            Recipe(STEPS),
            tmp_path / "cohort",
            tmp_path / "out",
            client="serial",
            progress=False,
        )
    (row,) = result.table.to_dict("records")
    assert row["status"] == "ok", row["reason"]
    assert "IM2.dcm: " in row["skipped"] and "cut short" in row["skipped"]
    assert "IM4_copy.dcm: " in row["skipped"] and "duplicate" in row["skipped"]
    assert "1 slice missing" in row["warnings"] and "5.0 mm" in row["warnings"]
    mask = load(row["mask"])
    assert mask.array.shape == (5, 128, 128)
    assert mask.spacing[0] == pytest.approx(2.5)
    record = json.loads((tmp_path / "out" / "items" / f"{row['id']}.json").read_text())
    assert [s["file"] for s in record["skipped"]] == ["IM2.dcm", "IM4_copy.dcm"]
    saved = pd.read_csv(tmp_path / "out" / "results.csv")
    assert "cut short" in saved.loc[0, "skipped"]


def test_a_clean_study_has_empty_skipped_and_warnings_columns(cohort, tmp_path):
    result = batch.run(
        Recipe(STEPS), cohort, tmp_path / "out", client="serial", progress=False
    )
    ok = result.table[result.table["status"] == "ok"]
    assert (ok["skipped"] == "").all() and (ok["warnings"] == "").all()


def test_provenance_sha256_is_what_sha256sum_prints(cohort, tmp_path):
    _write_ct_series(cohort / "series", n=3)
    out = tmp_path / "out"
    result = batch.run(Recipe(STEPS), cohort, out, client="serial", progress=False)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance == json.loads(json.dumps(result.provenance, default=str))
    checked = 0
    for entry in provenance["inputs"]:
        files = entry.get("files") or [entry]
        for f in files:
            assert f["sha256"] == _sha256(f["path"]), f["path"]
            checked += 1
        if "files" in entry and len(entry["files"]) > 1:
            # The series digest: sha256 of `sha256sum` lines sorted by name.
            lines = "".join(
                f"{f['sha256']}  {os.path.basename(f['path'])}\n"
                for f in sorted(entry["files"], key=lambda f: f["path"])
            )
            assert entry["series_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
            assert "sha256" not in entry  # a series is no file: no file digest
    assert checked == 9 + 3
    (series,) = [e for e in provenance["inputs"] if "series_sha256" in e]
    assert len(series["files"]) == 3


def test_sha256sum_agrees_with_the_provenance(tmp_path):
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        pytest.fail("coreutils' sha256sum is not installed")

    paths = _write_ct_series(tmp_path / "in" / "series", n=3)
    disc_png(tmp_path / "in" / "disc.png", 10, 0)
    out = tmp_path / "out"
    result = batch.run(
        Recipe(STEPS), tmp_path / "in", out, client="serial", progress=False
    )
    by_id = {e["id"]: e for e in result.provenance["inputs"]}
    printed = subprocess.run(  # noqa: S603 a fixed tool on our own files
        [sha256sum, str(tmp_path / "in" / "disc.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert by_id["disc"]["sha256"] == printed
    listing = subprocess.run(  # noqa: S603 a fixed tool on our own files
        [sha256sum, *(p.name for p in sorted(paths))],
        cwd=paths[0].parent,
        capture_output=True,
        check=True,
    ).stdout
    (series,) = [e for e in by_id.values() if "series_sha256" in e]
    assert series["series_sha256"] == hashlib.sha256(listing).hexdigest()


def test_records_of_the_old_digest_still_resume(cohort, tmp_path):
    """Records written before the real SHA-256 (a digest of names and bytes)."""
    _write_ct_series(cohort / "series", n=3)
    recipe, out = Recipe(STEPS), tmp_path / "out"
    first = batch.run(recipe, cohort, out, client="serial", progress=False)
    items = {item.id: item for item in batch.discover(cohort)}
    for path in (out / "items").glob("*.json"):
        record = json.loads(path.read_text())
        files = items[record["id"]].files
        old = hashlib.sha256()
        for name in sorted(files):
            old.update(os.path.basename(name).encode())
            with open(name, "rb") as fh:
                old.update(fh.read())
        for key in ("files", "series_sha256"):
            record.pop(key, None)
        record["sha256"] = old.hexdigest()
        path.write_text(json.dumps(record))
    disc_png(cohort / "discs" / "disc1.png", 21, 77)  # this one changed since
    again = batch.run(recipe, cohort, out, client="serial", progress=False)
    resumed = again.table.set_index("id")["resumed"]
    ok = first.table.set_index("id")["status"] == "ok"
    assert not resumed["discs__disc1"]
    assert resumed[ok.index[ok]].drop("discs__disc1").all()
    for entry in again.provenance["inputs"]:  # upgraded to real digests
        for f in entry.get("files") or [entry]:
            assert f["sha256"] == _sha256(f["path"])


# ------------------------------------- issue 20: runner choice, the run's client
def _discs(folder, n):
    folder.mkdir(parents=True)
    for k in range(n):
        disc_png(folder / f"d{k:02d}.png", 6 + k % 12, k, size=40 + 4 * (k % 5))
    return folder


def test_a_small_cohort_runs_in_this_process_and_says_so(tmp_path, monkeypatch, capsys):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a local cluster was started for 12 small studies")

    monkeypatch.setattr(batch, "local_cluster", no_cluster)
    folder = _discs(tmp_path / "in", 12)
    result = batch.run(Recipe(STEPS), folder, tmp_path / "out", workers=2)
    assert (result.table["status"] == "ok").all() and len(result.table) == 12
    line = "12 studies: ran in this process (serial), cheaper than starting workers"
    assert result.runner == line
    assert line in capsys.readouterr().err
    assert result.provenance["runner"] == line and result.dashboard is None


@pytest.fixture
def started(monkeypatch) -> list[tuple]:
    """The (workers, threads) of each local cluster a run starts; the clusters
    run threads, cheap to start in a test."""
    calls = []
    real = batch.local_cluster

    def spy(workers=None, *, threads=False):
        calls.append((workers, threads))
        return real(workers, threads=True)

    monkeypatch.setattr(batch, "local_cluster", spy)
    return calls


def test_told_otherwise_a_small_cohort_runs_where_asked(tmp_path, started):
    folder = _discs(tmp_path / "in", 4)
    result = batch.run(
        Recipe(STEPS),
        folder,
        tmp_path / "out",
        client="processes",
        workers=2,
        progress=False,
    )
    assert started == [(2, False)]
    assert result.runner == "4 studies: ran on a local cluster of 2 processes"
    assert result.dashboard.startswith("http://127.0.0.1:")


def test_cli_processes_forces_worker_processes(tmp_path, started):
    folder = _discs(tmp_path / "in", 4)
    recipe_file = Recipe(STEPS).save(tmp_path / "recipe.json")
    argv = ["run", str(recipe_file), str(folder), "--out", str(tmp_path / "out")]
    assert main([*argv, "--processes", "--workers", "2", "-q"]) == 0
    assert started == [(2, False)]
    with pytest.raises(SystemExit) as usage:  # one runner at a time
        main([*argv, "--processes", "--serial"])
    assert usage.value.code == 2


@pytest.mark.parametrize(
    ("n_left", "seconds_each", "workers", "start", "expected"),
    [
        (11, 0.003, 2, 0.1, "serial"),  # 33 ms of work: nothing to gain
        (1000, 0.003, 1, 0.1, "serial"),  # one core: no one to share with
        (20, 0.013, 2, 0.1, "processes"),  # 0.26 s: forked workers pay back
        (300, 0.015, 2, 2.5, "threads"),  # 4.5 s: spawned workers' start eats it
        (300, 0.015, 2, 0.1, "processes"),  # forked, the same cohort gains
        (600, 0.015, 2, 2.5, "processes"),  # 9 s: spawned workers pay back too
        (100, 0.005, 2, 2.5, "serial"),  # 0.5 s: too little for a thread pool
        (20, 2.0, 4, 2.5, "processes"),  # few, but long studies
    ],
)
def test_the_runner_is_the_cheapest_for_the_work(
    n_left, seconds_each, workers, start, expected, monkeypatch
):
    monkeypatch.setattr(batch, "_PROCESS_START_S", start)
    assert batch._choose_runner(n_left, seconds_each, workers) == expected


def test_the_probe_times_warm_studies_behind_a_slow_first_one(tmp_path, monkeypatch):
    # Seen in bench_batch_cluster: with the probe stopping after 0.1 s (the
    # workers' start), only the first study was timed, with its first-use
    # costs, and the run said "about 219 ms a study" of 10 ms studies.
    real = batch._process
    calls = []

    def first_slow(item, recipe, out, options):
        calls.append(item.id)
        if len(calls) == 1:
            time.sleep(0.25)  # decoders, tables: first use only
        return real(item, recipe, out, options)

    monkeypatch.setattr(batch, "_process", first_slow)
    items = batch.discover(_discs(tmp_path / "in", 6))
    out = tmp_path / "out"
    out.mkdir()
    options = {
        "force": True,
        "save_images": False,
        "format": "png",
        "recipe_sha256": "x",
        "store": False,
        "dicom_results": False,
    }
    records, each = batch._probe(items, Recipe(STEPS), out, options, lambda n: None)
    assert len(records) == batch._PROBE_STUDIES == 3
    assert each < 0.1  # the warm studies', not the first one's 0.25 s


def test_threads_decode_jpeg_2000_on_one_core_each(tmp_path, monkeypatch):
    from medimg_lab.io import _codecs

    seen = []
    real = batch._process

    def spy(item, recipe, out, options):
        seen.append(_codecs.decode_threads())
        return real(item, recipe, out, options)

    monkeypatch.setattr(batch, "_process", spy)
    monkeypatch.setattr(batch, "_choose_runner", lambda *args: "threads")
    before = _codecs.set_decode_threads(3)
    try:
        folder = _discs(tmp_path / "in", 6)
        result = batch.run(
            Recipe(STEPS), folder, tmp_path / "out", workers=2, progress=False
        )
        assert "on 2 threads" in result.runner
        # The probe's studies run before the pool, with the setting of this
        # process; the pool's threads decode on one core each.
        assert seen[-3:] == [1, 1, 1]
        assert _codecs.decode_threads() == 3  # and the setting is given back
    finally:
        _codecs.set_decode_threads(before)


def test_forked_workers_are_counted_as_cheap_to_start():
    # Issue 20: the start cost was still a Dask cluster's 2.5 s after the
    # runner had become forked processes, up in milliseconds; cohorts of
    # 20-450 studies of 10 ms ran on threads or serially, up to 1.8x slower.
    assert batch._FORK_WORKERS == sys.platform.startswith("linux")
    assert batch._PROCESS_START_S == (0.1 if batch._FORK_WORKERS else 2.5)
    if batch._FORK_WORKERS:
        assert batch._choose_runner(40, 0.013, 2) == "processes"


def test_the_choice_follows_the_measured_cost(tmp_path, monkeypatch):
    """Studies that take long in this process send the rest to worker processes."""
    started = []

    def spy(workers):
        started.append(workers)
        return ThreadPoolExecutor(workers)  # cheap in a test, where processes were

    monkeypatch.setattr(batch, "_worker_pool", spy)
    # A machine where workers start in 0.3 s, and studies that take 0.2 s
    # here: 6 left after the 2 timed ones, 1.2 s alone against 0.3 + 0.67 s.
    monkeypatch.setattr(batch, "_PROCESS_START_S", 0.3)
    real = batch._process

    def slow_here(item, recipe, out, options):
        if threading.current_thread() is threading.main_thread():
            time.sleep(0.2)
        return real(item, recipe, out, options)

    monkeypatch.setattr(batch, "_process", slow_here)
    folder = _discs(tmp_path / "in", 8)
    result = batch.run(
        Recipe(STEPS), folder, tmp_path / "out", workers=2, progress=False
    )
    # On 2 cores: this process and one worker process share the cohort.
    assert started == [1]
    assert result.runner.startswith(
        "8 studies: ran in this process and 1 local worker process"
    )
    assert "of them in this process" in result.runner
    assert (result.table["status"] == "ok").all() and len(result.table) == 8
    serial = batch.run(
        Recipe(STEPS), folder, tmp_path / "serial", client="serial", progress=False
    )
    columns = ["id", "status", "area_mm2"]
    assert result.table[columns].equals(serial.table[columns])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": "proceses"}, "client must be one of"),
        ({"workers": 0}, "workers must be a whole number of at least 1; got 0"),
    ],
)
def test_a_wrong_runner_is_refused_before_anything_runs(tmp_path, kwargs, message):
    folder = _discs(tmp_path / "in", 2)
    with pytest.raises(ValueError, match=message):
        batch.run(Recipe(STEPS), folder, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_results_come_from_the_runs_own_client_not_the_default(tmp_path):
    """A second client, the default one, whose event loop is busy meanwhile."""
    from dask.distributed import Client, LocalCluster, default_client

    folder = _discs(tmp_path / "in", 6)
    options = {"processes": False, "n_workers": 1, "dashboard_address": "127.0.0.1:0"}
    release = threading.Event()
    with (
        LocalCluster(threads_per_worker=2, **options) as mine,
        Client(mine, set_as_default=False) as client,
        LocalCluster(threads_per_worker=1, **options) as theirs,
        Client(theirs) as other,
    ):
        assert default_client() is other and other.loop is not client.loop
        other.loop.add_callback(release.wait, 120)  # their loop is blocked
        outcome = {}

        def go():
            outcome["result"] = batch.run(
                Recipe(STEPS), folder, tmp_path / "out", client=client, progress=False
            )

        runner = threading.Thread(target=go, daemon=True)
        try:
            runner.start()
            runner.join(timeout=90)
            finished = not runner.is_alive()
        finally:
            release.set()
            runner.join(timeout=120)
    assert finished, "batch.run waited on the default client's event loop"
    assert (outcome["result"].table["status"] == "ok").all()


def test_workers_that_fail_to_start_stop_the_run_with_their_reason(
    tmp_path, monkeypatch
):
    def broken(workers):
        raise OSError("Resource temporarily unavailable (fork)")

    monkeypatch.setattr(batch, "_worker_pool", broken)
    monkeypatch.setattr(batch, "_PROCESS_START_S", 0.0)  # processes always pay
    monkeypatch.setattr(batch, "_THREADS_FROM_S", 0.0)
    folder = _discs(tmp_path / "in", 40)
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        batch.run(Recipe(STEPS), folder, tmp_path / "out", workers=2, progress=False)


def test_this_process_and_a_forked_worker_share_the_cohort(tmp_path, monkeypatch):
    """The real path of client=None choosing processes, with its own worker."""
    monkeypatch.setattr(batch, "_PROCESS_START_S", 0.0)  # processes always pay
    monkeypatch.setattr(batch, "_THREADS_FROM_S", 0.0)
    folder = _discs(tmp_path / "in", 40)
    result = batch.run(
        Recipe(STEPS), folder, tmp_path / "out", workers=2, progress=False
    )
    assert result.runner.startswith(
        "40 studies: ran in this process and 1 local worker process"
    )
    assert result.dashboard is None  # no scheduler: a pool of forked workers
    here = int(result.runner.rsplit("; ", 1)[1].split()[0])
    assert 3 <= here < 40  # the 3 timed ones, and never the worker's tasks
    serial = batch.run(
        Recipe(STEPS), folder, tmp_path / "serial", client="serial", progress=False
    )
    columns = ["id", "status", "area_mm2", "mean_value"]
    columns = [c for c in columns if c in serial.table.columns]
    assert result.table[columns].equals(serial.table[columns])
    for row in result.table.itertuples():
        np.testing.assert_array_equal(
            load(row.mask).array,
            load(serial.table.set_index("id").loc[row.id, "mask"]).array,
        )


def test_dicom_results_beside_the_masks(tmp_path):
    """``--dicom``: each DICOM study's SEG and SR beside its NIfTI mask; the
    SEG loads back as the mask, on the study's grid. A PNG study keeps its
    results, with the reason it has no SEG among its warnings."""
    from tests.io.results_cases import NON_SQUARE, ct_series

    ct_series(tmp_path / "in" / "ct", NON_SQUARE, seed=3)
    _discs(tmp_path / "in" / "png", 1)
    recipe = Recipe(
        [
            {"op": "threshold_range", "params": {"low": -200.0, "high": 3000.0}},
            {"op": "measure", "params": {}},
        ]
    )
    recipe_file = recipe.save(tmp_path / "recipe.json")
    out = tmp_path / "out"
    argv = ["run", str(recipe_file), str(tmp_path / "in"), "--out", str(out)]
    assert main([*argv, "--dicom", "--serial", "-q"]) == 0
    records = {
        Path(p).stem: json.loads(Path(p).read_text())
        for p in (out / "items").glob("*.json")
    }
    (ct,) = [r for r in records.values() if r.get("modality") == "CT"]
    (png,) = [r for r in records.values() if r.get("modality") != "CT"]
    assert set(ct["outputs"]) == {"mask", "seg", "sr"}
    mask = medimg_lab.load(ct["outputs"]["mask"])
    seg = medimg_lab.load(ct["outputs"]["seg"])
    np.testing.assert_array_equal(seg.array > 0, mask.array > 0)
    np.testing.assert_allclose(seg.spacing, mask.spacing, rtol=1e-6)
    assert png["status"] == "ok" and "seg" not in png["outputs"]
    assert any(w.startswith("no SEG or SR: ") for w in png["warnings"])


@pytest.mark.parametrize(("n", "workers"), [(600, 2), (7, 2), (1, 4), (5000, 16)])
def test_tasks_shrink_as_the_cohort_runs_out(n, workers):
    # Every study once; the largest first; the last tasks a study each, so
    # that no worker is left with a long task while the others are done.
    sizes = batch._task_sizes(n, workers)
    assert sum(sizes) == n
    assert sizes == sorted(sizes, reverse=True)
    assert max(sizes) <= 100
    assert sizes[-1] == 1
    assert max(sizes) <= max(1, n // (4 * workers))


def _dies_in_a_worker(items, recipe_data, out, options):
    """A task whose worker process dies at once, as on a decoder's crash."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        os._exit(70)
    return real_run_task(items, recipe_data, out, options)


real_run_task = batch._run_task


def test_a_worker_process_that_dies_loses_no_study(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "_PROCESS_START_S", 0.0)  # processes always pay
    monkeypatch.setattr(batch, "_THREADS_FROM_S", 0.0)
    monkeypatch.setattr(batch, "_run_task", _dies_in_a_worker)  # forked: inherited
    folder = _discs(tmp_path / "in", 30)
    result = batch.run(
        Recipe(STEPS), folder, tmp_path / "out", workers=2, progress=False
    )
    assert len(result.table) == 30 and (result.table["status"] == "ok").all()
    assert result.runner.endswith("30 of them in this process")


def test_workers_fork_cleanly_after_opencv_ran_on_threads():
    # OpenCV's own thread pool, alive in this process (CLAHE on 2 threads),
    # must not be inherited half-way: the forked worker answers.
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)
    cv2.createCLAHE().apply(np.zeros((512, 512), np.uint8))
    pool = batch._worker_pool(1)
    try:
        assert pool.submit(os.getpid).result(timeout=30) != os.getpid()
    finally:
        for process in list(pool._processes.values()):  # a hung one, too
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        cv2.setNumThreads(threads)
