"""Every Examples section of every medimg_lab module runs, as a doctest.

The docstrings of :mod:`medimg_lab` and :mod:`medimg_lab.widgets` (the
``widgets/`` folder, installed under the package) are collected with
:class:`doctest.DocTestFinder`, one test per docstring, and run under the
normal ``pytest`` invocation (``make test``). As in numpydoc and
scikit-image, ``np`` is NumPy in every example; anything else an example
needs it imports. The examples are real, fast and offline: small arrays and
the installed samples (:func:`medimg_lab.data.sample`). Output that depends
on the CPU is rounded or elided with ``...`` (``ELLIPSIS`` is on).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import medimg_lab.widgets
import numpy as np
import pytest

import medimg_lab

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: A numpydoc Examples heading: the word, then a line of dashes.
EXAMPLES = re.compile(r"^\s*Examples\s*\n\s*-{3,}\s*$", re.MULTILINE)


def _modules() -> list[str]:
    """The names of every module of medimg_lab, widgets and private ones too."""
    names = {"medimg_lab", "medimg_lab.widgets"}
    for package in (medimg_lab, medimg_lab.widgets):
        prefix = package.__name__ + "."
        names.update(m.name for m in pkgutil.walk_packages(package.__path__, prefix))
    return sorted(names)


MODULES = _modules()


def _docstrings():
    """(module name, DocTest) of every docstring of every module, examples or not."""
    finder = doctest.DocTestFinder(exclude_empty=False)
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [(name, test) for test in finder.find(module, name)]
    return found


DOCSTRINGS = _docstrings()
DOCTESTS = [test for _, test in DOCSTRINGS if test.examples]


def test_every_module_is_searched():
    assert "medimg_lab.processing" in MODULES
    assert "medimg_lab.widgets.viewer" in MODULES
    assert "medimg_lab.widgets.dashboards.viewer" in MODULES
    assert len(DOCTESTS) >= 36


def test_every_examples_section_holds_examples():
    """An Examples section of prose or ``::`` blocks would never run."""
    silent = [
        test.name
        for _, test in DOCSTRINGS
        if test.docstring and EXAMPLES.search(test.docstring) and not test.examples
    ]
    assert not silent, f"Examples sections with no >>> example: {silent}"


def test_no_example_is_skipped():
    skipped = [
        test.name
        for test in DOCTESTS
        for example in test.examples
        if example.options.get(doctest.SKIP)
    ]
    assert not skipped, f"examples marked +SKIP never run: {skipped}"


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_examples_run(test):
    test = doctest.DocTest(
        test.examples,
        {**test.globs, "np": np},
        test.name,
        test.filename,
        test.lineno,
        test.docstring,
    )
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    runner.run(test, out=report.append)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted == len(test.examples)
    assert failed == 0, "".join(report)
