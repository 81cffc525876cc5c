"""``RecognitionPanel``: stage 3, Bayes' rule and classifiers you can move.

Three explorers, each usable on its own:

- :class:`BayesExplorer`: tissue classes of the brain MRI by intensity;
  prior sliders move the decision boundaries and the posterior maps.
- :class:`ClassifierExplorer`: features, classifier and hyperparameters of
  modality/region recognition, scored by grouped cross-validation.
- :class:`LesionExplorer`: a lesion-contrast slider that redraws the ROC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import ipywidgets as ipw
import numpy as np
import traitlets

from medimg_lab import plots
from medimg_lab import recognition as rec
from medimg_lab.display import (
    apply_window,
    auto_window,
    encode_png,
    label_colors,
    overlay,
    probability_image,
)
from medimg_lab.image import MedImage
from medimg_lab.params import parameters, validate
from medimg_lab.recognition.decisions import (
    PRIOR_MIN,
    class_volumes_ml,
    label_volumes_ml,
    rebalance_priors,
    share_priors,
    winning_labels,
)

from ._panel import NotebookNote, StagePanel
from .controls import control_for, controls_for

__all__ = ["BayesExplorer", "ClassifierExplorer", "LesionExplorer", "RecognitionPanel"]

_ROC_MARGINS = (0.15, 0.13, 0.97, 0.93)
_BACKGROUND = (20, 40, 110)  # RGB of pixels at the image's minimum


class _Chart:
    """A matplotlib chart shown as a PNG in an ``ipywidgets.Image``."""

    def __init__(self, width: int, height: int, margins=(0.14, 0.18, 0.98, 0.95)):
        self.fig, self.ax = plots.figure(width, height, margins=margins)
        self.widget = ipw.Image(format="png", layout={"width": f"{width}px"})

    def show(self) -> None:
        self.widget.value = encode_png(plots.render(self.fig))


def _grey_png(values: np.ndarray, window: tuple[float, float], width: int) -> bytes:
    return encode_png(apply_window(values, *window), max_size=(width, width))


def _caption(image: ipw.Image, text: str) -> ipw.VBox:
    return ipw.VBox(
        [ipw.HTML(f"<b>{text}</b>"), image], layout={"align_items": "flex-start"}
    )


class BayesExplorer(StagePanel):
    """Tissue classes by intensity: ``P(C_k|x) = P(x|C_k) P(C_k) / P(x)``.

    Parameters
    ----------
    image : MedImage, optional
        A grey image or volume; default the brain MRI sample.
    labels : ndarray of int, optional
        0 left out, ``k`` the class ``names[k - 1]``; default the template's
        tissue labels (:func:`medimg_lab.recognition.brain_tissues`).
    names : sequence of str
        Class names of labels 1, 2, ...

    Notes
    -----
    State with setters: :meth:`set_priors`, ``slice_index``, ``beta`` (the
    Potts coupling, its range from :func:`medimg_lab.recognition.classify_tissues`);
    results :attr:`priors`, :attr:`model`, :attr:`boundaries`,
    :attr:`posteriors` (maps of the shown slice), :attr:`volumes_ml`, and
    beside the intensity-only classes (:attr:`intensity_labels`) those with
    spatial context (:attr:`context_labels`): the neighbourhood's mean, a
    partial-volume class and the Potts field, under the same priors.
    """

    slice_index = traitlets.Int(0)
    beta = traitlets.Float(parameters(rec.classify_tissues)["beta"].default)

    def __init__(
        self,
        image: MedImage | None = None,
        labels: np.ndarray | None = None,
        names: Sequence[str] = rec.TISSUES,
        **kwargs,
    ):
        if (image is None) != (labels is None):
            raise ValueError("give both image and labels, or neither")
        if image is None:
            image, labels = rec.brain_tissues()
        if not isinstance(image, MedImage) or image.is_color:
            raise ValueError("the Bayes explorer takes a grey MedImage")
        self._image = image
        self._fitted = rec.intensity_bayes(image.array, labels, names)
        chosen = labels > 0
        self._values, self._counts = np.unique(image.array[chosen], return_counts=True)
        self._truth_ml = label_volumes_ml(labels, names, image.voxel_volume_mm3)
        lo, hi = float(image.array.min()), float(image.array.max())
        self._range = (lo, hi if hi > lo else lo + 1)
        self._window = image.window or auto_window(image.array)
        self._model = self._fitted
        self._fit_context(image, labels, names)
        self._controls: dict[str, ipw.Widget] = {}
        self._ready = False
        self._balancing = False
        super().__init__(**kwargs)
        self._build(image.array[chosen][::7])
        if image.is_volume:
            middle = image.array.shape[0] // 2
            self.slice_index = middle
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    @property
    def priors(self) -> dict[str, float]:
        """``P(C_k)`` of each class."""
        names = self._fitted.classes_
        return {str(n): float(p) for n, p in zip(names, self._model.prior, strict=True)}

    def set_priors(self, **priors: float) -> None:
        """Set the priors of some classes by name; the others share the rest.

        ``set_priors(CSF=0.2)`` keeps the other classes' proportions and
        scales them to ``0.8``; naming every class needs values summing to 1.

        Parameters
        ----------
        **priors : float
            ``P(C_k)`` by class name, each in (0, 1).
        """
        given = rebalance_priors(self.priors, priors)
        self._model = self._fitted.with_priors(np.array(list(given.values())))
        self._balancing = True
        try:
            for name, value in given.items():
                self._controls[name].value = value
        finally:
            self._balancing = False
        self._refresh()

    def reset_priors(self) -> None:
        """Back to the class frequencies of the labelled voxels."""
        fitted = self._fitted.prior
        self.set_priors(**dict(zip(self.priors, fitted, strict=True)))

    @property
    def model(self) -> rec.GaussianBayes:
        """The one-feature Bayes model with the current priors."""
        return self._model

    @property
    def boundaries(self) -> list[tuple[float, str, str]]:
        """Decision boundaries ``(x, left, right)``, x in the image's units."""
        return rec.decision_boundaries(self._model, self._range)

    @property
    def posteriors(self) -> np.ndarray:
        """``P(C_k|x)`` of the shown slice, ``(K, M, N)``."""
        return rec.posterior_maps(self._model, self._slice())

    @property
    def volumes_ml(self) -> dict[str, float]:
        """Volume of the labelled voxels each class wins, in mL."""
        return class_volumes_ml(
            self._model, self._values, self._counts, self._image.voxel_volume_mm3
        )

    @property
    def context_model(self) -> rec.ContextBayes:
        """``P(x, m | C_k)`` with the sliders' priors; ``PV`` keeps its own."""
        context = self._context
        return context.with_priors(
            share_priors(context.fitted_prior_, context.classes_, self.priors)
        )

    @property
    def intensity_labels(self) -> np.ndarray:
        """Label ``k`` (``names[k - 1]``) of largest ``P(C_k|x)``, shown slice."""
        return winning_labels(
            self.posteriors, self._model.classes_, self._names, self._mask_slice()
        )

    @property
    def context_labels(self) -> np.ndarray:
        """Labels with spatial context of the shown slice (``PV`` last)."""
        return rec.classify_tissues(
            self._features,
            self.context_model,
            beta=self.beta,
            spacing=self._image.spacing,
            mask=self._mask,
            slice_index=self.slice_index if self._image.is_volume else None,
        )

    def _fit_context(self, image: MedImage, labels: np.ndarray, names) -> None:
        """The spatial model, fitted once: features of the whole image."""
        self._names = [str(n) for n in names]
        self._mask = image.array > image.array.min()
        self._features = rec.context_features(image.array, spacing=image.spacing)
        train = np.asarray(labels).astype(np.uint8)
        train[self._mask & (train == 0)] = len(self._names) + 1
        self._context = rec.context_bayes(
            self._features, train, [*self._names, "PV"], value_range=self._range
        )

    def _mask_slice(self) -> np.ndarray:
        return self._mask[self.slice_index] if self._image.is_volume else self._mask

    # ---------------------------------------------------------------- build
    def _build(self, sample: np.ndarray) -> None:
        unit = self._image.unit
        for name, prior in self.priors.items():
            slider = ipw.FloatSlider(
                value=prior,
                min=PRIOR_MIN,
                max=1 - PRIOR_MIN,
                step=0.001,
                description=f"P({name})",
                readout_format=".3f",
                continuous_update=True,
                layout={"width": "320px"},
            )
            slider.observe(
                lambda change, n=name: self._on_prior_change(n, change), "value"
            )
            self._controls[name] = slider
        self._reset = ipw.Button(description="reset priors", layout={"width": "120px"})
        self._reset.on_click(
            self._guarded_callback("reset the priors", lambda _: self.reset_priors())
        )
        depth = self._image.array.shape[0] if self._image.is_volume else 1
        self._slice_slider = ipw.IntSlider(
            value=0,
            min=0,
            max=depth - 1,
            description="slice",
            layout={"width": "320px", "display": "" if depth > 1 else "none"},
        )
        traitlets.link((self._slice_slider, "value"), (self, "slice_index"))
        self._density = _Chart(480, 260, margins=(0.17, 0.18, 0.98, 0.95))
        self._chart = plots.DensityChart(
            self._density.ax, sample, self._range, unit=unit
        )
        self._beta = control_for(parameters(rec.classify_tissues)["beta"])
        traitlets.link((self._beta, "value"), (self, "beta"))
        self._view = ipw.Image(format="png")
        self._maps = [ipw.Image(format="png") for _ in self.priors]
        self._classes = [ipw.Image(format="png") for _ in range(2)]
        self._readout = ipw.HTML()
        self._message = ipw.HTML()
        images = [_caption(self._view, "slice")] + [
            _caption(m, f"P({n}|x)")
            for m, n in zip(self._maps, self.priors, strict=True)
        ]
        self.children = [
            ipw.HBox(
                [
                    ipw.VBox(
                        [
                            *self._controls.values(),
                            self._reset,
                            self._slice_slider,
                            self._beta,
                        ]
                    ),
                    self._density.widget,
                ]
            ),
            self._readout,
            ipw.HTML(
                "Posterior maps: black 0, white 1; blue: the background (the "
                "image's minimum), which no tissue claims. Classes of the slice, "
                + ", ".join(
                    f"{n} <span style='color:rgb{tuple(int(v) for v in c)}'>"
                    "&#9632;</span>"
                    for n, c in zip(
                        [*self._names, "PV"],
                        label_colors(len(self._names) + 1)[1:],
                        strict=True,
                    )
                )
                + ": by intensity alone, and with the neighbourhood's mean, a "
                "partial-volume class (PV) and the Potts field (&beta;)."
            ),
            # One row that wraps: the class maps beside the posteriors.
            ipw.HBox(
                [
                    *images,
                    _caption(self._classes[0], "intensity alone"),
                    _caption(self._classes[1], "spatial context"),
                ],
                layout={"flex_flow": "row wrap", "grid_gap": "8px"},
            ),
            self._message,
        ]

    # ------------------------------------------------------------ callbacks
    def _on_prior_change(self, name: str, change) -> None:
        if self._balancing:
            return
        with self._guard(f"set P({name})"):
            self._say("")  # the last problem, if any, is over; the new one shows
            self.set_priors(**{name: change["new"]})

    @traitlets.validate("slice_index")
    def _valid_slice(self, proposal):
        depth = self._image.array.shape[0] if self._image.is_volume else 1
        if not 0 <= proposal["value"] < depth:
            raise traitlets.TraitError(
                f"slice_index must lie in [0, {depth - 1}]; got {proposal['value']}"
            )
        return proposal["value"]

    @traitlets.observe("slice_index")
    def _on_slice_index_change(self, _) -> None:
        self._refresh()

    @traitlets.validate("beta")
    def _valid_beta(self, proposal):
        try:
            return validate(rec.classify_tissues, {"beta": proposal["value"]})["beta"]
        except ValueError as exc:
            raise traitlets.TraitError(str(exc)) from None

    @traitlets.observe("beta")
    def _on_beta_change(self, _) -> None:
        self._refresh()

    # -------------------------------------------------------------- drawing
    def _slice(self) -> np.ndarray:
        array = self._image.array
        return array[self.slice_index] if self._image.is_volume else array

    def _refresh(self) -> None:
        if not self._ready:
            return
        boundaries = self.boundaries
        self._chart.update(self._model, boundaries)
        self._density.show()
        image = self._slice()
        self._view.value = _grey_png(image, self._window, 240)
        background = image <= self._range[0]
        for widget, posterior in zip(self._maps, self.posteriors, strict=True):
            shown = probability_image(
                posterior, background=background, color=_BACKGROUND
            )
            widget.value = encode_png(shown, max_size=(240, 240))
        grey = apply_window(image, *self._window)
        for widget, labels in zip(
            self._classes, (self.intensity_labels, self.context_labels), strict=True
        ):
            widget.value = encode_png(overlay(grey, labels, 0.6), max_size=(240, 240))
        unit = self._image.unit
        cuts = " · ".join(f"{a} | {b} at {x:.1f} {unit}" for x, a, b in boundaries)
        volumes = " · ".join(
            f"{name} {ml:.1f} mL (maps {self._truth_ml[name]:.1f} mL)"
            for name, ml in self.volumes_ml.items()
        )
        self._readout.value = (
            f"<b>Decision boundaries:</b> {cuts or 'none'}<br>"
            f"<b>Volume by largest posterior:</b> {volumes}"
        )


