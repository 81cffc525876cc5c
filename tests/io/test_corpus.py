"""Every file pydicom decodes, medimg_lab loads (issue 15, item 3).

The corpus is every file of pydicom's own test data and of the pydicom-data
package, as installed (never downloaded). For each file the test records
whether pydicom decodes it (``dcmread`` and ``pixel_array`` succeed, with the
decoder plugins installed here) and whether :func:`medimg_lab.load` loads it.
A file that pydicom decodes and medimg_lab refuses fails the test, unless it
is on :data:`ALLOWED_REFUSALS` with the design reason for the refusal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files

import medimg_lab as ml

#: Files pydicom decodes that medimg_lab refuses on purpose, each with its
#: design reason (a 4D volume, a resource bomb, pixels pydicom decodes as
#: garbage ...). Keyed by the path inside its package's data folder. Empty:
#: today medimg_lab loads every file pydicom decodes.
ALLOWED_REFUSALS: dict[str, str] = {}


def corpus_roots() -> list[Path]:
    """The data folders of pydicom and pydicom-data, as installed."""
    roots = {Path(pydicom.__file__).parent / "data" / "test_files"}
    try:
        import data_store  # pydicom-data's package

        roots.add(Path(data_store.__file__).parent / "data")
    except ImportError:  # pragma: no cover - pydicom-data is a test dependency
        pytest.fail("pydicom-data is not installed: pip install pydicom-data")
    return sorted(root for root in roots if root.is_dir())


def corpus() -> list[tuple[str, Path]]:
    """``(label, path)`` of every corpus file, label relative to its root."""
    files: dict[Path, str] = {}
    for root in corpus_roots():
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.resolve()] = f"{root.parent.name}/{path.relative_to(root)}"
    # pydicom's own index of its test files must be covered too.
    for name in get_testdata_files():
        path = Path(name).resolve()
        if path.is_file():
            files.setdefault(path, str(Path(name).name))
    return sorted(((label, path) for path, label in files.items()), key=str)


@dataclass
class Outcome:
    label: str
    decodes: bool
    pydicom_shape: tuple[int, ...] | None
    loads: bool
    refusal: str = ""
    shape: tuple[int, ...] | None = None


def pydicom_decodes(path: Path) -> tuple[int, ...] | None:
    """The shape pydicom decodes the file to, or None if it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            return tuple(ds.pixel_array.shape)
    except Exception:  # any failure means "pydicom does not decode it"
        return None


def examine(label: str, path: Path) -> Outcome:
    shape = pydicom_decodes(path)
    outcome = Outcome(label, shape is not None, shape, loads=False)
    try:
        image = ml.load(path)
    except ml.MedImgError as err:
        outcome.refusal = f"{type(err).__name__}: {err}"
    else:
        outcome.loads, outcome.shape = True, tuple(image.array.shape)
    return outcome


def grey_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without its colour axis (palette images gain one in medimg_lab)."""
    return shape[:-1] if shape and shape[-1] == 3 else shape


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return [examine(label, path) for label, path in corpus()]


def test_the_corpus_is_the_installed_pydicom_and_pydicom_data_files():
    files = corpus()
    labels = [label for label, _ in files]
    assert len(files) > 200
    assert any(label.startswith("data_store/") for label in labels)
    assert any(label.startswith("data/") for label in labels)
    assert any(path.name == "SC_ybr_full_422_uncompressed.dcm" for _, path in files)


def test_every_file_pydicom_decodes_loads(outcomes, summary_line):
    refused_decodable = [
        o
        for o in outcomes
        if o.decodes and not o.loads and o.label not in ALLOWED_REFUSALS
    ]
    loaded = [o for o in outcomes if o.loads]
    refused = [o for o in outcomes if not o.loads]
    allowed = [o for o in refused if o.label in ALLOWED_REFUSALS]
    line = (
        f"{len(outcomes)} files, {len(loaded)} loaded "
        f"({sum(o.decodes for o in loaded)} of them decoded by pydicom too), "
        f"{len(refused)} refused with a reason ({len(allowed)} on the allowed "
        f"list), {len(refused_decodable)} refused but decodable"
    )
    summary_line("pydicom + pydicom-data corpus through medimg_lab.load()", line)
    print(line)
    assert not refused_decodable, "\n".join(
        f"{o.label}: pydicom decodes it {o.pydicom_shape}, medimg_lab refused: "
        f"{o.refusal}"
        for o in refused_decodable
    )


def test_every_refusal_names_the_file_and_what_would_work(outcomes):
    for o in outcomes:
        if not o.loads:
            name = Path(o.label).name
            assert o.refusal.split(": ", 1)[1].startswith(f"{name}: "), o.refusal
            assert len(o.refusal) > len(name) + 40, o.refusal


def test_a_loaded_file_has_the_size_pydicom_decodes(outcomes):
    for o in outcomes:
        if o.loads and o.decodes:
            assert grey_shape(o.shape) == grey_shape(o.pydicom_shape), o.label


def test_the_allowed_refusals_are_still_refused(outcomes):
    by_label = {o.label: o for o in outcomes}
    for label, reason in ALLOWED_REFUSALS.items():
        assert reason.strip(), label
        assert label in by_label, f"{label} is no longer in the corpus"
        assert not by_label[label].loads, f"{label} loads now: drop it from the list"


def test_the_uncompressed_ybr_full_422_sample_is_its_rgb_twin():
    rgb = ml.load(next(p for _, p in corpus() if p.name == "SC_rgb.dcm"))
    path = next(p for _, p in corpus() if p.name == "SC_ybr_full_422_uncompressed.dcm")
    image = ml.load(path)
    assert image.meta["color_converted_from"] == "YBR_FULL_422"
    assert image.array.shape == rgb.array.shape
    diff = np.abs(image.array.astype(int) - rgb.array.astype(int))
    assert diff.max() <= 8 and diff.mean() < 2
