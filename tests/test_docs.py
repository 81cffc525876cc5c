"""The docstrings say what the code does: shapes, parameters, declarations.

- Shapes are written ``([S,] M, N)``: a volume is ``(S, M, N)``, slices first,
  as :class:`medimg_lab.MedImage` holds it; the old ``(M, N[, P])`` is gone.
- Every public function, class and method that takes arguments has a
  numpydoc Parameters section.
- For every registered operation and declared function, the Parameters
  section names every declared parameter, and any range, default or unit it
  states agrees with the declaration (:mod:`medimg_lab.params`), which stays
  the one rulebook: the docstring is checked against it, not generated.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from medimg_lab.params import OPERATIONS, Param, parameters
from tests.test_doctests import MODULES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    [*(ROOT / "medimg_lab").rglob("*.py"), *(ROOT / "widgets").rglob("*.py")]
)


def _docstrings(path: Path):
    """(line, docstring) of every module, class and function in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                yield (node.body[0].lineno, doc)


# ---------------------------------------------------------------- shapes

#: The old ways of writing a volume's shape: a trailing optional third axis.
OLD_SHAPE = re.compile(r"\[,\s*P\]|\bM,\s*N,\s*P\b|\bP\s*\)\s*ndarray")


def test_old_shape_pattern_finds_the_old_forms():
    for old in ("(M, N[, P]) ndarray", "(K, M, N[, P])", "(M, N, P) ndarray"):
        assert OLD_SHAPE.search(old), old
    new_forms = ("([S,] M, N) ndarray", "(K, [S,] M, N)", "(S, M, N)", "(M, N[, 3])")
    for new in new_forms:
        assert not OLD_SHAPE.search(new), new


def test_shapes_are_written_slices_first():
    old = [
        f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}"
        for path in SOURCES
        for line, doc in _docstrings(path)
        for m in OLD_SHAPE.finditer(doc)
    ]
    assert not old, "write volumes as ([S,] M, N):\n" + "\n".join(old)


# ------------------------------------------------------- numpydoc sections

#: A numpydoc section heading: a title, then a line of dashes as long.
HEADING = re.compile(r"^([A-Z][A-Za-z ]+)\n-{3,}[ \t]*$", re.MULTILINE)


def sections(doc: str | None) -> dict[str, str]:
    """The numpydoc sections of ``doc`` by title; ``""`` holds the summary."""
    parts = HEADING.split(inspect.cleandoc(doc or ""))
    found = {"": parts[0]}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        found[title] = body
    return found


def parameter_entries(doc: str | None) -> dict[str, str]:
    """``{name: "type line and description"}`` of a Parameters section.

    An entry may name several parameters (``center, width : float``); each
    gets the entry's text. ``*args`` and ``**kwargs`` are named without stars.
    """
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in sections(doc).get("Parameters", "").splitlines():
        if line.strip() and not line[0].isspace():
            names, _, kind = line.partition(" : ")
            if names.endswith(":"):  # "name :" with no type
                names = names[:-1]
            current = [kind.strip()]
            for name in names.split(","):
                entries[name.strip().lstrip("*")] = current
        elif current is not None and line.strip():
            current.append(line.strip())
    return {name: " ".join(text) for name, text in entries.items()}


def test_parameter_entries_read_numpydoc():
    doc = """Summary.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        The image.
    center, width : float
        The window, in HU,
        on two lines.
    **kwargs
        Passed on.

    Returns
    -------
    ndarray
    """
    entries = parameter_entries(doc)
    assert set(entries) == {"image", "center", "width", "kwargs"}
    assert entries["width"] == "float The window, in HU, on two lines."
    assert "Returns" not in entries["kwargs"]
    assert parameter_entries("Summary only.") == {}


# ------------------------------------------------------------ public API


def _modules(public: bool = True) -> list[str]:
    """medimg_lab's modules and medimg_lab.widgets' (the widgets/ folder)."""
    if not public:
        return MODULES
    return [n for n in MODULES if not any(p.startswith("_") for p in n.split("."))]


def _takes_arguments(fn) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(name not in ("self", "cls") for name in signature.parameters)


def _public_callables():
    """(qualified name, callable, docstring owner) of the public API.

    Public: in a module without a leading underscore, named in its
    ``__all__`` (or, without one, not starting with ``_``), and defined
    there. Classes count with their constructor (documented in the class
    docstring, numpydoc's rule) and their public methods. Exceptions whose
    constructor is the built-in one (a message) and dataclasses documented
    with an Attributes section (their fields are the constructor's
    parameters) need no Parameters section.
    """
    for module_name in _modules():
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name, None)
            if getattr(obj, "__module__", None) != module_name:
                continue
            qualified = f"{module_name}.{name}"
            if inspect.isfunction(obj):
                yield qualified, obj, obj
            elif inspect.isclass(obj):
                init = vars(obj).get("__init__")
                is_data = dataclasses.is_dataclass(obj)
                if (inspect.isfunction(init) and not is_data) or (
                    is_data and "Attributes" not in sections(obj.__doc__)
                ):
                    yield qualified, obj, obj
                for method_name, method in vars(obj).items():
                    if isinstance(method, staticmethod | classmethod):
                        method = method.__func__
                    if inspect.isfunction(method) and not method_name.startswith("_"):
                        yield f"{qualified}.{method_name}", method, method


