r"""Volumes larger than memory: filters and thresholds applied chunk by chunk.

A volume is opened lazily as a :class:`dask.array.Array` from an uncompressed
NIfTI file, a Zarr store or a folder holding one DICOM series. A registered
operation (:data:`medimg_lab.params.OPERATIONS`) then runs on each chunk
with :func:`dask.array.map_overlap`, every chunk extended by a halo of its
neighbours' voxels as wide as the operation's footprint reaches
(:func:`halo`), so that the result equals the in-memory computation

.. math:: G = f * h \quad\text{computed on}\quad f|_{C \oplus H}
   \text{ and kept on } C

for each chunk ``C`` and halo ``H``: exactly for the median and the
thresholds, within float rounding for the Gaussian. At the volume's own
edges no halo is invented (``boundary="none"``): the in-memory function
sees the true edge there and applies its own border rule, so the edges
agree too. Every filter of :mod:`medimg_lab.processing` mirrors its
borders (:data:`~medimg_lab.processing.BORDER_MODE`: scipy's
``mode="mirror"``, OpenCV's ``BORDER_REFLECT_101``), the median included.
Results are written to Zarr or uncompressed NIfTI chunk by chunk,
atomically; the whole volume is never held in memory.

Axes are those of :class:`medimg_lab.MedImage`: ``(slice, row, column)``,
with spacing in mm in the same order.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ._checks import check_image, check_spacing
from .errors import (
    NotAnImageError,
    NotFoundError,
    SeriesError,
    UnsupportedDimensionError,
)
from .io._atomic import refuse_overwrite
from .params import Operation, get_operation, validate

__all__ = [
    "CHUNKED_OPERATIONS",
    "apply_chunked",
    "halo",
    "open_volume",
    "save_nifti",
    "save_zarr",
]

#: Default slab size for :func:`open_volume`: whole slices, about this many bytes.
SLAB_BYTES = 64 * 1024**2
#: The writers compute and store at most about this many bytes of output at a
#: time (at least one row of chunks along the slices), whatever the scheduler.
BATCH_BYTES = 64 * 1024**2

Chunks = int | Sequence[int] | None


# ------------------------------------------------------------------ halos


def _gaussian_halo(sigma_mm: float, spacing: tuple[float, ...]) -> tuple[int, ...]:
    """Reach of :func:`medimg_lab.processing.gaussian`'s kernels, per axis.

    In-plane, ``cv2.GaussianBlur`` with ``ksize=(0, 0)`` on float data takes
    a side of ``round(8 sigma + 1) | 1`` pixels; along the slices the 1D
    kernel has a radius of ``max(1, ceil(4 sigma))``.
    """
    from .processing import _sigma_px

    sig = _sigma_px(sigma_mm, spacing)
    in_plane = tuple((int(np.rint(s * 4 * 2 + 1)) | 1) // 2 for s in sig[-2:])
    if len(spacing) == 2:
        return in_plane
    return (max(1, math.ceil(4 * sig[0])), *in_plane)


def _sized_halo(side: int, ndim: int) -> tuple[int, ...]:
    """A ``side × side`` in-plane window, slice by slice."""
    return (0,) * (ndim - 2) + (side // 2, side // 2)


def _convolve_halo(params: dict[str, Any], ndim: int) -> tuple[int, ...]:
    from .processing import kernel

    h = params.get("h", "box")
    shape = kernel(h).shape if isinstance(h, str) else np.shape(h)
    if len(shape) != 2:
        raise ValueError(f"convolve: kernel h must be 2D; got shape {shape}")
    return (0,) * (ndim - 2) + (shape[0] // 2, shape[1] // 2)


def _default(op: Operation, params: dict[str, Any], name: str) -> Any:
    if name in params:
        return params[name]
    return inspect.signature(op.fn).parameters[name].default


#: The operations :func:`apply_chunked` runs, each with the rule giving its
#: footprint's reach in voxels per axis from ``(op, params, spacing)``.
#: Operations that need the whole image (Otsu, CLAHE, histogram
#: equalization, automatic windows) are not chunk-wise and are not here.
CHUNKED_OPERATIONS: dict[
    str, Callable[[Operation, dict[str, Any], tuple[float, ...]], tuple[int, ...]]
] = {
    "gaussian": lambda op, p, sp: _gaussian_halo(_default(op, p, "sigma_mm"), sp),
    "unsharp_mask": lambda op, p, sp: _gaussian_halo(_default(op, p, "sigma_mm"), sp),
    "median": lambda op, p, sp: _sized_halo(_default(op, p, "size"), len(sp)),
    "convolve": lambda op, p, sp: _convolve_halo(p, len(sp)),
    "sobel": lambda op, p, sp: _sized_halo(3, len(sp)),
    "window_level": lambda op, p, sp: (0,) * len(sp),
    "threshold_range": lambda op, p, sp: (0,) * len(sp),
    "threshold_preset": lambda op, p, sp: (0,) * len(sp),
}


def _chunked_operation(op: str | Operation) -> Operation:
    op = get_operation(op) if isinstance(op, str) else op
    if not isinstance(op, Operation):
        raise TypeError(
            f"op must be an operation name or a medimg_lab.params.Operation; got "
            f"{type(op).__name__}"
        )
    if op.name not in CHUNKED_OPERATIONS:
        raise ValueError(
            f"operation {op.name!r} cannot run chunk-wise (it needs the whole image "
            f"or its footprint is not declared); chunk-wise operations are "
            f"{', '.join(sorted(CHUNKED_OPERATIONS))}. Load the volume with "
            "medimg_lab.load to run it in memory."
        )
    return op


def _check_params(op: Operation, params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    if "spacing" in params:
        raise ValueError(
            f"{op.name}: pass spacing= to the chunked function, not in params"
        )
    return validate(op.fn, params)


def _check_spacing(spacing: Sequence[float], shape: tuple[int, ...]) -> tuple:
    """:func:`check_spacing`, with spacing required (no 1 mm default here)."""
    try:
        if spacing is None:
            raise TypeError
        return check_spacing(tuple(shape), tuple(spacing))
    except TypeError:
        raise ValueError(
            f"spacing must give {len(shape)} positive values in mm; got {spacing!r}"
        ) from None


def halo(
    op: str | Operation, params: dict[str, Any] | None, spacing: Sequence[float]
) -> tuple[int, ...]:
    """How far an operation's footprint reaches, in voxels per axis.

    A chunk must be extended by this many voxels of its neighbours on each
    side for the operation to give, on the chunk, what it gives on the whole
    volume.

    Parameters
    ----------
    op : str or Operation
        A name from :data:`CHUNKED_OPERATIONS`.
    params : dict
        The operation's parameters; missing ones take their defaults.
    spacing : tuple of float
        mm per axis, ``(slice, row, column)`` or ``(row, column)``.

    Returns
    -------
    tuple of int
        One reach per axis:

        - ``gaussian``, ``unsharp_mask``: the kernel radius as the in-memory
          function truncates it; with ``s = sigma_mm / spacing`` in pixels,
          ``round(8 s + 1) | 1`` // 2 in-plane (OpenCV's automatic kernel
          size) and ``max(1, ceil(4 s))`` along the slices;
        - ``median``: ``size // 2`` in-plane, 0 along the slices (it works
          slice by slice);
        - ``convolve``: half the kernel's sides in-plane; ``sobel``: 1;
        - ``window_level``, ``threshold_range``, ``threshold_preset``: 0.

    Raises
    ------
    ValueError
        For an operation that cannot run chunk-wise (the message lists those
        that can) or parameters outside their declared ranges.

    Examples
    --------
    >>> halo("gaussian", {"sigma_mm": 2.0}, (2.5, 0.7, 0.7))
    (4, 12, 12)
    >>> halo("median", {"size": 5}, (1.0, 1.0, 1.0))
    (0, 2, 2)
    """
    op = _chunked_operation(op)
    params = _check_params(op, params)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) not in (2, 3):
        raise ValueError(
            f"spacing must give 2 or 3 values in mm (2D or 3D); got {spacing}"
        )
    spacing = _check_spacing(spacing, (1,) * len(spacing))
    return tuple(int(r) for r in CHUNKED_OPERATIONS[op.name](op, params, spacing))


# ------------------------------------------------------------- computing


def apply_chunked(
    volume: da.Array | np.ndarray,
    op: str | Operation,
    params: dict[str, Any] | None = None,
    *,
    spacing: Sequence[float],
) -> da.Array:
    """Apply a registered operation chunk-wise with :func:`dask.array.map_overlap`.

    Each chunk, extended by :func:`halo` voxels of its neighbours, goes
    through the registered in-memory function (``Operation.run``), and the
    halo is cut off again. At the volume's edges no padding is added
    (``boundary="none"``), so the function applies its own border rule there,
    as it does in memory. Chunks thinner than the halo are merged with their
    neighbours by dask first; an axis shorter than the halo is taken whole.

    Parameters
    ----------
    volume : (S, M, N) or (M, N) dask array or ndarray
        Values in their units (HU for CT). Chunks along any axis; slabs of
        whole slices are the cheapest.
    op : str or Operation
        A name from :data:`CHUNKED_OPERATIONS`.
    params : dict, optional
        The operation's parameters (validated against its declaration),
        without ``spacing``.
    spacing : tuple of float
        mm per axis of ``volume``.

    Returns
    -------
    (S, M, N) or (M, N) dask array
        Lazy; of the dtype the in-memory function gives (float32 for a
        Gaussian of integers, bool for thresholds). Compute it, or stream it
        to disk with :func:`save_zarr` or :func:`save_nifti`.

    Examples
    --------
    >>> v = da.ones((20, 16, 16), dtype=np.float32, chunks=(5, 16, 16))
    >>> out = apply_chunked(v, "gaussian", {"sigma_mm": 1.0}, spacing=(1, 1, 1))
    >>> bool(np.allclose(out.compute(), 1.0))
    True
    """
    op = _chunked_operation(op)
    params = _check_params(op, params)
    volume = check_image(
        volume if isinstance(volume, da.Array) else da.asarray(volume), "volume"
    )
    spacing = _check_spacing(spacing, volume.shape)
    depth = list(halo(op, params, spacing))
    for axis, n in enumerate(volume.shape):
        if depth[axis] and depth[axis] >= n:  # the whole axis is one chunk
            volume = volume.rechunk({axis: -1})
            depth[axis] = 0

    def run(block: np.ndarray) -> np.ndarray:
        return np.asarray(op.run(block, params, spacing=spacing))

    probe = np.zeros(tuple(min(n, 8) for n in volume.shape), volume.dtype)
    dtype = run(probe).dtype
    meta = np.empty((0,) * volume.ndim, dtype)
    if not any(depth):
        return volume.map_blocks(run, dtype=dtype, meta=meta)
    return da.map_overlap(
        run,
        volume,
        depth=tuple(depth),
        boundary="none",
        trim=True,
        dtype=dtype,
        meta=meta,
    )


# ---------------------------------------------------------------- reading


def _slab_chunks(
    shape: tuple[int, ...], itemsize: int, chunks: Chunks, base: int = 1
) -> tuple[int, ...]:
    """Chunk sizes: ``chunks`` as given, else slabs of whole slices."""
    if chunks is None:
        plane = itemsize * int(np.prod(shape[1:]))
        slices = max(1, SLAB_BYTES // max(plane, 1))
        slices = max(base, slices // base * base)
        return (min(shape[0], slices), *shape[1:])
    if isinstance(chunks, int | np.integer):
        chunks = (int(chunks), *shape[1:])
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != len(shape) or not all(c == -1 or c >= 1 for c in chunks):
        raise ValueError(
            f"chunks must be a number of slices or one size per axis of shape "
            f"{shape} (each >= 1, or -1 for the whole axis); got {chunks}"
        )
    return tuple(
        n if c == -1 else min(c, n) for c, n in zip(chunks, shape, strict=True)
    )


class _NiftiVolume:
    """Reads a NIfTI file's voxels lazily, in :class:`MedImage` axis order.

    ``axes[k]`` is the voxel axis of output axis ``k`` and ``flips[k]``
    whether it runs backwards; the data are read through nibabel's array
    proxy, which reads only the bytes of the slab asked for.
    """

    def __init__(self, path, shape, dtype, axes, flips, extra):
        self.path = os.fspath(path)
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self.axes = axes
        self.flips = flips
        self.extra = extra  # trailing singleton axes of a (X, Y, Z, 1) file
        self._proxy = None

    def __getstate__(self):
        return {**self.__dict__, "_proxy": None}

    def __getitem__(self, key):
        import nibabel as nib

        if self._proxy is None:
            self._proxy = nib.load(self.path, mmap=True).dataobj
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        voxel: list[slice] = [slice(None)] * 3
        for k, (sl, n) in enumerate(zip(key, self.shape, strict=True)):
            start, stop, step = sl.indices(n)
            if step != 1:
                raise IndexError("only contiguous slabs can be read")
            stop = max(start, stop)
            if self.flips[k]:
                start, stop = n - stop, n - start
            voxel[self.axes[k]] = slice(start, stop)
        arr = np.asarray(self._proxy[(*voxel, *([0] * self.extra))])
        arr = np.transpose(arr, self.axes)
        arr = arr[tuple(slice(None, None, -1 if f else 1) for f in self.flips)]
        return np.ascontiguousarray(arr, dtype=self.dtype)


def _open_nifti(path: Path, name: str, chunks: Chunks):
    import nibabel as nib

    from .io.nifti import ORIENTATION

    try:
        img = nib.load(os.fspath(path), mmap=True)
    except Exception as exc:
        raise NotAnImageError(
            name,
            f"has a damaged NIfTI header ({type(exc).__name__}: {str(exc)[:200]}).",
            "Save the volume again as .nii.",
        ) from None
    shape = tuple(int(d) for d in img.shape)
    if len(shape) < 3 or any(d != 1 for d in shape[3:]):
        raise UnsupportedDimensionError(
            name,
            f"has shape {shape}; open_volume reads one 3D volume.",
            "Use medimg_lab.load for 2D images; extract one volume of a 4D series "
            "first (nilearn.image.index_img).",
        )
    ornt = nib.orientations.io_orientation(img.affine)
    if not np.all(np.isfinite(ornt)):
        raise NotAnImageError(
            name,
            "has an affine without a clear orientation (a zero column).",
            "Fix the affine (qform/sform) of the file.",
        )
    world = [int(w) for w in ornt[:, 0]]
    # Canonical RAS axis w is voxel axis world.index(w), reversed when its
    # ornt flip is -1; medimg-lab's layout is (S, A->P, R->L) = (z, -y, -x).
    axes, flips = [], []
    for w, reverse in ((2, False), (1, True), (0, True)):
        i = world.index(w)
        axes.append(i)
        flips.append(bool(ornt[i, 1] < 0) != reverse)
    header = img.header
    # nibabel moves scl_slope/scl_inter from the header into the array proxy.
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    scaled = (slope, inter) != (1.0, 0.0)
    dtype = header.get_data_dtype()
    if dtype.names:
        raise UnsupportedDimensionError(
            name, "is an RGB NIfTI volume.", "Use medimg_lab.load for colour images."
        )
    if scaled or dtype.kind == "f":
        dtype = np.dtype(np.float32)
    dtype = dtype.newbyteorder("=")
    out_shape = tuple(shape[i] for i in axes)
    zooms = header.get_zooms()
    spacing = tuple(float(zooms[i]) for i in axes)
    known = all(math.isfinite(s) and s > 0 for s in spacing)
    meta = {
        "format": "NIfTI",
        "orientation": ORIENTATION,
        "spacing_known": known,
        "spacing_source": "NIfTI pixdim" if known else "unknown (1 mm assumed)",
    }
    if not known:
        spacing = (1.0, 1.0, 1.0)
    reader = _NiftiVolume(path, out_shape, dtype, axes, flips, len(shape) - 3)
    size = _slab_chunks(out_shape, dtype.itemsize, chunks)
    array = da.from_array(
        reader, chunks=size, name=False, meta=np.empty((0, 0, 0), dtype)
    )
    return array, spacing, meta


def _open_zarr(path: Path, name: str, chunks: Chunks):
    import zarr

    try:
        node = zarr.open(os.fspath(path), mode="r")
    except Exception as exc:
        raise NotAnImageError(
            name,
            f"could not be opened as a Zarr store ({type(exc).__name__}: "
            f"{str(exc)[:200]}).",
            "Write it again with medimg_lab.chunked.save_zarr.",
        ) from None
    if not isinstance(node, zarr.Array):
        members = ", ".join(sorted(node.array_keys())) or "none"
        raise NotAnImageError(
            name,
            f"is a Zarr group, not an array (its arrays: {members}).",
            "Pass the path of one array inside the group.",
        )
    if node.ndim not in (2, 3):
        raise UnsupportedDimensionError(
            name,
            f"holds an array of shape {node.shape}; a 2D image or 3D volume is "
            "expected.",
            "Store one volume per Zarr array.",
        )
    attrs = dict(node.attrs)
    spacing = attrs.get("spacing_mm")
    meta: dict[str, Any] = {"format": "Zarr"}
    try:
        spacing = _check_spacing(spacing, node.shape)
        meta.update(spacing_known=True, spacing_source="Zarr attribute spacing_mm")
    except (TypeError, ValueError):
        spacing = (1.0,) * node.ndim
        meta.update(spacing_known=False, spacing_source="unknown (1 mm assumed)")
    for key in ("modality", "unit", "orientation"):
        if key in attrs:
            meta[key] = attrs[key]
    size = _slab_chunks(node.shape, node.dtype.itemsize, chunks, base=node.chunks[0])
    return da.from_zarr(node, chunks=size), spacing, meta


class _DicomSlices:
    """Reads a DICOM series lazily: each slab decodes only its own files."""

    def __init__(self, files, shape, dtype, max_bytes):
        self.files = [os.fspath(f) for f in files]
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.max_bytes = max_bytes

    def __getitem__(self, key):
        from .io.dicom import _decode_object, read_dataset

        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        indices = range(*key[0].indices(self.shape[0]))
        rows, cols = key[1], key[2]
        out = np.empty(
            (
                len(indices),
                len(range(*rows.indices(self.shape[1]))),
                len(range(*cols.indices(self.shape[2]))),
            ),
            self.dtype,
        )
        for j, i in enumerate(indices):
            label = Path(self.files[i]).name
            frames = _decode_object(
                read_dataset(self.files[i], label, force=True), label, self.max_bytes
            ).frames
            if frames.shape[1:] != self.shape[1:]:
                raise SeriesError(
                    label,
                    f"is {frames.shape[1:]} where the series' images are "
                    f"{self.shape[1:]}.",
                    "Put each series in a folder of its own.",
                )
            out[j] = frames[0][rows, cols]
        return out


def _dicom_dtype(headers: list, modality: str) -> np.dtype:
    """One dtype that holds every slice's values (HU after rescale)."""
    from .io.dicom import _first_number, _fit_int, _stored_range

    lo = hi = None
    for ds in headers:
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        if ds.get("ModalityLUTSequence"):
            return np.dtype(np.float32)
        slope = _first_number(ds.get("RescaleSlope")) or 1.0
        intercept = _first_number(ds.get("RescaleIntercept")) or 0.0
        if not (slope.is_integer() and intercept.is_integer()):
            return np.dtype(np.float32)
        a, b = sorted(v * slope + intercept for v in _stored_range(ds))
        if photometric == "MONOCHROME1" and not float(a + b).is_integer():
            return np.dtype(np.float32)
        if modality == "CT" and (
            ds.get("PixelPaddingValue") is not None
            or str(ds.get("LossyImageCompression", "")) == "01"
        ):
            a = min(a, -1024)
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return _fit_int(np.zeros(0, np.int64), lo, hi).dtype


