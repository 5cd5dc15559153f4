"""Returns, baselines and advantages as pure batched functions.

Shapes follow :mod:`metarl.rollout.episodes`: ``rewards``, ``values`` and ``mask`` are ``[T, B]``.
Discounted sums are one matmul with an upper-triangular discount matrix, so no Python loop
runs over time or episodes; padded steps (``mask == 0``) contribute nothing and stay finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.rollout.episodes import EpisodeBatch

RIDGE_COEFFICIENTS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def discount_matrix(horizon: int, factor: float, device: torch.device | None = None) -> Tensor:
    """``M[t, s] = factor ** (s - t)`` for ``s >= t``, else 0; ``M @ x`` is a discounted sum."""
    steps = torch.arange(horizon, device=device, dtype=torch.float64)
    power = steps[None, :] - steps[:, None]
    matrix = (factor ** power.clamp(min=0)) * (power >= 0)
    return matrix.to(torch.float32)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``G_t = sum_{s >= t} gamma^(s-t) r_s`` of every step, ``[T, B]``."""
    return discount_matrix(rewards.shape[0], gamma, rewards.device) @ (rewards * mask) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates, ``[T, B]``; the value after the last valid step is 0."""
    values = values * mask
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * torch.cat(
        [mask[1:], torch.zeros_like(mask[:1])]
    )
    deltas = (rewards + gamma * next_values - values) * mask
    return discount_matrix(rewards.shape[0], gamma * lam, rewards.device) @ deltas * mask


def baseline_features(observations: Tensor, mask: Tensor) -> Tensor:
    """Linear-baseline features ``[obs, obs^2, t, t^2, t^3, 1]`` (t = step / 100), ``[T, B, F]``."""
    horizon, batch = mask.shape
    t = (torch.arange(horizon, device=mask.device, dtype=torch.float32) / 100.0)
    t = t[:, None, None].expand(horizon, batch, 1)
    obs = observations.reshape(horizon, batch, -1).float()
    features = torch.cat([obs, obs**2, t, t**2, t**3, torch.ones_like(t)], dim=-1)
    return features * mask[..., None]


def linear_baseline(episodes: EpisodeBatch, returns: Tensor) -> Tensor:
    """State values from a ridge regression of ``returns`` on features, fitted per task."""
    features = episodes.group(baseline_features(episodes.observations, episodes.mask)).double()
    targets = episodes.group(returns).double()
    gram = features.transpose(1, 2) @ features
    moment = features.transpose(1, 2) @ targets.unsqueeze(-1)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for coefficient in RIDGE_COEFFICIENTS:
        weights, info = torch.linalg.solve_ex(gram + coefficient * eye, moment)
        if bool((info == 0).all()) and bool(torch.isfinite(weights).all()):
            break
    values = (features @ weights).squeeze(-1)
    return episodes.ungroup(values).float() * episodes.mask


def normalize_per_task(x: Tensor, episodes: EpisodeBatch, eps: float = 1e-8) -> Tensor:
    """Shift and scale ``x`` to zero mean and unit std over each task's valid steps."""
    grouped, mask = episodes.group(x), episodes.group(episodes.mask)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (grouped * mask).sum(dim=1, keepdim=True) / count
    var = (((grouped - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    return episodes.ungroup((grouped - mean) / (var.sqrt() + eps) * mask)


def advantages(
    episodes: EpisodeBatch, gamma: float, gae_lambda: float, normalize: bool = True
) -> Tensor:
    """GAE advantages with a per-task linear baseline, optionally normalised per task."""
    returns = discounted_returns(episodes.rewards, episodes.mask, gamma)
    values = linear_baseline(episodes, returns)
    result = gae(episodes.rewards, values, episodes.mask, gamma, gae_lambda)
    return normalize_per_task(result, episodes) if normalize else result
