"""Loading saved models without running code: skops with trusted types."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import UntrustedModelError

__all__ = ["load_trusted"]


def load_trusted(
    path: str | os.PathLike,
    *,
    trusted: list[str],
    format: str,
    saved_by: str,
    what: str = "model",
) -> dict[str, Any]:
    """Load the state dict that ``saved_by`` wrote with skops, refusing the rest.

    The file's types are listed before any object is built; one outside
    ``trusted`` refuses the file. So do a file that is not a skops archive
    and one whose state does not carry ``format``.

    Parameters
    ----------
    path : path-like
        The skops file.
    trusted : list of str
        Types the file may hold beyond those skops trusts by default.
    format : str
        The ``"format"`` entry the saved state must carry.
    saved_by : str
        The function that writes such files, named in the messages.
    what : str
        What the file holds ("model", "classifier"), for the messages.

    Raises
    ------
    UntrustedModelError
        For any of the refusals above; the message lists untrusted types.
    """
    import skops.io as sio

    path = Path(path)
    redo = f"Save the {what} with {saved_by} and load that file."
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # skops raises zipfile/json/key errors
        raise UntrustedModelError(
            str(path),
            f"is not a skops file saved by {saved_by}: it is not a zip archive "
            "with a skops schema.",
            redo,
        ) from error
    unknown = sorted(set(untrusted) - set(trusted))
    if unknown:
        raise UntrustedModelError(
            str(path),
            f"holds types that are not trusted: {', '.join(unknown)}.",
            f"Load only {what}s saved by {saved_by} from a source you trust; if "
            "you trust this file, inspect it with skops.io.get_untrusted_types and "
            "load it yourself with skops.io.load(path, trusted=[...]). The trusted "
            f"types are {', '.join(trusted)}.",
        )
    try:
        state = sio.load(path, trusted=trusted)
    except UntrustedModelError:
        raise
    except Exception as error:  # e.g. numpy refusing a pickled object array
        raise UntrustedModelError(
            str(path),
            f"holds data that skops cannot load without running code (such as "
            f"an array of pickled Python objects), which a {what} saved by "
            f"{saved_by} never holds.",
            f"Load only {what}s saved by {saved_by} from a source you trust. " + redo,
        ) from error
    if not isinstance(state, dict) or state.get("format") != format:
        raise UntrustedModelError(
            str(path), f"is not a {what} saved by {saved_by}.", redo
        )
    return state