class ClassifierExplorer(StagePanel):
    """Modality and region recognition, scored by grouped cross-validation.

    Parameters
    ----------
    dataset : PatchDataset, optional
        Default :func:`medimg_lab.recognition.sample_patches` (8 classes of
        32 px patches, 200 each, 64 px blocks as groups).
    kinds : tuple of str
        Feature kinds to start with.
    classifier : str
        One of :data:`medimg_lab.recognition.CLASSIFIERS`.

    Notes
    -----
    State with setters: :meth:`set_features`, :meth:`set_classifier`,
    ``folds``, ``case``, ``roc_class``; results :attr:`result`
    (:class:`~medimg_lab.recognition.CVResult`), :attr:`case_posterior`.
    """

    case = traitlets.Int(0)
    roc_class = traitlets.Int(0)
    folds = traitlets.Int(5)

    def __init__(
        self,
        dataset: rec.PatchDataset | None = None,
        *,
        kinds: tuple[str, ...] = ("intensity", "lbp"),
        classifier: str = "forest",
        **kwargs,
    ):
        self._dataset = dataset if dataset is not None else rec.sample_patches()
        self._features: dict[tuple[str, ...], np.ndarray] = {}
        self._result: rec.CVResult | None = None
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.set_features(kinds, refresh=False)
        self.set_classifier(classifier, refresh=False)
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    @property
    def kinds(self) -> tuple[str, ...]:
        """The chosen feature kinds."""
        return tuple(k for k, box in self._kind_boxes.items() if box.value)

    def set_features(self, kinds: Sequence[str], *, refresh: bool = True) -> None:
        """Choose the feature kinds, as the check boxes would.

        Parameters
        ----------
        kinds : sequence of str
            One or more of the check boxes' kinds.
        refresh : bool
            Score the new choice now.
        """
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in self._kind_boxes]
        if unknown or not kinds:
            raise ValueError(
                f"kinds must be some of {', '.join(self._kind_boxes)}; got {kinds!r}"
            )
        with self._batch() if refresh else contextlib.nullcontext():
            for kind, box in self._kind_boxes.items():
                box.value = kind in kinds

    def set_classifier(
        self, kind: str | None = None, *, refresh=True, **params
    ) -> None:
        """Set the classifier and its hyperparameters, as the controls would.

        Parameters
        ----------
        kind : str, optional
            One of :data:`~medimg_lab.recognition.CLASSIFIERS`; default the
            current one.
        refresh : bool
            Score the new choice now.
        **params
            Hyperparameters, checked against
            :func:`~medimg_lab.recognition.make_classifier`'s declarations.
        """
        values = dict(params)
        if kind is not None:
            values["kind"] = kind
        checked = validate(rec.make_classifier, values)
        if refresh:
            self._apply(checked)
        else:
            for name, value in checked.items():
                self._controls[name].value = value

    @property
    def result(self) -> rec.CVResult | None:
        """Cross-validated scores of the current choice (None after an error)."""
        return self._result

    @property
    def case_posterior(self) -> dict[str, float]:
        """Out-of-fold ``P(C_k|x)`` of the chosen case."""
        if self._result is None:
            return {}
        row = self._result.proba[self.case]
        return {n: float(p) for n, p in zip(self._result.class_names, row, strict=True)}

    # ---------------------------------------------------------------- build
    def _build(self) -> None:
        names = self._dataset.class_names
        kinds = [
            k for k in rec.KINDS if k != "shape" or self._dataset.masks is not None
        ]
        self._kind_boxes = {
            k: ipw.Checkbox(
                value=False, description=k, indent=False, layout={"width": "100px"}
            )
            for k in kinds
        }
        for box in self._kind_boxes.values():
            box.observe(self._on_kinds_change, "value")
        self._controls = controls_for(rec.make_classifier)
        for control in self._controls.values():
            if hasattr(control, "continuous_update"):
                control.continuous_update = False  # a cross-validation per move
            control.observe(self._on_param_change, "value")
        self._folds = ipw.IntSlider(
            value=self.folds,
            min=2,
            max=10,
            description="folds",
            continuous_update=False,
        )
        traitlets.link((self._folds, "value"), (self, "folds"))
        self._case_slider = ipw.IntSlider(
            value=0, min=0, max=len(self._dataset) - 1, description="case"
        )
        traitlets.link((self._case_slider, "value"), (self, "case"))
        self._roc_pick = ipw.Dropdown(
            options=[(n, k) for k, n in enumerate(names)], description="ROC of"
        )
        traitlets.link((self._roc_pick, "value"), (self, "roc_class"))
        self._scores = ipw.HTML()
        self._confusion = _Chart(360, 330, margins=(0.28, 0.3, 0.98, 0.98))
        self._confusion_chart = plots.ConfusionChart(self._confusion.ax, names)
        self._roc = _Chart(330, 330, margins=_ROC_MARGINS)
        self._roc_chart = plots.RocChart(self._roc.ax)
        self._bars = _Chart(300, 200, margins=(0.3, 0.22, 0.97, 0.97))
        self._bars_chart = plots.PosteriorBars(self._bars.ax, names)
        self._patch = ipw.Image(format="png", layout={"width": "128px"})
        self._case_text = ipw.HTML()
        self._message = ipw.HTML()
        self.children = [
            ipw.HBox([ipw.HTML("<b>features</b>"), *self._kind_boxes.values()]),
            ipw.HBox(
                [
                    ipw.VBox(list(self._controls.values())),
                    ipw.VBox([self._folds, self._roc_pick]),
                ]
            ),
            self._scores,
            ipw.HBox([self._confusion.widget, self._roc.widget]),
            ipw.HBox(
                [
                    ipw.VBox([self._case_slider, self._case_text, self._patch]),
                    self._bars.widget,
                ]
            ),
            self._message,
        ]

    # ------------------------------------------------------------ callbacks
    def _on_kinds_change(self, _) -> None:
        self._refresh()

    def _on_param_change(self, _) -> None:
        self._refresh()

    @traitlets.observe("folds")
    def _on_folds_change(self, _) -> None:
        self._refresh()

    @traitlets.observe("case")
    def _on_case_change(self, _) -> None:
        if self._ready:
            self._show_case()

    @traitlets.observe("roc_class")
    def _on_roc_class_change(self, _) -> None:
        if self._ready and self._result is not None:
            self._show_roc()

    @traitlets.validate("case")
    def _valid_case(self, proposal):
        if not 0 <= proposal["value"] < len(self._dataset):
            raise traitlets.TraitError(
                f"case must lie in [0, {len(self._dataset) - 1}]; got "
                f"{proposal['value']}"
            )
        return proposal["value"]

    # -------------------------------------------------------------- drawing
    def _matrix(self) -> np.ndarray:
        kinds = self.kinds
        if kinds not in self._features:
            self._features[kinds] = rec.patch_features(self._dataset, kinds=kinds)[0]
        return self._features[kinds]

    def _refresh(self) -> None:
        if not self._ready:
            return
        if not self.kinds:
            self._result = None
            self._say("Tick at least one feature kind.")
            return
        self._say("Cross-validating...", ok=True)
        try:
            ds = self._dataset
            self._result = rec.evaluate(
                rec.make_classifier(**self.params),
                self._matrix(),
                ds.labels,
                ds.groups,
                class_names=ds.class_names,
                folds=self.folds,
                seed=self.params.get("seed", 0),
            )
        except ValueError as exc:
            self._result = None
            self._say(str(exc))
            return
        self._say("")
        r = self._result
        low, high = r.accuracy_ci
        aucs = " · ".join(
            f"{n} {a:.3f}" for n, a in zip(r.class_names, r.auc, strict=True)
        )
        self._scores.value = (
            f"<b>{self.folds}-fold grouped cross-validation</b> ({len(r.labels)} "
            f"patches, {len(np.unique(ds.groups))} groups): accuracy "
            f"<b>{r.accuracy:.3f}</b> (95 % CI {low:.3f}-{high:.3f})<br>"
            f"AUC, one class against the rest: {aucs}"
        )
        self._confusion_chart.update(r.confusion)
        self._confusion.show()
        self._show_roc()
        self._show_case()

    def _show_roc(self) -> None:
        r, k = self._result, self.roc_class
        fpr, tpr, _ = r.roc(k)
        low, high = r.auc_ci[k]
        label = f"{r.class_names[k]}: AUC {r.auc[k]:.3f} ({low:.3f}-{high:.3f})"
        self._roc_chart.update("class", fpr, tpr, label=label)
        self._roc.show()

    def _show_case(self) -> None:
        ds, k = self._dataset, self.case
        patch = ds.patches[k]
        self._patch.value = _grey_png(patch, auto_window(patch), 128)
        if self._result is None:
            return
        self._bars_chart.update(self._result.proba[k])
        self._bars.show()
        truth = ds.class_names[ds.labels[k]]
        said = ds.class_names[self._result.predicted[k]]
        mark = "right" if truth == said else "wrong"
        self._case_text.value = (
            f"true: <b>{truth}</b>, predicted: <b>{said}</b> ({mark}); "
            f"from {ds.sources[k]}, group {ds.groups[k]}"
        )


