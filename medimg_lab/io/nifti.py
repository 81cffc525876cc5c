"""NIfTI reading and writing with nibabel.

Volumes are reoriented to nibabel's closest canonical orientation (RAS+) and
then laid out like an axial DICOM series, the layout every other reader here
gives: ``array[slice, row, column]`` with slices from inferior to superior,
rows from anterior to posterior, and columns from the patient's right to
left. Shown as an image, the patient's right is on the viewer's left, the
radiological convention.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import display
from ..errors import (
    DecodeError,
    InvalidValuesError,
    MedImgError,
    TruncatedFileError,
    UnsupportedDimensionError,
)
from ..image import MedImage
from ._source import check_budget, damaged_header, gunzip_limited, native

__all__ = ["load_nifti", "nifti_bytes", "save_nifti"]

ORIENTATION = (
    "axial: slices inferior→superior, rows anterior→posterior, columns right→left"
)


#: Images nibabel opens that are not a NIfTI volume, by class name.
_KINDS = {"Cifti2Image": "CIFTI-2", "GiftiImage": "GIFTI"}


def _open(data: str | os.PathLike | bytes, name: str, max_bytes: int) -> Any:
    import nibabel as nib

    try:
        if isinstance(data, bytes | bytearray):
            raw = bytes(data)
            if raw[:2] == b"\x1f\x8b":
                raw = gunzip_limited(raw, name, max_bytes + 1024**2)
            return (
                nib.Nifti1Image.from_bytes(raw)
                if raw[4:8] not in (b"n+2\0",)
                else nib.Nifti2Image.from_bytes(raw)
            )
        return nib.load(os.fspath(data))
    except MedImgError:
        raise
    except Exception as exc:  # nibabel raises many types on damaged headers
        raise damaged_header(
            name, "NIfTI", exc, "Save the volume again as .nii or .nii.gz."
        ) from exc


def load_nifti(
    data: str | os.PathLike | bytes,
    name: str,
    max_bytes: int,
    *,
    volume: int | None = None,
    replace_nonfinite: float | None = None,
) -> MedImage:
    """Load a NIfTI-1/2 image (path or bytes), canonically oriented.

    Parameters
    ----------
    volume : int, optional
        Index of the volume to take from a 4D series (fMRI, DWI).
    replace_nonfinite : float, optional
        Value for NaN and infinite voxels; by default they are an error.
    """
    import nibabel as nib

    img = _open(data, name, max_bytes)
    if not isinstance(img, nib.Nifti1Pair):  # Nifti1Image, Nifti2Image and pairs
        kind = _KINDS.get(type(img).__name__, type(img).__name__)
        raise DecodeError(
            name,
            f"is a {kind} file, not a NIfTI "
            "volume: it holds data on surfaces or grayordinates, not on a voxel "
            "grid.",
            "Open the NIfTI volume it was made from, or convert it to a volume "
            "first (Connectome Workbench: wb_command -cifti-separate).",
        )
    header = img.header
    shape = tuple(int(d) for d in header.get_data_shape())
    dtype = header.get_data_dtype()
    scaled = header.get_slope_inter()[0] not in (None, 1.0) or header.get_slope_inter()[
        1
    ] not in (None, 0.0)
    itemsize = max(dtype.itemsize, 4 if scaled else 1)
    # Reorienting to the axial layout copies the volume once: the voxels
    # and their copy must fit 1.5 x the budget, the stated peak of a load.
    volume_shape = shape[:3] if len(shape) > 3 else shape
    check_budget(
        name,
        shape or (0,),
        itemsize,
        max_bytes,
        extra=math.prod(volume_shape or (0,)) * itemsize,
        why="with the copy that reorients it",
    )
    extra = [d for d in shape[3:]]
    if len(shape) > 5 or (len(shape) == 5 and shape[4] > 1):
        raise UnsupportedDimensionError(
            name,
            f"has {len(shape)} dimensions {shape}; one 2D image or 3D volume is "
            "expected.",
            "Extract one volume first (nilearn.image.index_img).",
        )
    if extra and extra[0] > 1 and volume is None:
        raise UnsupportedDimensionError(
            name,
            f"is a 4D series of {extra[0]} volumes {shape}; one volume is expected.",
            f"Pass volume=<0..{extra[0] - 1}> to load() to pick one.",
        )
    if volume is not None and not (0 <= volume < (extra[0] if extra else 1)):
        raise ValueError(
            f"volume={volume} is out of range for {name}, which holds "
            f"{extra[0] if extra else 1} volume(s)"
        )
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)):
        raise InvalidValuesError(
            name,
            "its orientation matrix (the sform or qform affine) holds NaN or "
            "infinite values, so where its voxels lie in space is unknown.",
            "Set a valid affine and save the volume again (for example nibabel's "
            "img.set_sform(affine, code=1)).",
        )
    try:
        if len(shape) > 3:
            img = img.slicer[..., volume or 0]
            while len(img.shape) > 3:
                img = img.slicer[..., 0]
        if len(img.shape) == 2:
            img = nib.Nifti1Image(
                np.asanyarray(img.dataobj)[..., np.newaxis], img.affine, img.header
            )
        canon = nib.as_closest_canonical(img)
        arr = native(np.asanyarray(canon.dataobj))
        zooms = tuple(float(z) for z in canon.header.get_zooms()[:3])
        intent = header.get_intent()[0]
        # The file's bytes (an upload, or its inflated .nii.gz) stay with
        # the image objects: let them go before the volume is copied.
        del img, canon
    except MedImgError:
        raise
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise TruncatedFileError(
            name,
            "ends before the voxel data its header announces; the file was cut short.",
            "Copy or save the file again.",
        ) from exc
    except Exception as exc:
        raise DecodeError(
            name,
            "its voxel data could not be read: the header's data type, scaling "
            "or orientation does not fit the data.",
            "Save the volume again as .nii or .nii.gz.",
        ) from exc
    meta: dict[str, Any] = {"format": "NIfTI", "orientation": ORIENTATION}
    if arr.dtype.names:  # RGB24 and RGBA32 NIfTI
        arr = np.stack([arr[c] for c in arr.dtype.names[:3]], axis=-1)
    elif arr.dtype == np.float64 or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            if replace_nonfinite is None:
                raise InvalidValuesError(
                    name,
                    f"holds {int(bad.sum())} NaN or infinite voxels.",
                    "Pass replace_nonfinite=0 (or another value) to load() to "
                    "replace them.",
                )
            arr = np.where(bad, np.float32(replace_nonfinite), arr)
            meta["nonfinite_replaced"] = int(bad.sum())
    color = arr.ndim == 4 and arr.shape[-1] == 3
    # (x: L→R, y: P→A, z: I→S)  →  (slice: I→S, row: A→P, column: R→L)
    arr = np.ascontiguousarray(np.swapaxes(arr, 0, 2)[:, ::-1, ::-1])
    spacing = (zooms[2], zooms[1], zooms[0])
    meta["spacing_known"] = all(np.isfinite(z) and z > 0 for z in spacing)
    meta["spacing_source"] = "NIfTI pixdim"
    if not meta["spacing_known"]:
        spacing = (1.0, 1.0, 1.0)
        meta["spacing_source"] = "unknown (1 mm assumed)"
    if arr.shape[0] == 1:
        arr, spacing = arr[0], spacing[1:]
    if intent not in ("none", None):
        meta["intent"] = intent
    window = (127.5, 256.0) if color else display.auto_window(arr)
    return MedImage(
        array=arr,
        spacing=spacing,
        modality="OT",  # NIfTI does not record the modality
        window=window,
        meta=meta,
    )


def nifti_image(image: MedImage) -> Any:  # nibabel (~0.1 s) loads on first use
    """A NIfTI image of a MedImage: the inverse of :func:`load_nifti`'s layout."""
    import nibabel as nib

    arr = image.array
    spacing = image.spacing
    if not image.is_volume:
        arr, spacing = arr[np.newaxis], (1.0, *spacing)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if image.is_color:
        rgb = np.ascontiguousarray(arr, dtype=np.uint8)
        arr = rgb.view([("R", "u1"), ("G", "u1"), ("B", "u1")])[..., 0]
    data = np.swapaxes(arr[:, ::-1, ::-1], 0, 2)
    sz, sy, sx = spacing
    affine = np.diag([sx, sy, sz, 1.0])
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    return img


def nifti_bytes(image: MedImage, *, compress: bool = True) -> bytes:
    """The ``.nii.gz`` (or, uncompressed, ``.nii``) file of a MedImage, in memory.

    The header holds geometry only: no description, no patient data.

    Parameters
    ----------
    image : MedImage
    compress : bool
        gzip the file (``.nii.gz``); ``False`` gives ``.nii``.

    Returns
    -------
    bytes
    """
    raw = nifti_image(image).to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw


def save_nifti(image: MedImage, path: Path) -> None:
    """Write a MedImage as NIfTI-1 (``.nii`` or ``.nii.gz``) at ``path``.

    Parameters
    ----------
    image : MedImage
    path : pathlib.Path
        Ending ``.nii`` or ``.nii.gz``, which chooses the compression.
    """
    import nibabel as nib

    nib.save(nifti_image(image), os.fspath(path))
