"""Interaction within budget (issue 20, item 3), each figure against an anchor
measured in the same run; cases alternate round by round, so that the load of
the machine weighs on all of them alike.

- ``region growing``: :func:`medimg_lab.segmentation.region_grow` from one
  seed in the MNI volume (197 × 233 × 189) against
  ``skimage.segmentation.flood`` from the same seed (target <= 1.5×), and
  the method it replaced (label every component, keep the seeds').
  Confidence-connected growing against the replaced method and, if
  installed, SimpleITK's ``ConfidenceConnected``.
- ``wrappers``: each thin wrapper against the bare library call on the same
  input (target <= 1.2×): CLAHE (uint8, and a windowed int16 CT whose bare
  call is OpenCV's CLAHE on its 8-bit levels), Gaussian, median, bilateral.
- ``slider``: kernel-side latency of one slider move in the processing
  panel on the 512² head CT (bilateral, non-local means: target < 25 ms),
  the full-resolution preview drawn once the slider rests, and a move as it
  was before (a full preview per move).
- ``import``: ``import medimg_lab`` in a fresh interpreter (``python -X
  importtime``, median of several; target <= 0.6 s) against the imports it
  cannot avoid (numpy, scipy.ndimage, OpenCV, pydicom).

Run: ``python benchmarks/bench_interaction.py`` (``make bench``).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # tests.segmentation: the replaced method

from medimg_lab.widgets import ProcessingPanel  # noqa: E402

import medimg_lab as ml  # noqa: E402
from medimg_lab import processing as P  # noqa: E402
from medimg_lab import segmentation as S  # noqa: E402
from tests.segmentation.test_region_flood import _reference  # noqa: E402


def interleaved_ms(cases: dict, rounds: int) -> dict[str, float]:
    """Median ms of each case, the cases alternating round after round."""
    for fn in cases.values():
        fn()  # warm up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def show(title: str, medians: dict[str, float], anchor: str) -> None:
    print(f"\n{title} (median ms; ratio to {anchor})")
    for name, ms in medians.items():
        print(f"  {name:<44}{ms:>9.2f}{ms / medians[anchor]:>8.2f}x")


def region_growing() -> list[str]:
    from skimage.segmentation import flood

    brain = ml.data.sample("brain_mri").array
    seed = tuple(n // 2 for n in brain.shape)
    tol = 0.1 * ml.display.auto_window(brain)[1]
    cases = {
        "skimage.segmentation.flood": lambda: flood(brain, seed, tolerance=tol),
        "region_grow (flood from the seed)": lambda: S.region_grow(
            brain, [seed], tolerance=tol
        ),
        "before: label every component": lambda: _reference(
            brain, [seed], tolerance=tol
        ),
    }
    same = np.array_equal(
        S.region_grow(brain, [seed], tolerance=tol),
        _reference(brain, [seed], tolerance=tol),
    )
    print(f"  same mask as the replaced method: {same}")
    medians = interleaved_ms(cases, 15)
    show(f"3D region growing, MNI {brain.shape}", medians, "skimage.segmentation.flood")
    conf = {
        "region_grow confidence": lambda: S.region_grow(
            brain, [seed], method="confidence"
        ),
        "before: label every component": lambda: _reference(
            brain, [seed], method="confidence"
        ),
    }
    try:
        import SimpleITK as sitk

        itk = sitk.GetImageFromArray(brain)
        conf["SimpleITK ConfidenceConnected"] = lambda: sitk.ConfidenceConnected(
            itk,
            seedList=[seed[::-1]],
            numberOfIterations=4,
            multiplier=2.5,
            initialNeighborhoodRadius=1,
            replaceValue=1,
        )
    except ImportError:
        print("  (SimpleITK not installed: no ITK anchor)")
    cmed = interleaved_ms(conf, 9)
    anchor = (
        next(iter(conf))
        if "SimpleITK ConfidenceConnected" not in conf
        else ("SimpleITK ConfidenceConnected")
    )
    show("3D confidence-connected growing", cmed, anchor)
    ratio = (
        medians["region_grow (flood from the seed)"]
        / medians["skimage.segmentation.flood"]
    )
    return [] if ratio <= 1.5 else [f"region growing {ratio:.2f}x flood > 1.5x"]


def wrappers() -> list[str]:
    ct = ml.data.sample("head_ct")
    a = ct.array
    f32 = a.astype(np.float32)
    u8 = ml.display.apply_window(a, 40, 80)
    engine = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    lo, hi = 0.0, 80.0
    levels = np.rint(np.clip((f32 - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    sx, sy = 1.0 / ct.spacing[1], 1.0 / ct.spacing[0]
    border = cv2.BORDER_REFLECT_101
    sigma_px = float(np.mean([1.5 / s for s in ct.spacing]))
    diameter = 2 * int(np.ceil(2 * sigma_px)) + 1
    sigma_range = 0.1 * ml.display.auto_window(a)[1]
    pairs = {
        "CLAHE uint8": (
            lambda: P.clahe(u8),
            lambda: engine.apply(u8),
        ),
        "CLAHE int16 CT, window (40, 80)": (
            lambda: P.clahe(a, window=(40, 80)),
            lambda: engine.apply(levels),
        ),
        "Gaussian 1 mm, float32": (
            lambda: P.gaussian(f32, sigma_mm=1.0, spacing=ct.spacing),
            lambda: cv2.GaussianBlur(
                f32, (0, 0), sigmaX=sx, sigmaY=sy, borderType=border
            ),
        ),
        "median 3, int16": (
            lambda: P.median(a, size=3),
            lambda: cv2.medianBlur(cv2.copyMakeBorder(a, 1, 1, 1, 1, border), 3),
        ),
        "bilateral 1.5 mm, float32": (
            lambda: P.bilateral(f32, sigma_mm=1.5, spacing=ct.spacing),
            lambda: cv2.bilateralFilter(
                f32, diameter, float(sigma_range), sigma_px, borderType=border
            ),
        ),
    }
    failures = []
    print("\nwrappers against the bare library call, 512² head CT (median ms)")
    for name, (wrapped, bare) in pairs.items():
        m = interleaved_ms({"wrapper": wrapped, "bare": bare}, 60)
        ratio = m["wrapper"] / m["bare"]
        print(f"  {name:<36}{m['wrapper']:>8.3f}{m['bare']:>8.3f}{ratio:>8.2f}x")
        if ratio > 1.2:
            failures.append(f"{name}: {ratio:.2f}x the bare call > 1.2x")
    return failures


def slider() -> list[str]:
    ct = ml.data.sample("head_ct")
    failures = []
    print(
        "\nslider move in the processing panel, 512² head CT, kernel side (median ms)"
    )

    async def run():
        for op, name, values in (
            ("bilateral", "sigma_mm", [1.0, 1.5, 2.0, 2.5, 3.0]),
            ("non_local_means", "patch", [3, 5, 7, 9, 5]),
        ):
            panel = ProcessingPanel(ct, operation=op)
            control = panel._controls[name]
            moves, fulls = [], []
            for _ in range(4):
                for v in values:
                    start = time.perf_counter()
                    control.set_state({"value": v})
                    moves.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                panel._refresh()  # what the rested slider draws (and every move did)
                fulls.append((time.perf_counter() - start) * 1000)
            move, full = statistics.median(moves), statistics.median(fulls)
            print(
                f"  {op:<18} move {move:7.1f}   full preview on release / before "
                f"per move {full:7.1f}   ({full / move:.1f}x)"
            )
            if move >= 25:
                failures.append(f"{op}: a move takes {move:.1f} ms >= 25 ms")

    asyncio.run(run())
    return failures


def _import_s(modules: tuple[str, ...]) -> float:
    """Seconds ``-X importtime`` gives for importing ``modules`` in a fresh
    interpreter: the sum of their top-level cumulative times."""
    out = subprocess.run(  # noqa: S603 this interpreter on a fixed snippet
        [sys.executable, "-X", "importtime", "-c", f"import {', '.join(modules)}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    total = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].startswith(" ") and not parts[2][1:2].isspace():
            if parts[2].strip() in modules:
                total += int(parts[1])
    return total / 1e6


def imports() -> list[str]:
    rounds = 7
    anchor = "numpy, scipy.ndimage, cv2, pydicom"
    cases = {
        "import medimg_lab": ("medimg_lab",),
        anchor: ("numpy", "scipy", "cv2", "pydicom"),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, modules in cases.items():
            times[name].append(_import_s(modules))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nimport in a fresh interpreter (-X importtime, median of {rounds}, s)")
    for name, sec in med.items():
        print(f"  {name:<44}{sec:>8.3f}{sec / med[anchor]:>8.2f}x")
    sec = med["import medimg_lab"]
    return [] if sec <= 0.6 else [f"import medimg_lab {sec:.2f} s > 0.6 s"]


def main() -> int:
    failures = [*region_growing(), *wrappers(), *slider(), *imports()]
    print(
        "\ntargets met"
        if not failures
        else "\ntargets missed:\n  " + "\n  ".join(failures)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