class LesionExplorer(StagePanel):
    """Detectability: the ROC of lesion detection as the contrast changes.

    Parameters
    ----------
    contrast : float
        Initial lesion contrast, in the brain MRI's units (a.u.).
    keep : int
        ROC curves of earlier contrasts kept on the chart, faint.

    Notes
    -----
    State with setters: :meth:`set_params` (``contrast``, ``radius_mm``,
    ``classifier``); results :attr:`result`
    (:class:`~medimg_lab.recognition.LesionROC`) and :attr:`history`.
    """

    def __init__(self, *, contrast: float = 20.0, keep: int = 3, **kwargs):
        self._keep = keep
        self._cache: dict[tuple, rec.LesionROC] = {}
        self._history: list[rec.LesionROC] = []
        self._ready = False
        super().__init__(**kwargs)
        self._build()
        self.set_params(contrast=contrast)
        self._ready = True
        self._refresh()

    # ------------------------------------------------------------------ API
    def set_params(self, **values: Any) -> None:
        """Set ``contrast``, ``radius_mm`` or ``classifier``, as the controls would.

        Parameters
        ----------
        **values
            Checked against :func:`~medimg_lab.recognition.lesion_roc`'s
            declarations.
        """
        self._apply(validate(rec.lesion_roc, self._known(values)))

    @property
    def result(self) -> rec.LesionROC | None:
        """The study at the current settings."""
        return self._history[-1] if self._history else None

    @property
    def history(self) -> list[rec.LesionROC]:
        """Studies shown, oldest first (at most ``keep`` + 1)."""
        return list(self._history)

    # ---------------------------------------------------------------- build
    def _build(self) -> None:
        every = controls_for(rec.lesion_roc, units="a.u.")
        self._controls = {k: every[k] for k in ("contrast", "radius_mm", "classifier")}
        for control in self._controls.values():
            if hasattr(control, "continuous_update"):
                control.continuous_update = False  # a cross-validation per move
            control.observe(lambda _: self._refresh(), "value")
        self._chart_view = _Chart(380, 360, margins=_ROC_MARGINS)
        self._chart = plots.RocChart(self._chart_view.ax, title="lesion against normal")
        self._example = ipw.Image(format="png", layout={"width": "160px"})
        self._readout = ipw.HTML()
        self._message = ipw.HTML()
        self.children = [
            ipw.HBox(
                [
                    ipw.VBox(list(self._controls.values())),
                    _caption(self._example, "a crop with the lesion, 48 mm wide"),
                ]
            ),
            self._readout,
            self._chart_view.widget,
            self._message,
        ]

    # -------------------------------------------------------------- drawing
    def _refresh(self) -> None:
        if not self._ready:
            return
        params = self.params
        key = tuple(sorted(params.items()))
        try:
            if key not in self._cache:
                self._cache[key] = rec.lesion_roc(**params)
        except ValueError as exc:
            self._say(str(exc))
            return
        self._say("")
        result = self._cache[key]
        self._history = [r for r in self._history if r is not result][-self._keep :]
        self._history.append(result)
        for name in list(self._chart._curves):
            self._chart.remove(name)
        for age, r in enumerate(reversed(self._history)):
            low, high = r.auc_ci
            self._chart.update(
                f"{age}",
                r.fpr,
                r.tpr,
                label=f"contrast {r.contrast:g} a.u., r {r.radius_mm:g} mm: "
                f"AUC {r.auc:.2f} ({low:.2f}-{high:.2f})",
                color=plots.COLORS[0] if age == 0 else str(0.45 + 0.15 * age),
                lw=2.0 if age == 0 else 1.0,
            )
        self._chart_view.show()
        low, high = result.auc_ci
        self._readout.value = (
            f"<b>AUC {result.auc:.3f}</b> (95 % CI {low:.3f}-{high:.3f}) from "
            f"{result.n} crops, half with a lesion of {result.contrast:g} a.u. and "
            f"radius {result.radius_mm:g} mm; 0.5 is chance."
        )
        crop = rec.lesion_slices(
            n=2, size=48, contrast=result.contrast, radius_mm=result.radius_mm
        )
        lesion = crop.patches[crop.labels == 1][0]
        self._example.value = _grey_png(lesion, (127.5, 255.0), 160)


class RecognitionPanel(NotebookNote, ipw.VBox):
    """Stage 3 in one panel: the Bayes, classifier and lesion explorers in tabs.

    The explorers are public: :attr:`bayes`, :attr:`classifier`,
    :attr:`lesion`.

    Parameters
    ----------
    **kwargs
        Passed to :class:`ipywidgets.VBox` (``layout`` ...).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bayes = BayesExplorer()
        self.classifier = ClassifierExplorer()
        self.lesion = LesionExplorer()
        tabs = ipw.Tab(children=[self.bayes, self.classifier, self.lesion])
        for k, title in enumerate(("Bayes: tissues", "Classifier", "Lesion ROC")):
            tabs.set_title(k, title)
        self.children = [tabs]