PUBLIC = [
    (name, fn, owner) for name, fn, owner in _public_callables() if _takes_arguments(fn)
]


def test_the_public_api_is_found():
    names = {name for name, _, _ in PUBLIC}
    assert "medimg_lab.processing.gaussian" in names
    assert "medimg_lab.segmentation.classifier.PixelClassifier" in names
    assert "medimg_lab.segmentation.classifier.PixelClassifier.predict" in names
    assert "medimg_lab.widgets.viewer.ImageViewer" in names
    assert not [n for n in names if "._" in n], "private names are not public"


def test_every_public_function_has_a_parameters_section():
    missing = [
        name for name, _, owner in PUBLIC if "Parameters" not in sections(owner.__doc__)
    ]
    share = 1 - len(missing) / len(PUBLIC)
    assert not missing, (
        f"{len(missing)} of {len(PUBLIC)} public functions, classes and methods "
        f"that take arguments have no Parameters section ({share:.0%} have one):\n"
        + "\n".join(missing)
    )


# ------------------------------------------------ declarations agree


def _declares(fn) -> bool:
    """``fn`` has a :class:`Param` declaration (:func:`parameters` finds one).

    A hint that names a type imported only for type checkers (``nib`` for
    ``nib.Nifti1Image`` while nibabel is imported on first use) cannot be
    evaluated; such a function declares nothing (a declared function's hints
    must evaluate, or its own calls would fail).
    """
    try:
        return bool(parameters(fn))
    except NameError:
        return False


def _declared_functions():
    """(name, function, docstring owner) of every operation and declared function.

    Declared functions: public functions and methods (constructors too)
    with an ``Annotated[..., Param]`` declaration, in any module.
    """
    seen = {}
    for op in OPERATIONS.values():
        fn = inspect.unwrap(op.fn)
        seen[fn] = (f"{fn.__module__}.{fn.__qualname__}", op.fn, op.fn)
    for module_name in _modules(public=False):
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) != module_name:
                continue
            candidates = []
            if inspect.isfunction(obj):
                candidates = [(obj, obj)]
            elif inspect.isclass(obj):
                for method_name, method in vars(obj).items():
                    if inspect.isfunction(method):
                        owner = obj if method_name == "__init__" else method
                        candidates.append((method, owner))
            for fn, owner in candidates:
                private = any(
                    part.startswith("_") and part != "__init__"
                    for part in inspect.unwrap(fn).__qualname__.split(".")
                )
                if private or inspect.unwrap(fn) in seen or not _declares(fn):
                    continue
                name = f"{module_name}.{inspect.unwrap(fn).__qualname__}"
                seen[inspect.unwrap(fn)] = (name, fn, owner)
    return sorted(seen.values(), key=lambda item: item[0])


DECLARED = _declared_functions()

NUMBER = r"[-+−]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
#: A stated range: "in [0.1, 20]", "in ``[0, 1]``", "0.1 to 20".
STATED_RANGE = re.compile(
    rf"\bin\s+`*[\[(]\s*(?P<lo>{NUMBER})\s*,\s*(?P<hi>{NUMBER})\s*[\])]`*"
    rf"|(?<![\w.])(?P<lo2>{NUMBER})\s+to\s+(?P<hi2>{NUMBER})(?![\w.])"
)
#: A stated default: "default 1 mm", "Default: 0.5", "(default ``3``)".
STATED_DEFAULT = re.compile(
    rf"\b[Dd]efault(?: is|:)?\s+`*(?P<value>{NUMBER})`*(?![\w.])"
)
#: A type written as the set of allowed values: ``{"ecc", "phase"}``, ``{0, 1}``.
STATED_CHOICES = re.compile(r"^\{(?P<values>[^{}]*)\}")
#: How a docstring may write a declared unit.
UNIT_WORDS = {
    "mm": ("mm",),
    "px": ("px", "pixel"),
    "°": ("°", "degree", "deg"),
    "HU": ("HU",),
    "image units": ("image's unit", "images' unit", "their unit", "image units", "HU"),
    "mm² / mL": ("mm²", "mL"),
}


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)


