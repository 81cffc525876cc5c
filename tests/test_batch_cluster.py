"""Batch runs on an external dask.distributed cluster, started as its own processes.

``dask scheduler`` and ``dask worker`` run on 127.0.0.1 in working folders of
their own (see :mod:`tests.dask_cluster`), as on other machines: relative
paths, the caller's working directory and the project's worker settings must
all be carried to them, or refused, by :func:`medimg_lab.batch.run`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medimg_lab import batch, data
from medimg_lab._worker_settings import settings_in_force
from medimg_lab.errors import NotFoundError
from medimg_lab.image import MedImage
from medimg_lab.io import load, save
from medimg_lab.recipe import Recipe
from tests.dask_cluster import external_cluster
from tests.helpers import disc_png

STEPS = [
    {"op": "gaussian", "params": {"sigma_mm": 1.0}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]
#: Bound on one CLI run on the external cluster (a bound, not a target).
RUN_TIMEOUT_S = 240


def _cohort(folder: Path) -> int:
    """12 studies of real samples: square and not, isotropic and anisotropic, 2D and 3D.

    Returns the number of studies.
    """
    (folder / "ct").mkdir(parents=True)
    (folder / "mr").mkdir()
    (folder / "discs").mkdir()
    shutil.copyfile(data.path("spine_ct"), folder / "ct" / "spine.dcm")  # 128², DICOM
    head = data.sample("head_ct")
    crops = {  # non-square crops of the 512² head CT, with their own spacings
        "head_wide": (head.array[150:310, 96:400], head.spacing),
        "head_tall": (head.array[60:420, 180:330], (0.5, 0.9)),
        "head_square": (head.array[128:384, 128:384], (0.8, 0.8)),
    }
    for name, (array, spacing) in crops.items():
        image = MedImage(np.ascontiguousarray(array), spacing, "CT", head.window, {})
        save(image, folder / "ct" / f"{name}.nii.gz")
    brain = data.sample("brain_mri")
    volumes = {  # 3D crops of the MNI brain, one anisotropic
        "brain_aniso": (brain.array[80:96, 60:120:2, 50:110], (1.0, 2.0, 1.0)),
        "brain_iso": (brain.array[70:90, 70:110, 60:130], (1.0, 1.0, 1.0)),
    }
    for name, (array, spacing) in volumes.items():
        image = MedImage(np.ascontiguousarray(array), spacing, "MR", (80.0, 160.0), {})
        save(image, folder / "mr" / f"{name}.nii.gz")
    for k in range(6):
        disc_png(folder / "discs" / f"disc{k}.png", 8 + 3 * k, k, size=48 + 8 * k)
    return 1 + len(crops) + len(volumes) + 6


def _assert_results_match_recipe(table: pd.DataFrame, recipe: Recipe, root: Path):
    for row in table.to_dict("records"):
        assert row["status"] == "ok", row["reason"]
        for key in ("input", "mask"):
            assert Path(row[key]).is_absolute(), row[key]
            assert Path(row[key]).is_relative_to(root), row[key]
        expected = recipe.apply(load(row["input"]))
        saved = load(row["mask"]).array
        np.testing.assert_array_equal(saved, expected.labels.astype(saved.dtype))
        for key, value in expected.measurements.items():
            assert row[key] == pytest.approx(value, rel=1e-6, nan_ok=True), key


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Scheduler and two workers, each process in a folder of its own.

    ``settings_before``: each worker's settings as it started, before any
    batch ran on it.
    """
    from dask.distributed import Client

    with external_cluster(tmp_path_factory.mktemp("cluster"), 2) as running:
        with Client(running.address, timeout="30s") as client:
            running.settings_before = client.run(settings_in_force)
        yield running


def _outputs_under(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.suffix in (".gz", ".png", ".json", ".csv", ".parquet")
        and "dask-scratch-space" not in p.parts
    ]


