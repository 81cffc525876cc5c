"""Stage 3, recognition: labelled patch datasets with groups that cannot leak.

Patches cut from one image share its anatomy, noise and texture. Every
dataset here carries a group id per patch, and a split that keeps each group
on one side (:func:`.evaluation.group_splits`) cannot put neighbouring
patches on both sides. Groups are patients or source images where a class
has several, and otherwise spatial blocks of one image (or slabs of slices
of a volume, :func:`.evaluation.spatial_groups`).

- :func:`sample_patches`: grey patches of the real sample studies, one class
  per modality and body region.
- :func:`lesion_slices`: brain-MRI crops with and without a simulated lesion
  of known contrast and radius, with the lesion masks as truth.
- :func:`folder_dataset`: bring your own, one sub-folder per class.
- :func:`medmnist_npz`: the MedMNIST ``.npz`` format, one dataset per split.

References
----------
Yang J. et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and
3D biomedical image classification. Scientific Data 2023.
doi:10.1038/s41597-022-01721-8
"""

from __future__ import annotations

import functools
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np

from ..errors import MedImgError, NotFoundError
from ..params import Param, Seed, declared
from .evaluation import spatial_groups

__all__ = [
    "MEDMNIST_SPLITS",
    "SAMPLE_CLASSES",
    "PatchDataset",
    "folder_dataset",
    "lesion_slices",
    "medmnist_npz",
    "sample_patches",
]

#: Sample studies of :func:`sample_patches`, one class each, in label order.
SAMPLE_CLASSES = (
    "head_ct",
    "spine_ct",
    "chest_xray",
    "tibia_xray",
    "shoulder_mr",
    "abdomen_mr",
    "brain_mri",
    "ultrasound",
)

#: ITU-R BT.601 luma weights, ``Y = 0.299 R + 0.587 G + 0.114 B``.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_log = logging.getLogger(__name__)

#: Side of :func:`sample_patches`' patches: the smallest study, the spine CT,
#: is 128 x 128 px, and no larger patch fits it.
PatchSize = Annotated[int, Param(8, 128, 1, "px", "side of a square patch")]
#: Side of :func:`lesion_slices`' crops: the brain MRI's axial slices are
#: 233 x 197 px, and no larger crop fits them.
CropSize = Annotated[int, Param(8, 197, 1, "px", "side of a square crop")]


@dataclass(eq=False)
class PatchDataset:
    """A stack of labelled patches with the group and place of each.

    Parameters
    ----------
    patches : (n, h, w) float32 ndarray
        Grey patches in their image's units (HU for CT, scanner units for
        MR, detector values for radiographs; RGB is converted to luminance).
    labels : (n,) int64 ndarray
        Class index of each patch, into ``class_names``.
    class_names : list of str
        Name of each class.
    groups : (n,) int64 ndarray
        Group id of each patch, unique across source images: keep a group
        on one side of every split.
    positions : (n, 2) or (n, 3) int64 ndarray
        Centre of each patch in its source, ``(row, column)``, or
        ``(slice, row, column)`` when any source is a volume (slice 0 for 2D
        sources).
    sources : (n,) ndarray of str
        Name of the source image of each patch.
    spacing : (n, 2) float64 ndarray
        Millimetres per pixel of each patch, ``(row, column)``.
    masks : (n, h, w) bool ndarray or None
        Ground-truth masks where the dataset has them (lesions).
    """

    patches: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    groups: np.ndarray
    positions: np.ndarray
    sources: np.ndarray
    spacing: np.ndarray
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.patches)
        if self.patches.ndim != 3:
            raise ValueError(
                f"patches must be (n, h, w); got shape {self.patches.shape}"
            )
        for name in ("labels", "groups", "positions", "sources", "spacing"):
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(
                    f"{name} must have one entry per patch ({n}); got {len(value)}"
                )
        if self.masks is not None and self.masks.shape != self.patches.shape:
            raise ValueError(
                f"masks must have the shape of patches {self.patches.shape}; got "
                f"{self.masks.shape}"
            )

    def __len__(self) -> int:
        return len(self.patches)


