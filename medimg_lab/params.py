"""Parameters declared once, next to the function that uses them.

A tunable option carries its range, step, unit and description as
``typing.Annotated`` metadata on the signature; its default is the
signature's default. Widgets build sliders from it, recipes validate JSON
against it and the CLI documents flags with it::

    @operation("processing", "Gaussian")
    def gaussian(
        image,
        *,
        sigma_mm: Annotated[float, Param(0.1, 20, 0.1, "mm", "SD")] = 1.0,
        spacing=None,
    ): ...

:func:`operation` declares the function an operation: its stage, label,
role in a recipe (``process``, ``method``, ``cleanup``, ``compose``), the
parameter that carries a seeded method's input, the dimensions and the kind
of image it takes. Nothing registers itself on import: :data:`OPERATIONS`
resolves each name through one explicit table, ``_TABLE`` (name ->
module), importing a module only when one of its operations is looked up;
``medimg-lab ops`` lists them from the declarations.

The declaration is the one rulebook. A recipe checks its JSON with
:meth:`ParamSpec.check`, and so does every direct call: :func:`operation`
(and :func:`declared`, for declared functions that are not operations)
wraps the function so that each declared argument it is given is checked
and coerced by the same :meth:`ParamSpec.check`, with the same message
(``"gaussian: sigma_mm must lie in [0.1, 50] mm; got 80"``), before the
function runs. Defaults are not re-checked. The wrapper keeps the
function's name, docstring, signature and type hints
(:func:`functools.wraps`), so :func:`parameters`, :func:`inspect.signature`
and the widgets read it as they read the function. The check costs about a
microsecond per argument given.

Where the range a slider should offer is narrower than the valid range (a
size that may reach 10⁶ mm², usually set below 1000), ``Param.slider``
declares the slider's range next to the valid ``min`` and ``max``.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OPERATIONS",
    "ROLES",
    "Connectivity",
    "FileRef",
    "Operation",
    "Param",
    "ParamSpec",
    "Seed",
    "declared",
    "get_operation",
    "operation",
    "operations",
    "parameters",
    "validate",
]


@dataclass(frozen=True)
class Param:
    """Range, step, unit and meaning of one parameter.

    Parameters
    ----------
    min, max : float, optional
        The valid range of a number, inclusive (see ``exclusive_min``).
        Every call is checked against it, direct or from a recipe.
    step : float, optional
        Slider step for numbers.
    unit : str
        Unit shown next to the value (``"mm"``, ``"HU"``, ``""``).
    doc : str
        One line saying what the parameter does.
    choices : tuple, optional
        The allowed values of a choice parameter.
    odd : bool
        Integers that must be odd (kernel sizes).
    scale : {"", "level", "span", "log"}
        For values in the image's units: ``"level"`` ranges over the image's
        values (a window center), ``"span"`` over differences of them (a
        window width, a noise SD). Controls take their range from the image.
        ``"log"``: a positive number spanning decades (a regularisation),
        set on a logarithmic slider between ``min`` and ``max``.
    exclusive_min : bool
        ``min`` itself is not allowed: the value must be greater (a
        standard deviation must be > 0).
    slider : (float, float), optional
        The range a slider offers, where it is narrower than the valid
        ``[min, max]``; widgets read it, checks do not. Default: the valid
        range.
    file : {"", "image", "mask", "model"}
        The parameter names a file (a :data:`FileRef`): ``{"path": ...,
        "sha256": ...}`` or a path; a recipe resolves a relative path
        against its own folder and checks the digest. ``"model"`` files
        must carry their SHA-256. A direct call may pass the array (or
        MedImage) itself instead.
    """

    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str = ""
    doc: str = ""
    choices: tuple | None = None
    odd: bool = False
    scale: str = ""
    exclusive_min: bool = False
    slider: tuple[float, float] | None = None
    file: str = ""

    def __post_init__(self) -> None:
        if self.file not in ("", "image", "mask", "model"):
            raise ValueError(
                f"Param: file must be '', 'image', 'mask' or 'model'; got {self.file!r}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"Param: min {self.min} is above max {self.max}")
        if self.exclusive_min and self.min is None:
            raise ValueError("Param: exclusive_min needs a min")
        if self.slider is not None:
            lo, hi = self.slider
            below = self.min is not None and (
                lo < self.min or (lo == self.min and self.exclusive_min)
            )
            if not lo < hi or below or (self.max is not None and hi > self.max):
                raise ValueError(
                    f"Param: slider {self.slider} must be an increasing pair inside "
                    f"the valid range {self.interval()}"
                )

    def interval(self) -> str:
        """The valid range as text: ``"[0.1, 50]"``, ``"(0, inf)"``."""
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        opening = "(" if self.exclusive_min or self.min is None else "["
        closing = ")" if self.max is None else "]"
        return f"{opening}{low}, {high}{closing}"


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

#: A random seed, declared once for every seeded operation.
Seed = typing.Annotated[int, Param(0, 2**32 - 1, 1, "", "random seed")]
#: A file a recipe step reads: ``{"path": "model.skops", "sha256": "..."}``.
FileRef = dict[str, str | None]
#: Neighbourhood of connected components and region growing.
Connectivity = typing.Annotated[
    int, Param(1, 3, 1, "", "1: faces, 2: edges, 3: corners")
]


@dataclass(frozen=True)
class ParamSpec:
    """A declared parameter: name, Python type, default and :class:`Param`.

    Attributes
    ----------
    name : str
        The keyword parameter's name.
    type : type
        Its type without ``Annotated`` and ``None`` (``float``, ``int``,
        ``tuple[float, ...]`` ...).
    default : object
        The signature's default (``inspect.Parameter.empty`` if none).
    param : Param
        Range, step, unit and meaning.
    optional : bool
        ``None`` is allowed (``float | None``).
    """

    name: str
    type: type
    default: Any
    param: Param
    optional: bool = False

    @functools.cached_property
    def _kind(self) -> str:
        """Which rule :meth:`check` applies, worked out once per spec."""
        if self.param.file:
            return "file"
        if self.param.choices is not None:
            return "choice"
        if self.type is bool:
            return "bool"
        if self.type in (int, float):
            return self.type.__name__
        if typing.get_origin(self.type) is tuple:
            return "each"
        return "any"

    def check(self, value: Any, where: str = "") -> Any:
        """Validate and coerce one value; raise ValueError naming what is allowed.

        Numbers may be Python's or NumPy's scalars; they come back as
        Python ``int`` or ``float``. A ``tuple[float, ...]`` (or of ``int``)
        declaration checks every element against the one :class:`Param`
        and gives a tuple (a lone number is a tuple of one).

        Parameters
        ----------
        value : object
            The value given (from Python or from a recipe's JSON).
        where : str
            Start of the message, naming the function (``"gaussian: "``).

        Returns
        -------
        object
            The value coerced to the declared type.

        Raises
        ------
        ValueError
            ``"<where><name> must lie in [0.1, 50] mm; got 80"`` and the like.
        """
        if value is None and self.optional:
            return None
        kind = self._kind
        if kind == "float" or kind == "int":
            t = type(value)
            if t is not float and t is not int:
                if isinstance(value, bool | np.bool_) or not isinstance(
                    value, numbers.Real
                ):
                    self._fail(where, f"must be a number; got {value!r}")
            if not math.isfinite(value):
                self._fail(where, f"must be finite; got {value!r}")
            p = self.param
            if kind == "int":
                if value != int(value):
                    self._fail(where, f"must be a whole number; got {value!r}")
                value = int(value)
                if p.odd and value % 2 == 0:
                    self._fail(where, f"must be odd; got {value}")
            else:
                value = float(value)
            low, high = p.min, p.max
            if (
                low is not None and (value <= low if p.exclusive_min else value < low)
            ) or (high is not None and value > high):
                unit = f" {p.unit}" if p.unit else ""
                self._fail(where, f"must lie in {p.interval()}{unit}; got {value:g}")
            return value
        if kind == "choice":
            choices = self.param.choices
            try:  # arrays compare element-wise: only scalars can be a choice
                known = getattr(value, "ndim", 0) == 0 and value in choices
            except (TypeError, ValueError):
                known = False
            if not known:
                allowed = ", ".join(map(repr, choices))
                self._fail(where, f"must be one of {allowed}; got {value!r}")
            return choices[choices.index(value)]  # the declared one (a str)
        if kind == "bool":
            if not isinstance(value, bool | np.bool_):
                self._fail(where, f"must be true or false; got {value!r}")
            return bool(value)
        if kind == "each":
            return self._check_each(value, where)
        if kind == "file":
            if typing.get_origin(self.type) in (tuple, list):
                if isinstance(value, str | bytes | os.PathLike | Mapping) or not (
                    isinstance(value, list | tuple)
                ):
                    self._fail(where, f"must be a list of files; got {value!r}")
                return [self._check_file(v, where) for v in value]
            return self._check_file(value, where)
        return value

    def _check_file(self, value: Any, where: str) -> Any:
        """A file reference ``{"path", "sha256"}`` (or an in-memory array)."""
        if (hasattr(value, "shape") and hasattr(value, "dtype")) or hasattr(
            value, "array"
        ):
            return value  # a direct call's image, mask or model itself
        if hasattr(value, "predict_proba"):
            return value
        if isinstance(value, str | os.PathLike):
            value = {"path": os.fspath(value)}
        kind = self.param.file
        what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} file"
        if not isinstance(value, Mapping) or set(value) - {"path", "sha256"}:
            self._fail(
                where,
                f'must name {what} as {{"path": ..., "sha256": ...}}; got {value!r}',
            )
        path, digest = value.get("path"), value.get("sha256")
        if not isinstance(path, str) or not path:
            self._fail(where, f"must give the path of {what}; got {path!r}")
        if digest is not None and (
            not isinstance(digest, str) or not _HEX64.fullmatch(digest)
        ):
            self._fail(where, f"sha256 must be 64 hexadecimal digits; got {digest!r}")
        if digest is None and self.param.file == "model":
            self._fail(
                where,
                f"must give the SHA-256 of the model file {path!r}: a model is "
                "only loaded when its digest matches",
            )
        return {"path": path, "sha256": digest and digest.lower()}

    def _fail(self, where: str, problem: str) -> typing.NoReturn:
        raise ValueError(f"{where}{self.name} {problem}")

    def _check_each(self, value: Any, where: str) -> tuple | Any:
        member, *more = typing.get_args(self.type)
        if more != [Ellipsis] or member not in (int, float):
            return value  # a fixed-length tuple: not declared per element
        values = np.asarray(value, dtype=object)
        if isinstance(value, str | bytes | dict | set) or values.ndim > 1:
            raise ValueError(f"{where}{self.name} must be numbers; got {value!r}")
        one = ParamSpec(self.name, member, None, self.param)
        return tuple(one.check(v, where) for v in values.reshape(-1).tolist())


def parameters(fn: Callable) -> dict[str, ParamSpec]:
    """The declared (``Annotated`` with :class:`Param`) keyword parameters of ``fn``.

    Parameters
    ----------
    fn : callable
        A function (or a :func:`declared` wrapper of one, which keeps its
        hints).

    Returns
    -------
    dict of str to ParamSpec
        In signature order; parameters without a :class:`Param` are left out.
    """
    return dict(_declared(fn))


@functools.lru_cache(maxsize=512)
def _declared(fn: Callable) -> dict[str, ParamSpec]:
    """:func:`parameters`, read once per function (type hints are evaluated)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    specs = {}
    for name, sig_param in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        base, *extras = typing.get_args(hint)
        declared = [e for e in extras if isinstance(e, Param)]
        if not declared:
            continue
        members = [t for t in typing.get_args(base) if t is not type(None)]
        optional = type(None) in typing.get_args(base)
        if optional and len(members) == 1:
            base = members[0]
        specs[name] = ParamSpec(name, base, sig_param.default, declared[0], optional)
    return specs


def _label(fn: Callable) -> str:
    """How messages name ``fn``: ``gaussian``, ``PixelClassifier`` (its __init__)."""
    name = getattr(fn, "__qualname__", fn.__name__)
    if "<locals>" in name:
        return fn.__name__
    return name.removesuffix(".__init__")


def validate(fn: Callable, values: dict[str, Any]) -> dict[str, Any]:
    """Check ``values`` against ``fn``'s declarations; unknown names are errors.

    Declared parameters are checked and coerced to their types; other keyword
    parameters of the signature (context such as ``spacing``) pass as they
    are. Defaults are not filled in.

    Parameters
    ----------
    fn : callable
        The declared function.
    values : dict
        ``{name: value}`` given, without the image.

    Returns
    -------
    dict
        The values, declared ones coerced by :meth:`ParamSpec.check`.

    Raises
    ------
    ValueError
        For a name the function does not take, or a value outside its
        declaration.
    """
    specs = parameters(fn)
    accepted = _accepted(fn)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise ValueError(
            f"{_label(fn)} has no parameter {', '.join(unknown)}; its parameters "
            f"are {', '.join(accepted) or 'none'}"
        )
    where = f"{_label(fn)}: "
    return {k: specs[k].check(v, where) if k in specs else v for k, v in values.items()}


@functools.lru_cache(maxsize=512)
def _signature(fn: Callable) -> inspect.Signature:
    """``inspect.signature(fn)``, read once per function (it takes 20 µs)."""
    return inspect.signature(fn)


@functools.lru_cache(maxsize=512)
def _accepted(fn: Callable) -> tuple[str, ...]:
    """The names ``fn`` takes by keyword, without its image.

    What :func:`validate` accepts; the signature is read once per function,
    not on every call of a batch's steps.
    """
    accepted = [
        name
        for name, p in _signature(fn).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if accepted and accepted[0] not in parameters(fn):  # the image
        accepted = accepted[1:]
    return tuple(accepted)


def declared(fn: Callable) -> Callable:
    """Check ``fn``'s declared arguments on every call, as a recipe does.

    Each declared argument given (by keyword or by position) goes through
    :meth:`ParamSpec.check`, with the message :func:`validate` gives, and the
    coerced value is passed on; defaults are not re-checked. The wrapper
    keeps ``fn``'s name, docstring, signature and type hints; the unchecked
    function is its ``__wrapped__``. Works on methods (``__init__``, too).

    Parameters
    ----------
    fn : callable
        A function whose options are declared with ``Annotated[..., Param]``.

    Returns
    -------
    callable
        The checking wrapper (``fn`` itself if it is one already).
    """
    if getattr(fn, "_declared", False):
        return fn
    plan: tuple | None = None

    def make_plan() -> tuple:
        specs = _declared(fn)
        positions = tuple(
            (i, specs[name])
            for i, (name, p) in enumerate(inspect.signature(fn).parameters.items())
            if name in specs and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        return f"{_label(fn)}: ", specs, positions

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        nonlocal plan
        if plan is None:
            plan = make_plan()
        where, specs, positions = plan
        for name, value in kwargs.items():
            spec = specs.get(name)
            if spec is not None:
                kwargs[name] = spec.check(value, where)
        if positions and len(args) > positions[0][0]:
            args = list(args)
            for i, spec in positions:
                if i < len(args):
                    args[i] = spec.check(args[i], where)
        return fn(*args, **kwargs)

    checked._declared = True
    return checked


#: The roles an operation plays in a recipe (:attr:`Operation.role`).
ROLES = ("process", "method", "cleanup", "compose")


@dataclass(frozen=True)
class Operation:
    """A registered algorithm: what panels list, recipes name and the CLI shows.

    Attributes
    ----------
    name : str
        The name recipes use (``"gaussian"``).
    stage : {"processing", "segmentation", "composition"}
        The stage (and panel) it belongs to.
    label : str
        The name people read in a menu.
    fn : callable
        ``fn(image, **params)``; its declarations are the parameters.
    keeps_units : bool
        False where the output is in other units than the input (grey
        levels, gradients, labels, a display composite).
    role : {"process", "method", "cleanup", "compose"}
        What a recipe step of it does: transforms the image (``process``),
        makes labels from it (``method``), cleans up a mask (``cleanup``,
        run on ``labels > 0``) or combines the image with others named by
        file (``compose``).
    seeded : str or None
        The parameter that carries a seeded method's interactive input
        (``"seeds"`` of region growing, ``"markers"`` of the watershed):
        a recipe must hold it as data.
    ndim : tuple of int
        The dimensions of the image it takes: ``(2, 3)`` (an image or a
        volume) or ``(2,)``.
    input : {"image", "mask"}
        ``"image"``: grey values (any integer or float dtype; a boolean mask
        is refused with a sentence, before the function runs);
        ``"mask"``: a binary mask (clean-ups).
    """

    name: str
    stage: str
    label: str
    fn: Callable
    keeps_units: bool = True
    role: str = "process"
    seeded: str | None = None
    ndim: tuple[int, ...] = (2, 3)
    input: str = "image"

    @property
    def params(self) -> dict[str, ParamSpec]:
        """The declared parameters of the operation, by name (:func:`parameters`)."""
        return parameters(self.fn)

    @property
    def files(self) -> tuple[str, ...]:
        """The parameters that name files (:data:`FileRef` declarations)."""
        return tuple(n for n, s in self.params.items() if s.param.file)

    def __call__(self, image, **kwargs):
        """Apply to ``image`` with ``kwargs``, checked once by :func:`validate`."""
        unchecked = getattr(self.fn, "__wrapped__", self.fn)  # checked just here
        _check_input(image, self.name, self.input, self.ndim)
        return unchecked(image, **validate(self.fn, kwargs))

    def run(self, image, params: dict[str, Any], *, spacing=None, **context):
        """Apply with ``params``, passing ``spacing`` (mm) and other context.

        Context (``labels``) is passed where the function takes it.

        Parameters
        ----------
        image : ([S,] M, N) ndarray
        params : dict
            The step's parameters, checked by :func:`validate`.
        spacing : tuple of float, optional
            mm per axis of the image; its last ``image.ndim`` values are
            passed if the function takes ``spacing``.
        **context
            Other inputs (``labels``), passed where the function takes them.

        Returns
        -------
        ndarray
        """
        kwargs = dict(params)
        accepted = _signature(self.fn).parameters
        if spacing is not None and "spacing" in accepted:
            kwargs["spacing"] = tuple(spacing)[-len(getattr(image, "shape", ())) :]
        kwargs.update({k: v for k, v in context.items() if k in accepted})
        return self(image, **kwargs)


def operation(
    stage: str,
    label: str,
    *,
    keeps_units: bool = True,
    role: str | None = None,
    seeded: str | None = None,
    name: str | None = None,
    ndim: tuple[int, ...] = (2, 3),
) -> Callable[[Callable], Callable]:
    """Declare a function an operation of a stage; it is listed in :data:`_TABLE`.

    The function is wrapped by :func:`declared`: a direct call checks its
    declared arguments as a recipe does. The decorator only attaches the
    :class:`Operation` to the function (``fn.operation``); importing a module
    registers nothing. :data:`OPERATIONS` finds the operation through the
    explicit table :data:`_TABLE` of names and modules.

    Parameters
    ----------
    stage : str
        ``"processing"``, ``"segmentation"`` or ``"composition"``.
    label : str
        The name in menus.
    keeps_units : bool
        ``False`` for outputs in other units than the input.
    role : {"process", "method", "cleanup", "compose"}, optional
        Default ``"process"`` for processing, ``"method"`` for segmentation,
        ``"compose"`` for composition.
    seeded : str, optional
        The parameter holding a seeded method's interactive input.
    name : str, optional
        The recipe name, where it is not the function's (``"blend"`` for
        :func:`~medimg_lab.composition.steps.blend_step`).
    ndim : tuple of int
        ``(2, 3)``, or ``(2,)`` for operations on 2D images only.

    Notes
    -----
    Clean-ups take a mask; every other operation takes grey values, and a
    direct call with a boolean array is refused here, in one place, with a
    sentence (not the library's error deep inside).
    """
    if stage not in _STAGE_ROLES:
        raise ValueError(
            f"stage must be one of {', '.join(_STAGE_ROLES)}; got {stage!r}"
        )
    role = role or _STAGE_ROLES[stage]
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")

    kind = "mask" if role == "cleanup" else "image"

    def register(fn: Callable) -> Callable:
        checked = declared(fn)
        op_name = name or fn.__name__
        if seeded is not None and seeded not in inspect.signature(fn).parameters:
            raise ValueError(f"{op_name}: seeded names no parameter {seeded!r}")
        dims = tuple(ndim)
        if kind == "image" or dims != (2, 3):

            @functools.wraps(checked)
            def guarded(image, *args, **kwargs):
                _check_input(image, op_name, kind, dims)
                return checked(image, *args, **kwargs)

            guarded.__wrapped__ = checked.__wrapped__  # the unchecked function
            guarded._declared = True
        else:
            guarded = checked
        guarded.operation = Operation(
            op_name, stage, label, guarded, keeps_units, role, seeded, dims, kind
        )
        return guarded

    return register


def _check_input(image: Any, name: str, kind: str, ndim: tuple[int, ...]) -> None:
    """Refuse undeclared dimensions, and a boolean mask where grey values go."""
    array = getattr(image, "array", image)
    shape = getattr(array, "shape", None)
    if shape is not None and ndim == (2,) and len(shape) == 3 and shape[-1] != 3:
        raise ValueError(
            f"{name}: image must be a 2D (M, N) image; got shape {tuple(shape)}. "
            "For a volume, give one slice"
        )
    if kind == "image" and getattr(getattr(array, "dtype", None), "kind", "") == "b":
        raise ValueError(
            f"{name}: image must hold grey values (numbers); got a boolean mask. "
            "Convert it with mask.astype(np.uint8), or use it where a mask is "
            "taken (a clean-up step, blend's mask)"
        )


_STAGE_ROLES = {
    "processing": "process",
    "segmentation": "method",
    "composition": "compose",
}

#: Every operation by recipe name, and the module that defines it, in menu
#: order (clean-ups in the order they run). The one list of what exists:
#: nothing registers itself on import; a test checks that it holds exactly
#: the functions declared with :func:`operation`.
_TABLE: dict[str, str] = {
    "window_level": "medimg_lab.processing",
    "equalize_hist": "medimg_lab.processing",
    "clahe": "medimg_lab.processing",
    "gamma": "medimg_lab.processing",
    "convolve": "medimg_lab.processing",
    "gaussian": "medimg_lab.processing",
    "unsharp_mask": "medimg_lab.processing",
    "sobel": "medimg_lab.processing",
    "canny": "medimg_lab.processing",
    "median": "medimg_lab.processing",
    "bilateral": "medimg_lab.processing",
    "non_local_means": "medimg_lab.processing",
    "anisotropic_diffusion": "medimg_lab.processing",
    "add_gaussian_noise": "medimg_lab.processing",
    "add_poisson_noise": "medimg_lab.processing",
    "add_speckle_noise": "medimg_lab.processing",
    "kmeans": "medimg_lab.segmentation.cluster",
    "gmm": "medimg_lab.segmentation.cluster",
    "fill_holes": "medimg_lab.segmentation.morphology",
    "keep_largest": "medimg_lab.segmentation.morphology",
    "remove_small": "medimg_lab.segmentation.morphology",
    "binary_open": "medimg_lab.segmentation.morphology",
    "binary_close": "medimg_lab.segmentation.morphology",
    "region_grow": "medimg_lab.segmentation.region",
    "watershed": "medimg_lab.segmentation.region",
    "chan_vese": "medimg_lab.segmentation.region",
    "threshold_range": "medimg_lab.segmentation.threshold",
    "threshold_preset": "medimg_lab.segmentation.threshold",
    "threshold_otsu": "medimg_lab.segmentation.threshold",
    "threshold_multiotsu": "medimg_lab.segmentation.threshold",
    "pixel_classifier": "medimg_lab.segmentation.classifier",
    "rigid_transform": "medimg_lab.composition.registration",
    "register": "medimg_lab.composition.steps",
    "blend": "medimg_lab.composition.steps",
    "fuse": "medimg_lab.composition.steps",
    "stitch": "medimg_lab.composition.steps",
}


def _resolve(name: str) -> Operation:
    """The operation ``name`` of :data:`_TABLE`, importing only its module."""
    import importlib

    module = importlib.import_module(_TABLE[name])
    for value in vars(module).values():
        op = getattr(value, "operation", None)
        if isinstance(op, Operation) and op.name == name:
            return op
    raise LookupError(f"{_TABLE[name]} declares no operation {name!r}")


class _Registry(Mapping):
    """:data:`OPERATIONS`: complete on first use, in the order of :data:`_TABLE`.

    A name is resolved (its module imported) when it is looked up;
    iterating resolves them all.
    """

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def __getitem__(self, name: str) -> Operation:
        op = self._ops.get(name)
        if op is None:
            if name not in _TABLE:
                raise KeyError(name)
            op = self._ops[name] = _resolve(name)
        return op

    def __contains__(self, name: object) -> bool:
        return name in _TABLE

    def __iter__(self):
        return iter(_TABLE)

    def __len__(self) -> int:
        return len(_TABLE)

    def __repr__(self) -> str:
        return f"<{len(self)} operations: {', '.join(_TABLE)}>"


#: Every operation by name (a read-only mapping, complete without imports).
OPERATIONS: Mapping[str, Operation] = _Registry()


def operations(*, stage: str | None = None, role: str | None = None) -> list[Operation]:
    """The registered operations of a stage or role, in menu order.

    Parameters
    ----------
    stage : str, optional
        Only this stage's (``"processing"``, ``"segmentation"``,
        ``"composition"``).
    role : str, optional
        Only this role's (``"process"``, ``"method"``, ``"cleanup"``,
        ``"compose"``).

    Returns
    -------
    list of Operation
    """
    return [
        op
        for op in OPERATIONS.values()
        if (stage is None or op.stage == stage) and (role is None or op.role == role)
    ]


def get_operation(name: str) -> Operation:
    """The registered operation ``name``; a clear error lists close and known ones.

    Parameters
    ----------
    name : str
        An operation's name (``"gaussian"``).

    Returns
    -------
    Operation

    Raises
    ------
    ValueError
        For an unknown name, with the close and the known names.
    """
    if not isinstance(name, str) or name not in OPERATIONS:
        import difflib

        close = difflib.get_close_matches(str(name), list(OPERATIONS), n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"unknown operation {name!r}; {hint}known operations are "
            f"{', '.join(sorted(OPERATIONS))}"
        )
    return OPERATIONS[name]
