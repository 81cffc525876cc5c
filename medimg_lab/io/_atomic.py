"""Atomic file writes that never overwrite an input."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import OutputExistsError

__all__ = ["atomic_write", "refuse_overwrite"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (
            a.exists() and b.exists() and os.path.samefile(a, b)
        )
    except OSError:
        return False


def refuse_overwrite(target: Path, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` if ``target`` exists and may not go."""
    if not overwrite and target.exists():
        raise OutputExistsError(
            str(target),
            "already exists and would be overwritten.",
            "Choose another path, or pass overwrite=True to replace it.",
        )


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None] | bytes,
    *,
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike | None] = (),
    sync: bool = True,
) -> Path:
    """Write a file through a temporary sibling and an atomic rename.

    A reader never sees a half-written file: ``write`` fills a temporary file
    in the target's folder, which then replaces the target in one step.

    Parameters
    ----------
    path : path-like
        The file to create.
    write : callable or bytes
        ``write(tmp_path)`` writes the whole content to ``tmp_path``. The
        temporary path keeps the target's suffixes, so writers that choose a
        format by extension (``.nii.gz``, ``.png``) behave as for the target.
        Bytes are written as they are, through the temporary file's own
        descriptor (one open fewer: a batch's per-study records).
    overwrite : bool
        Replace an existing file. Inputs named in ``protect`` are never
        replaced, whatever this says.
    protect : iterable of path-like
        Files that must not be written over: the image's own input.
    sync : bool
        Flush the content to the disk before the rename, so that a power
        failure cannot leave an empty file under the target's name. The
        rename is atomic either way; small records that can be rebuilt skip
        the flush (it costs several ms per file).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    OutputExistsError
        If ``path`` is a protected input, or exists and ``overwrite`` is false.
    """
    target = Path(path)
    for p in protect:
        if p is not None and _same_file(target, Path(p)):
            raise OutputExistsError(
                str(target),
                "is the file this image was loaded from; medimg-lab never "
                "overwrites an input.",
                "Choose another output path.",
            )
    refuse_overwrite(target, overwrite)
    suffix = "".join(target.suffixes[-2:]) if target.suffixes else ""
    temporary = {"prefix": f".{target.name}.", "suffix": f".part{suffix}"}
    try:
        fd, tmp_name = tempfile.mkstemp(**temporary, dir=target.parent)
    except FileNotFoundError:  # the folder is made only where it is missing
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(**temporary, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if isinstance(write, bytes):
            with os.fdopen(fd, "wb") as fh:
                fh.write(write)
                if sync:
                    fh.flush()
                    os.fsync(fh.fileno())
        else:
            os.close(fd)
            write(tmp)
            if sync:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target
