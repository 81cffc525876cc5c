"""Check the layers' import contracts (``.importlinter``) on the package as installed.

``make lint`` runs this. import-linter's graph (grimp) finds a package's modules
by walking the folder of its top-level package, ``medimg_lab/``; it cannot
follow setuptools' ``package-dir`` mapping, which installs the ``widgets/``
folder as ``medimg_lab.widgets`` (pyproject.toml). So, before checking, this
lays the package out as the wheel does, in a temporary folder of symbolic
links to the repository's own files (``medimg_lab/...`` and
``medimg_lab/widgets/...`` from ``widgets/``), and runs ``lint-imports``
there: the contracts see every module under the name it is imported by, and
the line numbers of the real files.

Usage: ``python tools/lint_imports.py [lint-imports options]``; the exit status
is lint-imports'.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_folders(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Path]:
    """Each package as installed and the repository folder it comes from.

    The roots are pyproject's ``packages`` without a parent among them
    (``medimg_lab``) and its ``package-dir`` mapping (``medimg_lab.widgets``
    from ``widgets/``); below a root, every folder with an ``__init__.py`` is
    a package, as the editable install imports it.
    """
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]
    # The mapped folders first: a mapped package comes from its own folder.
    roots = {
        name: ROOT / folder for name, folder in config.get("package-dir", {}).items()
    }
    for package in config["packages"]:
        if "." not in package:
            roots.setdefault(package, ROOT / package)
    folders: dict[str, Path] = {}
    for name, root in roots.items():
        for init in sorted(root.rglob("__init__.py")):
            package = ".".join((name, *init.parent.relative_to(root).parts))
            folders.setdefault(package, init.parent)
    return folders


def lay_out(target: Path, folders: dict[str, Path] | None = None) -> Path:
    """Symbolic links to every package's ``.py`` files, laid out as installed."""
    for package, folder in (folders or package_folders()).items():
        where = target / Path(*package.split("."))
        where.mkdir(parents=True, exist_ok=True)
        for source in sorted(folder.glob("*.py")):
            (where / source.name).symlink_to(source)
    return target


def main(argv: list[str]) -> int:
    config = ROOT / ".importlinter"
    with tempfile.TemporaryDirectory(prefix="medimg-imports-") as tmp:
        lay_out(Path(tmp))
        # lint-imports puts its working folder first on sys.path: the laid-out
        # package is found before the editable install's mapping.
        env = {**os.environ, "PYTHONPATH": tmp}
        command = [
            str(Path(sys.executable).with_name("lint-imports")),
            str(config),
            "--no-cache",
            *argv,
        ]
        return subprocess.call(command, cwd=tmp, env=env)  # noqa: S603 our own tool, fixed arguments


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
