"""Recipes: an analysis as data, saved as JSON and replayed on any image.

A :class:`Recipe` is an ordered list of :class:`Step` objects, each a
registered operation (see :data:`medimg_lab.params.OPERATIONS`) with its
parameters, plus the step ``"measure"``. Every stage panel's ``.recipe``
(a list of ``{"op": name, "params": {...}}``) is a valid argument::

    processing steps ─▶ one segmentation method ─▶ clean-up steps ─▶ measure
    (composition steps before the segmentation, or after it)

- **Processing** steps (``window_level``, ``clahe``, ``gaussian`` ...)
  transform the image.
- The **segmentation** method (``threshold_otsu``, ``kmeans`` ...) turns the
  processed image into a mask or labels.
- **Clean-up** steps (``fill_holes``, ``keep_largest``, ``remove_small``,
  ``binary_open``, ``binary_close``) work on the foreground ``labels > 0``;
  integer labels keep their value inside the cleaned mask, as in the
  segmentation panel.
- **Composition** steps (``blend``, ``fuse``, ``register``, ``stitch``)
  combine the image with others that the step names as files, and
  ``rigid_transform`` moves it by a known motion; ``blend`` without a
  ``mask`` file blends through the labels of the segmentation before it.
- ``"measure"`` (last, no parameters) records the size of the foreground in
  mm² (2D) or mL (3D) and the mean and SD of the *input* image's values
  inside it, in the input's unit.

Parameters are checked when the recipe is built, against the ranges and
units declared next to each function (:func:`medimg_lab.params.validate`);
so are the order of the steps and whether a step can be replayed at all.
Seeded methods are replayable only with their interactive input in the
parameters (the ``seeded`` field of their declaration): ``region_grow``
with ``"seeds"`` (array indices, so they fit images of one grid),
``watershed`` with ``"markers"`` (``[index..., label]`` per marked pixel).

Files a step reads (the pixel classifier's model, a blend's mask, a
reference image, tiles) are named ``{"path": ..., "sha256": ...}``; a
relative path is read beside the recipe (:meth:`Recipe.load`, or ``base=``),
and a file that is missing or whose SHA-256 differs is refused when the
recipe is built and again before it is read. A model must carry its
digest. :meth:`Recipe.save` copies the files beside the recipe.

>>> import medimg_lab as ml
>>> from medimg_lab.recipe import Recipe
>>> ct = ml.data.sample("head_ct")
>>> recipe = Recipe(
...     [
...         {"op": "gaussian", "params": {"sigma_mm": 1.0}},
...         {"op": "threshold_range", "params": {"low": 300.0, "high": 3000.0}},
...         {"op": "keep_largest", "params": {}},
...         {"op": "measure", "params": {}},
...     ],
...     name="skull",
... )
>>> len(recipe), [step.op for step in recipe][:2]
(4, ['gaussian', 'threshold_range'])
>>> Recipe.from_json(recipe.to_json()) == recipe
True
>>> result = recipe.apply(ct)
>>> result.labels.dtype, result.labels.shape == ct.shape
(dtype('bool'), True)
>>> sorted(result.measurements)[:4]
['area_mm2', 'max_hu', 'mean_hu', 'min_hu']
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _files
from .display import auto_window
from .errors import MedImgError, NotFoundError
from .image import MedImage
from .io._atomic import atomic_write
from .params import OPERATIONS, ParamSpec, operations, validate
from .segmentation.measure import measure as _measure_labels

__all__ = [
    "CLEANUP",  # noqa: F822 (module __getattr__, from the declarations)
    "MEASURE",
    "SCHEMA_VERSION",
    "Recipe",
    "RecipeError",
    "RecipeResult",
    "Step",
]

#: Version of the JSON layout written by :meth:`Recipe.to_dict`.
SCHEMA_VERSION = 1
#: The step that records measurements; handled here, not a registered operation.
MEASURE = "measure"
#: Context a recipe gives its steps itself; no step's parameters may set it.
_CONTEXT = ("spacing", "labels")


def __getattr__(name: str):
    """``CLEANUP`` and ``SEEDED``, read from the declarations when asked for.

    ``CLEANUP``: the clean-up operations (``role="cleanup"``) in the order a
    panel runs them; ``SEEDED``: seeded method -> the parameter holding its
    interactive input. Both are views of :data:`~medimg_lab.params.OPERATIONS`,
    kept for the code that imports them.
    """
    if name == "CLEANUP":
        return tuple(op.name for op in operations(role="cleanup"))
    if name == "SEEDED":
        return {op.name: op.seeded for op in OPERATIONS.values() if op.seeded}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RecipeError(MedImgError, ValueError):
    """A recipe that cannot be built, read or applied.

    Parameters
    ----------
    source, problem, fix : str
        As for :class:`~medimg_lab.errors.MedImgError`; ``source`` names the
        recipe (or file) and the step.
    step : int, optional
        The step's number, counted from 1.
    op : str, optional
        The step's operation.
    """

    def __init__(
        self,
        source: str,
        problem: str,
        fix: str,
        *,
        step: int | None = None,
        op: str | None = None,
    ):
        self.step = step
        self.op = op
        super().__init__(source, problem, fix)


# ------------------------------------------------------------------ steps


def _freeze(value: Any) -> Any:
    """A read-only deep copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return _freeze(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return copy.deepcopy(value)


def _thaw(value: Any) -> Any:
    """Plain JSON-like data again: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Step:
    """One step of a recipe: an operation name and its parameters.

    Parameters
    ----------
    op : str
        A registered operation (``"gaussian"``, ``"threshold_otsu"`` ...) or
        ``"measure"``.
    params : dict
        Keyword arguments of the operation; kept as a read-only copy (lists
        become tuples). :meth:`to_dict` gives plain JSON data back.
    """

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.op, str):
            raise TypeError(f"op must be a str; got {type(self.op).__name__}")
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a dict; got {type(self.params).__name__}")
        if not all(isinstance(k, str) for k in self.params):
            raise TypeError(f"parameter names must be str; got {list(self.params)}")
        object.__setattr__(self, "params", _freeze(self.params))

    def to_dict(self) -> dict[str, Any]:
        """``{"op": ..., "params": {...}}`` as plain, mutable data."""
        return {"op": self.op, "params": _thaw(self.params)}


@dataclass
class RecipeResult:
    """What :meth:`Recipe.apply` gives back.

    Attributes
    ----------
    image : MedImage
        The image after the last processing step (the input when there is
        none), on the input's grid. Steps that leave the input's units
        (window/level gives grey levels 0–255) set ``meta["unit"]`` and a
        window fitted to the new values.
    labels : ([S,] M, N) ndarray or None
        After the segmentation method and clean-up steps: a bool mask, or
        integer labels 0 (background), 1..K; None without a segmentation.
    measurements : dict of str to float
        From the ``"measure"`` step, ``{}`` without one. Names carry units:
        ``n_pixels`` (2D) or ``n_voxels`` (3D), ``area_mm2`` or ``volume_ml``,
        ``n_components`` (face-connected), ``mean_<unit>``, ``sd_<unit>``
        (population SD), ``min_<unit>``, ``max_<unit>`` of the input image in
        the foreground (``mean_hu`` for CT; NaN for an empty mask); for more
        than one label also ``label<k>_area_mm2`` (or ``_volume_ml``),
        ``label<k>_mean_<unit>`` and ``label<k>_sd_<unit>``.
    """

    image: MedImage
    labels: np.ndarray | None = None
    measurements: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------- validation


def _range(spec: ParamSpec) -> str:
    """What ``spec`` allows, as the hint after a bad parameter prints it.

    Ranges are the declaration's own text (:meth:`Param.interval`), as in
    the error before it: ``[0.1, 50]``, or ``(0, inf)`` for an excluded
    minimum.
    """
    p = spec.param
    if p.choices is not None:
        return f"{spec.name} one of {', '.join(map(repr, p.choices))}"
    if spec.type is bool:
        return f"{spec.name} true or false"
    if spec.type in (int, float):
        unit = f" {p.unit}" if p.unit else ""
        kind = "a whole number" if spec.type is int else "a number"
        odd = ", odd" if p.odd else ""
        return f"{spec.name} {kind} in {p.interval()}{unit}{odd}"
    return spec.name


def _where(name: str, number: int, op: str) -> str:
    label = f"recipe {name!r}" if name else "recipe"
    return f"{label}, step {number} ({op})"


def _known() -> str:
    return ", ".join([*sorted(OPERATIONS), MEASURE])


def _kind(op: str) -> str:
    if op == MEASURE:
        return "measure"
    role = OPERATIONS[op].role
    return {"method": "segment", "cleanup": "cleanup", "compose": "compose"}.get(
        role, "process"
    )


def _as_step(item: Any, where: str, number: int) -> Step:
    if isinstance(item, Step):
        return item
    if not isinstance(item, Mapping):
        raise RecipeError(
            where,
            f"is a {type(item).__name__}, not a step.",
            'Give each step as {"op": name, "params": {...}} or a Step.',
            step=number,
        )
    extra = sorted(set(item) - {"op", "params"})
    op = item.get("op")
    if extra or not isinstance(op, str):
        problem = (
            f"has unknown keys {', '.join(map(repr, extra))}."
            if extra
            else f'has no operation name ("op" is {op!r}).'
        )
        raise RecipeError(
            where,
            problem,
            'Give each step as {"op": name, "params": {...}}.',
            step=number,
            op=op if isinstance(op, str) else None,
        )
    params = item.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RecipeError(
            f"{where} ({op})",
            f"has params of type {type(params).__name__}, not a dict.",
            'Give the parameters as {"name": value, ...}.',
            step=number,
            op=op,
        )
    try:
        return Step(op, params)
    except TypeError as exc:
        raise RecipeError(
            f"{where} ({op})",
            f"{exc}.",
            "Name parameters by strings.",
            step=number,
            op=op,
        ) from exc


def _check_step(step: Step, name: str, number: int, base: Path | None = None) -> Step:
    """The step with its parameters validated and coerced; RecipeError if not."""
    op = step.op
    where = _where(name, number, op)

    def fail(problem: str, fix: str) -> RecipeError:
        return RecipeError(where, problem, fix, step=number, op=op)

    if op == MEASURE:
        if step.params:
            raise fail(
                f"takes no parameters; got {', '.join(sorted(step.params))}.",
                'Write {"op": "measure", "params": {}}.',
            )
        return step
    if op not in OPERATIONS:
        close = difflib.get_close_matches(op, [*OPERATIONS, MEASURE], n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise fail("is not a known operation.", f"{hint}Known steps are {_known()}.")
    operation = OPERATIONS[op]
    fn = operation.fn
    for context in _CONTEXT:
        if context in step.params:
            source = (
                "the image the recipe is applied to"
                if context == "spacing"
                else "the recipe's segmentation step"
            )
            raise fail(
                f"sets {context}, which comes from {source}.",
                f"Remove {context} from the parameters.",
            )
    need = operation.seeded
    if need is not None and not step.params.get(need):
        what = "seed points" if need == "seeds" else "marker labels"
        raise fail(
            f"cannot be replayed without its {what}: they were placed by hand "
            f"and the parameters hold no {need!r}.",
            f"Add {need!r} to the parameters"
            + (
                " as a list of array indices [row, col] or [slice, row, col]."
                if need == "seeds"
                else " as a list of marked pixels [row, col, label] or "
                "[slice, row, col, label] (medimg_lab.segmentation.region."
                "marker_points gives them)."
            ),
        )
    params = _thaw(step.params)
    try:
        checked = validate(fn, params)
    except (ValueError, TypeError) as exc:
        specs = operation.params
        allowed = "; ".join(_range(s) for s in specs.values()) or "none"
        raise fail(f"{exc}.", f"Allowed parameters: {allowed}.") from exc
    if need == "seeds":
        _check_seeds(checked["seeds"], fail)
    elif need == "markers":
        _check_markers(checked["markers"], fail)
    for key in operation.files:
        if key in checked and checked[key] is not None:
            checked[key] = _resolve_files(checked[key], key, base, fail)
    missing = [
        key
        for key, spec in operation.params.items()
        if spec.default is inspect.Parameter.empty and key not in checked
    ]
    if missing:
        raise fail(
            f"needs {', '.join(missing)}, which the parameters do not hold.",
            f"Add {', '.join(missing)}: "
            + "; ".join(operation.params[k].param.doc for k in missing)
            + ".",
        )
    try:
        json.dumps(checked, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise fail(
            f"has parameters that JSON cannot hold ({exc}).",
            "Use numbers, strings, booleans, None and lists of them.",
        ) from exc
    return Step(op, checked)


def _resolve_files(value: Any, key: str, base: Path | None, fail) -> Any:
    """File references with absolute paths, after their files and digests were found.

    A RecipeError naming the step if not.
    """
    if isinstance(value, list):
        return [_resolve_files(v, key, base, fail) for v in value]
    if not isinstance(value, Mapping):
        raise fail(
            f"holds the data of {key!r} itself; a recipe names files.",
            f'Give {key} as {{"path": ..., "sha256": ...}} of a saved file.',
        )
    try:
        path = _files.verify(value, what=key, base=base)
    except MedImgError as exc:
        raise fail(f"names {key} {exc.source}, which {exc.problem}", exc.fix) from exc
    return {"path": str(path.resolve()), "sha256": value.get("sha256")}


def _check_markers(markers: Any, fail) -> None:
    ok = isinstance(markers, list) and markers
    ok = ok and all(
        isinstance(m, list)
        and len(m) in (3, 4)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in m)
        and m[-1] >= 1
        for m in markers
    )
    if not ok or len({len(m) for m in markers}) != 1:
        raise fail(
            "has markers that are not marked pixels [index..., label] of one "
            "dimension with labels from 1.",
            "Give markers as [[row, col, label], ...] or [[slice, row, col, "
            "label], ...] (medimg_lab.segmentation.region.marker_points).",
        )


def _check_seeds(seeds: Any, fail) -> None:
    ok = isinstance(seeds, list) and all(
        isinstance(s, list)
        and len(s) in (2, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in s)
        for s in seeds
    )
    if not ok or len({len(s) for s in seeds}) != 1:
        raise fail(
            f"has seeds {seeds!r}, which are not one or more array indices of one "
            "dimension.",
            "Give seeds as [[row, col], ...] or [[slice, row, col], ...].",
        )


def _check_order(steps: tuple[Step, ...], name: str) -> None:
    segmented_at = None
    for number, step in enumerate(steps, 1):
        kind = _kind(step.op)
        where = _where(name, number, step.op)
        if kind == "process" and segmented_at is not None:
            raise RecipeError(
                where,
                f"is a processing step after the segmentation in step {segmented_at}"
                "; processing works on the image, not on labels.",
                "Move the processing steps before the segmentation step.",
                step=number,
                op=step.op,
            )
        if kind == "segment" and segmented_at is not None:
            raise RecipeError(
                where,
                f"is a second segmentation method (step {segmented_at} is "
                f"{steps[segmented_at - 1].op}); a recipe makes one segmentation.",
                "Keep one method, or make a recipe for each.",
                step=number,
                op=step.op,
            )
        if kind in ("cleanup", "measure") and segmented_at is None:
            what = "cleans up a mask" if kind == "cleanup" else "measures a mask"
            raise RecipeError(
                where,
                f"{what}, but no segmentation step comes before it.",
                "Put a segmentation method (threshold_range, threshold_otsu, "
                f"kmeans ...) before {step.op}.",
                step=number,
                op=step.op,
            )
        if kind == "measure" and number != len(steps):
            raise RecipeError(
                where,
                "must be the last step; later steps would change what it measured.",
                f"Move {MEASURE!r} to the end.",
                step=number,
                op=step.op,
            )
        if (
            kind == "compose"
            and segmented_at is None
            and "labels" in inspect.signature(OPERATIONS[step.op].fn).parameters
            and step.params.get("mask") is None
        ):
            raise RecipeError(
                where,
                "blends through the labels of a segmentation, but no segmentation "
                "step comes before it.",
                "Put a segmentation method before it, or give mask as a saved "
                'mask file {"path": ..., "sha256": ...}.',
                step=number,
                op=step.op,
            )
        if kind == "segment":
            segmented_at = number


# ------------------------------------------------------------------ apply


def _slug(unit: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "", unit.lower())
    return slug or "value"


def _measure(labels: np.ndarray, image: MedImage) -> dict[str, float]:
    """Foreground size and statistics of ``image`` inside ``labels > 0``."""
    from scipy import ndimage

    mask = labels > 0
    spacing = image.spacing
    unit = _slug(image.unit)
    volume = mask.ndim == 3
    size = "volume_ml" if volume else "area_mm2"
    count = int(mask.sum())
    voxel = float(np.prod(spacing))
    out: dict[str, float] = {
        "n_voxels" if volume else "n_pixels": float(count),
        size: count * voxel / (1000.0 if volume else 1.0),
        "n_components": float(ndimage.label(mask)[1]),
    }
    values = image.array[mask].astype(np.float64)
    for stat, fn in (
        ("mean", np.mean),
        ("sd", np.std),
        ("min", np.min),
        ("max", np.max),
    ):
        out[f"{stat}_{unit}"] = float(fn(values)) if count else float("nan")
    inside = labels[mask] if labels.dtype != bool else labels[:0]
    if inside.size and inside.min() != inside.max():  # more than one label
        per_label = _measure_labels(labels, image.array, spacing=spacing)
        for row in per_label.itertuples(index=False):
            k = int(row.label)
            out[f"label{k}_{size}"] = float(getattr(row, size))
            out[f"label{k}_mean_{unit}"] = float(row.mean)
            out[f"label{k}_sd_{unit}"] = float(row.sd)
    return out


def _result_image(array: np.ndarray, image: MedImage, units: str | None) -> MedImage:
    if units is None:
        return MedImage(
            array,
            spacing=image.spacing,
            modality=image.modality,
            window=image.window,
            meta=dict(image.meta),
        )
    if units == "grey level":  # window/level output: 0-255 by construction
        window = (127.5, 255.0)
    else:
        window = auto_window(array.astype(np.uint8) if array.dtype == bool else array)
    return MedImage(
        array,
        spacing=image.spacing,
        modality=image.modality,
        window=window,
        meta={**image.meta, "unit": units},
    )


def _beside(file: Path, folder: Path, recipe: Path, number: int, tag: str) -> str:
    """``file``'s path relative to ``folder``, copying it there if outside."""
    file = file.resolve()
    if not file.is_relative_to(folder):
        target = folder / f"{recipe.stem}-step{number}-{tag}{''.join(file.suffixes)}"
        if not target.is_file() or _files.sha256_of(target) != _files.sha256_of(file):
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp: shutil.copyfile(file, tmp), overwrite=True)
        file = target
    return file.relative_to(folder).as_posix()


