"""Sampler backends: the one place that picks the local sampler or the Ray one."""

from __future__ import annotations

import torch

from metarl.config import ConfigError
from metarl.policies.mlp import MLPPolicy
from metarl.rollout.sampler import EnvSource, Sampler


def make_sampler(
    family: EnvSource, policy: MLPPolicy, device: torch.device, seed: int,
    backend: str = "local", num_workers: int = 2, ray_address: str = "",
) -> Sampler:
    """The sampler ``backend`` names (``local`` or ``ray``); Ray is imported only when asked
    for."""
    if backend == "ray":
        try:
            from metarl.rollout.ray_sampler import RaySampler
        except ImportError as error:
            raise ConfigError(
                f"--backend ray needs Ray ({error}); install it with: pip install -e '.[ray]'"
            ) from None
        return RaySampler(family, policy, device, num_workers, ray_address,  # type: ignore[arg-type]
                          seed=seed)
    return Sampler(family, policy, device, seed=seed)
