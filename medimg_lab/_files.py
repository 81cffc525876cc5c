"""Files that recipe steps read: models, masks and images, named by path and digest.

A step names a file as ``{"path": ..., "sha256": ...}`` (see
:data:`medimg_lab.params.FileRef`). :func:`verify` finds it and checks its
SHA-256 before anything reads it; :func:`read_array` reads it (a model:
:func:`medimg_lab.segmentation.classifier.read_model`, so that this module,
below the stages, imports none). :func:`keep` writes what a panel holds in
memory (a trained model, a painted mask, a second image) to a
content-addressed folder, so that the panel's ``.recipe`` can name it;
:meth:`medimg_lab.recipe.Recipe.save` copies such files beside the recipe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MedImgError, NotFoundError
from .io._atomic import atomic_write

__all__ = [
    "DigestError",
    "asset_folder",
    "keep",
    "keep_array",
    "read_array",
    "sha256_of",
    "verify",
]


class DigestError(MedImgError, ValueError):
    """A file whose SHA-256 is not the one its recipe step names."""


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(
    ref: Any, *, what: str = "file", base: str | os.PathLike | None = None
) -> Path:
    """The file ``ref`` names, after checking that it exists and its digest.

    Parameters
    ----------
    ref : dict or path
        ``{"path": ..., "sha256": ... or None}`` or a path.
    what : str
        What the file is, for messages (``"model"``, ``"reference image"``).
    base : path, optional
        The folder a relative path is resolved against; default the
        current folder.

    Raises
    ------
    NotFoundError
        If there is no such file.
    DigestError
        If its SHA-256 is not the one given.
    """
    if isinstance(ref, str | os.PathLike):
        ref = {"path": os.fspath(ref), "sha256": None}
    path = Path(ref["path"])
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if path.is_dir():
        raise MedImgError(
            str(path),
            f"is a folder; the step needs a {what} file.",
            f"Name the {what} file itself.",
        )
    if not path.is_file():
        raise NotFoundError(
            str(path),
            f"does not exist; the step needs this {what}.",
            f"Put the {what} there (relative paths are read beside the recipe), "
            "or save the recipe again with Recipe.save, which copies its files "
            "beside it.",
        )
    expected = ref.get("sha256")
    if expected:
        actual = sha256_of(path)
        if actual != expected.lower():
            raise DigestError(
                str(path),
                f"has SHA-256 {actual}, not the {expected.lower()} that the recipe "
                f"names: this is not the {what} the recipe was made with.",
                f"Restore the original {what}, or make the recipe again from the "
                "panel that holds the new one.",
            )
    return path


def read_array(ref: Any, *, what: str = "image") -> np.ndarray:
    """The array in the file ``ref`` names (``.npy``, or any image ``load`` reads).

    Arrays and :class:`~medimg_lab.MedImage` objects pass through (a direct
    call that holds the data itself).
    """
    if hasattr(ref, "array") and hasattr(ref, "spacing"):
        return np.asarray(ref.array)
    if isinstance(ref, np.ndarray):
        return ref
    path = verify(ref, what=what)
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise MedImgError(
                str(path),
                f"is not a plain NumPy array file ({exc}).",
                f"Save the {what} with numpy.save, or as NIfTI or PNG.",
            ) from exc
    from .io import load

    return load(path).array


def asset_folder() -> Path:
    """Where :func:`keep` writes: ``$MEDIMG_ASSETS`` or a folder in the temp dir."""
    folder = os.environ.get("MEDIMG_ASSETS") or os.path.join(
        tempfile.gettempdir(), f"medimg-lab-assets-{os.getuid()}"
    )
    path = Path(folder)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if path.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise MedImgError(
            str(path),
            "is not a private folder of this user (a link, another owner, or "
            "writable by others), so the files a recipe names could be swapped "
            "there.",
            "Remove it, or set MEDIMG_ASSETS to a folder of your own.",
        )
    return path


def keep(data: bytes, suffix: str) -> dict[str, str]:
    """Write ``data`` once under its digest; the :data:`FileRef` naming it."""
    digest = hashlib.sha256(data).hexdigest()
    path = asset_folder() / f"{digest[:24]}{suffix}"
    if not path.is_file() or sha256_of(path) != digest:
        atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=True)
    return {"path": str(path), "sha256": digest}


def keep_array(array: np.ndarray) -> dict[str, str]:
    """:func:`keep` for an array, as ``.npy`` (exact: dtype and values kept)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return keep(buffer.getvalue(), ".npy")
