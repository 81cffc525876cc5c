"""medimg_lab is importable where no UI exists: Dask workers, scripts, the CLI."""

from __future__ import annotations

import subprocess
import sys


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
