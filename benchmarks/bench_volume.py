"""Chunk-wise Gaussian of a 2 GiB volume on disk, in bounded memory.

- ``large``: a synthetic 2 GiB float32 volume (512 × 1024 × 1024 at
  1 × 0.5 × 0.5 mm) is written to a Zarr store chunk by chunk, then
  Gaussian-filtered (``sigma_mm=1``) with :func:`medimg_lab.chunked.apply_chunked`
  from that store into a second store. Prints the wall time and the
  process's peak resident memory (``ru_maxrss``, which also counts the
  interpreter and its imports); the peak must stay below 1 GiB.
- ``baseline``: on a 256 MiB volume (64 × 1024 × 1024), the in-memory
  :func:`medimg_lab.processing.gaussian` against the same chunked pipeline
  disk to disk, with the ratio and the largest difference between the two.

The large run goes first, so that the baseline's in-memory arrays do not
count in its peak. dask's threaded scheduler runs 2 workers. Temporary
files are removed. Run: ``make bench``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from _timing import median_ms

from medimg_lab.chunked import apply_chunked, open_volume, save_zarr
from medimg_lab.processing import gaussian

LARGE = (512, 1024, 1024)  # float32: 2 GiB
SMALL = (64, 1024, 1024)  # float32: 256 MiB
SPACING = (1.0, 0.5, 0.5)
SIGMA_MM = 1.0
CHUNKS = (16, 512, 512)  # 16 MiB; a row of 4 chunks is 64 MiB
LIMIT = 1024**3


def peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synthetic(shape: tuple[int, ...]) -> da.Array:
    """A lazy volume of smooth structure plus noise, in float32, chunked."""
    rng = da.random.default_rng(0)
    noise = rng.standard_normal(shape, chunks=CHUNKS, dtype=np.float32)
    z = da.arange(shape[0], chunks=CHUNKS[0], dtype=np.float32)[:, None, None]
    return (100 * da.sin(z / 7) + 20 * noise).astype(np.float32)


def chunked_gaussian(source: Path, target: Path) -> None:
    volume, spacing, _ = open_volume(source, chunks=CHUNKS)
    smooth = apply_chunked(volume, "gaussian", {"sigma_mm": SIGMA_MM}, spacing=spacing)
    save_zarr(smooth, target, spacing=spacing, overwrite=True)


def large(tmp: Path) -> None:
    start = time.perf_counter()
    save_zarr(synthetic(LARGE), tmp / "large.zarr", spacing=SPACING)
    made = time.perf_counter() - start
    start = time.perf_counter()
    chunked_gaussian(tmp / "large.zarr", tmp / "large_smooth.zarr")
    took = time.perf_counter() - start
    peak = peak_rss()
    gib = np.prod(LARGE) * 4 / 1024**3
    print(
        f"large: {gib:.1f} GiB float32 {LARGE}, written in {made:5.1f} s; chunked "
        f"Gaussian (sigma {SIGMA_MM} mm, chunks {CHUNKS}) disk to disk: "
        f"{took:5.1f} s, {gib / took * 1024:5.0f} MiB/s"
    )
    print(
        f"  peak resident memory {peak / 1024**2:6.0f} MiB "
        f"(limit {LIMIT / 1024**2:.0f} MiB): {'ok' if peak < LIMIT else 'TOO HIGH'}"
    )
    if peak >= LIMIT:
        sys.exit(1)


def baseline(tmp: Path) -> None:
    save_zarr(synthetic(SMALL), tmp / "small.zarr", spacing=SPACING)
    image = np.asarray(da.from_zarr(str(tmp / "small.zarr")))
    memory_ms = median_ms(
        lambda: gaussian(image, sigma_mm=SIGMA_MM, spacing=SPACING), 3
    )
    chunked_ms = median_ms(
        lambda: chunked_gaussian(tmp / "small.zarr", tmp / "small_smooth.zarr"), 3
    )
    expected = gaussian(image, sigma_mm=SIGMA_MM, spacing=SPACING)
    got = np.asarray(da.from_zarr(str(tmp / "small_smooth.zarr")))
    error = float(np.abs(got - expected).max())
    print(
        f"baseline: {SMALL} (256 MiB): in-memory Gaussian {memory_ms:7.0f} ms, "
        f"chunked disk to disk {chunked_ms:7.0f} ms: ratio "
        f"{chunked_ms / memory_ms:4.2f}; max |chunked - in-memory| {error:.2e}"
    )


def main() -> None:
    with (
        dask.config.set(scheduler="threads", num_workers=2),
        tempfile.TemporaryDirectory(prefix="bench_volume_") as tmp,
    ):
        large(Path(tmp))
        baseline(Path(tmp))


if __name__ == "__main__":
    main()
