"""Where an exception raised in a user's code happened, for one-line error messages."""

from __future__ import annotations

import traceback
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
"""The metarl package's own folder: frames inside it are not the user's."""


def user_frame(error: BaseException) -> str:
    """``file:line`` of the innermost frame of ``error``'s traceback that is neither metarl's
    own code nor an installed library's; empty when there is none."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename)
        inside = str(path.resolve()).startswith(str(_PACKAGE))
        library = "site-packages" in path.parts or frame.filename.startswith("<")
        if not inside and not library:
            return f"{frame.filename}:{frame.lineno}"
    return ""


def describe(error: BaseException) -> str:
    """``Type: message (file:line)`` of an exception from user code, on one line."""
    where = user_frame(error)
    message = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {message}" + (f" ({where})" if where else "")
