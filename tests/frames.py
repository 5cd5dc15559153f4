"""Shared assertion for the families' rendering tests."""

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np


def assert_every_step_redraws(env: gym.Env, actions: Iterable[Any]) -> None:
    """Reset with seed 0; the first frame is a non-blank RGB image and each step changes it."""
    env.reset(seed=0)
    frames = [env.render()]
    for action in actions:
        env.step(action)
        frames.append(env.render())
    env.close()
    first = frames[0]
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.min() < first.max()
    for before, after in zip(frames, frames[1:]):
        assert not np.array_equal(before, after)
