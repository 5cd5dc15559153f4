"""Process-wide settings, applied once where a process starts (the command line, a Ray actor,
a spawned benchmark worker): torch's CPU threads. Nothing else in metarl changes global
state; every random draw comes from generators seeded by a run's config."""

from __future__ import annotations

import torch


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch in this process."""
    torch.set_num_threads(threads)
