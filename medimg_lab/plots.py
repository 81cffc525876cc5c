"""Charts of the recognition stage, drawn with matplotlib and updated in place.

Each chart draws on an ``Axes`` it is given and keeps its artists, so that
``update(...)`` moves them without rebuilding the figure: the path a live
slider takes. :func:`figure` makes a figure that belongs to no pyplot state
(nothing is shown as a side effect) and :func:`render` turns it into an RGB
array for :func:`medimg_lab.display.encode_png`.

- :class:`DensityChart`: the intensity histogram with the class-conditional
  densities ``P(x|C_k) P(C_k)``, their sum ``P(x)`` and the decision
  boundaries.
- :class:`RocChart`: ROC curves with their AUC.
- :class:`ConfusionChart`: a confusion matrix with its counts.
- :class:`PosteriorBars`: ``P(C_k|x)`` of one case.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "ConfusionChart",
    "DensityChart",
    "PosteriorBars",
    "RocChart",
    "figure",
    "render",
]

#: Class colours (colour-blind safe, Okabe–Ito).
COLORS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)


def figure(
    width_px: int = 480,
    height_px: int = 260,
    *,
    margins: tuple[float, float, float, float] = (0.14, 0.18, 0.98, 0.95),
    dpi: int = 96,
):
    """A matplotlib ``Figure`` with one Axes and an Agg canvas, outside pyplot.

    Parameters
    ----------
    width_px, height_px : int
        Size in pixels.
    margins : (left, bottom, right, top)
        Where the axes sit, as fractions of the figure.
    dpi : int
        Pixels per inch of the rendering.

    Returns
    -------
    (Figure, Axes)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    left, bottom, right, top = margins
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    ax = fig.add_subplot()
    return fig, ax


def render(fig) -> np.ndarray:
    """Draw ``fig`` and return its pixels, ``(height, width, 3)`` uint8 RGB.

    Parameters
    ----------
    fig : matplotlib Figure
        With a canvas that has ``buffer_rgba`` (Agg, as :func:`figure` makes).

    Returns
    -------
    (height, width, 3) uint8 ndarray
    """
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _color(k: int) -> str:
    return COLORS[k % len(COLORS)]


class DensityChart:
    """Histogram of intensities with ``P(x|C_k) P(C_k)`` and the boundaries.

    Parameters
    ----------
    ax : matplotlib Axes
    values : ndarray
        The intensities the model classifies (e.g. the labelled voxels).
    value_range : (low, high)
        Intensity axis, in ``unit``.
    unit : str
        Unit of the intensities, shown on the axis.
    bins : int
        Histogram bars.

    Notes
    -----
    The histogram is a density (area 1), the same scale as ``P(x)``: where
    the model fits, the black ``P(x)`` curve follows the bars.
    """

    def __init__(
        self,
        ax,
        values: np.ndarray,
        value_range: tuple[float, float],
        *,
        unit: str = "a.u.",
        bins: int = 128,
    ):
        self.ax = ax
        self.x = np.linspace(*value_range, 512)
        ax.hist(
            np.ravel(values),
            bins=bins,
            range=value_range,
            density=True,
            color="0.8",
            label="voxels",
        )
        self._curves: list = []
        self._evidence = None
        self._lines: list = []
        self._unit = unit
        ax.set_xlim(*value_range)
        ax.set_xlabel(f"intensity x ({unit})")
        ax.set_ylabel(f"density (1/{unit})")

    def update(self, model, boundaries: Sequence[tuple[float, str, str]] = ()):
        """Draw ``model``'s curves (a one-feature ``GaussianBayes``) and boundaries.

        Parameters
        ----------
        model : GaussianBayes
            Fitted on one feature, the intensity.
        boundaries : sequence of (float, str, str)
            ``(x, left class, right class)`` of each decision boundary, in
            the axis' unit (:func:`~medimg_lab.recognition.decision_boundaries`).
        """
        joint = model.likelihood(self.x[:, None]) * model.prior
        if not self._curves:
            self._curves = [
                self.ax.plot(self.x, joint[:, k], color=_color(k), lw=1.8)[0]
                for k in range(joint.shape[1])
            ]
            for line, name in zip(self._curves, model.classes_, strict=True):
                line.set_label(f"P(x|{name}) P({name})")
            (self._evidence,) = self.ax.plot(
                self.x, joint.sum(axis=1), color="k", lw=1, ls="--", label="P(x)"
            )
            self.ax.legend(fontsize=7, loc="upper left", frameon=False)
        for line, column in zip(self._curves, joint.T, strict=True):
            line.set_ydata(column)
        self._evidence.set_ydata(joint.sum(axis=1))
        for line in self._lines:
            line.remove()
        self._lines = [
            self.ax.axvline(x, color="k", lw=0.8, ls=":") for x, _, _ in boundaries
        ]
        top = max(float(joint.sum(axis=1).max()), 1e-12)
        tallest = max((bar.get_height() for bar in self.ax.patches), default=0.0)
        self.ax.set_ylim(0, max(top, tallest) * 1.1)

    @property
    def unit(self) -> str:
        """Unit of the intensity axis."""
        return self._unit


