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
import re
from pathlib import Path

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
