"""Sliders that tell the page's echoes of a kernel-set value from the user's moves.

An ipywidgets slider with ``continuous_update`` answers a value set from
Python with the value as the page's slider holds it: snapped to its step,
with float error (40 comes back as 40.00000000000023), or clamped to the old
range when the new range and value are applied in the other order (a chest
film's center 20056 came back as the head CT's maximum, 6288). Taken as a
user's move, such an echo replaces the value the kernel set. How late it
comes depends on the machine's load, so no clock can tell it apart.

A :class:`SyncedFloatSlider` or :class:`SyncedIntSlider` follows every
change the kernel makes (:meth:`~SyncedMixin.set_from_kernel`) with a
barrier: ``_ping`` counts up in a message of its own, and a link in the page
copies it to ``_pong`` on the same model. The page handles one model's
messages in order and sends its answers in order, so ``_pong`` reaches the
kernel after every echo of the change. While a barrier is out, a value from
the page is an echo (:attr:`~SyncedMixin.pending`); once it is back, every
value is the user's.
"""

from __future__ import annotations

import ipywidgets as ipw
import traitlets

__all__ = ["SyncedFloatSlider", "SyncedIntSlider", "SyncedMixin"]


class SyncedMixin(traitlets.HasTraits):
    """The barrier of a slider whose value the kernel also sets."""

    _ping = traitlets.Int(0).tag(sync=True)
    _pong = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # In the page: each new _ping is copied to _pong, and sent back.
        self._barrier = ipw.jsdlink((self, "_ping"), (self, "_pong"))

    @property
    def pending(self) -> bool:
        """Whether a change the kernel made may still be echoed by the page."""
        return self._pong < self._ping

    def set_from_kernel(self, **values) -> bool:
        """Set traits (``value``, ``min``, ...) as one change; True if any changed.

        A change is followed by a barrier in a message of its own.
        """
        before = {name: getattr(self, name) for name in values}
        with self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)
        changed = any(getattr(self, name) != old for name, old in before.items())
        if changed:
            self._ping += 1
        return changed

    def set_state(self, sync_data):
        # A message that buffered both an echo and the barrier's answer
        # (ipywidgets merges a model's messages while one is in flight) is
        # applied with the answer last, as the page produced them.
        if "_pong" in sync_data and len(sync_data) > 1:
            rest = {k: v for k, v in sync_data.items() if k != "_pong"}
            super().set_state(rest)
            sync_data = {"_pong": sync_data["_pong"]}
        super().set_state(sync_data)


class SyncedFloatSlider(SyncedMixin, ipw.FloatSlider):
    """A ``FloatSlider`` with the barrier of :class:`SyncedMixin`."""


class SyncedIntSlider(SyncedMixin, ipw.IntSlider):
    """An ``IntSlider`` with the barrier of :class:`SyncedMixin`."""
