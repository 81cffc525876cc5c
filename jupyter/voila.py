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

The server trusts no request (:func:`harden`, applied to the running Voila):

- it answers only to the host names it was started for (``localhost``, IP
  literals, the names in ``MEDIMG_ALLOWED_HOSTS`` and, when it listens beyond
  loopback, the machine's own names); any other ``Host`` header, as a DNS
  rebinding attack sends, gets 403 and no kernel;
- it serves no folder listing: ``/`` leads to the dashboards' landing page,
  ``/voila/tree/...`` and the contents API answer 404;
- a malformed path (a NUL byte, a template path without its parts) answers
  404, not 500; ``/logout`` (there is nothing to log out of) answers 404;
- the token of ``make dashboard-network`` comes from ``MEDIMG_DASHBOARD_TOKEN``
  or the file named by ``MEDIMG_DASHBOARD_TOKEN_FILE``, never the command line
  (``ps`` and ``/proc/<pid>/cmdline`` show the command line to every user).
"""

import ipaddress
import os
import re
import socket
from pathlib import Path
from urllib.parse import quote

import tornado.web
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


#: Host names the server answers to, besides IP literals; ``make
#: dashboard-network`` adds the machine's names.
LOCAL_HOSTNAMES = ("localhost",)
#: Environment variables: more host names (comma- or space-separated), the
#: token, a file holding the token.
ALLOWED_HOSTS_ENV = "MEDIMG_ALLOWED_HOSTS"
TOKEN_ENV = "MEDIMG_DASHBOARD_TOKEN"  # noqa: S105 a variable name
TOKEN_FILE_ENV = "MEDIMG_DASHBOARD_TOKEN_FILE"  # noqa: S105 a variable name
#: Voila's routes that list the served folder (the tree pages, the contents
#: API) or that fail on every request (jupyter_server's logout page needs a
#: static path Voila does not have).
_UNSERVED = ("/voila/tree", "/voila/api/contents", "/logout")
#: Voila's landing page, where ``/`` leads.
LANDING = "voila/render/index.ipynb"


def allowed_hosts(ip: str, environ=os.environ) -> list[str]:
    """The host names (lower case) a server listening on ``ip`` answers to.

    ``localhost``, the names in ``MEDIMG_ALLOWED_HOSTS`` and, unless ``ip`` is
    a loopback address, this machine's host name and fully qualified name.
    IP literals are always allowed (a DNS rebinding attack needs a name).
    """
    names = list(LOCAL_HOSTNAMES)
    names += re.split(r"[\s,]+", environ.get(ALLOWED_HOSTS_ENV, "").strip())
    if not _loopback(ip):
        names += [socket.gethostname(), socket.getfqdn()]
    return sorted({n.lower().rstrip(".") for n in names if n})


def _loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False  # "" or "0.0.0.0" style wildcards are not loopback


def foreign_host_pattern(names: list[str]) -> str:
    """A regular expression (tornado's host pattern) that matches every host
    name but ``names`` and IP literals."""
    allowed = [re.escape(n) for n in names]
    allowed += [r"\d{1,3}(?:\.\d{1,3}){3}", r"\[[0-9a-f:.]+\]"]
    return rf"^(?!(?:{'|'.join(allowed)})\.?$).*$"


class ForeignHostHandler(tornado.web.RequestHandler):
    """Answers 403 to any request whose ``Host`` is not one of the server's."""

    def prepare(self):
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(
            "403: this server answers only to the host names it was started "
            f"for. To reach it under another name, add the name to "
            f"{ALLOWED_HOSTS_ENV} where the server is started.\n"
        )


class NotFoundOnBadPath:
    """A static file handler that answers 404 to a path it cannot resolve
    (a NUL byte, a template path without its parts), not 500."""

    async def get(self, path, include_body=True):
        try:
            return await super().get(path, include_body)
        except tornado.web.HTTPError:
            raise
        except (ValueError, OSError, TypeError, AssertionError) as exc:
            # AssertionError: Voila's template handler asserts the parts.
            raise tornado.web.HTTPError(404) from exc


#: Characters no notebook or file name of the dashboards holds: a control
#: character (NUL included) or a backslash.
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]")


class NotFoundOnBadName:
    """Voila's render handler, answering 404 to a name with a control
    character or a backslash (it answered 500: a redirect to such a file
    cannot be written as a header)."""

    async def get(self, path=None):
        if path is not None and _BAD_NAME.search(path):
            raise tornado.web.HTTPError(404)
        return await super().get(path)

    def redirect_to_file(self, path):
        super().redirect_to_file(quote(path))


def _guarded(handler: type) -> type:
    from voila.handler import VoilaHandler

    if issubclass(handler, NotFoundOnBadPath | NotFoundOnBadName):
        return handler
    if issubclass(handler, tornado.web.StaticFileHandler):
        return type(handler.__name__, (NotFoundOnBadPath, handler), {})
    if issubclass(handler, VoilaHandler):
        return type(handler.__name__, (NotFoundOnBadName, handler), {})
    return handler


def harden(app) -> None:
    """Make the running Voila ``app`` trust no request (see the module's
    docstring): wraps its ``init_handlers``, which runs once the tornado
    application exists."""
    if getattr(app, "_medimg_hardened", False):
        return
    app._medimg_hardened = True
    init_handlers = app.init_handlers

    def hardened_handlers():
        names = allowed_hosts(app.ip)
        app.log.info("Answering only to the host names %s and IP literals", names)
        # Before Voila's own rules (it adds them for every host after this).
        app.app.add_handlers(foreign_host_pattern(names), [(r".*", ForeignHostHandler)])
        landing = app.server_url.rstrip("/") + "/" + LANDING
        handlers = []
        if not app.notebook_path:  # a folder: "/" was its listing
            handlers.append(
                (
                    app.server_url,
                    tornado.web.RedirectHandler,
                    {"url": landing, "permanent": False},
                )
            )
        for rule in init_handlers():
            pattern, handler = rule[0], rule[1]
            if pattern == app.server_url and not app.notebook_path:
                continue  # the folder listing at "/": the redirect above
            path = pattern[len(app.server_url.rstrip("/")) :]
            if path.startswith(_UNSERVED):
                continue  # tornado answers 404
            handlers.append((pattern, _guarded(handler), *rule[2:]))
        return handlers

    app.init_handlers = hardened_handlers


def token_from_environment(environ=os.environ) -> str | None:
    """The token in ``MEDIMG_DASHBOARD_TOKEN``, or in the file that
    ``MEDIMG_DASHBOARD_TOKEN_FILE`` names (surrounding blanks dropped)."""
    token = environ.get(TOKEN_ENV, "").strip()
    path = environ.get(TOKEN_FILE_ENV, "").strip()
    if not token and path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"{TOKEN_FILE_ENV}={path!r} cannot be read ({exc.strerror}): "
                "name a readable file that holds the token."
            ) from None
        if not token:
            raise ValueError(
                f"{TOKEN_FILE_ENV}={path!r} is empty: write the token into it."
            )
    return token or None


c = get_config()  # noqa: F821 a traitlets config file
c.VoilaConfiguration.multi_kernel_manager_class = PoolAwareKernelManager
if (_token := token_from_environment()) is not None:
    c.Voila.token = _token  # never on the command line

try:
    from voila.app import Voila
except ImportError:  # read by a tool without Voila: the settings alone
    Voila = None
if Voila is not None and Voila.initialized():  # the server reading its config
    harden(Voila.instance())
