"""Errors raised for bad medical image input.

Every error that :func:`medimg_lab.load` lets out is a :class:`MedImgError`.
Each message names the source, what is wrong with it and what would work, so
that a notebook or dashboard can show it to a person as it is.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = [
    "DecodeError",
    "ImageTooLargeError",
    "InvalidValuesError",
    "MedImgError",
    "NoPixelDataError",
    "NotAnImageError",
    "NotFoundError",
    "OutputExistsError",
    "SeriesError",
    "TruncatedFileError",
    "UnsupportedDimensionError",
    "UntrustedModelError",
]


class MedImgError(Exception):
    """Base class of every medimg-lab input or output error.

    Parameters
    ----------
    source : str
        A printable name of the input (file name, ``"<bytes>"``, folder).
    problem : str
        What is wrong, as one sentence.
    fix : str
        What would work instead, as one sentence.
    """

    def __init__(self, source: str, problem: str, fix: str):
        self.source = source
        self.problem = problem
        self.fix = fix
        super().__init__(f"{source}: {problem} {fix}")


class NotFoundError(MedImgError, FileNotFoundError):
    """The path does not exist."""


class NotAnImageError(MedImgError, ValueError):
    """The input is not a DICOM, NIfTI, PNG, JPEG or TIFF image."""


class TruncatedFileError(MedImgError, ValueError):
    """The file ends before the image data it announces."""


class NoPixelDataError(MedImgError, ValueError):
    """A DICOM object without an image (a report, a structure set, a DICOMDIR)."""


class ImageTooLargeError(MedImgError, ValueError):
    """The header announces more pixel data than the memory budget allows."""


class InvalidValuesError(MedImgError, ValueError):
    """The image holds NaN or infinite values, or a header value is absurd."""


class UnsupportedDimensionError(MedImgError, ValueError):
    """The image has more dimensions than one volume (for example 4D fMRI)."""


class DecodeError(MedImgError, ValueError):
    """The pixel data could not be decoded (a codec failed or is missing)."""


class SeriesError(MedImgError, ValueError):
    """A folder does not hold exactly one consistent DICOM series."""


class OutputExistsError(MedImgError, FileExistsError):
    """A save would overwrite an existing file or the image's own input."""


class UntrustedModelError(MedImgError, ValueError):
    """A saved model is a pickle, or holds types that are not trusted."""


def warn_caller(warning: Warning) -> None:
    """Warn, pointing at the first frame outside medimg_lab (the caller)."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(warning, stacklevel=level)