def _open_dicom(
    path: Path, name: str, chunks: Chunks, series: int | str | None, max_bytes: int
):
    from .io.dicom import (
        _first_number,
        _lookup,
        _pixel_spacing,
        _series_members,
        _vector,
        folder_members,
    )

    groups = _series_members(folder_members(path), name)
    if not groups:
        raise NotAnImageError(
            name,
            "holds no DICOM image, Zarr store or NIfTI file.",
            "Point to a folder holding the .dcm files of one series, a Zarr array "
            "or an uncompressed .nii file.",
        )
    if series is not None:
        chosen = [
            g
            for uid, g in groups.items()
            if str(series) in (uid, str(g[0][2].get("SeriesNumber", "")))
        ]
    else:
        chosen = list(groups.values())
    if len(chosen) != 1:
        found = ", ".join(
            f"series {g[0][2].get('SeriesNumber', '?')} ({len(g)} image(s))"
            for g in groups.values()
        )
        raise SeriesError(
            name,
            f"holds {'no single series matching series=' + repr(series) if series is not None else 'more than one series'}: {found}.",  # noqa: E501
            "Pass series=<number> to open_volume, or point to a folder of one series.",
        )
    items = sorted(
        chosen[0], key=lambda it: int(_first_number(it[2].get("InstanceNumber")) or 0)
    )
    headers = [ds for _, _, ds in items]
    first = headers[0]
    for label, _, ds in items:
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        if int(ds.get("NumberOfFrames") or 1) > 1 or not photometric.startswith(
            "MONOCHROME"
        ):
            raise SeriesError(
                label,
                "is a multi-frame or colour object; open_volume reads series of "
                "single-frame greyscale images.",
                "Use medimg_lab.load for multi-frame and colour objects.",
            )
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in headers}
    if len(shapes) > 1:
        raise SeriesError(
            name,
            f"its images have different sizes {sorted(shapes)}, so they are not one "
            "volume.",
            "Put each series in a folder of its own, or pick one with series=.",
        )
    modality = str(first.get("Modality") or "OT").upper()
    meta: dict[str, Any] = {"format": "DICOM series", "Modality": modality}
    n = len(items)
    gap = _first_number(first.get("SpacingBetweenSlices")) or _first_number(
        _lookup(first, "SliceThickness", "PixelMeasuresSequence")
    )
    spacing_z = gap if gap and gap > 0 else None
    orientation = _vector(first.get("ImageOrientationPatient"), 3 * 2)
    positions = [_vector(ds.get("ImagePositionPatient"), 3) for ds in headers]
    if n > 1 and orientation is not None and all(p is not None for p in positions):
        normal = np.cross(orientation[:3], orientation[3:])
        along = np.array([float(np.dot(p, normal)) for p in positions])
        order = np.argsort(along, kind="stable")
        steps = np.diff(along[order])
        if np.any(steps <= 1e-3):
            raise SeriesError(
                name,
                f"{int(np.sum(steps <= 1e-3)) + 1} of its {n} slices share a "
                "position, so the folder holds more than one acquisition.",
                "Split the acquisitions into folders of their own.",
            )
        items = [items[i] for i in order]
        meta["sorted_by"] = "position along the slice normal"
        spacing_z = float(np.median(steps))
    elif n > 1:
        meta["sorted_by"] = "InstanceNumber (no slice positions in the headers)"
    in_plane, source = _pixel_spacing(first)
    meta["spacing_known"] = in_plane is not None
    meta["spacing_source"] = source or "unknown (1 mm assumed)"
    if spacing_z is None:
        meta["slice_spacing"] = "unknown (1 mm assumed)"
    spacing = (spacing_z or 1.0, *(in_plane or (1.0, 1.0)))
    meta["series_files"] = n
    rows, cols = shapes.pop()
    dtype = _dicom_dtype(headers, modality)
    if modality == "CT":
        meta["unit"] = "HU"
    reader = _DicomSlices(
        [src for _, src, _ in items], (n, rows, cols), dtype, max_bytes
    )
    size = _slab_chunks(reader.shape, dtype.itemsize, chunks)
    array = da.from_array(
        reader, chunks=size, name=False, meta=np.empty((0, 0, 0), dtype)
    )
    return array, spacing, meta


