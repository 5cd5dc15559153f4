"""Building a learner from a config: the family and algorithm looked up by name, the device,
the policy, and the sampler backend (this is the only place that picks one)."""

from __future__ import annotations

import torch

from metarl.config import ConfigError, TrainConfig
from metarl.family.base import TaskFamily
from metarl.learn.learner import MetaLearner
from metarl.policies.mlp import MLPPolicy, make_policy
from metarl.registry import get_family, get_learner
from metarl.rollout.sampler import Sampler


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def make_sampler(
    config: TrainConfig, family: TaskFamily, policy: MLPPolicy, device: torch.device
) -> Sampler:
    """The sampler backend the config names (the Ray one is imported only when asked for)."""
    if config.backend == "ray":
        try:
            from metarl.rollout.ray_sampler import RaySampler
        except ImportError as error:
            raise ConfigError(
                f"--backend ray needs Ray ({error}); install it with: pip install -e '.[ray]'"
            ) from None
        return RaySampler(family, policy, device, config.num_workers, config.ray_address,
                          seed=config.seed)
    return Sampler(family, policy, device, seed=config.seed)


def build_learner(config: TrainConfig, device: torch.device | None = None) -> MetaLearner:
    """The learner ``config`` describes, on ``device`` (default: the config's).

    Its initial weights (policy, and any model of the learner's own) are drawn from a stream
    seeded by ``config.seed``, inside :func:`torch.random.fork_rng`: building a learner never
    changes torch's global random state, and the same config always builds the same learner.
    """
    family = get_family(config.family)
    learner_class = get_learner(config.algo)
    device = resolve_device(config.device) if device is None else device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        policy = make_policy(
            family.observation_space, family.action_space, config.hidden_sizes,
            config.activation, config.init_std, config.init_output_scale,
        ).to(device)
        sampler = make_sampler(config, family, policy, device)
        return learner_class(family, config, sampler)
