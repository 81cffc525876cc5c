"""Retrieval of a 200-slice CT series from a real Orthanc, against reading it from disk.

A 200-slice 512² CT series (made from the head CT sample, 2.5 mm apart,
100 MiB) is stored in Debian's Orthanc with its DICOMweb plugin, started on
a free loopback port as the tests start it (tests/archive/orthanc.py).
Measured in the same run, median of ``REPEATS``:

- ``disk``: :func:`medimg_lab.load` on the folder of the 200 files (the
  baseline);
- ``wado cold``: :meth:`DicomWebArchive.load_series` into an empty cache
  (one QIDO-RS listing, one WADO-RS multipart stream, 200 atomic writes,
  then the same assembly as ``disk``);
- ``retrieval``: :meth:`DicomWebArchive.retrieve_series` alone, into a
  cache that flushes each instance to the disk (``durable=True``, the
  default) and into one that does not (``durable=False``);
- ``resume``: ``retrieve_series`` with half the instances cached (a
  resumed retrieval: one WADO-RS request per missing instance);
- ``wado warm``: ``load_series`` with every instance cached, from a new
  client and cache object, as a new process would (no request).

Prints each median with its ratio to ``disk``.

Then the cohort-by-query figure: ``COHORT`` CT series of ``COHORT_SLICES``
512² slices in Orthanc (and the same files in one folder per series), one
recipe (threshold, largest component, measure) run by :func:`batch.run`
over the query ``dicomweb://...?ModalitiesInStudy=CT`` into an empty cache
(so every series is retrieved by the process that runs it), against the
same cohort from the folder, each with 1 worker (``client="serial"``) and
2 (a local cluster of 2 worker processes, :func:`batch.local_cluster`,
started once before the rounds: its start, timed apart, is not
throughput); medians of ``COHORT_REPEATS`` alternating rounds,
with series per second and the ratio query/folder at the same workers.
``python benchmarks/bench_archive.py --cohort`` runs this figure alone.
Run: ``make bench``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# benchmarks run as scripts; the Orthanc helper lives with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import medimg_lab
from medimg_lab.archive import Credentials, DicomWebArchive, InstanceCache
from tests.archive.orthanc import (
    PASSWORD,
    USER,
    Orthanc,
    available,
    seed_ct_series,
)

SLICES = 200
REPEATS = 5
COHORT = 24
COHORT_SLICES = 8
COHORT_REPEATS = 3
COHORT_STEPS = [
    {"op": "threshold_range", "params": {"low": 300.0, "high": 3000.0}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


def cohort_figure(work: Path) -> bool:
    """Cohort-by-query throughput against the same cohort from a folder."""
    import os

    from medimg_lab import batch
    from medimg_lab.recipe import Recipe

    folder = work / "cohort-files"
    seeds = [
        seed_ct_series(folder, f"bench_cohort_{k:02d}", 100 + k, slices=COHORT_SLICES)
        for k in range(COHORT)
    ]
    server = Orthanc(work / "cohort-orthanc").start()
    saved = dict(os.environ)
    try:
        server.upload([f for s in seeds for f in s.files])
        os.environ.update(server.environment())  # the workers' credentials
        query = server.url.replace("http://", "dicomweb://") + "?ModalitiesInStudy=CT"
        recipe = Recipe(COHORT_STEPS)
        runs = {"folder": 0}

        from dask.distributed import Client

        began = time.perf_counter()
        cluster = batch.local_cluster(2)
        client2 = Client(cluster, set_as_default=False)
        started_s = time.perf_counter() - began

        def run(source: str, client):
            runs["folder"] += 1
            out = work / f"cohort-out-{runs['folder']}"
            cache = work / f"cohort-cache-{runs['folder']}"  # empty: all retrieved
            options = {"cache": cache} if source == "query" else {}
            result = batch.run(
                recipe,
                query if source == "query" else folder,
                out,
                client=client,
                workers=2,
                progress=False,
                **options,
            )
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            return result

        cases = {
            ("folder", 1): ("folder", "serial"),
            ("query", 1): ("query", "serial"),
            ("folder", 2): ("folder", client2),
            ("query", 2): ("query", client2),
        }
        run("folder", "serial")  # imports and the OS file cache warm
        times: dict = {key: [] for key in cases}
        tables: dict = {}
        for _ in range(COHORT_REPEATS):
            for key, (source, client) in cases.items():
                start = time.perf_counter()
                result = run(source, client)
                times[key].append(time.perf_counter() - start)
                tables[key] = result.table
        ok = all(
            len(t) == COHORT and bool((t["status"] == "ok").all())
            for t in tables.values()
        )
        # the same volumes whichever way they came: measurements alike
        volume = [c for c in tables["folder", 1].columns if "volume" in c]
        if volume:
            a = sorted(tables["folder", 1][volume[0]].round(6))
            ok = ok and all(sorted(t[volume[0]].round(6)) == a for t in tables.values())
        print(
            f"cohort of {COHORT} CT series x {COHORT_SLICES} slices of 512x512 "
            f"(threshold, largest component, measure), median of {COHORT_REPEATS}:"
        )
        for workers in (1, 2):
            base = statistics.median(times["folder", workers])
            by_query = statistics.median(times["query", workers])
            print(
                f"  {workers} worker{'s' if workers > 1 else ' '} from a folder   : "
                f"median {base:6.2f} s  ({COHORT / base:5.1f} series/s)  (baseline)"
            )
            print(
                f"  {workers} worker{'s' if workers > 1 else ' '} by query (WADO) : "
                f"median {by_query:6.2f} s  ({COHORT / by_query:5.1f} series/s)  "
                f"{by_query / base:5.2f}x the folder"
            )
        one = statistics.median(times["query", 1])
        two = statistics.median(times["query", 2])
        print(f"  by query, 2 workers against 1: {one / two:5.2f}x the throughput")
        print(f"  (the local cluster of 2 was up in {started_s:.1f} s, not counted)")
        print(f"every series ok, results alike by query and by folder: {ok}")
        client2.close()
        cluster.close()
        return ok
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def main() -> int:
    missing = available()
    if missing:
        print(f"bench_archive: {missing}")
        return 1
    if "--cohort" in sys.argv[1:]:
        work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
        try:
            return 0 if cohort_figure(work) else 1
        finally:
            shutil.rmtree(work, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    server = None
    try:
        seed = seed_ct_series(work / "files", "bench_ct", 0, slices=SLICES)
        size = sum(f.stat().st_size for f in seed.files)
        server = Orthanc(work / "orthanc").start()
        t0 = time.perf_counter()
        server.upload(seed.files)
        print(
            f"seeded Orthanc with {SLICES} slices ({size / 1024**2:.0f} MiB) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        creds = Credentials.from_environment(
            environ={"MEDIMG_ARCHIVE_USER": USER, "MEDIMG_ARCHIVE_PASSWORD": PASSWORD}
        )
        cache_dir = work / "cache"

        def archive(durable: bool = True) -> DicomWebArchive:
            cache = InstanceCache(cache_dir, durable=durable)
            return DicomWebArchive(server.url, cache=cache, credentials=creds)

        def empty_cache() -> None:
            shutil.rmtree(cache_dir, ignore_errors=True)

        def half_cache() -> None:
            empty_cache()
            got = archive(durable=False).retrieve_series(
                seed.series_uid, study_uid=seed.study_uid
            )
            for path in got.paths[::2]:
                path.unlink()

        def fetch(durable: bool) -> None:
            archive(durable).retrieve_series(seed.series_uid, study_uid=seed.study_uid)

        cold_images = []
        cases = {  # name: (before, timed)
            "disk": (None, lambda: medimg_lab.load(seed.folder)),
            "cold": (
                empty_cache,
                lambda: cold_images.append(archive().load_series(seed.series_uid)),
            ),
            "fetch": (empty_cache, lambda: fetch(True)),
            "fetch_fast": (empty_cache, lambda: fetch(False)),
            "resume": (half_cache, lambda: fetch(True)),
            "warm": (
                lambda: fetch(True),
                lambda: archive().load_series(seed.series_uid),  # as a new process
            ),
        }
        direct = medimg_lab.load(seed.folder)  # warm the OS file cache and imports
        # the cases alternate, round after round, so that a change of the
        # machine's load during the run weighs on all of them alike
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(REPEATS):
            for name, (before, timed) in cases.items():
                if before is not None:
                    before()
                start = time.perf_counter()
                timed()
                times[name].append(time.perf_counter() - start)
        disk, cold, fetch_s, fetch_fast, resume, warm = (
            statistics.median(times[name]) for name in cases
        )
        same = all(np.array_equal(im.array, direct.array) for im in cold_images)
        print(
            f"disk (load of the folder)      : median {disk * 1000:7.0f} ms  (baseline)"
        )
        print(
            f"WADO-RS, empty cache           : median {cold * 1000:7.0f} ms  "
            f"{cold / disk:5.2f}x disk  ({size / 1024**2 / cold:.0f} MiB/s end to end)"
        )
        print(
            f"  of which retrieval into cache: median {fetch_s * 1000:7.0f} ms  "
            f"{fetch_s / disk:5.2f}x disk  ({size / 1024**2 / fetch_s:.0f} MiB/s)"
        )
        print(
            f"  the same, durable=False      : median {fetch_fast * 1000:7.0f} ms  "
            f"{fetch_fast / disk:5.2f}x disk  ({size / 1024**2 / fetch_fast:.0f} MiB/s)"
        )
        print(
            f"resume, half cached (100 GETs) : median {resume * 1000:7.0f} ms  "
            f"{resume / disk:5.2f}x disk  ({resume * 1000 / (SLICES // 2):.0f} ms "
            "per instance)"
        )
        print(
            f"WADO-RS, warm cache            : median {warm * 1000:7.0f} ms  "
            f"{warm / disk:5.2f}x disk"
        )
        print(f"retrieved volumes equal to the folder's: {same}")
        server.stop()
        server = None
        cohort_ok = cohort_figure(work)
        return 0 if same and cohort_ok else 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
