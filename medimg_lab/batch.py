"""Batch runs: one recipe over many studies, on Dask, from a laptop to a cluster.

:func:`run` finds the inputs (files, folders, globs, DICOM series folders or
a CSV manifest), cuts them into tasks of many studies each, and lets Dask
workers load, process and write their own studies: only paths and the
recipe travel through the scheduler, never pixels. Every study ends as

- its mask (and optionally its processed image) in ``out/masks`` and
  ``out/images``, as NIfTI (or PNG for 2D);
- a record ``out/items/<id>.json``: input checksums, recipe hash, status,
  reason, the files a series skipped and its warnings, timing and
  measurements, written last, atomically.

Every ``sha256`` recorded is the SHA-256 of one input file's bytes, what
``sha256sum`` prints; a series of several files has, besides its files'
digests, a ``series_sha256`` of their ``sha256sum`` listing in name order.

Where the studies run: a small cohort in this process (serially or on
threads), because starting worker processes costs seconds; a larger one in
this process and local worker processes together; or on any
dask.distributed cluster given by address or client. :func:`run` times
the first studies to choose, and says what it chose and why
(``BatchResult.runner``). On a cluster, paths are made absolute first,
every worker is asked whether it sees the inputs and can write the output
folder (a cluster on other machines needs a shared file system), and gets
the project's process settings through a worker plugin
(:mod:`medimg_lab._worker_settings`).

A re-run skips the studies whose record matches the inputs' checksums and
the recipe (resume); ``force=True`` recomputes. A study that cannot be read
or processed is recorded with its reason and the run goes on; a series
with a bad file is analysed without it, the file and reason in the row's
``skipped`` column, missing slices in its ``warnings``. A worker that
dies loses nothing finished: its task is retried elsewhere and skips what
was already written. At the end come ``results.csv``, ``results.parquet``
(one row per study) and ``provenance.json`` (recipe, versions, input
checksums, start and end times).

References
----------
Rocklin M. Dask: parallel computation with blocked algorithms and task
scheduling. Proc. 14th Python in Science Conf. 2015.
doi:10.25080/Majora-7b98e3ed-013
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._items import Item
from .errors import MedImgError, NotFoundError

__all__ = ["BatchResult", "Item", "discover", "local_cluster", "run"]

_log = logging.getLogger(__name__)

#: Packages whose versions go into the provenance record.
_PACKAGES = (
    "medimg-lab",
    "numpy",
    "scipy",
    "scikit-image",
    "scikit-learn",
    "opencv-contrib-python-headless",
    "pydicom",
    "nibabel",
    "dask",
    "distributed",
    "pandas",
)
_GLOB = set("*?[")
_CHUNK = 1 << 20


@dataclass
class BatchResult:
    """What :func:`run` did.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per study: ``id``, ``input``, ``status`` ("ok" or
        "failed"), ``reason``, ``skipped`` (files a series left out, each
        "name: reason"), ``warnings`` (such as missing slices), ``resumed``
        (done by an earlier run), ``seconds``, output paths and the recipe's
        measurements.
    out : Path
        The output folder.
    provenance : dict
        As written to ``provenance.json``.
    dashboard : str or None
        The Dask dashboard link, when a cluster ran it.
    runner : str
        Where the studies ran, and why, as a sentence (such as "12 studies:
        ran in this process (serial), cheaper than starting workers").
    """

    table: Any
    out: Path
    provenance: dict
    dashboard: str | None = None
    runner: str = ""

    @property
    def failed(self):
        """The rows of the studies that failed, with their reasons."""
        return self.table[self.table["status"] == "failed"]


# ------------------------------------------------------------------ inputs


def _is_dicom(path: Path) -> bool:
    from .io._source import sniff

    try:
        with open(path, "rb") as f:
            return sniff(f.read(1024)) == "dicom"
    except OSError:
        return False


def _series_uid(path: Path) -> str | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]
        )
    except (InvalidDicomError, OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # an unreadable file is a study of its own, and fails there
    return str(header.get("SeriesInstanceUID", "")) or None


def _safe(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._") or "input"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _special(path: Path, skipped: list[str] | None) -> bool:
    """Whether ``path`` is a FIFO, device or socket; if so, noted in ``skipped``.

    Such a path is never opened: reading a FIFO blocks and ``/dev/zero``
    never ends, which would stall a whole batch.
    """
    from .io._source import special_file, special_reason

    kind = special_file(path)
    if kind is not None and skipped is not None:
        skipped.append(f"{path}: {special_reason(kind)}.")
    return kind is not None


def _folder_items(root: Path, skipped: list[str] | None = None) -> list[Item]:
    """Files of a folder tree, with DICOM files of one series grouped.

    FIFOs, devices and sockets are left out, each noted in ``skipped``.
    """
    items: list[Item] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        series: dict[str, list[Path]] = {}
        for name in sorted(n for n in names if not n.startswith(".")):
            path = here / name
            if _special(path, skipped if skipped is not None else []):
                continue
            uid = _series_uid(path) if _is_dicom(path) else None
            if uid is None:
                items.append(_file_item(path, root))
            else:
                series.setdefault(uid, []).append(path)
        for uid, files in series.items():
            if len(files) == 1:
                items.append(_file_item(files[0], root))
                continue
            rel = here.relative_to(root) if here != root else Path(root.name)
            # Outputs are named after a digest, never part of the UID itself
            # (its tail is often a timestamp and counter of the study).
            tag = hashlib.sha256(uid.encode()).hexdigest()[:8]
            items.append(
                Item(
                    id=_safe("__".join(rel.parts)) + f"__series-{tag}",
                    path=str(here),
                    files=tuple(str(f) for f in files),
                    series=uid,
                )
            )
    return items


def _file_item(path: Path, root: Path | None = None) -> Item:
    base = path.parent if root is None else root
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(path.name)
    parts = [*rel.parts[:-1], _stem(rel)]
    return Item(id=_safe("__".join(parts)), path=str(path), files=(str(path),))


def _manifest(path: Path) -> list[Item]:
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise MedImgError(
            str(path), f"is not a readable CSV manifest ({err}).", "Give a CSV file."
        ) from err
    if "path" not in table.columns:
        raise MedImgError(
            str(path),
            f"has no 'path' column (columns: {list(table.columns)}).",
            "Add a column 'path' with one input per row (and optionally 'id').",
        )
    items = []
    for row in table.itertuples(index=False):
        target = Path(str(row.path))
        target = target if target.is_absolute() else path.parent / target
        if target.is_dir():
            found = _folder_items(target)
        else:
            found = [_file_item(target)]
        ident = getattr(row, "id", None)
        if ident is not None and isinstance(ident, str) and len(found) == 1:
            found = [Item(_safe(ident), found[0].path, found[0].files, found[0].series)]
        items.extend(found)
    return items


def discover(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Item]:
    """The studies named by ``inputs``, each once, with unique ids.

    Parameters
    ----------
    inputs : path, glob or CSV manifest, or a sequence of them
        A file is one study. A folder is walked: each file is a study, except
        DICOM files sharing a ``SeriesInstanceUID`` in one folder, which are
        one series. A pattern with ``*``, ``?`` or ``[`` is a glob (``**``
        recurses). A ``.csv`` file is a manifest with a ``path`` column
        (relative to the CSV's folder) and an optional ``id`` column.
        Named pipes (FIFOs), devices and sockets are never opened: they are
        left out, with a warning that names each.

    Returns
    -------
    list of Item
        In a stable order.

    Raises
    ------
    NotFoundError
        For an input that does not exist or a glob that matches nothing.

    Warns
    -----
    UserWarning
        When a FIFO, device or socket was left out, naming each.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    items: list[Item] = []
    skipped: list[str] = []
    for spec in inputs:
        text = str(spec)
        if _GLOB & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise NotFoundError(text, "matches no file.", "Check the pattern.")
            for match in matches:
                path = Path(match)
                if path.is_dir():
                    items.extend(_folder_items(path, skipped))
                elif not _special(path, skipped):
                    items.append(_file_item(path))
            continue
        path = Path(text)
        if not path.exists():
            raise NotFoundError(
                text, "does not exist.", "Give an existing file or folder."
            )
        if path.is_dir():
            items.extend(_folder_items(path, skipped))
        elif _special(path, skipped):
            continue
        elif path.suffix.lower() == ".csv":
            items.extend(_manifest(path))
        else:
            items.append(_file_item(path))
    if skipped:
        message = (
            f"{len(skipped)} input(s) left out, not regular files: "
            + " ".join(skipped)
            + " Copy each image into a regular file to include it."
        )
        _log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    seen: dict[str, int] = {}
    unique, paths = [], set()
    for item in items:
        key = (item.path, item.series)
        if key in paths:
            continue
        paths.add(key)
        count = seen.get(item.id, 0)
        seen[item.id] = count + 1
        ident = item.id if count == 0 else f"{item.id}-{count + 1}"
        unique.append(Item(ident, item.path, item.files, item.series))
    return unique


# ------------------------------------------------------------------ worker


def _file_sha256(name: str) -> str:
    """The SHA-256 of a file's bytes, as ``sha256sum`` prints it."""
    with open(name, "rb") as f:  # read into one reused buffer
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digests(item: Item) -> dict[str, Any]:
    """The input checksums of a study, as its record and provenance keep them.

    ``files`` lists each input file with its real SHA-256 (what
    ``sha256sum`` prints). A single file's is also ``sha256``. A series of
    several files has no one file digest; ``series_sha256`` is the SHA-256
    of its ``sha256sum`` listing, sorted by file name (``cd <folder> &&
    sha256sum <files in name order> | sha256sum``).
    """
    files = [{"path": name, "sha256": _file_sha256(name)} for name in item.files]
    found: dict[str, Any] = {"files": files}
    if item.series is None and len(files) == 1:
        found["sha256"] = files[0]["sha256"]
    else:
        listing = "".join(
            f"{f['sha256']}  {Path(f['path']).name}\n"
            for f in sorted(files, key=lambda f: Path(f["path"]).name)
        )
        found["series_sha256"] = hashlib.sha256(listing.encode()).hexdigest()
    return found


def _legacy_checksum(files: Sequence[str]) -> str:
    """The digest records held as ``sha256`` before real file digests.

    A SHA-256 over each file's name and bytes in name order: not any file's
    SHA-256. Only compared, to resume from records written by older runs.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(Path(name).name.encode())
        with open(name, "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _recipe_hash(recipe: dict) -> str:
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _record_path(out: Path, ident: str) -> Path:
    return out / "items" / f"{ident}.json"


def _current(
    out: Path, item: Item, digests: dict[str, Any], recipe_hash: str
) -> dict | None:
    """The earlier record of ``item`` if it is complete and current.

    A record from an older run (no ``files`` list) is matched against the
    old combined digest it kept as ``sha256``, and upgraded to real digests.
    """
    try:
        record = json.loads(_record_path(out, item.id).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if "files" in record:
        same_input = all(
            record.get(key) == digests.get(key) for key in ("sha256", "series_sha256")
        ) and [f.get("sha256") for f in record["files"]] == [
            f["sha256"] for f in digests["files"]
        ]
    else:
        same_input = record.get("sha256") == _legacy_checksum(item.files)
    if (
        not same_input
        or record.get("status") != "ok"
        or record.get("recipe_sha256") != recipe_hash
        or not all(Path(p).exists() for p in record.get("outputs", {}).values())
    ):
        return None
    if "files" not in record:
        record.pop("sha256", None)
        record.update(digests)
        _write_json(_record_path(out, item.id), record)
    return record


def _write_json(path: Path, data: dict) -> None:
    from .io._atomic import atomic_write

    text = json.dumps(data, indent=2, default=str).encode()
    # Not flushed: a record lost to a power cut only means recomputing; the
    # outputs it points to are flushed before it is written.
    atomic_write(path, text, overwrite=True, sync=False)


def _process(item: Item, recipe, out: Path, options: dict) -> dict:
    """Load, run and write one study; the record, also on failure."""
    import numpy as np

    from .image import MedImage
    from .io import load, save

    started = time.perf_counter()
    record: dict[str, Any] = {"id": item.id, "input": item.path, "status": "ok"}
    # A series of an archive query (archive.cohort.ArchiveSeries) is
    # retrieved here, by the process that runs it, through the cache.
    remote = callable(getattr(item, "fetch", None))
    try:
        if remote:
            if not options["force"]:
                earlier = item.current(out, options)
                if earlier is not None:
                    return {**earlier, "resumed": True}
            item = item.fetch()
        record.update(_digests(item))
        record["recipe_sha256"] = options["recipe_sha256"]
        if not options["force"]:
            earlier = _current(out, item, record, options["recipe_sha256"])
            if earlier is not None and not remote:
                return {**earlier, "resumed": True}
        image = item.load() if remote else load(item.path, series=item.series)
        # A series loads without its bad files and with its gaps warned:
        # the record keeps both, so that the table shows them.
        record["skipped"] = list(image.meta.get("skipped", []))
        record["warnings"] = list(image.meta.get("warnings", []))
        for text in record["warnings"]:
            _log.warning("%s: %s", item.id, text)
        result = recipe.apply(image)
        outputs = {}
        two_d = not image.is_volume
        suffix = ".png" if two_d and options["format"] == "png" else ".nii.gz"
        if result.labels is not None:
            labels = np.asarray(result.labels)
            labels = labels.astype(
                np.uint8 if labels.max(initial=0) < 256 else np.uint16
            )
            top = float(max(labels.max(initial=0), 1))
            mask = MedImage(
                labels, image.spacing, "OT", (top / 2, top), {"unit": "label"}
            )
            target = out / "masks" / f"{item.id}{suffix}"  # made if missing
            outputs["mask"] = str(save(mask, target, overwrite=True))
        if options["save_images"]:
            target = out / "images" / f"{item.id}.nii.gz"
            outputs["image"] = str(save(result.image, target, overwrite=True))
        record.update(
            outputs=outputs,
            measurements=dict(result.measurements),
            shape=list(image.array.shape),
            spacing_mm=list(image.spacing),
            modality=image.modality,
        )
        if remote:  # its instances' UIDs and digests; SEG + SR stored if asked
            item.finish(result.labels, image, out, record, options)
        elif options.get("dicom_results"):
            _write_dicom_results(item, result.labels, image, out, record)
    except MedImgError as err:
        record.update(status="failed", reason=str(err))
    except Exception as err:  # one study must not stop the cohort
        # Anything else a library raises on one odd study (cv2.error,
        # IndexError ...) is recorded with its type, like a bad input.
        record.update(status="failed", reason=f"{type(err).__name__}: {err}")
    record["seconds"] = round(time.perf_counter() - started, 4)
    record["resumed"] = False
    _write_json(_record_path(out, item.id), record)
    return record


def _write_dicom_results(item: Item, labels, image, out: Path, record: dict) -> None:
    """The study's SEG and SR beside its mask (outputs ``seg`` and ``sr``).

    A study that cannot have them keeps its other results, with the reason
    among its warnings.
    """
    import numpy as np

    from .io.results import export_results

    if labels is None or not np.any(labels):
        record["warnings"].append("no SEG or SR: the recipe labelled no voxel")
        return
    try:
        written = export_results(
            labels,
            image,
            out / "dicom" / item.id,
            sources=list(item.files),
            overwrite=True,
        )
    except (MedImgError, ValueError) as err:
        record["warnings"].append(f"no SEG or SR: {err}")
        return
    record["outputs"].update({k: str(v) for k, v in written.items()})


def _run_task(items: list[Item], recipe_data: dict, out: str, options: dict) -> list:
    """A Dask task: many studies, each loaded by the worker itself.

    The worker's process settings (one OpenCV thread, allocator thresholds)
    come from the :class:`~medimg_lab._worker_settings.WorkerSettings`
    plugin that :func:`run` registers.
    """
    from .recipe import Recipe

    recipe = Recipe.from_dict(recipe_data)
    return [_process(item, recipe, Path(out), options) for item in items]


def _worker_view(folders: list[str], files: list[str], out: str) -> dict:
    """What a worker sees of the run's paths (runs on each worker)."""
    import socket

    return {
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "missing": [p for p in [*folders, *files] if not os.path.exists(p)],
        "out": os.path.isdir(out) and os.access(out, os.W_OK | os.X_OK),
    }


# --------------------------------------------------------------------- run


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _task_sizes(n: int, workers: int) -> list[int]:
    """Studies per task, largest first: each a quarter of a worker's share left.

    A task's overhead is milliseconds; what matters is the tail, where one
    worker still runs its last task while the others are done. Tasks of one
    size (30 studies of 13 ms for 600 on 2 workers) left up to 0.4 s of a
    4 s run to one worker; tasks that shrink as the cohort runs out (guided
    self-scheduling, at most 100 studies each) end within a study or two.
    """
    sizes, left, slots = [], n, max(workers, 1)
    while left:
        size = max(1, min(100, left // (4 * slots)))
        sizes.append(size)
        left -= size
    return sizes


def local_cluster(
    workers: int | None = None, *, threads: bool = False, fork: bool = False
):
    """A Dask ``LocalCluster`` on 127.0.0.1 set up for image batches.

    Parameters
    ----------
    workers : int, optional
        Worker processes (or threads with ``threads=True``); default the
        cores, at most 8.
    threads : bool
        One process with ``workers`` threads instead of processes.
    fork : bool
        Start the worker processes by ``fork`` (Linux only; elsewhere
        ``spawn`` as by default): they inherit this process's imports, and
        start in about 0.2 s instead of 2-4 s (1.9 CPU-s per worker
        measured on 2 loaded cores, against 0.15). Only for a caller that
        runs nothing else meanwhile in other threads of this process, and
        that has set OpenCV to one thread (a fork copies no thread pool).
        Workers that die are restarted by ``spawn``.

    Returns
    -------
    dask.distributed.LocalCluster
        Its dashboard on a free port of 127.0.0.1; close it when done (it is
        a context manager).
    """
    import dask
    from dask.distributed import LocalCluster

    from ._worker_settings import local_worker_environ

    n = workers or _default_workers()
    # Threads share this process and talk in memory (inproc://): no host to
    # bind. Worker processes listen on 127.0.0.1 only.
    network = {} if threads else {"host": "127.0.0.1"}
    # The allocator thresholds go into the workers' environment before they
    # start (see medimg_lab._worker_settings); run() applies the rest.
    settings = local_worker_environ()
    if fork and not threads and sys.platform.startswith("linux"):
        # glibc reads MALLOC_* only at start: a forked worker gets the
        # thresholds from the WorkerSettings plugin that run() registers.
        settings["distributed.worker.multiprocessing-method"] = "fork"
    with dask.config.set(settings):
        return LocalCluster(
            n_workers=1 if threads else n,
            threads_per_worker=n if threads else 1,
            processes=not threads,
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
            # Imported while the workers start, not at their first task.
            preload=[] if threads else ["medimg_lab.batch", "medimg_lab.recipe"],
            **network,
        )


def _dashboard(client, cluster) -> str:
    """The dashboard's address; a local cluster's listens on 127.0.0.1 only."""
    if cluster is None:
        return client.dashboard_link
    port = client.scheduler_info().get("services", {}).get("dashboard")
    return f"http://127.0.0.1:{port}/status" if port else client.dashboard_link


def _default_workers() -> int:
    """Workers of a local cluster when none are asked for: the cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _client(client, workers: int | None):
    """``(client, cluster_to_close)`` for the requested execution."""
    from dask.distributed import Client

    if client in ("processes", "threads"):
        cluster = local_cluster(workers, threads=client == "threads")
        return Client(cluster, set_as_default=False), cluster
    if isinstance(client, str):
        try:
            return Client(client, timeout=_CONNECT_TIMEOUT, set_as_default=False), None
        except (OSError, TimeoutError) as err:
            raise MedImgError(
                client,
                f"is a Dask scheduler this process could not reach in "
                f"{_CONNECT_TIMEOUT} ({type(err).__name__}).",
                "Check the address (tcp://HOST:PORT, as `dask scheduler` prints "
                "it) and that the scheduler is running and reachable from here.",
            ) from None
    return client, None


#: How long to wait for a scheduler to answer, and for its first worker.
_CONNECT_TIMEOUT = "30s"


def _prepare_workers(dask_client, items: list[Item], out: Path) -> int:
    """Settings on every worker, and the run's paths checked there; the workers.

    Registers :class:`~medimg_lab._worker_settings.WorkerSettings` (also
    for workers that join later), then asks each worker whether it sees
    the inputs (each folder and its first file) and can write to ``out``:
    a worker on another machine without the same shared file system
    would fail every study.

    Raises
    ------
    MedImgError
        When the cluster has no worker.
    NotFoundError
        When a worker cannot see an input or cannot write to ``out``.
    """
    from ._worker_settings import WorkerSettings

    address = dask_client.scheduler.address
    if not dask_client.scheduler_info()["workers"]:
        try:
            dask_client.wait_for_workers(1, timeout=_CONNECT_TIMEOUT)
        except TimeoutError:
            raise MedImgError(
                str(address),
                f"is a Dask scheduler without workers (none joined in "
                f"{_CONNECT_TIMEOUT}).",
                f"Start at least one worker: dask worker {address}",
            ) from None
    dask_client.register_plugin(WorkerSettings())
    firsts: dict[str, str] = {}
    for item in items:
        if not item.files:  # a series of an archive query: the worker retrieves it
            continue
        folder = str(Path(item.files[0]).parent)
        firsts.setdefault(folder, item.files[0])
    views = dask_client.run(
        _worker_view, sorted(firsts), sorted(firsts.values()), str(out)
    )
    here = os.getcwd()
    shared = (
        "Give paths on a file system that every worker mounts at the same "
        "path (a shared folder), or copy the data there; relative paths are "
        f"taken from this process's folder, {here}."
    )
    for worker, view in sorted(views.items()):
        where = f"Dask worker {worker} (host {view['host']})"
        if view["missing"]:
            first = view["missing"][0]
            more = len(view["missing"]) - 1
            also = f" (and {more} more of the inputs)" if more else ""
            raise NotFoundError(
                first,
                f"exists here but not for {where}{also}; nothing was submitted.",
                shared,
            )
        if not view["out"]:
            raise NotFoundError(
                str(out),
                f"is not a folder that {where} can write to, though it is here; "
                "nothing was submitted.",
                shared,
            )
    return len(views)


def _say(progress, text: str) -> None:
    """A line on stderr above the progress bar, when the bar is shown."""
    if progress is True:
        from tqdm.std import tqdm

        tqdm.write(text, file=sys.stderr)


def _progress_callback(progress, total: int) -> tuple[Callable[[int], None], Callable]:
    if callable(progress):
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        return step, lambda: None
    if progress:
        from tqdm.std import tqdm

        bar = tqdm(total=total, unit="study", file=sys.stderr, leave=True)
        return bar.update, bar.close
    return (lambda n: None), (lambda: None)


def _absolute(spec: str | os.PathLike) -> str:
    """``spec`` as an absolute path of this process's folder; a URL as it is.

    Workers run in folders of their own, often on other machines: a path
    relative to this process means nothing to them.
    """
    text = os.fspath(spec)
    if "://" in text:
        return text
    return os.path.abspath(os.path.expanduser(text))


#: Local worker processes are forked from this process where the platform
#: allows it (Linux): they inherit its imports and warm caches.
_FORK_WORKERS = sys.platform.startswith("linux")
#: Seconds that local worker processes cost before they pay back: forked,
#: 0.06-0.09 s on 2 cores (the pool, the fork, the pages copied on first
#: write; measured against a plain loop on 20-300 head CT studies, where
#: they were faster from 20 studies, 0.26 s of work, on); spawned, each
#: imports the library first, 2-3 s.
_PROCESS_START_S = 0.1 if _FORK_WORKERS else 2.5
#: Throughput of each worker process against this process's loop (measured:
#: 0.9-0.97 on 2 cores).
_PROCESS_EFFICIENCY = 0.9
#: Below this much estimated work, threads cannot win anything worth a pool.
_THREADS_FROM_S = 1.0
#: Studies the automatic choice times in this process before it decides.
_PROBE_STUDIES = 3
#: Seconds of studies the probe runs at most before it decides: enough for
#: the first study's first-use costs (0.2 s on the head CT: decoders,
#: tables) and two warm ones behind it; long studies stop it sooner.
_PROBE_BUDGET_S = 0.5


def _choose_runner(n_left: int, seconds_each: float, workers: int) -> str:
    """The cheapest way to run ``n_left`` more studies of ``seconds_each`` each.

    Parameters
    ----------
    n_left : int
        Studies still to run.
    seconds_each : float
        Measured time of one study in this process, in s.
    workers : int
        Cores (worker processes or threads) available.

    Returns
    -------
    {"serial", "threads", "processes"}
        ``"processes"`` when this process and local worker processes, their
        start of :data:`_PROCESS_START_S` included, finish before this
        process alone would; otherwise threads in this process (nothing to
        start; they gain what the steps run outside the GIL) once the work
        is worth a pool, else a plain loop.
    """
    serial = n_left * seconds_each
    if workers <= 1:
        return "serial"
    if _PROCESS_START_S + serial / (workers * _PROCESS_EFFICIENCY) < serial:
        return "processes"
    return "serial" if serial < _THREADS_FROM_S else "threads"


def _in_process(items, recipe, out, options, step, threads: int) -> list[dict]:
    """Run ``items`` in this process, on ``threads`` threads (1: a plain loop)."""
    if threads <= 1:
        records = []
        for item in items:
            records.append(_process(item, recipe, out, options))
            step(1)
        return records
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from .io._codecs import one_decode_thread

    # Each thread decodes JPEG 2000 on one core: the threads share the cores.
    with (
        one_decode_thread(),
        ThreadPoolExecutor(threads, thread_name_prefix="medimg-batch") as pool,
    ):
        futures = [pool.submit(_process, item, recipe, out, options) for item in items]
        records = []
        for future in as_completed(futures):
            records.append(future.result())
            step(1)
    return records


def _probe(items, recipe, out, options, step) -> tuple[list[dict], float]:
    """The first studies run here, timed: ``(records, seconds per study)``.

    At most :data:`_PROBE_STUDIES`, and no more once they took
    :data:`_PROBE_BUDGET_S`. The first study also pays first-use costs
    (decoders, tables), so it counts only when it is the only one.
    """
    records, seconds = [], []
    for item in items[:_PROBE_STUDIES]:
        began = time.perf_counter()
        records.append(_process(item, recipe, out, options))
        seconds.append(time.perf_counter() - began)
        step(1)
        if sum(seconds) >= _PROBE_BUDGET_S:
            break
    timed = seconds[1:] or seconds
    return records, (sorted(timed)[len(timed) // 2] if timed else 0.0)


def _worker_pool(workers: int):
    """``workers`` local worker processes for :func:`_alongside_workers`.

    On Linux they are forked from this process: they inherit its imports
    and are up in milliseconds, with no scheduler to start and no Dask to
    import. Elsewhere they are spawned (seconds), while this process works.
    Each applies the batch settings first
    (:func:`~medimg_lab._worker_settings.apply_worker_settings`: allocator
    thresholds, one OpenCV and BLAS thread).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import cv2

    from ._worker_settings import apply_worker_settings

    method = "fork" if _FORK_WORKERS else "spawn"
    if method == "fork":
        # A fork copies no thread: a child that inherits OpenCV's pool of
        # threads hangs when it sets its own thread count. The pool is
        # stopped here, in this process, before the workers are forked
        # (the caller restores the count when the run is done).
        cv2.setNumThreads(1)
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=apply_worker_settings,
    )


def _alongside_workers(items, recipe, recipe_data, out, options, step, cores):
    """Share the cohort between this process and ``cores - 1`` worker processes.

    Every worker process started costs time and CPU (an interpreter and
    its imports): on ``cores`` cores, this process, whose imports are done,
    takes one core's share itself, and the others go to local worker
    processes (:func:`_worker_pool`; forked on Linux, started before any
    other thread of the run). This process works through the cohort one
    study at a time from the same queue, while the workers get tasks of
    several studies, smaller towards the end so that all finish together.
    A worker process that dies (a decoder's crash) loses nothing: its
    studies go back to the queue and run here.

    Returns
    -------
    records : list of dict
    here : int
        The studies that ran in this process.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait

    import cv2

    from .io._codecs import one_decode_thread

    queue = deque(items)
    records: list[dict] = []
    here = 0
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core is this process's share: no oversubscription
    slots = 2 * (cores - 1)  # tasks in flight: one running, one queued per worker
    pending: dict = {}  # future -> its studies
    broken = False
    try:
        with one_decode_thread(), _worker_pool(cores - 1) as pool:

            def feed() -> None:
                while not broken and len(pending) < slots and queue:
                    size = max(1, min(25, len(queue) // (4 * cores)))
                    task = [queue.popleft() for _ in range(min(size, len(queue)))]
                    future = pool.submit(
                        _run_task, task, recipe_data, str(out), options
                    )
                    pending[future] = task

            def collect(future) -> None:
                nonlocal broken
                task = pending.pop(future)
                try:
                    found = future.result()
                except Exception as err:  # the worker died: run its studies here
                    _log.warning("batch: a worker process failed (%s)", err)
                    broken = True
                    queue.extendleft(reversed(task))
                    return
                records.extend(found)
                step(len(found))

            feed()  # the workers are forked here, before any other thread
            # The results table's imports, on this core while the workers
            # run, instead of alone after the last study.
            imports = _import_in_background(_TABLE_IMPORTS)
            while queue or pending:
                for future in [f for f in pending if f.done()]:
                    collect(future)
                feed()
                if queue:
                    records.append(_process(queue.popleft(), recipe, out, options))
                    here += 1
                    step(1)
                elif pending:
                    wait(list(pending), return_when=FIRST_COMPLETED)
        imports.join()
    finally:
        cv2.setNumThreads(opencv_threads)
    return records, here


#: What the results table imports (pandas, and pyarrow for results.parquet).
_TABLE_IMPORTS = ("pandas", "pyarrow.parquet")


def _import_in_background(modules: Sequence[str]):
    """A started thread importing ``modules``, for the caller to ``join()``.

    A module that fails to import here is left for its real use to report.
    """
    import importlib
    import threading

    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 the real import reports it
                continue

    thread = threading.Thread(target=work, name="medimg-batch-imports", daemon=True)
    thread.start()
    return thread


def _on_dask(dask_client, cluster, items, recipe_data, out, options, step, progress):
    """Run ``items`` on a Dask cluster; ``(records, dashboard)``."""
    from dask.distributed import as_completed

    dashboard = _dashboard(dask_client, cluster)
    _say(progress, f"Dask dashboard: {dashboard}")
    _prepare_workers(dask_client, items, out)
    slots = sum(dask_client.nthreads().values())
    tasks, start = [], 0
    for size in _task_sizes(len(items), slots):
        tasks.append(items[start : start + size])
        start += size
    futures = [
        dask_client.submit(
            _run_task, task, recipe_data, str(out), options, pure=False, retries=3
        )
        for task in tasks
    ]
    records: list[dict] = []
    # The run's own client's loop: the default one may be another client's,
    # which then delivered results in bursts about 5 s apart.
    for _, found in as_completed(futures, loop=dask_client.loop, with_results=True):
        records.extend(found)
        step(len(found))
    return records, dashboard


def run(
    recipe,
    inputs,
    out: str | os.PathLike,
    *,
    client=None,
    workers: int | None = None,
    force: bool = False,
    save_images: bool = False,
    format: str = "nii.gz",
    progress: bool | Callable[[int, int], None] = True,
    store: bool = False,
    cache: str | os.PathLike | None = None,
    dicom_results: bool = False,
) -> BatchResult:
    """Run ``recipe`` over every study of ``inputs``, writing to ``out``.

    Parameters
    ----------
    recipe : Recipe, dict or path
        A :class:`~medimg_lab.recipe.Recipe`, its dict, or a recipe JSON file.
    inputs : path, glob, CSV manifest or a sequence of them
        See :func:`discover`. Relative paths are taken from this process's
        working folder and made absolute before anything is submitted, so
        that workers running elsewhere read the same files.
        Or one cohort query, alone: every image series it matches
        (``dicomweb://HOST:PORT/PATH?ModalitiesInStudy=CT&StudyDate=20200101-20201231``,
        ``dicomwebs://`` or ``https://`` over https,
        ``dimse://AET@HOST:PORT?Modality=CT``; see
        :mod:`medimg_lab.archive.cohort`). It is searched here; each worker
        retrieves its own series through ``cache``, and ``provenance.json``
        records the query and each instance's SOP Instance UID and SHA-256.
    out : path
        Output folder, created if needed (a relative one, as ``inputs``).
        Its earlier results are reused where current (resume).
    client : None, "processes", "threads", "serial", dask Client or str
        ``None``: the cheapest way for this cohort, chosen after timing
        its first studies in this process, and said in
        ``BatchResult.runner``: a small cohort runs here, serially or on
        ``workers`` threads, because starting worker processes costs about
        :data:`_PROCESS_START_S` s (0.1 s forked on Linux, 2.5 s spawned
        elsewhere); a larger one runs in this process and ``workers - 1``
        local worker processes, this process working while they start.
        ``"processes"``: a local cluster of ``workers`` processes on
        127.0.0.1. ``"threads"``: one process with
        ``workers`` threads. ``"serial"``: a plain loop in this process, no
        Dask. A ``Client``: any existing dask.distributed cluster. A string:
        a scheduler address such as ``"tcp://10.0.0.5:8786"``. On a Dask
        cluster the workers get the project's settings through a worker
        plugin, and are asked first whether they see the inputs and can
        write to ``out``.
    workers : int, optional
        Worker processes (or threads) of a local cluster; default the cores,
        at most 8.
    force : bool
        Recompute studies whose results are current.
    save_images : bool
        Also write each processed image.
    format : {"nii.gz", "png"}
        File format of 2D masks (volumes are always NIfTI).
    progress : bool or callable
        A tqdm bar on stderr (and the runner chosen, and the dashboard),
        nothing, or ``progress(done, total)`` called as studies finish (a
        notebook passes a widget's updater).
    store : bool
        For a cohort query: send each series' SEG and SR
        (:func:`~medimg_lab.io.results.export_results`, also written to
        ``out/dicom/<id>/``) back to the archive, by STOW-RS or C-STORE.
    dicom_results : bool
        Also write each DICOM study's labels as a DICOM SEG and its
        measurements as an SR (TID 1500) in ``out/dicom/<id>/``
        (:func:`~medimg_lab.io.results.export_results`), beside the NIfTI
        mask; a study that cannot have them (not DICOM, no labels) is kept,
        with the reason among its warnings. A cohort query with ``store``
        writes them anyway.
    cache : path-like, optional
        For a cohort query: the instance cache the workers retrieve through
        (a folder they all see; local workers share it); default
        :func:`~medimg_lab.archive.default_cache_folder`.

    Returns
    -------
    BatchResult

    Raises
    ------
    RecipeError
        For a recipe that does not validate, before anything runs.
    NotFoundError
        For inputs that do not exist, or that a cluster's workers cannot
        see (nor write to ``out``), before anything is submitted.
    MedImgError
        For a scheduler that cannot be reached or has no workers.
    """
    from .io._atomic import atomic_write
    from .recipe import Recipe

    if isinstance(recipe, str | os.PathLike):
        recipe = Recipe.load(recipe)
    elif isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    if format not in ("nii.gz", "png"):
        raise ValueError(f"format must be 'nii.gz' or 'png'; got {format!r}")
    allowed = (None, "processes", "threads", "serial")
    if isinstance(client, str) and client not in allowed and "://" not in client:
        raise ValueError(
            f"client must be one of {allowed[1:]}, a scheduler address such as "
            f"'tcp://10.0.0.5:8786', a dask Client or None; got {client!r}"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(
            f"workers must be a whole number of at least 1; got {workers!r}"
        )
    out = Path(_absolute(out))
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    inputs = [_absolute(spec) for spec in inputs]
    query = _cohort_query(inputs)
    if query is None and (store or cache is not None):
        raise ValueError(
            "store and cache apply to a cohort query (dicomweb://HOST/PATH?..., "
            "dimse://AET@HOST:PORT?...); the inputs are files"
        )
    if query is not None:  # searched here; each worker retrieves its series
        from .archive import default_cache_folder
        from .archive.cohort import cohort_items

        items = cohort_items(query, cache=cache or default_cache_folder())
    else:
        # An output folder inside an input folder is never read back as input.
        items = [
            item
            for item in discover(inputs)
            if not Path(item.path).resolve().is_relative_to(out.resolve())
        ]
    out.mkdir(parents=True, exist_ok=True)
    recipe_data = recipe.to_dict()
    options = {
        "force": bool(force),
        "save_images": bool(save_images),
        "format": format,
        "recipe_sha256": _recipe_hash(recipe_data),
        "store": bool(store),
        "dicom_results": bool(dicom_results),
    }
    started = datetime.now(UTC)
    step, close = _progress_callback(progress, len(items))
    records: list[dict] = []
    dashboard = None
    n = len(items)
    cores = workers or _default_workers()
    try:
        chosen = client
        if client is None:
            records, each = _probe(items, recipe, out, options, step)
            chosen = _choose_runner(n - len(records), each, cores)
            cheaper = "cheaper than starting workers"
            runner = {
                "serial": f"{n} studies: ran in this process (serial), {cheaper}",
                "threads": (
                    f"{n} studies: ran in this process on {cores} threads, {cheaper}"
                ),
                "processes": (
                    f"{n} studies: ran in this process and {cores - 1} local worker "
                    f"process{'es' if cores > 2 else ''} "
                    f"(about {each * 1000:.0f} ms a study, {n * each:.1f} s of "
                    f"work: worth starting workers, about {_PROCESS_START_S:g} s)"
                ),
            }[chosen]
            if chosen == "threads":
                chosen = "in-process threads"
        elif client == "serial":
            runner = f"{n} studies: ran in this process (serial), as asked"
        elif client in ("processes", "threads"):
            runner = f"{n} studies: ran on a local cluster of {cores} {client}"
        else:
            runner = f"{n} studies: ran on the Dask cluster {client!r}"
        _log.info("batch: %s", runner)
        _say(progress, runner)
        left = items[len(records) :]
        if chosen == "serial":
            records += _in_process(left, recipe, out, options, step, 1)
        elif chosen == "in-process threads":
            records += _in_process(left, recipe, out, options, step, cores)
        elif client is None:  # worker processes, chosen here
            probed = len(records)
            found, here = _alongside_workers(
                left, recipe, recipe_data, out, options, step, cores
            )
            records += found
            runner += f"; {probed + here} of them in this process"
        else:
            dask_client, cluster = _client(chosen, workers)
            try:
                found, dashboard = _on_dask(
                    dask_client,
                    cluster,
                    left,
                    recipe_data,
                    out,
                    options,
                    step,
                    progress,
                )
                records += found
            finally:
                if cluster is not None:
                    dask_client.close()
                    cluster.close()
    finally:
        close()
    finished = datetime.now(UTC)
    table = _table(records)
    atomic_write(
        out / "results.csv", lambda t: table.to_csv(t, index=False), overwrite=True
    )
    atomic_write(
        out / "results.parquet",
        lambda t: table.to_parquet(t, index=False),
        overwrite=True,
    )
    provenance = {
        "recipe": recipe_data,
        "recipe_sha256": options["recipe_sha256"],
        "versions": _versions(),
        "platform": platform.platform(),
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "scheduler": dashboard or str(chosen),
        "runner": runner,
        "counts": {
            "studies": len(records),
            "ok": int((table["status"] == "ok").sum()) if len(table) else 0,
            "failed": int((table["status"] == "failed").sum()) if len(table) else 0,
            "resumed": int(table["resumed"].sum()) if len(table) else 0,
        },
        "inputs": [
            _provenance_input(r) for r in sorted(records, key=lambda r: r["id"])
        ],
    }
    if query is not None:
        provenance["query"] = query.describe()
    _write_json(out / "provenance.json", provenance)
    _log.info("batch: %s", provenance["counts"])
    return BatchResult(
        table=table,
        out=out,
        provenance=provenance,
        dashboard=dashboard,
        runner=runner,
    )


def _cohort_query(inputs: list[str]):
    """The parsed cohort query if ``inputs`` is one (a URL), else None."""
    urls = [spec for spec in inputs if "://" in spec]
    if not urls:
        return None
    from .archive.cohort import is_query, parse_query

    if len(inputs) != 1 or not is_query(urls[0]):
        raise ValueError(
            "a cohort query is given alone, as dicomweb://HOST:PORT/PATH?KEY=VALUE "
            "(dicomwebs:// or https:// for https) or dimse://AET@HOST:PORT?KEY=VALUE; "
            f"got {inputs!r}"
        )
    return parse_query(urls[0])


def _provenance_input(record: dict) -> dict:
    """One input of ``provenance.json``: every ``sha256`` is a file's own."""
    entry = {"id": record["id"], "path": record["input"]}
    if "series_sha256" in record:
        entry["series_sha256"] = record["series_sha256"]
        entry["files"] = record.get("files", [])
    else:
        entry["sha256"] = record.get("sha256")
    if "instances" in record:  # a series of an archive query
        entry["archive_series"] = record.get("archive_series")
        entry["instances"] = record["instances"]
        if "stored" in record:
            entry["stored"] = record["stored"]
    return entry


def _table(records: list[dict]):
    """One row per study, measurements as columns, sorted by id."""
    import pandas as pd

    rows = []
    for r in records:
        row = {
            "id": r["id"],
            "input": r["input"],
            "status": r["status"],
            "reason": r.get("reason", ""),
            "skipped": "; ".join(
                f"{s['file']}: {s['reason']}" for s in r.get("skipped", [])
            ),
            "warnings": " ".join(r.get("warnings", [])),
            "resumed": bool(r.get("resumed", False)),
            "seconds": r.get("seconds", float("nan")),
            "mask": r.get("outputs", {}).get("mask", ""),
        }
        row.update(r.get("measurements", {}))
        rows.append(row)
    columns = [
        "id",
        "input",
        "status",
        "reason",
        "skipped",
        "warnings",
        "resumed",
        "seconds",
        "mask",
    ]
    table = pd.DataFrame(rows, columns=None if rows else columns)
    return table.sort_values("id", ignore_index=True) if len(table) else table
