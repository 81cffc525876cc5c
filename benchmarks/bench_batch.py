"""The standard recipe over 1,000 512² CT slices: a plain loop against batch.run.

The recipe: window (brain), CLAHE, Gaussian (1 mm), Otsu, largest component,
measure. Each study is a DICOM file (the head CT); each run loads it, runs
the steps and writes the mask as NIfTI.

- ``plain loop``: the same library calls in a ``for`` loop, in this process
  (the baseline, measured in the same run);
- ``batch.run`` on a local Dask cluster of 1 and of 2 worker processes
  (started before the clock starts), with everything batch adds: input
  checksums, per-study records, the results table and provenance.

Targets of the scale issue: with 1 worker, the time per image within 15 %
of the plain loop; with 2 workers, at least 1.7x the plain loop's
throughput. Run: ``make bench`` (``BENCH_IMAGES=200`` for a quick run).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medimg_lab import batch, processing, segmentation
from medimg_lab.image import MedImage
from medimg_lab.io import load, save
from medimg_lab.recipe import Recipe

N = int(os.environ.get("BENCH_IMAGES", "1000"))
STEPS = [
    {"op": "window_level", "params": {"center": 40.0, "width": 80.0}},
    {"op": "clahe", "params": {"clip_limit": 2.0}},
    {"op": "gaussian", "params": {"sigma_mm": 1.0}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


def plain_loop(files: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        image = load(path)
        grey = processing.window_level(image.array, center=40.0, width=80.0)
        grey = processing.clahe(grey, clip_limit=2.0)
        grey = processing.gaussian(grey, sigma_mm=1.0, spacing=image.spacing)
        mask = segmentation.keep_largest(segmentation.threshold_otsu(grey))
        values = image.array[mask].astype(np.float64)  # what "measure" reports
        _ = (
            mask.sum() * np.prod(image.spacing),
            ndimage.label(mask)[1],
            values.mean(),
            values.std(),
            values.min(),
            values.max(),
        )
        labels = MedImage(mask.astype(np.uint8), image.spacing, "OT", (0.5, 1.0))
        save(labels, out / f"{path.stem}.nii.gz", overwrite=True)


def batch_run(files: list[Path], out: Path, workers: int) -> float:
    from dask.distributed import Client

    with batch.local_cluster(workers) as cluster, Client(cluster) as client:
        # Warm the workers' imports and caches with a few studies first.
        batch.run(
            Recipe(STEPS), files[:10], out / "warm", client=client, progress=False
        )
        start = time.perf_counter()
        result = batch.run(Recipe(STEPS), files, out, client=client, progress=False)
        seconds = time.perf_counter() - start
    if not (result.table["status"] == "ok").all():
        raise RuntimeError(f"batch run failed: {result.failed}")
    return seconds


def main() -> int:
    from medimg_lab.data import path

    source = path("head_ct")  # the installed sample file
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        files = []
        for k in range(N):
            target = folder / f"slice{k:04d}.dcm"
            shutil.copyfile(source, target)
            files.append(target)
        plain_loop(files[:20], Path(tmp) / "warm")  # imports, caches
        start = time.perf_counter()
        plain_loop(files, Path(tmp) / "loop")
        loop_s = time.perf_counter() - start
        one_s = batch_run(files, Path(tmp) / "one", 1)
        two_s = batch_run(files, Path(tmp) / "two", 2)
    rate = {name: N / s for name, s in (("loop", loop_s), ("1", one_s), ("2", two_s))}
    print(f"{N} CT slices 512², window → CLAHE → Gaussian → Otsu → largest → measure")
    each = {name: 1000 / r for name, r in rate.items()}
    loop = f"{rate['loop']:7.1f} images/s  ({each['loop']:.1f} ms each)"
    print(f"  plain loop          {loop}")
    print(
        f"  batch.run 1 worker  {rate['1']:7.1f} images/s  ({each['1']:.1f} ms each, "
        f"{one_s / loop_s - 1:+.0%} per image against the loop)"
    )
    print(
        f"  batch.run 2 workers {rate['2']:7.1f} images/s  "
        f"({rate['2'] / rate['loop']:.2f}x the loop)"
    )
    overhead_ok = one_s <= 1.15 * loop_s
    speedup_ok = rate["2"] >= 1.7 * rate["loop"]
    print(f"overhead within 15 %: {'met' if overhead_ok else 'MISSED'}")
    print(f"2 workers at least 1.7x: {'met' if speedup_ok else 'MISSED'}")
    return 0 if overhead_ok and speedup_ok else 1


if __name__ == "__main__":
    sys.exit(main())