def test_cli_run_with_relative_paths_from_another_folder(cluster, tmp_path):
    project = tmp_path / "project"
    n = _cohort(project / "cohort")
    recipe = Recipe(STEPS)
    recipe.save(project / "recipe.json")
    elsewhere = tmp_path / "elsewhere"  # neither the project nor a worker's folder
    elsewhere.mkdir()
    command = [
        str(Path(sys.executable).with_name("medimg-lab")),
        "run",
        "../project/recipe.json",
        "../project/cohort/ct",
        "../project/cohort/mr",
        "../project/cohort/discs/*.png",
        "--out",
        "../project/results",
        "--scheduler",
        cluster.address,
        "-q",
    ]
    done = subprocess.run(  # noqa: S603 our own console script
        command, cwd=elsewhere, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(project / "results" / "results.csv")
    assert len(table) == n
    _assert_results_match_recipe(table, recipe, project)
    for folder in [*cluster.worker_dirs, elsewhere]:
        assert _outputs_under(folder) == [], f"outputs written under {folder}"


def test_external_workers_get_the_project_settings(cluster, tmp_path):
    """The allocator thresholds and one OpenCV thread, as on the local cluster."""
    from dask.distributed import Client

    before = cluster.settings_before
    assert len(before) == 2
    assert not any(s["allocator_thresholds"] for s in before.values())
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        disc_png(folder / f"d{k}.png", 6 + 2 * k, k)
    with Client(cluster.address, timeout="30s") as client:
        result = batch.run(
            Recipe(STEPS), folder, tmp_path / "out", client=client, progress=False
        )
        assert (result.table["status"] == "ok").all()
        after = client.run(settings_in_force)
    assert after.keys() == before.keys()
    for settings in after.values():
        assert settings == {
            "opencv_threads": 1,
            "decode_threads": 1,
            "allocator_thresholds": True,
        }


ALLOCATOR_PROBE = """
import ctypes, ctypes.util, json
from medimg_lab import _worker_settings as ws
libc = ctypes.CDLL(ctypes.util.find_library("c"))
size = 16 * 2**20  # an image stack's worth: larger than any free heap chunk here
before = ws._served_by_mmap(libc, size)
ws.apply_worker_settings()
print(json.dumps([before, ws._served_by_mmap(libc, size), ws.settings_in_force()]))
"""


def test_the_settings_keep_image_buffers_on_the_heap_under_dasks_default():
    """In a fresh process started as Dask's nanny starts a worker."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["MALLOC_TRIM_THRESHOLD_"] = "65536"  # distributed's pre-spawn default
    done = subprocess.run(  # noqa: S603 this interpreter, fixed code
        [sys.executable, "-c", ALLOCATOR_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, after, settings = json.loads(done.stdout)
    assert before is True  # the 128 KiB mmap threshold that Dask's default froze
    assert after is False  # under the 64 MiB threshold: from the heap
    assert settings == {
        "opencv_threads": 1,
        "decode_threads": 1,
        "allocator_thresholds": True,
    }


def _hidden_worker(folder: Path) -> list[str]:
    """A worker prefix: its own mount namespace with an empty tmpfs over ``folder``.

    The worker then sees ``folder`` empty, as a worker on another machine
    sees a path that exists only on the caller's disk.
    """
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to give a worker its own mounts"
    probe = subprocess.run(  # noqa: S603 a fixed tool
        [unshare, "-m", "--propagation", "private", "true"], capture_output=True
    )
    user = [] if probe.returncode == 0 else ["-r"]  # unprivileged: a user namespace
    script = 'mount -t tmpfs medimg-hidden "$0" && exec "$@"'
    return [unshare, *user, "-m", "--propagation", "private", "sh", "-c", script]


def test_paths_the_workers_cannot_see_are_refused_before_anything_runs(tmp_path):
    hidden = tmp_path / "only-here"
    (hidden / "in").mkdir(parents=True)
    for k in range(3):
        disc_png(hidden / "in" / f"d{k}.png", 6 + 2 * k, k)
    visible = tmp_path / "shared"
    (visible / "in").mkdir(parents=True)
    disc_png(visible / "in" / "d.png", 9, 0)
    prefix = [*_hidden_worker(hidden), str(hidden)]
    with external_cluster(tmp_path / "cluster", 1, worker_prefix=prefix) as running:
        with pytest.raises(NotFoundError) as missing_input:
            batch.run(
                Recipe(STEPS),
                hidden / "in",
                visible / "out",
                client=running.address,
                progress=False,
            )
        with pytest.raises(NotFoundError) as missing_out:
            batch.run(
                Recipe(STEPS),
                visible / "in",
                hidden / "out",
                client=running.address,
                progress=False,
            )
    message = str(missing_input.value)
    assert str(hidden / "in") in message and "worker" in message
    assert "shared" in message or "same path" in message  # what would work
    assert not (visible / "out" / "items").exists()  # nothing was submitted
    assert str(hidden / "out") in str(missing_out.value)
    assert not any((hidden / "out").rglob("*.json"))


def test_a_worker_cwd_is_not_the_callers(cluster):
    """The premise of the tests above: workers run in folders of their own."""
    from dask.distributed import Client

    with Client(cluster.address, timeout="30s") as client:
        cwds = set(client.run(os.getcwd).values())
    assert cwds == {str(d) for d in cluster.worker_dirs}
    assert os.getcwd() not in cwds
