"""Recognition panel updates, kernel side, against the naive way, same run.

- ``prior slider``: what :class:`medimg_lab.widgets.recognition.BayesExplorer` does when
  a prior moves: new priors on the fitted model (no refit), exact decision
  boundaries, the density chart's curves moved in place and rendered, and
  the three posterior maps of a slice, computed once per distinct
  intensity and encoded. Baseline: refit scikit-learn's ``GaussianNB`` with
  the new priors on the 1.7 million labelled voxels, predict the slice's
  posteriors voxel by voxel and draw a new pyplot figure (histogram,
  curves, maps) for every move, as an ``interact`` cell would.
- ``spatial model``: the whole 1 mm MNI volume classified with spatial
  context (:func:`medimg_lab.recognition.context_features`, ``context_bayes``
  and ``classify_tissues`` with the default Potts field), with its Dice
  under the issue's scoring. Baseline: intensity alone on the same volume
  (``posterior_maps`` and the largest posterior), the method it replaces.
- ``lesion slider``: a contrast the explorer has shown before comes from
  its cache; a new one runs the whole study (crops, features, grouped
  cross-validation, ROC).

Prints medians in ms and the ratios. Run: ``make bench``.
"""

from __future__ import annotations

import io
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _timing import median_ms
from medimg_lab.widgets.recognition import BayesExplorer, LesionExplorer

from medimg_lab import recognition as rec

TARGET_MS = 50  # a prior move must feel instant


def main() -> int:
    from sklearn.naive_bayes import GaussianNB

    image, labels = rec.brain_tissues()
    explorer = BayesExplorer(image, labels)
    chosen = labels > 0
    x = image.array[chosen].astype(np.float64)[:, None]
    y = labels[chosen]
    middle = image.array[image.array.shape[0] // 2]
    priors = [(0.05, 0.55, 0.40), (0.20, 0.45, 0.35), (0.01, 0.60, 0.39)]
    state = {"k": 0}

    def fast():
        state["k"] += 1
        csf = priors[state["k"] % 3][0]
        explorer.set_priors(CSF=csf)

    def baseline():
        state["k"] += 1
        p = priors[state["k"] % 3]
        model = GaussianNB(priors=p).fit(x, y)
        post = model.predict_proba(middle.reshape(-1, 1).astype(np.float64))
        fig, axes = plt.subplots(1, 4, figsize=(12, 3))
        axes[0].hist(x[::7, 0], bins=128, density=True)
        grid = np.linspace(0, 255, 512)[:, None]
        axes[0].plot(grid, np.exp(model.predict_joint_log_proba(grid)))
        for k in range(3):
            axes[k + 1].imshow(post[:, k].reshape(middle.shape), cmap="gray")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)

    fast_ms = median_ms(fast, 15)
    base_ms = median_ms(baseline, 5)
    print(
        f"prior slider (brain MRI, 3 tissues): {fast_ms:6.1f} ms, baseline "
        f"{base_ms:6.1f} ms, {base_ms / fast_ms:5.1f}x faster"
    )

    spatial_figure(image, labels)

    lesion = LesionExplorer(contrast=20.0)
    start = time.perf_counter()
    lesion.set_params(contrast=30.0)
    new_ms = (time.perf_counter() - start) * 1000
    seen = [20.0, 30.0]
    state["k"] = 0

    def cached():
        state["k"] += 1
        lesion.set_params(contrast=seen[state["k"] % 2])

    cached_ms = median_ms(cached, 9)
    print(
        f"lesion slider: new contrast {new_ms:6.1f} ms, a contrast seen before "
        f"{cached_ms:6.1f} ms ({new_ms / cached_ms:5.1f}x)"
    )
    ok = fast_ms <= TARGET_MS
    print(f"prior slider within {TARGET_MS} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def spatial_figure(image, labels) -> None:
    """Whole-volume classification with spatial context against intensity alone."""
    from medimg_lab import data
    from medimg_lab.metrics import dice

    brain = image.array > 0
    train = rec.with_partial_volume(labels, brain)
    out = {}

    def spatial():
        features = rec.context_features(image.array, spacing=image.spacing)
        model = rec.context_bayes(features, train)
        out["spatial"] = rec.classify_tissues(
            features, model, spacing=image.spacing, mask=brain
        )

    def alone():
        model = rec.intensity_bayes(image.array, labels)
        maps = rec.posterior_maps(model, image.array)
        out["alone"] = (maps.argmax(axis=0) + 1) * brain

    spatial_ms = median_ms(spatial, 3)
    alone_ms = median_ms(alone, 3)
    wm = data.sample("brain_mri_wm").array >= 0.5
    gm = data.sample("brain_mri_gm").array >= 0.5
    scores = {
        k: f"WM {dice(v == 3, wm):.3f} GM {dice(v == 2, gm):.3f}"
        for k, v in out.items()
    }
    print(
        f"spatial model, whole MNI volume: {spatial_ms:7.1f} ms ({scores['spatial']}), "
        f"intensity alone {alone_ms:7.1f} ms ({scores['alone']}), "
        f"{spatial_ms / alone_ms:4.1f}x the time"
    )


if __name__ == "__main__":
    sys.exit(main())