# ----------------------------------------------------------------- recipe


class Recipe:
    """An ordered list of steps, validated at once.

    Parameters
    ----------
    steps : iterable of Step or dict
        :class:`Step` objects or ``{"op": name, "params": {...}}`` dicts, as
        a panel's ``.recipe`` gives them.
    name : str
        A name for people and file listings.
    base : path, optional
        The folder that relative file paths in the steps (a model, a mask, a
        reference image) are read from; default the current folder.
        :meth:`load` sets it to the recipe file's folder.

    Raises
    ------
    RecipeError
        For an unknown operation (with the known ones), parameters outside
        their declared range, steps in an order that cannot work (clean-up or
        measure before a segmentation, processing after it, two segmentation
        methods, measure not last), steps that need interactive input the
        parameters do not hold, and files that are missing or whose SHA-256
        is not the one named.
    """

    def __init__(self, steps, *, name: str = "", base: str | os.PathLike | None = None):
        if not isinstance(name, str):
            raise TypeError(f"name must be a str; got {type(name).__name__}")
        if isinstance(steps, str | bytes | Mapping) or not hasattr(steps, "__iter__"):
            raise TypeError(
                "steps must be a list of Step objects or {'op', 'params'} dicts; "
                f"got {type(steps).__name__}"
            )
        label = f"recipe {name!r}" if name else "recipe"
        items = list(steps)
        if not items:
            raise RecipeError(
                label,
                "has no steps.",
                'Give at least one step, e.g. {"op": "gaussian", "params": {}}.',
            )
        checked = []
        for number, item in enumerate(items, 1):
            step = _as_step(item, f"{label}, step {number}", number)
            checked.append(_check_step(step, name, number, base and Path(base)))
        self._steps = tuple(checked)
        self._name = name
        _check_order(self._steps, name)

    @property
    def steps(self) -> tuple[Step, ...]:
        """The validated steps, in order."""
        return self._steps

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self._name

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self._steps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        chain = " → ".join(s.op for s in self._steps)
        name = f"{self._name!r}, " if self._name else ""
        return f"Recipe({name}{chain})"

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """``{"schema_version": 1, "name": ..., "steps": [{"op", "params"}]}``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self._name,
            "steps": [s.to_dict() for s in self._steps],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "recipe",
        base: str | os.PathLike | None = None,
    ) -> Recipe:
        """A recipe from :meth:`to_dict` data; the schema version is checked.

        Parameters
        ----------
        data : mapping
            ``{"schema_version": ..., "steps": [...]}``.
        source : str
            How messages name the recipe (its file, say).
        base : str or os.PathLike, optional
            Folder that the steps' relative file paths start from; default
            the working folder.

        Returns
        -------
        Recipe

        Raises
        ------
        RecipeError
            If ``schema_version`` is missing, not this version (a newer
            medimg-lab wrote it), or the content is not a recipe.
        """
        if not isinstance(data, Mapping):
            raise RecipeError(
                source,
                f"holds a {type(data).__name__}, not a recipe object.",
                'A recipe is {"schema_version": 1, "name": ..., "steps": [...]}.',
            )
        if "schema_version" not in data:
            raise RecipeError(
                source,
                "has no schema_version, so it is not known which layout it uses; "
                f"this medimg-lab reads schema version {SCHEMA_VERSION}.",
                f'Add "schema_version": {SCHEMA_VERSION} if the file was written '
                "for this layout, or save it again with Recipe.save.",
            )
        version = data["schema_version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RecipeError(
                source,
                f"has schema_version {version!r}, which is not a version "
                "(a whole number from 1).",
                f"This medimg-lab reads schema version {SCHEMA_VERSION}.",
            )
        if version != SCHEMA_VERSION:
            raise RecipeError(
                source,
                f"has schema version {version}, written by a newer medimg-lab; "
                f"this medimg-lab reads schema version {SCHEMA_VERSION}.",
                "Upgrade medimg-lab (pip install -U medimg-lab), or save the "
                f"recipe again with a version that writes schema {SCHEMA_VERSION}.",
            )
        extra = sorted(set(data) - {"schema_version", "name", "steps"})
        if extra:
            raise RecipeError(
                source,
                f"has unknown keys {', '.join(map(repr, extra))}.",
                'Keep only "schema_version", "name" and "steps".',
            )
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise RecipeError(
                source,
                f'has "steps" of type {type(steps).__name__}, not a list.',
                'Give "steps" as a list of {"op": name, "params": {...}}.',
            )
        name = data.get("name", "")
        if not isinstance(name, str):
            raise RecipeError(
                source,
                f'has "name" of type {type(name).__name__}, not a string.',
                'Give "name" as a string.',
            )
        return cls(steps, name=name, base=base)

    def to_json(self) -> str:
        """The recipe as indented JSON text (:meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(
        cls,
        text: str | bytes,
        *,
        source: str = "recipe",
        base: str | os.PathLike | None = None,
    ) -> Recipe:
        """A recipe from :meth:`to_json` text.

        Parameters
        ----------
        text : str or bytes
            JSON (bytes as UTF-8).
        source : str
            How messages name the recipe (its file, say).
        base : str or os.PathLike, optional
            Folder that the steps' relative file paths start from; default
            the working folder.

        Returns
        -------
        Recipe

        Raises
        ------
        RecipeError
            If the text is not JSON (with line and column) or not a recipe.
        """

        def constant(value: str):
            raise ValueError(f"{value} is not valid JSON")

        try:
            data = json.loads(text, parse_constant=constant)
        except json.JSONDecodeError as exc:
            raise RecipeError(
                source,
                f"is not valid JSON: {exc.msg} at line {exc.lineno} column "
                f"{exc.colno}.",
                "Fix the text, or save the recipe again with Recipe.save.",
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecipeError(
                source,
                f"is not valid JSON: {exc}.",
                "Fix the text, or save the recipe again with Recipe.save.",
            ) from exc
        return cls.from_dict(data, source=source, base=base)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the recipe as JSON, atomically, with its files beside it.

        The files the steps name (a model, a mask, a reference image) are
        named by paths relative to the recipe's folder, with their SHA-256;
        a file outside that folder is copied beside the recipe first
        (``<name>-step<k>-<parameter><suffix>``), so that the folder holds
        everything the recipe reads.

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file to write.
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        path = Path(path)
        data = self.to_dict()
        folder = path.parent.resolve()
        for number, step in enumerate(data["steps"], 1):
            for key in OPERATIONS[step["op"]].files if step["op"] != MEASURE else ():
                value = step["params"].get(key)
                if value is None:
                    continue
                many = isinstance(value, list)
                refs = value if many else [value]
                for k, ref in enumerate(refs):
                    tag = f"{key}{k + 1}" if many else key
                    ref["path"] = _beside(Path(ref["path"]), folder, path, number, tag)
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        return atomic_write(
            path,
            lambda tmp: tmp.write_text(text, encoding="utf-8"),
            overwrite=overwrite,
        )

    @property
    def files(self) -> list[Path]:
        """The files the steps name (a model, a mask, images), absolute."""
        found = []
        for step in self._steps:
            if step.op == MEASURE:
                continue
            for key in OPERATIONS[step.op].files:
                value = _thaw(step.params).get(key)
                for ref in value if isinstance(value, list) else [value]:
                    if isinstance(ref, dict):
                        found.append(Path(ref["path"]))
        return found

    def to_zip(self, name: str = "recipe.json") -> bytes:
        """The recipe and the files it names, as one zip to download or send.

        The zip holds ``name`` and the files beside it, as :meth:`save`
        writes them (relative paths, SHA-256); unpacked anywhere,
        :meth:`load` replays it.

        Parameters
        ----------
        name : str
            The recipe's file name inside the zip.

        Returns
        -------
        bytes
            The zip file.
        """
        import io
        import tempfile
        import zipfile

        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory() as folder:
            self.save(Path(folder) / name)
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(Path(folder).iterdir()):
                    archive.write(path, path.name)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        """Read a recipe saved by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The recipe's JSON file; the files it names are found beside it.

        Returns
        -------
        Recipe

        Raises
        ------
        NotFoundError
            If the file does not exist.
        RecipeError
            If it is a folder, not UTF-8 JSON, or not a valid recipe; the
            message starts with the path.
        """
        path = Path(path)
        if not path.exists():
            raise NotFoundError(
                str(path),
                "does not exist.",
                "Check the path, or save a recipe there with Recipe.save.",
            )
        if path.is_dir():
            raise RecipeError(
                str(path), "is a folder, not a recipe file.", "Give a .json file."
            )
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecipeError(
                str(path),
                f"is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                "Give a recipe saved by Recipe.save.",
            ) from exc
        try:
            return cls.from_json(text, source=str(path), base=path.parent)
        except RecipeError as exc:
            if exc.source.startswith(str(path)):
                raise
            raise RecipeError(
                f"{path}: {exc.source}", exc.problem, exc.fix, step=exc.step, op=exc.op
            ) from exc

    # ------------------------------------------------------------ apply
    def apply(self, image: MedImage) -> RecipeResult:
        """Run the steps on one image, with its spacing.

        Parameters
        ----------
        image : MedImage
            A grey 2D image or volume; it is not modified.

        Returns
        -------
        RecipeResult
            The processed image, the labels and the measurements.

        Raises
        ------
        TypeError
            If ``image`` is not a :class:`~medimg_lab.MedImage`.
        RecipeError
            For a colour image, or a step that fails on this image (naming
            the step).
        """
        if not isinstance(image, MedImage):
            raise TypeError(
                f"image must be a MedImage (medimg_lab.load gives one); got "
                f"{type(image).__name__}"
            )
        label = f"recipe {self._name!r}" if self._name else "recipe"
        if image.is_color:
            raise RecipeError(
                f"{label} on {image.source or repr(image)}",
                "got an RGB image; recipes work on grey 2D images and volumes.",
                "Convert the image to grey first.",
            )
        array, labels, measurements = image.array, None, {}
        segmented_on = array
        units: str | None = None
        spacing = image.spacing
        for number, step in enumerate(self._steps, 1):
            kind = _kind(step.op)
            params = _thaw(step.params)
            try:
                if kind == "measure":
                    measured = image
                    if segmented_on.shape != image.array.shape:  # a new grid
                        measured = _result_image(segmented_on, image, units)
                    measurements = _measure(labels, measured)
                    continue
                op = OPERATIONS[step.op]
                if kind in ("process", "compose"):
                    out = np.asarray(
                        op.run(array, params, spacing=spacing, labels=labels)
                    )
                    if labels is not None and out.shape[: labels.ndim] != labels.shape:
                        raise ValueError(
                            f"it gives an image of shape {out.shape}, not the "
                            f"labels' {labels.shape}; put steps that change the "
                            "grid before the segmentation"
                        )
                    array = out
                    if not op.keeps_units:
                        units = (
                            "grey level"
                            if step.op == "window_level" or array.dtype == np.uint8
                            else "a.u."
                        )
                elif kind == "segment":
                    segmented_on = array
                    labels = np.asarray(op.run(array, params, spacing=spacing))
                else:
                    mask = np.asarray(op.run(labels > 0, params, spacing=spacing))
                    labels = (
                        mask
                        if labels.dtype == bool
                        else np.where(mask, np.maximum(labels, 1), 0).astype(
                            labels.dtype
                        )
                    )
            except MedImgError as exc:
                source = image.source or repr(image)
                raise RecipeError(
                    f"{_where(self._name, number, step.op)} on {source}",
                    f"failed: {exc}",
                    "Check the files the step names.",
                    step=number,
                    op=step.op,
                ) from exc
            except (ValueError, TypeError) as exc:
                source = image.source or repr(image)
                raise RecipeError(
                    f"{_where(self._name, number, step.op)} on {source}",
                    f"failed: {exc}.",
                    "Check that the step's parameters suit this image.",
                    step=number,
                    op=step.op,
                ) from exc
        return RecipeResult(
            image=_result_image(array, image, units),
            labels=labels,
            measurements=measurements,
        )
