"""Starting the CLI in a child process that a test can interrupt."""

import signal
import subprocess
import sys
from typing import Any


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and a child
    # inherits that; reset it so the child's Ctrl-C handling is what the test exercises.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_metarl(*args: str, **popen: Any) -> subprocess.Popen:
    """``python -m metarl ARGS`` with SIGINT at its default disposition."""
    return subprocess.Popen([sys.executable, "-m", "metarl", *args],
                            preexec_fn=_default_sigint, **popen)
