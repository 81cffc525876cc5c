"""Inputs are never modified, outputs appear whole (issue 9, item 5).

- A batch run (serial and on Dask threads) leaves every input file bit for bit
  as it was, even with its output folder inside the inputs.
- Every file a batch writes goes through ``atomic_write``; a writer that
  fails half-way leaves the previous file, or nothing, under the target name.
- A batch interrupted mid-write (an exception, or SIGKILL of the process)
  leaves no file that a resume trusts; the resume's results are complete and
  equal to a fresh computation.
- The notebook run's guard (``notebooks/conftest.py``) fails a session in
  which a sample file or a file under ``notebooks/`` changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

import medimg_lab.io as mio
from medimg_lab import batch, data
from medimg_lab.errors import OutputExistsError
from medimg_lab.io import _atomic, load
from medimg_lab.recipe import Recipe
from tests.helpers import dicom_file, disc_png

REPO = Path(__file__).resolve().parents[1]
STEPS = [
    {"op": "gaussian", "params": {"sigma_mm": 1.0}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path, *, skip: Path | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (skip is None or not p.is_relative_to(skip))
    }


@pytest.fixture
def inputs(tmp_path) -> Path:
    """Every kind of input: DICOM samples, a series, PNG, NIfTI, broken files."""
    folder = tmp_path / "inputs"
    (folder / "series").mkdir(parents=True)
    for name in ("spine_ct", "abdomen_mr", "perfusion_ct", "ultrasound"):
        shutil.copyfile(data.path(name), folder / f"{name}.dcm")
    template = dicom_file("CT_small.dcm")
    for k in range(3):
        ds = pydicom.dcmread(template)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.save_as(folder / "series" / f"IM{k}")
    for k in range(3):
        disc_png(folder / f"disc{k}.png", 6 + 3 * k, k, size=48)
    volume = np.random.default_rng(0).integers(0, 200, (6, 20, 24), np.int16)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / "volume.nii.gz")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "notes.txt").write_text("not an image")
    return folder


# --------------------------------------------------------- inputs unchanged
@pytest.mark.parametrize("client", ["serial", "threads"])
def test_a_batch_run_never_changes_its_inputs(inputs, client):
    before = _tree(inputs)
    out = inputs / "results"  # the worst case: outputs beside the inputs
    recipe = Recipe(STEPS)
    result = batch.run(
        recipe, inputs, out, client=client, workers=2, save_images=True, progress=False
    )
    assert (result.table["status"] == "ok").sum() >= 8
    again = batch.run(recipe, inputs, out, client=client, workers=2, progress=False)
    assert again.table["resumed"].sum() >= 8
    batch.run(recipe, inputs, out, client="serial", force=True, progress=False)
    assert _tree(inputs, skip=out) == before


def test_the_check_sees_a_changed_input(inputs):
    before = _tree(inputs)
    with open(inputs / "disc0.png", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0")
    assert _tree(inputs) != before


# ------------------------------------------------------------ atomic writes
def test_every_batch_output_is_written_atomically(inputs, tmp_path, monkeypatch):
    written: list[Path] = []
    real = _atomic.atomic_write

    def spy(path, write, **kwargs):
        written.append(Path(path))
        return real(path, write, **kwargs)

    monkeypatch.setattr(_atomic, "atomic_write", spy)
    monkeypatch.setattr(mio, "atomic_write", spy)
    out = tmp_path / "out"
    batch.run(
        Recipe(STEPS), inputs, out, client="serial", save_images=True, progress=False
    )
    files = {p for p in out.rglob("*") if p.is_file()}
    assert {".json", ".csv", ".parquet", ".gz"} <= {p.suffix for p in files}
    assert files - set(written) == set(), "written without atomic_write"


@pytest.mark.parametrize("stop", [ValueError, KeyboardInterrupt])
def test_a_writer_failing_half_way_leaves_the_old_file(tmp_path, stop):
    target = tmp_path / "results.csv"
    target.write_text("old, complete\n")

    def half(tmp: Path) -> None:
        tmp.write_text("new, but only ha")
        raise stop("stopped mid-write")

    with pytest.raises(stop):
        _atomic.atomic_write(target, half, overwrite=True)
    assert target.read_text() == "old, complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_a_writer_failing_half_way_leaves_nothing_new(tmp_path):
    def half(tmp: Path) -> None:
        tmp.write_bytes(b"\x1f\x8b half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _atomic.atomic_write(tmp_path / "mask.nii.gz", half)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_made_and_an_existing_file_still_refused(tmp_path):
    # The folder is made only when the temporary file cannot be created in
    # it (two system calls fewer for each of a batch's records and masks).
    target = tmp_path / "new" / "deeper" / "record.json"
    _atomic.atomic_write(target, lambda tmp: tmp.write_text("{}"))
    assert target.read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]
    _atomic.atomic_write(target, lambda tmp: tmp.write_text("[]"), overwrite=True)
    assert target.read_text() == "[]"
    with pytest.raises(OutputExistsError, match="already exists"):
        _atomic.atomic_write(target, lambda tmp: tmp.write_text("x"))
    assert target.read_text() == "[]"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


@pytest.mark.parametrize("sync", [True, False])
def test_bytes_are_written_whole_through_the_temporary_file(tmp_path, sync):
    target = tmp_path / "items" / "study.json"
    _atomic.atomic_write(target, b'{"status": "ok"}', sync=sync)
    assert target.read_bytes() == b'{"status": "ok"}'
    _atomic.atomic_write(target, b"{}", overwrite=True, sync=sync)
    assert target.read_bytes() == b"{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["study.json"]


# ------------------------------------------------------- interrupted batches
@pytest.fixture
def discs(tmp_path) -> Path:
    folder = tmp_path / "discs"
    folder.mkdir()
    for k in range(5):
        disc_png(folder / f"d{k}.png", 5 + 3 * k, k, size=48)
    return folder


def _assert_complete_and_correct(result, folder: Path, recipe: Recipe) -> None:
    table = result.table.set_index("id")
    assert len(table) == 5 and (table["status"] == "ok").all()
    for ident, row in table.iterrows():
        expected = recipe.apply(load(folder / f"{ident}.png"))
        saved = load(row["mask"]).array
        np.testing.assert_array_equal(saved, expected.labels.astype(saved.dtype))
        assert row["area_mm2"] == pytest.approx(expected.measurements["area_mm2"])


def test_an_exception_mid_write_leaves_nothing_a_resume_trusts(
    discs, tmp_path, monkeypatch
):
    recipe, out = Recipe(STEPS), tmp_path / "out"
    real = mio.save_nifti
    calls: list[Path] = []

    def dies_on_the_third(image, tmp):
        calls.append(Path(tmp))
        real(image, tmp)
        if len(calls) == 3:
            whole = Path(tmp).read_bytes()
            Path(tmp).write_bytes(whole[: len(whole) // 2])
            raise KeyboardInterrupt  # the user stops the run mid-write

    monkeypatch.setattr(mio, "save_nifti", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        batch.run(recipe, discs, out, client="serial", progress=False)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "d0.nii.gz",
        "d1.nii.gz",
    ]
    assert sorted(p.name for p in (out / "items").iterdir()) == ["d0.json", "d1.json"]
    assert not (out / "results.csv").exists()

    monkeypatch.setattr(mio, "save_nifti", real)
    resumed = batch.run(recipe, discs, out, client="serial", progress=False)
    assert resumed.table.set_index("id")["resumed"].to_dict() == {
        "d0": True,
        "d1": True,
        "d2": False,
        "d3": False,
        "d4": False,
    }
    _assert_complete_and_correct(resumed, discs, recipe)


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path

import medimg_lab.io as mio
from medimg_lab import batch
from medimg_lab.recipe import Recipe

real, calls = mio.save_nifti, []


def dies_on_the_third(image, tmp):
    calls.append(tmp)
    real(image, tmp)
    if len(calls) == 3:
        whole = Path(tmp).read_bytes()
        Path(tmp).write_bytes(whole[: len(whole) // 2])
        os.kill(os.getpid(), signal.SIGKILL)


mio.save_nifti = dies_on_the_third
batch.run(Recipe.load(sys.argv[1]), sys.argv[2], sys.argv[3], client="serial",
          progress=False)
"""


