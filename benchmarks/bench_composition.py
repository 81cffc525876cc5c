"""Registration and stitching times against baselines measured in the same run.

- ``registration``: :func:`medimg_lab.composition.register` on the 512² head
  CT moved by a known shift, with noise, against scikit-image's
  ``phase_cross_correlation`` (translation only, upsampling 20). Ours also
  resamples the moving image and computes NCC and mutual information; the
  rigid and affine methods are timed too, with their errors.
- ``stitching``: :func:`medimg_lab.composition.stitch` of the chest film cut
  into 2 × 3 shuffled tiles (22 % overlap, ±15 px jitter) against a
  brute-force search: for each of the 7 adjacent pairs, every integer shift
  within ±30 px of the nominal one scored by the overlap's NCC, with the
  grid layout given (the baseline is told what ``stitch`` must find out).

Prints medians and ratios. Run: ``make bench``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _timing import median_ms

from medimg_lab import data
from medimg_lab.composition import cut_tiles, ncc, register, rigid_transform, stitch

TRUE_SHIFT_MM = (2.1, -3.4)


def registration() -> None:
    from skimage.registration import phase_cross_correlation

    ct = data.sample("head_ct")
    fixed = ct.array.astype(np.float32)
    moving = rigid_transform(ct, shift_mm=TRUE_SHIFT_MM)
    moving = moving + np.random.default_rng(0).normal(0, 20, moving.shape).astype(
        np.float32
    )

    def ours():
        return register(
            fixed, moving, method="phase", transform="translation", spacing=ct.spacing
        )

    ours_ms = median_ms(ours, 20)
    theirs_ms = median_ms(
        lambda: phase_cross_correlation(fixed, moving, upsample_factor=20), 20
    )
    found = np.subtract(ours().shift_mm, TRUE_SHIFT_MM)
    sk, *_ = phase_cross_correlation(fixed, moving, upsample_factor=20)
    sk_error = -np.asarray(sk) * ct.spacing - TRUE_SHIFT_MM
    print(
        f"registration, 512² CT, translation: ours {ours_ms:6.1f} ms (error "
        f"{np.abs(found).max():.3f} mm), scikit-image {theirs_ms:6.1f} ms (error "
        f"{np.abs(sk_error).max():.3f} mm): ratio {theirs_ms / ours_ms:4.2f}"
    )
    rotated = rigid_transform(ct, shift_mm=TRUE_SHIFT_MM, rotation_deg=6.0)
    for method, transform in [
        ("phase", "rigid"),
        ("ecc", "rigid"),
        ("ecc", "affine"),
        ("orb", "rigid"),
        ("akaze", "rigid"),
        ("mi", "rigid"),
    ]:

        def run(method=method, transform=transform):
            return register(
                fixed, rotated, method=method, transform=transform, spacing=ct.spacing
            )

        ms = median_ms(run, 5)
        r = run()
        shift_error = np.abs(np.subtract(r.shift_mm, TRUE_SHIFT_MM)).max()
        print(
            f"  {method:5s} {transform:6s} (6° and a shift): {ms:6.1f} ms, "
            f"{ms / theirs_ms:4.1f}x the scikit-image translation; error "
            f"{shift_error:.3f} mm, {abs(r.rotation_deg - 6.0):.3f}°"
        )


def stitching() -> None:
    film = data.sample("chest_xray").array
    rows, cols, jitter = 2, 3, 15
    tiles, truth = cut_tiles(
        film, grid=(rows, cols), overlap=0.22, jitter_px=jitter, seed=0, shuffle=False
    )
    h, w = tiles[0].shape
    nominal = np.array(
        [
            (r, c)
            for r in np.rint(np.linspace(0, film.shape[0] - h, rows))
            for c in np.rint(np.linspace(0, film.shape[1] - w, cols))
        ],
        int,
    )
    order = np.random.default_rng(1).permutation(len(tiles))
    shuffled = [tiles[k] for k in order]

    def brute():
        small = [t.astype(np.float32) for t in tiles]
        index = {(r, c): r * cols + c for r in range(rows) for c in range(cols)}
        edges = [
            (index[r, c], index[r, c + 1]) for r in range(rows) for c in range(cols - 1)
        ]
        edges += [
            (index[r, c], index[r + 1, c]) for r in range(rows - 1) for c in range(cols)
        ]
        shifts = {}
        for i, j in edges:
            d0 = nominal[j] - nominal[i]
            best = (-2.0, None)
            for dy in range(d0[0] - 2 * jitter, d0[0] + 2 * jitter + 1):
                for dx in range(d0[1] - 2 * jitter, d0[1] + 2 * jitter + 1):
                    r0, r1 = max(0, dy), min(h, dy + h)
                    c0, c1 = max(0, dx), min(w, dx + w)
                    a = small[i][r0:r1:4, c0:c1:4]
                    b = small[j][r0 - dy : r1 - dy : 4, c0 - dx : c1 - dx : 4]
                    score = ncc(a, b)
                    if score > best[0]:
                        best = (score, (dy, dx))
            shifts[i, j] = np.array(best[1])
        offsets = np.zeros((rows * cols, 2))
        for c in range(1, cols):
            offsets[c] = offsets[c - 1] + shifts[c - 1, c]
        for c in range(cols):
            offsets[cols + c] = offsets[c] + shifts[c, cols + c]
        return offsets

    def error(offsets, truth):
        return float(np.abs((offsets - offsets.min(0)) - (truth - truth.min(0))).max())

    ours_ms = median_ms(lambda: stitch(shuffled), 5)
    multi_ms = median_ms(lambda: stitch(shuffled, blend="multiband"), 3)
    found = stitch(shuffled)
    start = time.perf_counter()
    brute_offsets = brute()
    brute_ms = (time.perf_counter() - start) * 1000
    print(
        f"stitching, chest film 2×3 tiles: ours {ours_ms:6.0f} ms feathered, "
        f"{multi_ms:6.0f} ms multiband (error {error(found.offsets, truth[order]):.2f} "
        f"px, unordered tiles); brute-force NCC search {brute_ms:6.0f} ms (error "
        f"{error(brute_offsets, truth):.2f} px, layout given): ratio "
        f"{brute_ms / ours_ms:4.1f}"
    )


def main() -> int:
    registration()
    stitching()
    return 0


if __name__ == "__main__":
    sys.exit(main())
