"""One slider update, kernel side: the operation plus encoding for display.

For each image and operation it times, in the same run:

- ``fast``: what a processing panel does when a slider moves: run the
  operation on the display-size copy of the slice (large films are
  downscaled once, when loaded), window it and encode a PNG with OpenCV;
- ``baseline``: the usual ``ipywidgets.interact`` cell, which runs the
  operation on the full image and re-draws a new matplotlib figure
  (``imshow`` + PNG, as the inline backend does) for every move.

It prints medians in ms and the speed-up over the baseline, and checks the
targets of the processing issue: window, CLAHE, Gaussian and median on the
512² CT within 5 ms; the chest film at display size within 25 ms; at least
20× faster than the baseline. Run: ``make bench``.
"""

from __future__ import annotations

import io
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _timing import median_ms

import medimg_lab as ml
from medimg_lab import processing as P
from medimg_lab.display import apply_window, encode_png, fit

DISPLAY = 600  # px: each view of a side-by-side before/after panel
OPS = {
    "window": lambda a, s, w: a,  # the window itself is the update
    "CLAHE": lambda a, s, w: P.clahe(a, clip_limit=2.0, window=w),
    "Gaussian": lambda a, s, w: P.gaussian(a, sigma_mm=1.0, spacing=s),
    "median": lambda a, s, w: P.median(a, size=3),
    "bilateral": lambda a, s, w: P.bilateral(a, sigma_mm=1.5, spacing=s),
    "NL means": lambda a, s, w: P.non_local_means(a, window=w),
}
FAST_TARGETS = {"window", "CLAHE", "Gaussian", "median"}


def main() -> int:
    cases = [
        ("head CT 512²", "head_ct", (40.0, 80.0)),
        ("shoulder MR 1024²", "shoulder_mr", None),
        ("chest film 1955×1841", "chest_xray", None),
    ]
    failures = []
    print(
        f"{'image':<22}{'operation':<11}{'fast ms':>9}{'baseline ms':>13}"
        f"{'speed-up':>10}"
    )
    for label, name, window in cases:
        image = ml.data.sample(name)
        window = window or image.window
        full = image.array
        shown = fit(full, DISPLAY)  # done once when an image is loaded
        scale = full.shape[0] / shown.shape[0]
        spacing = tuple(s * scale for s in image.spacing)
        for op_name, op in OPS.items():

            def fast(op=op, shown=shown, spacing=spacing, window=window):
                out = op(shown, spacing, window)
                encode_png(apply_window(out, *window))

            def baseline(op=op, full=full, spacing=image.spacing, window=window):
                out = op(full, spacing, window)
                fig, ax = plt.subplots(figsize=(6, 6))
                ax.imshow(
                    out,
                    cmap="gray",
                    vmin=window[0] - window[1] / 2,
                    vmax=window[0] + window[1] / 2,
                )
                fig.savefig(io.BytesIO(), format="png")
                plt.close(fig)

            fast_ms = median_ms(fast, 15)
            base_ms = median_ms(baseline, 5)
            ratio = base_ms / fast_ms
            print(
                f"{label:<22}{op_name:<11}{fast_ms:>9.1f}{base_ms:>13.1f}{ratio:>9.1f}x"
            )
            if op_name in FAST_TARGETS:
                if name == "head_ct" and fast_ms > 5:
                    failures.append(f"{op_name} on the CT: {fast_ms:.1f} ms > 5 ms")
                if name == "chest_xray" and fast_ms > 25:
                    failures.append(f"{op_name} on the film: {fast_ms:.1f} ms > 25 ms")
                if ratio < 20:
                    failures.append(f"{op_name} on {label}: {ratio:.1f}x < 20x")
    print(
        "targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