def test_a_batch_killed_mid_write_resumes_to_complete_results(discs, tmp_path):
    recipe, out = Recipe(STEPS), tmp_path / "out"
    recipe_file = recipe.save(tmp_path / "recipe.json")
    killed = subprocess.run(  # noqa: S603 this interpreter on a fixed script, no shell
        [sys.executable, "-c", _KILLED_RUN, str(recipe_file), str(discs), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    masks = sorted(p.name for p in (out / "masks").iterdir())
    # The half-written file is a hidden temporary, never under a final name.
    finals = [m for m in masks if not m.startswith(".")]
    assert finals == ["d0.nii.gz", "d1.nii.gz"]
    leftovers = [out / "masks" / m for m in masks if m.startswith(".")]
    assert [p.name.startswith(".d2.nii.gz.") for p in leftovers] == [True]
    with pytest.raises(Exception):  # noqa: B017 it is really half a file
        nib.load(leftovers[0]).get_fdata()

    resumed = batch.run(recipe, discs, out, client="serial", progress=False)
    assert resumed.table["resumed"].sum() == 2
    _assert_complete_and_correct(resumed, discs, recipe)
    outputs = set(resumed.table["mask"])
    assert str(leftovers[0]) not in outputs
    # A leftover inside the inputs is never taken for an input either.
    assert all(not i.path.endswith(".part.nii.gz") for i in batch.discover(out))


@pytest.mark.parametrize("damage", ["truncated", "empty", "mask gone"])
def test_a_damaged_record_is_recomputed_not_trusted(discs, tmp_path, damage):
    recipe, out = Recipe(STEPS), tmp_path / "out"
    batch.run(recipe, discs, out, client="serial", progress=False)
    record = out / "items" / "d2.json"
    if damage == "truncated":  # what a non-atomic writer leaves when killed
        record.write_text(record.read_text()[:40])
    elif damage == "empty":  # a rename that reached the disk before the data
        record.write_text("")
    else:
        os.remove(json.loads(record.read_text())["outputs"]["mask"])
    again = batch.run(recipe, discs, out, client="serial", progress=False)
    resumed = again.table.set_index("id")["resumed"]
    assert not resumed["d2"] and resumed.drop("d2").all()
    _assert_complete_and_correct(again, discs, recipe)


# ------------------------------------------------------- the notebook guard
def _guard():
    spec = importlib.util.spec_from_file_location(
        "notebooks_conftest", REPO / "notebooks" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_guard_watches_the_samples_and_notebooks():
    guard = _guard()
    files = {str(p) for p in guard.input_files()}
    for s in data.samples():
        assert str(data.path(s.name)) in files, s.name
    assert str(REPO / "notebooks" / "00_getting_started.ipynb") in files


def test_the_notebook_guard_names_a_changed_or_removed_file(tmp_path):
    guard = _guard()
    kept, edited, removed = (tmp_path / n for n in ("kept", "edited", "removed"))
    for path in (kept, edited, removed):
        path.write_text("same")
    before = guard.checksums([kept, edited, removed])
    edited.write_text("different")
    removed.unlink()
    assert guard.changed(before, guard.checksums(before)) == [
        str(edited),
        str(removed),
    ]


def test_the_notebook_guard_fails_a_run_that_changes_an_input(tmp_path):
    """A session under a copy of the guard, whose one test edits a watched file."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copyfile(REPO / "notebooks" / "conftest.py", folder / "conftest.py")
    (folder / "input.txt").write_text("original")
    (folder / "test_edit.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            def test_reads():
                assert Path(__file__).with_name("input.txt").read_text()

            def test_edits():
                Path(__file__).with_name("input.txt").write_text("edited")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run(  # noqa: S603 this interpreter, fixed arguments, no shell
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(folder)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "2 passed" in run.stdout
    assert run.returncode == 1, run.stdout
    assert f"{folder / 'input.txt'}: changed or removed after test_edit.py" in (
        run.stdout
    )
