"""Building a learner from a resolved config: the family and learner looked up by name, the
device, and a seeded random stream for the learner's initial weights."""

from __future__ import annotations

import torch

from metarl.config import ConfigError, TrainConfig
from metarl.learn.learner import Learner
from metarl.registry import get_family, get_learner
from metarl.run.resources import check_policy_fits


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def build_learner(config: TrainConfig, device: torch.device | None = None) -> Learner:
    """The learner ``config`` describes, on ``device`` (default: the config's).

    Its initial weights (policy, and any model of the learner's own) are drawn from a stream
    seeded by ``config.seed``, inside :func:`torch.random.fork_rng`: building a learner never
    changes torch's global random state, and the same config always builds the same learner.
    """
    family = get_family(config.family)
    learner_class = get_learner(config.algo)
    device = resolve_device(config.device) if device is None else device
    check_policy_fits(config, family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return learner_class(family, config, device)
