"""Display path: window/level plus PNG encoding, against a matplotlib re-plot.

For each image it times, in the same run:

- ``fast``: ``to_display`` (downscale the values to a 768-pixel display box,
  then window) + ``encode_png``, the path that feeds an ``ipywidgets.Image``;
- ``baseline``: rendering the same windowed image with matplotlib's
  ``imshow`` into a PNG, what a re-plotting ``interact`` cell does per update.

It prints the medians in ms and the speed-up of the fast path over the
baseline. Run with ``make bench`` or ``python benchmarks/bench_display.py``.
"""

from __future__ import annotations

import io
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _timing import p90, times_ms

import medimg_lab as ml
from medimg_lab.display import apply_window, encode_png, to_display

DISPLAY = 768
REPEATS = 30


def median_p90_ms(fn, repeats=REPEATS):
    times = times_ms(fn, repeats)
    return statistics.median(times), p90(times)


def main():
    cases = [
        ("head CT 512²", "head_ct", (40, 80)),
        ("chest film 1955×1841", "chest_xray", None),
    ]
    fig, ax = plt.subplots(figsize=(DISPLAY / 100, DISPLAY / 100), dpi=100)
    ax.set_axis_off()
    print(
        f"{'image':<22}{'fast ms (p90)':>16}{'matplotlib ms (p90)':>22}{'speed-up':>10}"
    )
    for label, name, window in cases:
        image = ml.data.sample(name)
        center, width = window or image.window
        shown = apply_window(image.array, center, width)
        artist = ax.imshow(shown, cmap="gray", vmin=0, vmax=255)

        def fast(image=image, c=center, w=width):
            encode_png(to_display(image, (c, w), max_size=DISPLAY))

        def baseline(arr=image.array, c=center, w=width, artist=artist):
            artist.set_data(apply_window(arr, c, w))
            buf = io.BytesIO()
            fig.savefig(buf, format="png")

        fast_med, fast_p90 = median_p90_ms(fast)
        base_med, base_p90 = median_p90_ms(baseline, repeats=10)
        print(
            f"{label:<22}{fast_med:>9.1f} ({fast_p90:.1f}){base_med:>15.1f} "
            f"({base_p90:.1f}){base_med / fast_med:>9.1f}x"
        )
        artist.remove()
    plt.close(fig)


if __name__ == "__main__":
    main()
