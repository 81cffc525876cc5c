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

Prints each median with its ratio to ``disk``. Run: ``make bench``.
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


def main() -> int:
    missing = available()
    if missing:
        print(f"bench_archive: {missing}")
        return 1
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
        return 0 if same else 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
