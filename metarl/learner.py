"""The meta-learner interface every algorithm implements.

Two verbs: ``adapt(params, episodes) -> params`` (the inner loop, for a batch of tasks at
once) and ``step(tasks) -> metrics`` (one outer update). Training, evaluation and the viewer
use nothing else, so every learner is handled alike.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.advantages import advantages
from metarl.config import ConfigError, TrainConfig, from_dict
from metarl.episodes import EpisodeBatch, Sampler
from metarl.family import TaskFamily
from metarl.pg import detach_params, policy_gradient_step
from metarl.policy import MLPPolicy, Params, make_policy


def make_sampler(
    config: TrainConfig, family: TaskFamily, policy: MLPPolicy, device: torch.device
) -> Sampler:
    """The sampler backend the config names (the Ray one is imported only when asked for)."""
    if config.backend == "ray":
        try:
            from metarl.ray_sampler import RaySampler
        except ImportError as error:
            raise ConfigError(
                f"--backend ray needs Ray ({error}); install it with: pip install -e '.[ray]'"
            ) from None
        return RaySampler(family, policy, device, config.num_workers, config.ray_address)
    return Sampler(family, policy, device)


@dataclass(frozen=True)
class NoOptions:
    """A learner without options of its own."""


class MetaLearner(abc.ABC):
    """Base class: owns the policy, the sampler and the run's random state."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    """Dataclass of the learner's own options (fields made with :func:`metarl.config.option`)."""

    def __init__(self, family: TaskFamily, config: TrainConfig, device: torch.device) -> None:
        self.family = family
        self.config = config
        self.options = from_dict(self.Options, config.algo_options, what=f"{self.name} option")
        self.device = device
        torch.manual_seed(config.seed)
        env = family.make_env()
        self.policy = make_policy(
            env.observation_space, env.action_space, config.hidden_sizes, config.activation
        ).to(device)
        env.close()
        self.sampler = make_sampler(config, family, self.policy, device)
        self.sampler.generator.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)

    # --- the two verbs -----------------------------------------------------------------------
    def adapt(self, params: Params, episodes: EpisodeBatch, create_graph: bool = False) -> Params:
        """One inner policy-gradient step per task (shared or per-task ``params`` in)."""
        task_advantages = advantages(episodes, self.config.gamma, self.config.gae_lambda)
        return policy_gradient_step(
            self.policy, params, episodes, task_advantages, self.config.inner_lr, create_graph
        )

    @abc.abstractmethod
    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One meta-update on ``tasks``; returns metrics for the log."""

    # --- helpers for subclasses ---------------------------------------------------------------
    def meta_params(self) -> Params:
        """theta_0, detached (what sampling before adaptation uses)."""
        return detach_params(self.policy.parameters_dict())

    def sample(self, tasks: Sequence[Any], params: Params) -> EpisodeBatch:
        """``episodes_per_task`` episodes on each task; the env seed comes from the run's rng."""
        seed = int(self.rng.integers(2**31))
        return self.sampler.sample(tasks, self.config.episodes_per_task, params, seed)

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; only tensors, numbers, strings and containers."""
        return {
            "policy": self.policy.state_dict(),
            "rng": self.rng.bit_generator.state,
            "generator": self.sampler.generator.get_state(),
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.rng.bit_generator.state = state["rng"]
        self.sampler.generator.set_state(state["generator"])
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """Learner-specific state (optimisers, models) for :meth:`state_dict`."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`extra_state` saved."""
