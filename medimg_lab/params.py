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
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPERATIONS",
    "Connectivity",
    "Operation",
    "Param",
    "ParamSpec",
    "Seed",
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
        Inclusive bounds for numbers.
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
    """

    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str = ""
    doc: str = ""
    choices: tuple | None = None
    odd: bool = False
    scale: str = ""


#: A random seed, declared once for every seeded operation.
Seed = typing.Annotated[int, Param(0, 2**31 - 1, 1, "", "random seed")]
#: Neighbourhood of connected components and region growing.
Connectivity = typing.Annotated[
    int, Param(1, 3, 1, "", "1: faces, 2: edges, 3: corners")
]


@dataclass(frozen=True)
class ParamSpec:
    """A declared parameter: name, Python type, default and :class:`Param`."""

    name: str
    type: type
    default: Any
    param: Param
    optional: bool = False

    def check(self, value: Any, where: str = "") -> Any:
        """Validate and coerce one value; raise ValueError naming what is allowed."""
        p = self.param
        label = f"{where}{self.name}"
        if value is None and self.optional:
            return None
        if p.choices is not None:
            if value not in p.choices:
                raise ValueError(
                    f"{label} must be one of {', '.join(map(repr, p.choices))}; "
                    f"got {value!r}"
                )
            return value
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be true or false; got {value!r}")
            return value
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{label} must be a number; got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{label} must be finite; got {value!r}")
            if self.type is int:
                if value != int(value):
                    raise ValueError(f"{label} must be a whole number; got {value!r}")
                value = int(value)
                if p.odd and value % 2 == 0:
                    raise ValueError(f"{label} must be odd; got {value}")
            else:
                value = float(value)
            if (p.min is not None and value < p.min) or (
                p.max is not None and value > p.max
            ):
                unit = f" {p.unit}" if p.unit else ""
                low = "-inf" if p.min is None else f"{p.min:g}"
                high = "inf" if p.max is None else f"{p.max:g}"
                raise ValueError(
                    f"{label} must lie in [{low}, {high}]{unit}; got {value:g}"
                )
            return value
        return value


def parameters(fn: Callable) -> dict[str, ParamSpec]:
    """The declared (``Annotated`` with :class:`Param`) keyword parameters of ``fn``."""
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


def validate(fn: Callable, values: dict[str, Any]) -> dict[str, Any]:
    """Check ``values`` against ``fn``'s declarations; unknown names are errors.

    Declared parameters are checked and coerced to their types; other keyword
    parameters of the signature (context such as ``spacing``) pass as they
    are. Defaults are not filled in.
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
            f"{fn.__name__} has no parameter {', '.join(unknown)}; its parameters "
            f"are {', '.join(accepted) or 'none'}"
        )
    return {
        k: specs[k].check(v, f"{fn.__name__}: ") if k in specs else v
        for k, v in values.items()
    }


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
        return parameters(self.fn)

    def __call__(self, image, **kwargs):
        return self.fn(image, **validate(self.fn, kwargs))

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

    ``keeps_units=False`` marks operations whose output is in other units
    than their input (grey levels, gradients, masks), which a viewer must not
    show with the input's window.
    """

    def register(fn: Callable) -> Callable:
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