class RocChart:
    """ROC curves: false-positive fraction against true-positive fraction.

    Parameters
    ----------
    ax : matplotlib Axes
    title : str
        Shown above the axes when given.
    """

    def __init__(self, ax, *, title: str = ""):
        self.ax = ax
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false-positive fraction (1 - specificity)")
        ax.set_ylabel("true-positive fraction")
        if title:
            ax.set_title(title, fontsize=9)
        self._curves: dict[str, object] = {}

    def update(self, name: str, fpr, tpr, *, label: str, color=None, lw=1.8):
        """Draw or move the curve ``name``; ``label`` goes into the legend.

        Parameters
        ----------
        name : str
            Which curve: a new name draws one, a known name moves it.
        fpr, tpr : (n,) array_like
            False- and true-positive fractions, each in [0, 1].
        label : str
            The legend's text (the AUC, say).
        color : str, optional
            A matplotlib colour; default the next of :data:`COLORS`.
        lw : float
            Line width in points.
        """
        line = self._curves.get(name)
        if line is None:
            color = color or _color(len(self._curves))
            (line,) = self.ax.step(fpr, tpr, where="post", color=color, lw=lw)
            self._curves[name] = line
        else:
            line.set_data(fpr, tpr)
        line.set_label(label)
        self.ax.legend(fontsize=7, loc="lower right", frameon=False)

    def remove(self, name: str) -> None:
        """Take the curve ``name`` away.

        Parameters
        ----------
        name : str
            A curve of :meth:`update`; an unknown name does nothing.
        """
        line = self._curves.pop(name, None)
        if line is not None:
            line.remove()


class ConfusionChart:
    """A confusion matrix: row true class, column predicted, counts written.

    Parameters
    ----------
    ax : matplotlib Axes
    class_names : sequence of str
        The K classes, in the matrix's order.
    """

    def __init__(self, ax, class_names: Sequence[str]):
        self.ax = ax
        K = len(class_names)
        self._image = ax.imshow(np.zeros((K, K)), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(K), class_names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(K), class_names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        self._texts = [
            [ax.text(j, i, "", ha="center", va="center", fontsize=7) for j in range(K)]
            for i in range(K)
        ]

    def update(self, matrix: np.ndarray) -> None:
        """Show the counts of ``matrix`` (K, K); shading is per true class.

        Parameters
        ----------
        matrix : (K, K) array_like of int
            Counts, row the true class and column the predicted one.
        """
        matrix = np.asarray(matrix)
        rows = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        shade = matrix / rows
        self._image.set_data(shade)
        for i, row in enumerate(self._texts):
            for j, text in enumerate(row):
                text.set_text(str(int(matrix[i, j])) if matrix[i, j] else "")
                text.set_color("white" if shade[i, j] > 0.6 else "black")


class PosteriorBars:
    """Horizontal bars of ``P(C_k|x)`` for one case.

    Parameters
    ----------
    ax : matplotlib Axes
    class_names : sequence of str
        The K classes, one bar each.
    """

    def __init__(self, ax, class_names: Sequence[str]):
        self.ax = ax
        K = len(class_names)
        self._bars = ax.barh(range(K), np.zeros(K), color=[_color(k) for k in range(K)])
        ax.set_yticks(range(K), class_names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.15)
        ax.set_xticks([0, 0.5, 1])
        ax.set_xlabel("posterior P(C_k|x)")
        self._texts = [ax.text(0, k, "", va="center", fontsize=7) for k in range(K)]

    def update(self, posterior: Sequence[float]) -> None:
        """Set the bar lengths to ``posterior`` (K,), each in [0, 1].

        Parameters
        ----------
        posterior : sequence of float
            ``P(C_k|x)`` of the K classes, each in [0, 1].
        """
        for bar, text, p in zip(self._bars, self._texts, posterior, strict=True):
            bar.set_width(float(p))
            text.set_x(float(p) + 0.01)
            text.set_text(f"{p:.2f}")
