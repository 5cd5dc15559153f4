"""Memory a command will need, estimated before it starts, so that what cannot fit is refused
in one line instead of failing in an allocation minutes later.

The estimates count the large arrays: the policy's parameters (and their per-task copies),
the sampled episodes of a batch, and the activations autograd keeps over them, with a
margin. They are rough (within a few times of the truth) and only refuse what is clearly out
of reach: more than :data:`SHARE` of the memory the machine has available.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym

from metarl.config import ConfigError, TrainConfig
from metarl.family.base import TaskFamily
from metarl.learn.gradient import GradientLearner
from metarl.registry import get_family, get_learner

SHARE = 0.9
"""The share of available memory a command may plan to use."""
FLOAT = 4
"""Bytes per number (float32)."""
GRAPH = 3
"""Copies of the per-sample activations a training step keeps (forward, backward, second
order)."""


def available_bytes() -> int:
    """Memory available to a new allocation (``MemAvailable`` on Linux, else physical)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def policy_parameters(family: TaskFamily, hidden_sizes: tuple[int, ...]) -> int:
    """Parameters of the family's MLP policy with ``hidden_sizes`` (weights and biases, the
    Gaussian's log std)."""
    sizes = [gym.spaces.flatdim(family.observation_space), *hidden_sizes,
             _outputs(family.action_space)]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + _outputs(family.action_space)


def _outputs(space: gym.Space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else gym.spaces.flatdim(space)


def batch_bytes(family: TaskFamily, columns: int, hidden_sizes: tuple[int, ...]) -> int:
    """One batch of ``columns`` episodes to the horizon: the recorded steps (host and device
    copies, returns and advantages) and the activations over them."""
    steps = family.max_episode_steps * columns
    width = gym.spaces.flatdim(family.observation_space) + gym.spaces.flatdim(
        family.action_space) + 4
    activations = sum(hidden_sizes) + _outputs(family.action_space)
    return steps * FLOAT * (2 * width + GRAPH * activations)


def training_bytes(config: TrainConfig, family: TaskFamily) -> int:
    """A gradient meta-iteration: ``inner_steps + 1`` batches and per-task parameter sets."""
    parameters = policy_parameters(family, config.hidden_sizes)
    columns = config.meta_batch_size * config.episodes_per_task
    per_task = config.meta_batch_size * parameters * FLOAT * GRAPH * (config.inner_steps + 1)
    return ((config.inner_steps + 1) * batch_bytes(family, columns, config.hidden_sizes)
            + per_task + parameters * FLOAT * 8)


def evaluation_bytes(config: TrainConfig, family: TaskFamily, tasks: int, adapt_steps: int,
                     episodes: int) -> int:
    """Adapting to ``tasks`` tasks: one block of episodes at a time, and every block's
    per-task parameters kept (the actors)."""
    parameters = policy_parameters(family, config.hidden_sizes)
    return (batch_bytes(family, tasks * episodes, config.hidden_sizes)
            + (adapt_steps + 2) * tasks * parameters * FLOAT * GRAPH)


def check_policy_fits(config: TrainConfig, family: TaskFamily) -> None:
    """Refuse a policy whose parameters alone cannot fit (a few copies of them)."""
    parameters = policy_parameters(family, config.hidden_sizes)
    check_fits(parameters * FLOAT * 8, f"a policy of {parameters:,} parameters "
               f"(--hidden-sizes {' '.join(map(str, config.hidden_sizes))})", "--hidden-sizes")


def check_training_fits(config: TrainConfig) -> None:
    """Refuse a gradient learner's training iteration that cannot fit (:func:`check_fits`)."""
    check_policy_fits(config, get_family(config.family))
    if config.iterations and issubclass(get_learner(config.algo), GradientLearner):
        check_fits(training_bytes(config, get_family(config.family)),
                   f"a training iteration of {config.meta_batch_size:,} tasks x "
                   f"{config.episodes_per_task:,} episodes",
                   "--meta-batch-size, --episodes-per-task or --hidden-sizes")


def check_fits(needed: int, what: str, lower: str) -> None:
    """Refuse, in one :class:`ConfigError` line, a plan that needs more than :data:`SHARE` of
    the available memory; ``lower`` names the settings to lower."""
    available = available_bytes()
    if needed > SHARE * available:
        raise ConfigError(f"{what} would need about {_gib(needed)} of memory; this machine has "
                          f"{_gib(available)} available: lower {lower}")


def _gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"