def _grey(array: np.ndarray, is_color: bool) -> np.ndarray:
    """Float32 grey image; RGB becomes luminance ``Y = 0.299 R + 0.587 G + ...``."""
    if is_color:
        return (array[..., :3].astype(np.float32) @ _LUMA).astype(np.float32)
    return array.astype(np.float32, copy=False)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be a whole number {allowed}; got {value!r}")
    return int(value)


def _gather(image: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Patches ``size`` x ``size`` at top-left ``corners`` ((k, 2) or (k, 3))."""
    ar = np.arange(size)
    rows = corners[:, -2, None, None] + ar[None, :, None]
    cols = corners[:, -1, None, None] + ar[None, None, :]
    if corners.shape[1] == 3:
        return image[corners[:, 0, None, None], rows, cols]
    return image[rows, cols]


def _foreground_patches(
    image: np.ndarray, size: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct random patches not in the background of ``image``.

    A patch is background when its mean lies within 5 % of the image's
    range (minimum to 99.5th percentile) above the minimum, or its SD is
    below 0.1 % of that range (flat padding).
    """
    spatial = image.shape[-2:]
    if min(spatial) < size:
        raise ValueError(f"size={size} is larger than an image of shape {spatial}")
    low = float(image.min())
    span = float(np.percentile(image[..., ::4, ::4], 99.5)) - low
    span = span if span > 0 else 1.0
    high = np.array([*image.shape[:-2], spatial[0] - size + 1, spatial[1] - size + 1])
    kept: list[np.ndarray] = []
    seen: set[tuple[int, ...]] = set()
    n_kept = 0
    for _ in range(8):
        corners = rng.integers(0, high, size=(4 * count, len(high)))
        patches = _gather(image, corners, size).astype(np.float32)
        mean = patches.mean(axis=(1, 2))
        sd = patches.std(axis=(1, 2))
        good = (mean > low + 0.05 * span) & (sd > 1e-3 * span)
        for corner in corners[good]:
            key = tuple(int(v) for v in corner)
            if key not in seen:
                seen.add(key)
                kept.append(corner)
                n_kept += 1
                if n_kept == count:
                    corners = np.array(kept)
                    return _gather(image, corners, size).astype(np.float32), corners
    raise ValueError(
        f"found only {n_kept} foreground patches of size {size} where "
        f"{count} were asked for; lower per_class or size"
    )


@declared
def sample_patches(
    *,
    size: PatchSize = 32,
    per_class: Annotated[int, Param(1, 5000, 1, "", "patches per class")] = 200,
    block: Annotated[
        int, Param(1, 4096, 1, "px", "side of a group block (slices of a slab)")
    ] = 64,
    seed: Seed = 0,
) -> PatchDataset:
    """Patches of the real sample studies, labelled by modality and region.

    One class per study of :data:`SAMPLE_CLASSES` (head CT, spine CT, chest
    film, tibia film, shoulder MR, abdomen MR, brain MR, ultrasound). Each
    study is a single image (the brain MR a volume), so the groups are its
    spatial blocks: squares of ``block`` pixels, or slabs of ``block``
    axial slices of the brain volume (:func:`.evaluation.spatial_groups`).

    Parameters
    ----------
    size : int
        Side of the square patches in pixels, in [8, 128] (the spine CT is
        128 x 128 px).
    per_class : int
        Patches drawn from each study, in [1, 5000].
    block : int
        Side of a group block in pixels (thickness in slices for the volume).
        Make it several patch sizes large: patches at a block's edge still
        overlap the next block.
    seed : int
        Seed of the random patch positions.

    Returns
    -------
    PatchDataset
        ``patches`` (8 * per_class, size, size) float32 in each study's
        units (the ultrasound as luminance); ``positions`` (n, 3) as
        ``(slice, row, column)`` of the patch centres, slice 0 for 2D
        studies; group ids unique across studies.

    Notes
    -----
    A patch is drawn from the foreground: its mean lies more than 5 % of
    the image's range above the image minimum, and it is not flat. Volume
    patches are axial (within one slice).

    Examples
    --------
    >>> ds = sample_patches(size=16, per_class=5)
    >>> ds.patches.shape, ds.class_names[0]
    ((40, 16, 16), 'head_ct')
    """
    from .. import data

    rng = np.random.default_rng(seed)
    parts = []
    offset = 0
    for label, name in enumerate(SAMPLE_CLASSES):
        study = data.sample(name)
        image = _grey(study.array, study.is_color)
        patches, corners = _foreground_patches(image, size, per_class, rng)
        centres = corners + np.array([0] * (corners.shape[1] - 2) + [size // 2] * 2)
        groups = spatial_groups(centres, image.shape, block=block) + offset
        offset = int(groups.max()) + 1
        if centres.shape[1] == 2:
            centres = np.column_stack([np.zeros(len(centres), np.int64), centres])
        parts.append((patches, label, groups, centres, name, study.spacing[-2:]))
    n = per_class
    return PatchDataset(
        patches=np.concatenate([p[0] for p in parts]),
        labels=np.repeat(np.arange(len(parts), dtype=np.int64), n),
        class_names=list(SAMPLE_CLASSES),
        groups=np.concatenate([p[2] for p in parts]).astype(np.int64),
        positions=np.concatenate([p[3] for p in parts]).astype(np.int64),
        sources=np.repeat(np.array([p[4] for p in parts]), n),
        spacing=np.repeat(np.array([p[5] for p in parts], dtype=np.float64), n, 0),
    )


@functools.lru_cache(maxsize=1)
def _brain_geometry() -> tuple[np.ndarray, tuple[float, float], np.ndarray, np.ndarray]:
    """The brain MRI, its spacing, white matter and distance to the outside.

    The MRI is float32, with its in-plane spacing; the white matter is
    probability >= 0.5, in slices with at least 50 such voxels; the distance
    is each voxel's in-plane distance in mm to the outside of the brain (gray
    plus white >= 0.5). Computed once; the arrays are read-only.
    """
    from scipy.ndimage import distance_transform_edt

    from .. import data

    study = data.sample("brain_mri")
    volume = study.array.astype(np.float32)
    wm = data.sample("brain_mri_wm").array
    gm = data.sample("brain_mri_gm").array
    spacing = (float(study.spacing[1]), float(study.spacing[2]))
    white = wm >= 0.5
    white[white.sum(axis=(1, 2)) < 50] = False
    inside = np.stack(
        [distance_transform_edt(s, sampling=spacing) for s in wm + gm >= 0.5]
    ).astype(np.float32)
    for array in (volume, white, inside):
        array.setflags(write=False)
    return volume, spacing, white, inside


@declared
def lesion_slices(
    *,
    n: Annotated[int, Param(2, 10000, 1, "", "number of crops")] = 200,
    size: CropSize = 64,
    contrast: Annotated[
        float, Param(-255, 255, 1, "", "lesion minus tissue", scale="span")
    ] = 30.0,
    radius_mm: Annotated[float, Param(1, 20, 0.5, "mm", "lesion radius")] = 4.0,
    slab: Annotated[int, Param(1, 189, 1, "slices", "thickness of a group")] = 8,
    seed: Seed = 0,
) -> PatchDataset:
    """Brain-MRI axial crops, half of them with a simulated lesion.

    Each crop is drawn the same way whatever its label: an axial slice of
    the ``brain_mri`` sample and a centre in its white matter (probability
    >= 0.5) at least ``radius_mm`` plus the blob edge inside the brain
    (grey plus white matter >= 0.5), then a crop holding that centre at a
    random place. A positive crop gets a smooth disk of radius ``radius_mm``
    at that centre, added in the image's units:

    ``I = I0 + contrast * b(r)``, ``b(r) = erfc((r - R) / (sqrt(2) s)) / 2``

    with ``R = radius_mm`` and an edge ``s = 0.5`` mm, so that ``b`` is 1/2 on
    the circle of radius ``R``. ``masks`` holds ``r <= R`` (empty for
    negatives). The random draws do not depend on ``contrast`` or the
    labels' lesions, so ``contrast=0`` with the same seed gives the same
    crops without lesions.

    Parameters
    ----------
    n : int
        Number of crops, ``n // 2`` of them with a lesion; in [2, 10000].
    size : int
        Side of the square crops in pixels, in [8, 197] (the slices are
        233 x 197 px); it must hold the lesion with its edge.
    contrast : float
        Lesion minus tissue, in the image's units (0-255 for the sample);
        negative for a hypointense lesion.
    radius_mm : float
        Radius of the lesion in mm, in [1, 20].
    slab : int
        Groups are slabs of this many axial slices: crops of nearby slices,
        with or without a lesion, share a group.
    seed : int
        Seed of slices, centres, crop places and labels.

    Returns
    -------
    PatchDataset
        ``patches`` (n, size, size) float32, ``labels`` 1 with a lesion,
        ``class_names`` ``["normal", "lesion"]``, ``masks`` the lesion disks,
        ``positions`` (n, 3) the lesion (or would-be lesion) centres
        ``(slice, row, column)``.

    Examples
    --------
    >>> ds = lesion_slices(n=4, size=32)
    >>> ds.patches.shape, int(ds.labels.sum()), int(ds.masks[ds.labels == 0].sum())
    ((4, 32, 32), 2, 0)
    """
    from scipy.special import erfc

    edge_mm = 0.5
    volume, (row_mm, col_mm), white, inside = _brain_geometry()
    reach_mm = radius_mm + 3 * edge_mm
    margin = (int(np.ceil(reach_mm / row_mm)), int(np.ceil(reach_mm / col_mm)))
    if size < 2 * max(margin) + 1:
        raise ValueError(
            f"size={size} px cannot hold a lesion of radius_mm={radius_mm} with its "
            f"edge; use size >= {2 * max(margin) + 1}"
        )
    # Candidate centres: white matter, far enough inside the brain.
    slices, rows, cols = np.nonzero(white & (inside >= reach_mm))
    keep = (
        (rows >= margin[0])
        & (rows < volume.shape[1] - margin[0])
        & (cols >= margin[1])
        & (cols < volume.shape[2] - margin[1])
    )
    candidates = np.column_stack([slices[keep], rows[keep], cols[keep]])
    if len(candidates) == 0:
        raise ValueError(f"no white matter holds a lesion of radius_mm={radius_mm}")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    centres = candidates[rng.integers(0, len(candidates), n)]
    shape = np.array(volume.shape[1:])
    lo = np.maximum(centres[:, 1:] - size + 1 + np.array(margin), 0)
    hi = np.minimum(centres[:, 1:] - np.array(margin), shape - size)
    corners = lo + np.floor(rng.random((n, 2)) * (hi - lo + 1)).astype(np.int64)

    ar = np.arange(size)
    patches = _gather(volume, np.column_stack([centres[:, 0], corners]), size)
    dy = ar[None, :, None] + corners[:, 0, None, None] - centres[:, 1, None, None]
    dx = ar[None, None, :] + corners[:, 1, None, None] - centres[:, 2, None, None]
    r = np.hypot(dy * row_mm, dx * col_mm)
    blob = 0.5 * erfc((r - radius_mm) / (np.sqrt(2) * edge_mm))
    positive = labels[:, None, None] == 1
    patches = (patches + np.float32(contrast) * (blob * positive)).astype(np.float32)
    masks = (r <= radius_mm) & positive
    return PatchDataset(
        patches=patches,
        labels=labels,
        class_names=["normal", "lesion"],
        groups=spatial_groups(centres, volume.shape, block=slab),
        positions=centres.astype(np.int64),
        sources=np.full(n, "brain_mri"),
        spacing=np.tile([row_mm, col_mm], (n, 1)).astype(np.float64),
        masks=masks,
    )


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape == (size, size):
        return image
    from skimage.transform import resize

    return resize(
        image, (size, size), order=1, preserve_range=True, anti_aliasing=True
    ).astype(np.float32)


def folder_dataset(
    path: str | os.PathLike, *, size: int | None = None
) -> tuple[PatchDataset, list[tuple[str, str]]]:
    """Bring your own images: one sub-folder per class.

    Every file of each sub-folder is read with :func:`medimg_lab.load`
    (DICOM, NIfTI, PNG, JPEG, TIFF). A file that cannot be read is skipped
    and listed with the reason; the others make the dataset. A volume gives
    its middle slice (axis 0), an RGB image its luminance. Each file is its
    own group, so no image sits on both sides of a split.

    Parameters
    ----------
    path : str or path-like
        Folder whose sub-folders (sorted by name) are the classes. Hidden
        entries (starting with ``.``) are ignored.
    size : int, optional
        Resample every image to ``size`` x ``size`` pixels (bilinear, with
        anti-aliasing, values kept in their units); ``spacing`` follows. By
        default the images must all have one shape.

    Returns
    -------
    dataset : PatchDataset
        One patch per readable file; ``positions`` ``(slice, row, column)``
        of the image centre in its source; ``sources`` the file paths.
    skipped : list of (str, str)
        Path and reason of each file that could not be read.

    Raises
    ------
    NotFoundError
        If ``path`` is not a folder.
    ValueError
        If there are fewer than 2 class sub-folders, a class folder without
        a readable image, or images of several shapes without ``size``.
    """
    from ..io import load

    root = Path(path)
    if not root.is_dir():
        raise NotFoundError(
            str(root),
            "is not a folder.",
            "Give a folder with one sub-folder per class.",
        )
    if size is not None:
        size = _check_int("size", size, 1, 4096)
    classes = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if len(classes) < 2:
        found = f"only {classes[0].name!r}" if classes else "none"
        raise ValueError(
            f"path {str(root)!r} needs one sub-folder per class, at least 2; found "
            f"{found}"
        )
    patches, labels, positions, sources, spacing = [], [], [], [], []
    skipped: list[tuple[str, str]] = []
    for label, folder in enumerate(classes):
        for file in sorted(folder.iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            try:
                image = load(file)
            except MedImgError as err:
                skipped.append((str(file), str(err)))
                _log.warning("skipped %s: %s", file, err)
                continue
            grey = _grey(image.array, image.is_color)
            middle = grey.shape[0] // 2 if image.is_volume else 0
            if image.is_volume:
                grey = grey[middle]
            step = np.array(image.spacing[-2:], dtype=np.float64)
            resized = _resize(grey, size)
            patches.append(resized)
            labels.append(label)
            positions.append((middle, grey.shape[0] // 2, grey.shape[1] // 2))
            sources.append(str(file))
            spacing.append(step * np.array(grey.shape) / np.array(resized.shape))
    empty = [c.name for k, c in enumerate(classes) if k not in labels]
    if empty:
        raise ValueError(
            f"class folders {empty} of {str(root)!r} hold no readable image "
            f"(skipped {len(skipped)} files); add images or remove the folders"
        )
    shapes = sorted({p.shape for p in patches})
    if len(shapes) > 1:
        raise ValueError(
            f"images have several shapes {shapes}; pass size= to resample them"
        )
    return (
        PatchDataset(
            patches=np.stack(patches).astype(np.float32),
            labels=np.array(labels, dtype=np.int64),
            class_names=[c.name for c in classes],
            groups=np.arange(len(patches), dtype=np.int64),
            positions=np.array(positions, dtype=np.int64),
            sources=np.array(sources),
            spacing=np.array(spacing, dtype=np.float64),
        ),
        skipped,
    )


#: Splits of a MedMNIST file, in order.
MEDMNIST_SPLITS = ("train", "val", "test")


def medmnist_npz(
    source: str | os.PathLike | bytes,
) -> dict[str, PatchDataset]:
    """Read a MedMNIST ``.npz`` file: one :class:`PatchDataset` per split.

    Parameters
    ----------
    source : path or bytes
        An ``.npz`` holding ``<split>_images`` and ``<split>_labels`` for
        some of the splits ``train``, ``val``, ``test``. Images are
        ``(n, h, w)`` grey, ``(n, h, w, 3)`` RGB (taken as luminance) or
        ``(n, d, h, w)`` volumes (middle slice); labels ``(n,)`` or
        ``(n, 1)`` integers (single-label tasks only).

    Returns
    -------
    dict of str to PatchDataset
        Split name to dataset; ``class_names`` are the label numbers as
        text, shared by the splits; each image is its own group, and group
        ids are unique across splits; ``spacing`` is 1 mm (MedMNIST keeps
        none).

    Raises
    ------
    ValueError
        Naming the missing keys, or labels that are not one integer per
        image.
    """
    data = (
        io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray) else source
    )
    try:
        with np.load(data, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"source is not a readable .npz file: {err}") from err
    present = [
        s for s in MEDMNIST_SPLITS if f"{s}_images" in arrays or f"{s}_labels" in arrays
    ]
    if not present:
        expected = ", ".join(f"{s}_images, {s}_labels" for s in MEDMNIST_SPLITS)
        raise ValueError(
            f"npz has none of the MedMNIST keys ({expected}); found "
            f"{sorted(arrays) or 'no arrays'}"
        )
    missing = [
        f"{s}_{part}"
        for s in present
        for part in ("images", "labels")
        if f"{s}_{part}" not in arrays
    ]
    if missing:
        raise ValueError(f"npz misses the MedMNIST keys {missing}")
    splits = {}
    for s in present:
        images = arrays[f"{s}_images"]
        labels = arrays[f"{s}_labels"]
        if images.ndim == 4 and images.shape[-1] == 3:
            images = _grey(images, True)
        elif images.ndim == 4:
            images = images[:, images.shape[1] // 2]
        elif images.ndim != 3:
            raise ValueError(
                f"{s}_images must be (n, h, w), (n, h, w, 3) or (n, d, h, w); got "
                f"shape {images.shape}"
            )
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if (
            labels.ndim != 1
            or labels.dtype.kind not in "ui"
            or len(labels) != len(images)
            or np.any(labels < 0)
        ):
            raise ValueError(
                f"{s}_labels must hold one integer >= 0 per image ({len(images)}); got "
                f"shape {labels.shape} and dtype {labels.dtype} (multi-label tasks "
                f"are not supported)"
            )
        splits[s] = (images.astype(np.float32), labels.astype(np.int64))
    n_classes = max(int(lab.max(initial=-1)) for _, lab in splits.values()) + 1
    names = [str(k) for k in range(n_classes)]
    out = {}
    offset = 0
    for s, (images, labels) in splits.items():
        n = len(images)
        h, w = images.shape[1:]
        out[s] = PatchDataset(
            patches=images,
            labels=labels,
            class_names=names,
            groups=np.arange(offset, offset + n, dtype=np.int64),
            positions=np.tile([h // 2, w // 2], (n, 1)).astype(np.int64),
            sources=np.array([f"{s}[{i}]" for i in range(n)]),
            spacing=np.ones((n, 2)),
        )
        offset += n
    return out
