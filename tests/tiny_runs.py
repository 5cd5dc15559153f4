"""Settings of the smallest real runs, and copies of one to tamper with (the ``good_run``
fixture in conftest.py trains it once per module)."""

import shutil
from pathlib import Path

TINY = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden-sizes", "8"]
"""Training settings of a run that takes a second."""
EVAL = ["--test-tasks", "2", "--adapt-steps", "1", "--episodes", "2"]
"""Evaluation settings of the same size."""


def copy_run(good_run: Path, tmp: Path, name: str = "run") -> Path:
    """A copy of ``good_run`` at ``tmp / name``."""
    shutil.copytree(good_run, tmp / name)
    return tmp / name
