"""medimg_lab is importable where no UI exists: Dask workers, scripts, the CLI."""

from __future__ import annotations

import configparser
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_medimg_lab_does_not_import_ipywidgets_or_ipython():
    code = (
        "import sys, medimg_lab, medimg_lab.io, medimg_lab.data, medimg_lab.display, "
        "medimg_lab.cli\n"
        "medimg_lab.data.sample('spine_ct')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ipywidgets', 'IPython', 'ipykernel', 'widgets') "
        "or m.startswith('medimg_lab.widgets'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(  # noqa: S603 this interpreter on a fixed snippet, no shell
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def _fresh(code: str) -> str:
    out = subprocess.run(  # noqa: S603 this interpreter on a fixed snippet, no shell
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_display_imports_no_stage():
    """display sits below the stages: it imports no stage, directly or not
    (the display <-> composition.fusion cycle is gone)."""
    import grimp

    graph = grimp.build_graph("medimg_lab")
    for stage in ("composition", "processing", "segmentation", "recognition"):
        chain = graph.find_shortest_chain("medimg_lab.display", f"medimg_lab.{stage}")
        assert chain is None, chain
    assert "medimg_lab.display" in graph.find_upstream_modules(
        "medimg_lab.composition.fusion"
    )


def _contracts() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter", encoding="utf-8")
    return config


def _listed(section: str, key: str = "source_modules") -> set[str]:
    return set(_contracts()[f"importlinter:contract:{section}"][key].split())


def test_contracts_name_every_module():
    """The core contract lists every module of medimg_lab but the UI, and the
    panels' contract every module of medimg_lab.widgets but the dashboards:
    a new module cannot slip past the layers."""
    import medimg_lab.widgets

    import medimg_lab

    core = {
        f"medimg_lab.{m.name}"
        for m in pkgutil.iter_modules(medimg_lab.__path__)
        if m.name != "widgets"
    }
    panels = {
        f"medimg_lab.widgets.{m.name}"
        for m in pkgutil.iter_modules(medimg_lab.widgets.__path__)
        if m.name != "dashboards"
    }
    assert _listed("core-without-ui") == core
    assert _listed("panels-without-dashboards") == panels


def test_import_contracts_hold():
    """lint-imports, as `make lint` runs it, on the package laid out as
    installed: it sees medimg_lab.widgets (mapped from widgets/) and keeps
    every contract."""
    out = subprocess.run(  # noqa: S603 this interpreter on our own tool, no shell
        [sys.executable, str(ROOT / "tools" / "lint_imports.py"), "--no-logo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "medimg_lab.widgets" in (ROOT / ".importlinter").read_text()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout
    assert out.stdout.count("KEPT") == len(
        [s for s in _contracts().sections() if s.startswith("importlinter:contract:")]
    )


def test_lint_layout_holds_the_mapped_ui(tmp_path):
    """The laid-out tree has medimg_lab/widgets/ from widgets/, as the wheel."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import lint_imports
    finally:
        sys.path.remove(str(ROOT / "tools"))
    folders = lint_imports.package_folders()
    assert folders["medimg_lab.widgets"] == ROOT / "widgets"
    assert folders["medimg_lab.widgets.dashboards"] == ROOT / "widgets" / "dashboards"
    lint_imports.lay_out(tmp_path, folders)
    viewer = tmp_path / "medimg_lab" / "widgets" / "viewer.py"
    assert viewer.resolve() == ROOT / "widgets" / "viewer.py"
    assert not (tmp_path / "widgets").exists()
