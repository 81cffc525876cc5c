"""pyproject.toml is the source of truth; environment.yml mirrors it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == [
        "medimg_lab*",
        "widgets*",
    ]
    # The viewer's canvas code ships with the package (a wheel too).
    assert project["tool"]["setuptools"]["package-data"]["widgets"] == ["*.js"]
    assert (ROOT / "widgets" / "canvas.js").is_file()