def open_volume(
    source: str | os.PathLike,
    *,
    chunks: Chunks = None,
    series: int | str | None = None,
) -> tuple[da.Array, tuple[float, ...], dict[str, Any]]:
    """Open a volume lazily, as a dask array read chunk by chunk.

    Parameters
    ----------
    source : path-like
        One of:

        - an uncompressed NIfTI file (``.nii``), read through nibabel's array
          proxy, which reads only each chunk's bytes. It is reoriented as
          :func:`medimg_lab.load` does (closest canonical RAS+, then
          ``(slice I->S, row A->P, column R->L)``) by transposing and
          reversing axes, without reading the data. Scaled data
          (``scl_slope``) and float64 become float32, as in ``load``.
          Unlike ``load``, NaN and infinite voxels are not checked (that
          would read the whole file); they propagate.
        - a Zarr array store (a folder), as :func:`save_zarr` writes it;
          spacing comes from its ``spacing_mm`` attribute.
        - a folder holding one DICOM series. Headers are read once, sorted
          along the slice normal as :func:`medimg_lab.load` sorts them, and
          each chunk decodes only its own files, rescaled to HU with padding
          replaced, as ``load`` does.
    chunks : int or tuple of int, optional
        Slices per chunk, or a chunk size per axis (``-1``: the whole axis).
        Default: slabs of whole slices of about 64 MiB (for Zarr, a multiple
        of the store's own chunks along the slices).
    series : int or str, optional
        DICOM only: ``SeriesNumber`` or ``SeriesInstanceUID`` of the series
        to open in a folder that holds several.

    Returns
    -------
    volume : (S, M, N) dask array
        In physical units. 2D Zarr arrays give ``(M, N)``.
    spacing : tuple of float
        mm per axis, ``(slice, row, column)``.
    meta : dict
        Non-identifying facts: ``format``, ``spacing_source``,
        ``spacing_known`` and, per format, ``orientation``, ``sorted_by``,
        ``Modality``, ``unit``.

    Raises
    ------
    MedImgError
        A missing path, a compressed NIfTI, a folder with no or several
        series, a 4D or RGB file, a Zarr group: the message names the source,
        the problem and the fix.
    """
    from .io import DEFAULT_MAX_BYTES
    from .io._source import display_name, sniff

    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"source must be a path (NIfTI file, Zarr store or DICOM folder); got "
            f"{type(source).__name__}"
        )
    path = Path(source)
    name = display_name(path)
    if not path.exists():
        raise NotFoundError(str(path), "does not exist.", "Check the path.")
    if path.is_dir():
        if any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup")):
            return _open_zarr(path, name, chunks)
        return _open_dicom(path, name, chunks, series, DEFAULT_MAX_BYTES)
    with open(path, "rb") as fh:
        kind = sniff(fh.read(1024))
    if kind == "nifti":
        return _open_nifti(path, name, chunks)
    if kind == "nifti-gz":
        raise NotAnImageError(
            name,
            "is a gzip-compressed NIfTI file, which cannot be read chunk by chunk.",
            "Decompress it to .nii (gunzip), or use medimg_lab.load if it fits in "
            "memory.",
        )
    if kind == "dicom":
        raise NotAnImageError(
            name,
            "is a single DICOM file; open_volume reads a folder of one series.",
            "Pass the series' folder, or use medimg_lab.load for one file.",
        )
    raise NotAnImageError(
        name,
        "is not an uncompressed NIfTI file, a Zarr store or a DICOM series folder.",
        "Open a .nii file, a Zarr array folder or a folder of .dcm files.",
    )


