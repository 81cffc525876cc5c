"""Voila's kernel manager for ``make dashboard``: what ``voila.json`` cannot say.

Voila reads this file and ``voila.json`` from this folder
(``--Voila.config_file_paths``); every other setting is in ``voila.json``.

With preheated kernels (``voila.json``: ``preheat_kernel``), Voila keeps one
kernel per dashboard that has already run the notebook, and its culler spares
a kernel while it waits in the pool. A request takes the kernel out of the
pool; from then until the page's scripts connect to it (the page streamed and
its scripts loaded: a second or more on a loaded machine) the kernel has no
connection, and its idle time counts from when it ran the notebook, which is
longer than the culling timeout on a server left alone for a while. A cull
pass in that window shut the kernel down under its page (the page then showed
"Kernel does not exist"); with 20 s culling every 5 s, one load in six did.

:class:`PoolAwareKernelManager` starts a kernel's idle time when it leaves the
pool instead: the culler finds it idle only ``cull_idle_timeout`` seconds after
a request took it, if no page has connected by then.
"""

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class PoolAwareKernelManager(AsyncMappingKernelManager):
    """Voila's default manager, whose idle clock restarts as a kernel leaves
    the pool of preheated kernels.

    Voila builds its pool manager on this class: its ``cull_kernel_if_idle``
    returns at once for a kernel in the pool and calls this one otherwise.
    Without preheated kernels it is Voila's default manager unchanged.
    """

    def _pooled(self) -> set[str]:
        """Ids of the kernels waiting in Voila's pools just now."""
        ids = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                if task.done() and not task.cancelled() and not task.exception():
                    ids.add(task.result()["kernel_id"])
        return ids

    async def cull_kernels(self):
        # Each pass first notes the kernels now in the pools.
        self._seen_pooled = getattr(self, "_seen_pooled", set()) | self._pooled()
        await super().cull_kernels()

    async def cull_kernel_if_idle(self, kernel_id):
        seen = getattr(self, "_seen_pooled", set())
        if kernel_id in seen and kernel_id not in self._pooled():
            # Taken from the pool since: idle from now on, not from its
            # notebook's run (its page may not have connected yet).
            seen.discard(kernel_id)
            kernel = self._kernels.get(kernel_id)
            if kernel is not None:
                kernel.last_activity = utcnow()
            return
        await super().cull_kernel_if_idle(kernel_id)


c = get_config()  # noqa: F821 a traitlets config file
c.VoilaConfiguration.multi_kernel_manager_class = PoolAwareKernelManager