def _disagreements(name: str, spec, text: str) -> list[str]:
    """What the entry ``text`` of parameter ``name`` states against ``spec``."""
    p: Param = spec.param
    problems = []
    allowed = [(p.min, p.max)]
    if p.slider is not None:
        allowed.append(tuple(p.slider))
    for m in STATED_RANGE.finditer(text):
        lo, hi = (m["lo"], m["hi"]) if m["lo"] is not None else (m["lo2"], m["hi2"])
        lo, hi = _number(lo), _number(hi)
        if not any(_close(lo, a) and _close(hi, b) for a, b in allowed):
            problems.append(
                f"{name}: the docstring states {m.group(0).strip()!r}, "
                f"the declaration {p.interval()} {p.unit}".rstrip()
            )
    default = spec.default
    for m in STATED_DEFAULT.finditer(text):
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        if not _close(_number(m["value"]), float(default)):
            problems.append(
                f"{name}: the docstring states {m.group(0)!r}, the default is {default}"
            )
    words = UNIT_WORDS.get(p.unit)
    if words and not any(w in f"{name} {text}" for w in words):
        problems.append(f"{name}: the docstring does not give the unit {p.unit!r}")
    stated = STATED_CHOICES.match(text)
    if stated:
        values = set(ast.literal_eval(f"[{stated['values']}]"))
        if p.choices is not None:
            declared = set(p.choices)
        elif spec.type is int and p.min is not None and p.max is not None:
            declared = set(range(int(p.min), int(p.max) + 1))
        else:
            declared = values
        if values != declared:
            problems.append(
                f"{name}: the docstring allows {sorted(map(repr, values))}, "
                f"the declaration {sorted(map(repr, declared))}"
            )
    return problems


def test_stated_ranges_defaults_and_units_are_read():
    from medimg_lab.params import ParamSpec

    spec = ParamSpec("sigma_mm", float, 1.0, Param(0.1, 20, 0.1, "mm"))
    assert not _disagreements("sigma_mm", spec, "float SD in mm, in [0.1, 20].")
    assert not _disagreements("sigma_mm", spec, "float SD, 0.1 to 20 mm; default 1.")
    assert _disagreements("sigma_mm", spec, "float SD in mm, in [0.5, 20].")
    assert _disagreements("sigma_mm", spec, "float SD, 0.1 to 50 mm.")
    assert _disagreements("sigma_mm", spec, "float SD in mm; default 2 mm.")
    size = ParamSpec("size", int, 3, Param(3, 15, 2, "px", odd=True))
    assert _disagreements("size", size, "int Side of the window.")
    assert not _disagreements("size", size, "int Side of the window in pixels.")
    method = ParamSpec("method", str, "ecc", Param(choices=("ecc", "phase")))
    assert not _disagreements("method", method, '{"phase", "ecc"} How.')
    assert _disagreements("method", method, '{"phase", "ecc", "orb"} How.')
    axis = ParamSpec("axis", int, 1, Param(0, 1, 1))
    assert not _disagreements("axis", axis, "{0, 1} 1 cuts vertically.")
    assert _disagreements("axis", axis, "{0, 1, 2} 1 cuts vertically.")
    slid = ParamSpec("scale", float, 1.0, Param(0.001, 1000, slider=(0.1, 10)))
    assert not _disagreements(
        "scale", slid, "float in [0.001, 1000] (a slider 0.1 to 10)"
    )


@pytest.mark.parametrize("name, fn, owner", DECLARED, ids=[d[0] for d in DECLARED])
def test_parameters_sections_agree_with_the_declarations(name, fn, owner):
    entries = parameter_entries(owner.__doc__)
    specs = parameters(fn)
    missing = sorted(set(specs) - set(entries))
    assert not missing, f"{name}: Parameters does not name {', '.join(missing)}"
    problems = [
        problem
        for pname, spec in specs.items()
        for problem in _disagreements(pname, spec, entries[pname])
    ]
    assert not problems, f"{name}:\n" + "\n".join(problems)


# ------------------------------------------------------------- pydocstyle


def test_pydocstyle_is_on_for_the_package():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "D" in lint["select"]
    assert lint["pydocstyle"]["convention"] == "numpy"
    ignored = set(lint.get("ignore", []))
    assert ignored & {"D", "D1", "D2", "D4", "D100", "D103", "D205", "D400"} == set()
    for pattern, codes in lint.get("per-file-ignores", {}).items():
        if any(c == "D" or c.startswith("D") for c in codes):
            assert pattern.startswith("!"), f"{pattern} turns docstring rules off"


def test_the_package_meets_the_docstring_rules():
    """``ruff check .`` with the project's configuration finds no D finding."""
    found = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "json", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = [
        f"{f['filename']}:{f['location']['row']}: {f['code']} {f['message']}"
        for f in json.loads(found.stdout or "[]")
        if (f.get("code") or "").startswith("D")
    ]
    assert not findings, "\n".join(findings)