# ---------------------------------------------------------------- writing


def _regular(array: da.Array) -> da.Array:
    """Equal chunks along each axis (the last may be shorter), as Zarr needs."""
    size = tuple(max(c) for c in array.chunks)
    regular = all(
        all(c == s for c in cs[:-1]) for cs, s in zip(array.chunks, size, strict=True)
    )
    return array if regular else array.rechunk(size)


def save_zarr(
    array: da.Array | np.ndarray,
    path: str | os.PathLike,
    *,
    spacing: Sequence[float],
    overwrite: bool = False,
) -> Path:
    """Write a volume to a Zarr (v3) array store, chunk by chunk, atomically.

    The store is written into a temporary sibling folder and renamed into
    place when complete, so a reader never sees half a volume. Only a few
    chunks are in memory at a time.

    Parameters
    ----------
    array : (S, M, N) or (M, N) dask array or ndarray
        The store takes the array's chunks (made regular if needed).
    path : path-like
        The store's folder (conventionally ``*.zarr``).
    spacing : tuple of float
        mm per axis, kept in the ``spacing_mm`` attribute that
        :func:`open_volume` reads.
    overwrite : bool
        Replace an existing store or file at ``path``.

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    import zarr

    array = _regular(array if isinstance(array, da.Array) else da.asarray(array))
    spacing = _check_spacing(spacing, array.shape)
    target = Path(path)
    refuse_overwrite(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    )
    try:
        store = zarr.create_array(
            store=os.fspath(tmp),
            shape=array.shape,
            dtype=array.dtype,
            chunks=tuple(c[0] for c in array.chunks),
            attributes={
                "spacing_mm": list(spacing),
                "axes": ["slice", "row", "column"][-array.ndim :],
                "writer": "medimg_lab.chunked.save_zarr",
            },
            overwrite=True,
        )
        _store_in_batches(array, store)
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _store_in_batches(array: da.Array, target: Any) -> None:
    """``da.store`` a few rows of chunks along the slices at a time.

    A scheduler left to itself may read input chunks far ahead of the
    filtering; computing the output in batches of about :data:`BATCH_BYTES`
    bounds the memory held, at the cost of reading each batch's halo twice.
    """
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:]))
    start = stop = 0
    bounds = np.cumsum((0, *array.chunks[0]))
    for end in bounds[1:]:
        if stop > start and (end - start) * row_bytes > BATCH_BYTES:
            _store_region(array, target, start, stop)
            start = stop
        stop = int(end)
    if stop > start:
        _store_region(array, target, start, stop)


def _store_region(array: da.Array, target: Any, start: int, stop: int) -> None:
    region = (slice(start, stop),) + (slice(None),) * (array.ndim - 1)
    da.store(array[region], target, regions=region, lock=False)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, replacing what is there."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()


class _NiftiSlabs:
    """A ``da.store`` target writing ``(S, M, N)`` slabs into a NIfTI file.

    NIfTI stores ``(x, y, z)`` in Fortran order, with ``x = N-1-column``,
    ``y = M-1-row``, ``z = slice`` (the inverse of :func:`open_volume`'s
    layout), so a slab of whole slices is one contiguous run of bytes.
    """

    def __init__(self, path: Path, offset: int, shape, dtype: np.dtype):
        self.path = path
        self.offset = offset
        self.shape = shape
        self.dtype = dtype

    def __setitem__(self, key, value):
        start = key[0].indices(self.shape[0])[0]
        plane = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        # (s, m, n) -> (x, y, z) with x, y reversed, in Fortran order: z-major.
        data = np.ascontiguousarray(np.asarray(value)[:, ::-1, ::-1], dtype=self.dtype)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, data.tobytes(), self.offset + start * plane)
        finally:
            os.close(fd)


def save_nifti(
    array: da.Array | np.ndarray,
    path: str | os.PathLike,
    *,
    spacing: Sequence[float],
    overwrite: bool = False,
) -> Path:
    """Write a volume to an uncompressed NIfTI-1 file, slab by slab, atomically.

    The header is written first, then each slab of whole slices goes to its
    place in the file; a temporary sibling is renamed into place at the end.
    The layout and affine are those of :func:`medimg_lab.save`, so
    :func:`medimg_lab.load` and :func:`open_volume` read the array back as
    it was.

    Parameters
    ----------
    array : (S, M, N) or (M, N) dask array or ndarray
        Values; bool is written as uint8.
    path : path-like
        A ``.nii`` file (gzip cannot be streamed: no ``.nii.gz``).
    spacing : tuple of float
        mm per axis, written to pixdim and the affine.
    overwrite : bool
        Replace an existing file at ``path``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        For a path not ending in ``.nii`` or a dtype NIfTI cannot hold.
    """
    import nibabel as nib

    from .io._atomic import atomic_write

    target = Path(path)
    if not target.name.lower().endswith(".nii"):
        raise ValueError(
            f"save_nifti writes uncompressed .nii files; got {target.name!r} "
            "(gzip cannot be written slab by slab)"
        )
    array = array if isinstance(array, da.Array) else da.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"array must be a 2D (M, N) image or 3D (S, M, N) volume; got shape "
            f"{array.shape}"
        )
    spacing = _check_spacing(spacing, array.shape)
    if array.ndim == 2:
        array, spacing = array[np.newaxis], (1.0, *spacing)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    dtype = array.dtype.newbyteorder("=")
    header = nib.Nifti1Header()
    try:
        header.set_data_dtype(dtype)
    except Exception:
        raise ValueError(f"NIfTI cannot hold dtype {array.dtype}") from None
    header.set_data_shape(array.shape[::-1])
    sz, sy, sx = spacing
    affine = np.diag([sx, sy, sz, 1.0])
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm")
    header.set_slope_inter(1.0, 0.0)
    slabs = array.rechunk({1: -1, 2: -1})

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            header.write_to(fh)
            offset = int(header["vox_offset"])
            fh.truncate(offset + int(np.prod(array.shape)) * dtype.itemsize)
        _store_in_batches(slabs, _NiftiSlabs(tmp, offset, array.shape, dtype))

    return atomic_write(target, write, overwrite=overwrite)
