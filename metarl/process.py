"""Process-wide settings, applied once where a process starts (the command line, the Python
API, a Ray actor, a spawned benchmark worker): torch's CPU threads. Nothing else in metarl
changes global state; every random draw comes from generators seeded by a run's config
(libraries that draw from the global generators run inside :func:`seeded_global_rng`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch in this process."""
    torch.set_num_threads(threads)


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block that draws from torch's and numpy's global generators (stable-baselines3's
    sampling and shuffling) with both seeded by ``seed``, restoring them afterwards, so that a
    learner built on such a library stays reproducible and leaves no trace on the process."""
    numpy_state = np.random.get_state()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
