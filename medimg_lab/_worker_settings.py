"""The settings every Dask worker of a batch runs with, on any cluster.

A local cluster started by :func:`medimg_lab.batch.local_cluster` gives its
worker processes these settings in their environment before they start. A
cluster that was started elsewhere (``dask scheduler`` and ``dask worker``
on other machines) never saw that environment; :func:`medimg_lab.batch.run`
registers :class:`WorkerSettings` on it, a Dask worker plugin that applies
the same settings inside each running worker, and to workers that join later.

The settings, measured on 2 cores with the standard recipe on 512² CT slices:

- **glibc allocator thresholds.** Dask's nanny starts workers with
  ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
  threshold at 128 KiB: every image-sized temporary becomes a fresh
  ``mmap`` whose pages fault in on first touch, and a study took 1.5x as
  long in a worker as in a plain loop. A trim threshold of
  :data:`TRIM_THRESHOLD_BYTES` and an mmap threshold of
  :data:`MMAP_THRESHOLD_BYTES` keep those arrays on the heap. Inside a
  running process they are set with ``mallopt``, which is what the
  environment variables do at start.
- **One OpenCV thread** (``cv2.setNumThreads(1)``), one JPEG 2000 decoder
  thread (:func:`medimg_lab.io._codecs.set_decode_threads`) and one thread
  for the BLAS and OpenMP pools: a worker thread runs one image at a time, and the
  cores are shared by the workers, not oversubscribed inside each.

The batch's own local worker processes (:func:`medimg_lab.batch.run`
choosing workers by itself) run :func:`apply_worker_settings` when they
start. Only :class:`WorkerSettings` needs ``distributed``, which it imports
when it is first used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from medimg_lab.io._codecs import decode_threads, set_decode_threads

__all__ = [
    "MMAP_THRESHOLD_BYTES",
    "PLUGIN_NAME",
    "TRIM_THRESHOLD_BYTES",
    "WorkerSettings",  # noqa: F822 made by __getattr__ on first use
    "apply_worker_settings",
    "local_worker_environ",
    "settings_in_force",
]

_log = logging.getLogger(__name__)

#: glibc's ``M_TRIM_THRESHOLD``: free memory at the top of the heap kept
#: before it is returned to the system, in bytes (512 MiB).
TRIM_THRESHOLD_BYTES = 512 * 2**20
#: glibc's ``M_MMAP_THRESHOLD``: allocations at least this large are served by
#: ``mmap`` instead of the heap, in bytes (64 MiB). Setting it also stops
#: glibc from moving the threshold by itself.
MMAP_THRESHOLD_BYTES = 64 * 2**20
#: The name the plugin is registered under: registering again replaces it.
PLUGIN_NAME = "medimg-lab-worker-settings"

#: What :func:`apply_worker_settings` set in this process, once it ran.
_APPLIED: dict[str, object] | None = None

# mallopt parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def local_worker_environ() -> dict[str, int]:
    """Dask config for the environment of local worker processes.

    Returns
    -------
    dict
        ``distributed.nanny.pre-spawn-environ.*`` keys, for
        ``dask.config.set``: the allocator thresholds, set before each
        worker process starts.
    """
    key = "distributed.nanny.pre-spawn-environ."
    return {
        key + "MALLOC_TRIM_THRESHOLD_": TRIM_THRESHOLD_BYTES,
        key + "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD_BYTES,
    }


def _libc():
    """glibc, or None where the C library is another (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 only glibc has it
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def apply_worker_settings() -> dict[str, object]:
    """Apply the batch settings to this process.

    Returns
    -------
    dict
        What was set: ``malloc`` (True where glibc accepted both
        thresholds, False where this is no glibc), ``opencv_threads``,
        ``decode_threads`` and ``blas_threads`` (the thread counts now in
        force).
    """
    import cv2

    global _APPLIED
    applied: dict[str, object] = {"malloc": False}
    libc = _libc()
    if libc is not None:
        applied["malloc"] = bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
            and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        )
    cv2.setNumThreads(1)
    applied["opencv_threads"] = cv2.getNumThreads()
    set_decode_threads(1)
    applied["decode_threads"] = decode_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it, BLAS keeps its own
        applied["blas_threads"] = None
    else:
        threadpool_limits(1)
        applied["blas_threads"] = 1
    _APPLIED = applied
    return applied


def _worker_settings_class() -> type:
    """:class:`WorkerSettings`, made on first use (it needs ``distributed``)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WorkerSettings(WorkerPlugin):
        """Dask worker plugin: :func:`apply_worker_settings` on every worker.

        Registered by :func:`medimg_lab.batch.run` under :data:`PLUGIN_NAME`;
        a worker that joins the cluster later runs it too. It changes only
        process-wide knobs (allocator thresholds, thread pools) and never
        restarts a worker, so other work on a shared cluster goes on.
        """

        idempotent = True
        name = PLUGIN_NAME

        def setup(self, worker) -> None:
            """Apply the settings in ``worker``'s process."""
            applied = apply_worker_settings()
            _log.debug("medimg-lab settings on %s: %s", worker.address, applied)

    # Pickled by reference, as a class of this module (dask sends it).
    WorkerSettings.__qualname__ = "WorkerSettings"
    WorkerSettings.__module__ = __name__
    return WorkerSettings


def __getattr__(name: str):
    if name == "WorkerSettings":
        cls = globals()["WorkerSettings"] = _worker_settings_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _served_by_mmap(libc, size: int) -> bool:
    """Whether glibc serves a ``size``-byte allocation by ``mmap`` now.

    glibc marks such a chunk in its header: bit 1 (``IS_MMAPPED``) of the
    size word just before the pointer it returns. A free chunk of that size
    already on the heap is reused whatever the thresholds, so the answer
    shows the thresholds only where no such chunk exists (a fresh process).
    """
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    pointer = libc.malloc(size)
    if not pointer:
        raise MemoryError(f"malloc({size}) failed")
    try:
        return bool(ctypes.c_size_t.from_address(pointer - 8).value & 2)
    finally:
        libc.free(pointer)


def settings_in_force() -> dict[str, object]:
    """The settings this process runs with, as :func:`apply_worker_settings` sets.

    Returns
    -------
    dict
        ``opencv_threads``: OpenCV's thread count now; ``decode_threads``:
        the JPEG 2000 decoder's; ``allocator_thresholds``:
        whether glibc took the batch's trim and mmap thresholds in this
        process (False before :func:`apply_worker_settings` ran, and where
        this is no glibc). glibc has no call that reads the thresholds back;
        :func:`_served_by_mmap` shows their effect.
    """
    import cv2

    return {
        "opencv_threads": cv2.getNumThreads(),
        "decode_threads": decode_threads(),
        "allocator_thresholds": bool(_APPLIED and _APPLIED["malloc"]),
    }
