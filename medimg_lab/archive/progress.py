"""Progress and cancellation of a retrieval.

Every retrieval takes ``progress=`` (a callable given a :class:`Progress`
after each chunk and each instance; returning ``False`` cancels) and
``cancel=`` (a :class:`threading.Event`; setting it cancels). A cancelled
retrieval raises :class:`~medimg_lab.archive.RetrievalCancelled` at the next
chunk and leaves no half-written file in the cache: the instances already
complete stay cached, so the next retrieval resumes from them.

The callback runs in the thread that receives the data: the caller's for
DICOMweb, pynetdicom's association thread for DIMSE (so a widget's progress
bar updates while the caller waits). In scripts, :class:`TqdmProgress`
draws a tqdm bar of instances with the bytes received beside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..io._source import size_text
from .errors import RetrievalCancelled

__all__ = ["Progress", "ProgressCallback", "TqdmProgress"]


@dataclass(frozen=True)
class Progress:
    """Where a retrieval stands.

    Parameters
    ----------
    instances_done : int
        Instances in the cache so far, those found there included.
    instances_total : int
        Instances of the series.
    instances_cached : int
        Instances that were already in the cache (no transfer).
    bytes_received : int
        Bytes received from the archive so far (bytes), in this retrieval.
    """

    instances_done: int
    instances_total: int
    instances_cached: int
    bytes_received: int

    @property
    def fraction(self) -> float:
        """Share of the instances done, 0 to 1."""
        return (
            self.instances_done / self.instances_total if self.instances_total else 1.0
        )


#: ``progress(p) -> bool | None``; return ``False`` to cancel.
ProgressCallback = Callable[[Progress], "bool | None"]


class _Tracker:
    """Counts a retrieval and checks cancellation at every step."""

    def __init__(
        self,
        name: str,
        total: int,
        cached: int,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ):
        if progress is not None and not callable(progress):
            raise TypeError(
                f"progress must be a callable taking a Progress; got "
                f"{type(progress).__name__}"
            )
        if cancel is not None and not hasattr(cancel, "is_set"):
            raise TypeError(
                f"cancel must be a threading.Event; got {type(cancel).__name__}"
            )
        self.name = name
        self.total = total
        self.cached = cached
        self.done = cached
        self.received = 0
        self._progress = progress
        self._cancel = cancel

    def snapshot(self) -> Progress:
        return Progress(self.done, self.total, self.cached, self.received)

    def check(self) -> None:
        """Report, and raise RetrievalCancelled if the caller asked to stop."""
        answer = self._progress(self.snapshot()) if self._progress else None
        if answer is False or (self._cancel is not None and self._cancel.is_set()):
            raise RetrievalCancelled(
                self.name,
                f"retrieval cancelled after {self.done} of {self.total} instance(s) "
                f"({size_text(self.received)} received).",
                "Retrieve again to resume: the complete instances are cached, "
                "nothing half-written was kept.",
            )

    def received_bytes(self, n: int) -> None:
        self.received += n
        self.check()

    def instance_done(self) -> None:
        self.done += 1
        self.check()


class TqdmProgress:
    """A tqdm bar of instances, with the bytes received, for scripts.

    Pass it as ``progress=`` to an archive's ``load_series`` or
    ``retrieve_series``; it is called with a :class:`Progress`.

    Parameters
    ----------
    desc : str
        The bar's title.
    **tqdm_options
        Passed to :class:`tqdm.tqdm` (``file``, ``disable`` ...).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with TqdmProgress("head CT", file=out) as bar:
    ...     bar(Progress(3, 12, 0, 1 << 20))
    >>> "3/12" in out.getvalue() and "1.0 MiB" in out.getvalue()
    True
    """

    def __init__(self, desc: str = "retrieve", **tqdm_options):
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit="instance", total=0, **tqdm_options)

    def __call__(self, p: Progress) -> None:
        """Show the instances received so far, and their size."""
        bar = self._bar
        if bar.total != p.instances_total:
            bar.total = p.instances_total
        bar.n = p.instances_done
        bar.set_postfix_str(size_text(p.bytes_received), refresh=False)
        bar.refresh()

    def close(self) -> None:
        """Close the bar (leaving it on screen at its last state)."""
        self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
