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

:func:`operation` registers the function under its name in :data:`OPERATIONS`.

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
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OPERATIONS",
    "Connectivity",
    "Operation",
    "Param",
    "ParamSpec",
    "Seed",
    "declared",
    "get_operation",
    "operation",
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

    def __post_init__(self) -> None:
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


#: A random seed, declared once for every seeded operation.
Seed = typing.Annotated[int, Param(0, 2**31 - 1, 1, "", "random seed")]
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
        return value

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
    accepted = [
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if accepted and accepted[0] not in specs:  # the image, not a parameter
        accepted = accepted[1:]
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise ValueError(
            f"{_label(fn)} has no parameter {', '.join(unknown)}; its parameters "
            f"are {', '.join(accepted) or 'none'}"
        )
    where = f"{_label(fn)}: "
    return {k: specs[k].check(v, where) if k in specs else v for k, v in values.items()}


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


@dataclass(frozen=True)
class Operation:
    """A registered algorithm: what panels list and recipes name."""

    name: str
    stage: str
    label: str
    fn: Callable
    keeps_units: bool = True

    @property
    def params(self) -> dict[str, ParamSpec]:
        """The declared parameters of the operation, by name (:func:`parameters`)."""
        return parameters(self.fn)

    def __call__(self, image, **kwargs):
        """Apply to ``image`` with ``kwargs``, checked once by :func:`validate`."""
        unchecked = getattr(self.fn, "__wrapped__", self.fn)  # checked just here
        return unchecked(image, **validate(self.fn, kwargs))

    def run(self, image, params: dict[str, Any], *, spacing=None):
        """Apply with ``params``, passing ``spacing`` (mm) if the function takes it."""
        kwargs = dict(params)
        if spacing is not None and "spacing" in inspect.signature(self.fn).parameters:
            kwargs["spacing"] = tuple(spacing)[-len(getattr(image, "shape", ())) :]
        return self(image, **kwargs)


#: Every registered operation by name.
OPERATIONS: dict[str, Operation] = {}


def operation(
    stage: str, label: str, *, keeps_units: bool = True
) -> Callable[[Callable], Callable]:
    """Register a function as an operation of a stage, under its own name.

    The function is wrapped by :func:`declared`: a direct call checks its
    declared arguments as a recipe does. The registry and the module hold
    the same (wrapped) function.

    ``keeps_units=False`` marks operations whose output is in other units
    than their input (grey levels, gradients, masks), which a viewer must not
    show with the input's window.
    """

    def register(fn: Callable) -> Callable:
        fn = declared(fn)
        OPERATIONS[fn.__name__] = Operation(fn.__name__, stage, label, fn, keeps_units)
        return fn

    return register


def get_operation(name: str) -> Operation:
    """The registered operation ``name``; a clear error lists the known ones."""
    if name not in OPERATIONS:
        raise ValueError(
            f"unknown operation {name!r}; known operations are "
            f"{', '.join(sorted(OPERATIONS))}"
        )
    return OPERATIONS[name]
