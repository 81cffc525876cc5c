"""``import medimg_lab`` stays light: heavy libraries load when they are used.

Every dashboard kernel, Dask worker and CLI call pays the package's import.
pandas (~0.3 s), scikit-learn, Dask, matplotlib and nibabel are loaded by the
function that needs them, not at import. Not a timing test: it checks which
modules a fresh interpreter holds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandas", "sklearn", "dask", "distributed", "matplotlib", "nibabel")


def _loaded_after(code: str, libraries=HEAVY) -> list[str]:
    """The top-level packages of ``libraries`` that ``code`` loads in a fresh
    interpreter."""
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = (
        f"import sys\n{code}\n"
        f"import json\nprint(json.dumps(sorted({loaded} & {set(libraries)!r})))\n"
    )
    out = subprocess.run(  # noqa: S603 this interpreter on a fixed snippet, no shell
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_medimg_lab_loads_no_heavy_library():
    assert _loaded_after("import medimg_lab") == []


def test_import_medimg_lab_loads_no_scipy():
    """scipy.ndimage (~0.15 s) loads with the first function that uses it."""
    assert _loaded_after("import medimg_lab", ("scipy",)) == []


def test_loading_and_filtering_a_sample_loads_no_heavy_library():
    """The common path of a dashboard kernel: a sample, a filter, a mask."""
    code = (
        "import medimg_lab as ml\n"
        "ct = ml.data.sample('spine_ct')\n"
        "ml.processing.gaussian(ct.array, sigma_mm=1.0, spacing=ct.spacing)\n"
        "ml.segmentation.region_grow(ct.array, [(64, 64)])\n"
    )
    assert _loaded_after(code) == []


@pytest.mark.parametrize(
    ("code", "library"),
    [
        (
            "import numpy as np, medimg_lab as ml\n"
            "t = ml.segmentation.measure(np.eye(4, dtype=bool))\n"
            "assert type(t).__name__ == 'DataFrame' and len(t) == 1",
            "pandas",
        ),
        ("import medimg_lab as ml\nml.recognition", "sklearn"),
    ],
)
def test_heavy_library_loads_on_first_use(code, library):
    """Deferred is not removed: the public behaviour is unchanged."""
    assert library in _loaded_after(code)
