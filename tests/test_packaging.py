"""pyproject.toml is the source of truth; environment.yml mirrors it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# PyPI name -> conda-forge name, where they differ.
CONDA_NAME = {"opencv-contrib-python-headless": "opencv", "dask[distributed]": "dask"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra if not r.startswith("medimg-lab")}
    wanted = {CONDA_NAME.get(n, n) for n in wanted}

    listed = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.\-\[\]]+)", line)
        if m and m.group(1) not in ("pip", "-e", "conda-forge"):
            listed.add(_name(m.group(1)))
    listed -= {"python", "distributed"}
    assert wanted == listed


def test_console_script_and_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["medimg-lab"] == "medimg_lab.cli:main"
    setuptools = project["tool"]["setuptools"]
    # The widgets/ folder installs as medimg_lab.widgets.
    assert setuptools["package-dir"] == {"medimg_lab.widgets": "widgets"}
    # The viewer's canvas code ships with the package (a wheel too).
    assert setuptools["package-data"]["medimg_lab.widgets"] == ["*.js"]
    assert (ROOT / "widgets" / "canvas.js").is_file()


def _packages_on_disk() -> set[str]:
    """Every package folder of the project, by the name it installs under."""
    names = set()
    for root, prefix in (
        (ROOT / "medimg_lab", "medimg_lab"),
        (ROOT / "widgets", "medimg_lab.widgets"),
    ):
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            names.add(".".join((prefix, *parts)))
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built here from the working tree (offline)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(  # noqa: S603 this interpreter's pip on the working tree, no shell
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=out,
    )
    (built,) = out.glob("medimg_lab-*.whl")
    return built


def test_wheel_has_no_top_level_widgets_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {
        n.split("/", 1)[0]
        for n in names
        if not n.split("/", 1)[0].endswith(".dist-info")
    }
    assert top == {"medimg_lab"}, top
    # Every package folder is in it (the list in pyproject.toml is explicit).
    packaged = {
        n[: -len("/__init__.py")].replace("/", ".")
        for n in names
        if n.endswith("/__init__.py")
    }
    assert packaged == _packages_on_disk()
    assert "medimg_lab/widgets/canvas.js" in names
    assert "medimg_lab/widgets/dashboards/viewer.py" in names


def test_a_students_widgets_py_does_not_shadow_the_panels(wheel, tmp_path):
    """A notebook folder with its own widgets.py (and ``import ipywidgets as
    widgets`` in it) still opens the panels, from the installed wheel."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "lesson"
    work.mkdir()
    (work / "widgets.py").write_text("import ipywidgets as widgets\nSHADOW = True\n")
    code = (
        "import widgets, medimg_lab.widgets as w, medimg_lab.widgets.dashboards as d\n"
        "assert widgets.SHADOW\n"
        "print(w.__file__, d.ViewerDashboard.__module__, w.ImageViewer.__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(  # noqa: S603 this interpreter on a fixed snippet, no shell
        [sys.executable, "-c", code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    where, module, viewer = done.stdout.split()
    assert Path(where) == site / "medimg_lab" / "widgets" / "__init__.py"
    assert (module, viewer) == ("medimg_lab.widgets.dashboards.viewer", "ImageViewer")
