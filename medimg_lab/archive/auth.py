"""Credentials for an archive, from the environment or a file, never an argument.

A password typed into a notebook cell stays in the notebook's source and often
in its output; one given on the command line shows in ``ps`` to every user of
the machine. So :class:`Credentials` is made only from environment variables
or from a file, and it never prints its secret.

With the default prefix ``MEDIMG_ARCHIVE`` (checked in this order):

- ``MEDIMG_ARCHIVE_TOKEN`` or ``MEDIMG_ARCHIVE_TOKEN_FILE``: a bearer token
  (``Authorization: Bearer ...``), for OAuth-protected archives;
- ``MEDIMG_ARCHIVE_USER`` with ``MEDIMG_ARCHIVE_PASSWORD`` or
  ``MEDIMG_ARCHIVE_PASSWORD_FILE``: HTTP basic authentication.

A file holds the secret alone (a trailing newline is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

__all__ = ["DEFAULT_PREFIX", "Credentials"]

#: Prefix of the environment variables read by default.
DEFAULT_PREFIX = "MEDIMG_ARCHIVE"
_MAX_SECRET_BYTES = 64 * 1024


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to an archive; the secret never shows in a repr.

    Make it with :meth:`from_environment` or :meth:`from_file`.

    Parameters
    ----------
    kind : {"basic", "bearer"}
        HTTP basic authentication or a bearer token.
    user : str
        The user name for ``"basic"`` (not secret), ``""`` for a token.
    origin : str
        Where the secret came from (a variable or file name), for messages.
    """

    kind: str
    user: str
    origin: str
    _secret: str = field(repr=False, compare=False)

    @classmethod
    def from_environment(
        cls, prefix: str = DEFAULT_PREFIX, *, environ: Mapping[str, str] | None = None
    ) -> Credentials | None:
        """The credentials named by ``<prefix>_*`` variables, or None if unset.

        Parameters
        ----------
        prefix : str
            Prefix of the variables (``MEDIMG_ARCHIVE`` reads
            ``MEDIMG_ARCHIVE_TOKEN``, ``..._TOKEN_FILE``, ``..._USER``,
            ``..._PASSWORD``, ``..._PASSWORD_FILE``).
        environ : mapping, optional
            Where to read them; default ``os.environ``.

        Raises
        ------
        ValueError
            If a user is set without a password (or the reverse), or a
            ``*_FILE`` variable names a file that cannot be read.
        """
        env = os.environ if environ is None else environ
        token = _secret_from(env, f"{prefix}_TOKEN")
        if token is not None:
            return cls("bearer", "", token[1], token[0])
        user = env.get(f"{prefix}_USER", "")
        password = _secret_from(env, f"{prefix}_PASSWORD")
        if user and password is None:
            raise ValueError(
                f"{prefix}_USER is set but neither {prefix}_PASSWORD nor "
                f"{prefix}_PASSWORD_FILE is; set one of them, or unset {prefix}_USER."
            )
        if password is not None and not user:
            raise ValueError(
                f"a password is set ({password[1]}) but {prefix}_USER is not; "
                f"set {prefix}_USER to the archive account's name."
            )
        if password is None:
            return None
        return cls("basic", user, password[1], password[0])

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, user: str = "") -> Credentials:
        """A bearer token (no ``user``) or a basic password read from ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            A file holding the secret (surrounding white space is dropped).
        user : str
            The user of a basic password; empty for a bearer token.

        Returns
        -------
        Credentials

        Raises
        ------
        ValueError
            If the file cannot be read, is empty or larger than 64 KiB.
        """
        secret = _read_secret(Path(path), "path")
        kind = "basic" if user else "bearer"
        return cls(kind, user, f"file {Path(path).name}", secret)

    def requests_auth(self) -> requests.auth.AuthBase:
        """The ``requests`` authentication object (for a ``Session.auth``)."""
        if self.kind == "basic":
            return requests.auth.HTTPBasicAuth(self.user, self._secret)
        if self.kind == "bearer":
            return _Bearer(self._secret)
        raise ValueError(
            f"Credentials.kind must be 'basic' or 'bearer'; got {self.kind!r}"
        )

    def describe(self) -> str:
        """A sentence naming the kind and origin of the credentials (no secret)."""
        who = f" for user {self.user!r}" if self.user else ""
        return f"{self.kind} credentials{who} from {self.origin}"


def _secret_from(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(secret, origin) from variable ``name`` or the file in ``name_FILE``."""
    value = env.get(name)
    if value:
        return value, f"${name}"
    file_name = env.get(f"{name}_FILE")
    if file_name:
        return _read_secret(Path(file_name), f"${name}_FILE"), f"${name}_FILE"
    return None


def _read_secret(path: Path, option: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ValueError(
            f"{option} names {str(path)!r}, which cannot be read "
            f"({exc.strerror or 'unreadable'}); point it to the file that holds "
            "the secret."
        ) from None
    if len(raw) > _MAX_SECRET_BYTES:
        raise ValueError(
            f"{option} names {str(path)!r}, which is larger than 64 KiB; a secret "
            "file holds the password or token alone."
        )
    try:
        secret = raw.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(
            f"{option} names {str(path)!r}, which is not UTF-8 text; write the "
            "password or token into it as text."
        ) from None
    if not secret:
        raise ValueError(
            f"{option} names {str(path)!r}, which is empty; write the password or "
            "token into it."
        )
    return secret
