"""medimg-lab: interactive medical image analysis on real CT, MR and X-ray data.

This package holds the algorithms and data handling. It never imports
ipywidgets or IPython, so that a Dask worker, a script or the CLI can use it.

>>> import medimg_lab as ml
>>> ct = ml.data.sample("head_ct")
>>> ct.modality, ct.array.dtype
('CT', dtype('int16'))
"""

from __future__ import annotations

from . import (
    composition,
    data,
    display,
    metrics,
    params,
    processing,
    recipe,
    segmentation,
)
from .errors import (
    DecodeError,
    ImageTooLargeError,
    InvalidValuesError,
    MedImgError,
    NoPixelDataError,
    NotAnImageError,
    NotFoundError,
    OutputExistsError,
    SeriesError,
    TruncatedFileError,
    UnsupportedDimensionError,
    UntrustedModelError,
)
from .image import MedImage
from .io import (
    SliceGapWarning,
    TiffPageWarning,
    UnsharedSaltWarning,
    deidentify,
    export_deidentified,
    load,
    read_salt,
    save,
)

__version__ = "0.1.0"

__all__ = [
    "DecodeError",
    "ImageTooLargeError",
    "InvalidValuesError",
    "MedImage",
    "MedImgError",
    "NoPixelDataError",
    "NotAnImageError",
    "NotFoundError",
    "OutputExistsError",
    "SeriesError",
    "SliceGapWarning",
    "TiffPageWarning",
    "TruncatedFileError",
    "UnsharedSaltWarning",
    "UnsupportedDimensionError",
    "UntrustedModelError",
    "__version__",
    "batch",
    "composition",
    "data",
    "deidentify",
    "display",
    "export_deidentified",
    "load",
    "metrics",
    "params",
    "processing",
    "read_salt",
    "recipe",
    "recognition",
    "save",
    "segmentation",
]


def __getattr__(name: str):
    # recognition pulls in scikit-learn (0.8 s), batch Dask: loaded on first
    # use, so that the CLI and workers that do not need them start fast.
    if name in ("recognition", "batch", "chunked"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
