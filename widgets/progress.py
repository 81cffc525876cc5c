"""A notebook progress bar for :func:`medimg_lab.batch.run`."""

from __future__ import annotations

import ipywidgets as ipw

from ._panel import NotebookNote

__all__ = ["BatchProgress"]


class BatchProgress(NotebookNote, ipw.HBox):
    """A bar and a count, updated as studies finish.

    Pass it as ``progress=`` to :func:`medimg_lab.batch.run`; it is called
    with ``(done, total)``.

    Parameters
    ----------
    **kwargs
        Passed to :class:`ipywidgets.HBox` (``layout`` ...).

    Examples
    --------
    >>> bar = BatchProgress()
    >>> bar(3, 12)
    >>> bar.value, bar.text
    (3, '3 of 12 studies')
    """

    def __init__(self, **kwargs):
        self._bar = ipw.IntProgress(value=0, min=0, max=1, bar_style="info")
        self._label = ipw.HTML()
        super().__init__([self._bar, self._label], **kwargs)

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` studies (a ``progress`` callback)."""
        self._bar.max = max(total, 1)
        self._bar.value = done
        self._bar.bar_style = "success" if done >= total else "info"
        self._label.value = f"{done} of {total} studies"

    @property
    def value(self) -> int:
        """Studies done."""
        return self._bar.value

    @property
    def text(self) -> str:
        """The count as shown."""
        return self._label.value
