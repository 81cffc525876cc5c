"""Reading and writing medical images: DICOM, NIfTI, PNG, JPEG and TIFF.

:func:`load` recognises a source by its content, not its name, and returns a
:class:`~medimg_lab.MedImage` with physical units and spacing. :func:`save`
writes NIfTI or PNG atomically and never over the image's own input.
:func:`export_deidentified` writes a DICOM file without patient identifiers.
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

from ..errors import (
    DecodeError,
    ImageTooLargeError,
    MedImgError,
    NotAnImageError,
    NotFoundError,
)
from ..image import MedImage
from ._atomic import atomic_write
from ._source import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_ITEMS,
    check_limit,
    display_name,
    refuse_special_file,
    size_text,
    sniff,
)
from .deid import (
    DeidReport,
    UnsharedSaltWarning,
    deidentify,
    export_deidentified,
    read_salt,
)
from .dicom import (
    SliceGapWarning,
    folder_members,
    load_dicom,
    load_series,
    zip_sources,
)
from .nifti import load_nifti, save_nifti
from .raster import TiffPageWarning, load_raster, save_png

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_ITEMS",
    "DeidReport",
    "SliceGapWarning",
    "TiffPageWarning",
    "UnsharedSaltWarning",
    "deidentify",
    "export_deidentified",
    "load",
    "read_salt",
    "save",
]

Source = str | os.PathLike | bytes | bytearray | memoryview | _io.IOBase


def _dispatch(
    data: Path | bytes,
    name: str,
    kind: str | None,
    *,
    series: int | str | None,
    volume: int | None,
    max_bytes: int,
    max_frames: int,
    max_items: int,
    replace_nonfinite: float | None,
) -> MedImage:
    if kind in ("nifti", "nifti-gz"):
        return load_nifti(
            data, name, max_bytes, volume=volume, replace_nonfinite=replace_nonfinite
        )
    if kind in ("png", "jpeg", "tiff"):
        raw = data.read_bytes() if isinstance(data, Path) else data
        return load_raster(raw, name, max_bytes, max_pages=max_frames)
    if kind == "zip":
        raw = data.read_bytes() if isinstance(data, Path) else data
        skipped: list[dict[str, str]] = []
        members = zip_sources(raw, name, max_bytes, skipped=skipped)
        return load_series(
            members,
            name,
            max_bytes,
            series=series,
            skipped=skipped,
            max_frames=max_frames,
            max_items=max_items,
        )
    if kind == "dicom-seg":  # a DICOM SEG: labels on its source's grid
        from .seg import load_seg

        return load_seg(
            data, name, max_bytes=max_bytes, max_frames=max_frames, max_items=max_items
        )
    if kind == "gzip":
        raise NotAnImageError(
            name,
            "is gzip-compressed, but not a NIfTI volume.",
            "Decompress it first, or open a .nii.gz file.",
        )
    return load_dicom(
        data,
        name,
        max_bytes,
        marked=kind == "dicom",
        max_frames=max_frames,
        max_items=max_items,
    )


def load(
    source: Source,
    *,
    series: int | str | None = None,
    volume: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_items: int = DEFAULT_MAX_ITEMS,
    replace_nonfinite: float | None = None,
) -> MedImage:
    """Load a medical image with its physical meaning.

    Parameters
    ----------
    source : path, bytes or binary file
        A DICOM file, a folder (or ``.zip``) holding one DICOM series, a NIfTI
        file (``.nii``, ``.nii.gz``), or a PNG, JPEG or TIFF file. Bytes are an
        upload of any of these. The format is recognised from the content.
        A series loads without its unreadable, non-DICOM or duplicate files;
        ``meta["skipped"]`` lists each with its reason.
    series : int or str, optional
        ``SeriesNumber`` or ``SeriesInstanceUID`` to pick one series from a
        folder or archive that holds several.
    volume : int, optional
        Index of the volume to take from a 4D NIfTI series.
    max_bytes : int
        Memory budget (bytes), of the working set, not only of the header's
        arithmetic: a header that announces a larger image is refused before
        anything is decoded, values are decoded in their output type, and no
        load uses more than 1.5 x ``max_bytes`` beside the imported
        libraries. Default 2 GiB.
    max_frames : int
        Most frames of one DICOM object, pages of a TIFF, or files of a
        series; more are refused before decoding. Default 10,000; raise it
        for a real large study (a whole-slide image).
    max_items : int
        Most sequence items of one DICOM file, at any depth (beside one
        pixel-data fragment per frame), counted on its bytes before it is
        parsed. Default 100,000.
    replace_nonfinite : float, optional
        Replace NaN and infinite NIfTI voxels by this value instead of
        refusing the file.

    Returns
    -------
    MedImage
        ``array`` in physical units (HU for CT), ``spacing`` in mm per axis,
        ``modality``, a default display ``window`` and non-identifying
        ``meta``.

    Raises
    ------
    MedImgError
        For every problem with the input, with a message that names the file,
        what is wrong and what would work. No other exception leaves this
        function for bad input. A series whose slices fit no regular spacing,
        or with two different slices at one position, is a ``SeriesError``.

    Warns
    -----
    SliceGapWarning
        When slices are missing from a series (a gap of whole slice steps):
        the volume keeps the regular spacing, so distances across the gap
        come out short; ``meta["slice_gaps"]`` and ``meta["warnings"]`` say
        where.
    TiffPageWarning
        When a TIFF's chain of pages breaks after intact pages (a link past
        the end of the file, or back to an earlier page): the intact pages
        load, and ``meta["warnings"]`` says where the chain broke.
    UserWarning
        When a DICOM object's pixel data holds another number of frames
        than its NumberOfFrames, and pydicom decodes the frames it holds.
    """
    name = None
    if isinstance(source, _io.IOBase) or hasattr(source, "read"):
        name = display_name(getattr(source, "name", None) or source)
        source = source.read()
    opts = {
        "series": series,
        "volume": volume,
        "max_bytes": check_limit(max_bytes, "max_bytes"),
        "max_frames": check_limit(max_frames, "max_frames"),
        "max_items": check_limit(max_items, "max_items"),
        "replace_nonfinite": replace_nonfinite,
    }
    if isinstance(source, bytes | bytearray | memoryview):
        data: Path | bytes = bytes(source)
        name = name or display_name(data)
        head = data[:1024]
        origin = None
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = display_name(path)
        origin = str(path)
        if not path.exists():
            raise NotFoundError(
                str(path), "does not exist.", "Check the path and its spelling."
            )
        refuse_special_file(path, name)
        if path.is_dir():
            specials: list[dict[str, str]] = []
            members = folder_members(path, skipped=specials)
            image = _guard(
                lambda: load_series(
                    members, name, skipped=specials, **_series_opts(opts)
                ),
                name,
            )
            image.source = origin
            return image
        if path.stat().st_size > max_bytes:
            raise ImageTooLargeError(
                name,
                f"is {size_text(path.stat().st_size)} on disk, more than the "
                f"{size_text(max_bytes)} budget.",
                "Pass a larger max_bytes= to load() if the file is genuine.",
            )
        with open(path, "rb") as fh:
            head = fh.read(1024)
        data = path
    else:
        raise TypeError(
            "source must be a path, bytes or a binary file object; got "
            f"{type(source).__name__}"
        )
    kind = sniff(head)
    if kind == "dicom":
        from .seg import is_segmentation  # (loads SR codes on first DICOM only)

        kind = "dicom-seg" if is_segmentation(head) else kind
    image = _guard(lambda: _dispatch(data, name, kind, **opts), name)
    image.source = origin
    return image


def _series_opts(opts: dict) -> dict:
    keys = ("max_bytes", "series", "max_frames", "max_items")
    return {key: opts[key] for key in keys}


def _guard(fn, name: str) -> MedImage:
    """Run a reader; any failure it did not name becomes a DecodeError."""
    try:
        return fn()
    except MedImgError:
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(
            name,
            "needs more memory than this machine has free.",
            "Crop or downsample the image first, or use a larger machine.",
        ) from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # also a compiled decoder's panic
        raise DecodeError(
            name,
            "could not be read: its content breaks its format at a point the "
            "reader could not get past.",
            "The file may be damaged; export it again from its source.",
        ) from exc


def save(
    image: MedImage,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    window: tuple[float, float] | str | None = None,
) -> Path:
    """Save an image as NIfTI or PNG, atomically, never over its own input.

    Parameters
    ----------
    image : MedImage
    path : path-like
        ``.nii`` or ``.nii.gz`` keeps values, spacing and orientation; ``.png``
        keeps 8- or 16-bit values of a 2D image.
    overwrite : bool
        Replace an existing file (never the image's own input).
    window : (center, width), preset name or "default", optional
        PNG only: save the windowed 8-bit display rendering instead of the
        values. Needed for values PNG cannot hold (HU, floats).

    Returns
    -------
    Path
        The written file.
    """
    from ..display import preset

    target = Path(path)
    name = target.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        if window is not None:
            raise ValueError("window= applies to PNG only; NIfTI keeps the values")
        writer = lambda tmp: save_nifti(image, tmp)  # noqa: E731
    elif name.endswith(".png"):
        if isinstance(window, str):
            window = image.window if window == "default" else preset(window)
        writer = lambda tmp: save_png(image, tmp, window)  # noqa: E731
    else:
        raise ValueError(
            f"cannot save {target.name!r}: choose a .nii, .nii.gz or .png path "
            "(use export_deidentified for DICOM)"
        )
    return atomic_write(target, writer, overwrite=overwrite, protect=[image.source])
