"""Policies: MLPs mapping observations to action distributions, with explicit parameters.

A policy's parameters are a :data:`~metarl.policies.params.Params` dict
(``policy.parameters_dict()``). Every call takes such a dict, so adapted parameters never touch
the module. With per-task parameters the observations are grouped ``[n_tasks, N, obs_dim]`` and
one batched matmul per layer evaluates every task's policy at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from metarl.policies.params import Params


class _Tanh(torch.autograd.Function):
    """``tanh`` evaluated as ``2 sigmoid(2x) - 1`` (the same function; several times faster
    than ``torch.tanh`` on CPU builds whose tanh kernel is slow). Differentiable to any order:
    the backward is ``tanh_backward`` of the saved output, itself differentiable."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = _tanh_values(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def _tanh_values(x: Tensor) -> Tensor:
    return torch.sigmoid(2 * x).mul_(2).sub_(1)


def tanh(x: Tensor) -> Tensor:
    """Fast ``tanh``. Without autograd (sampling) on the CPU, numpy's vectorised tanh (the
    fastest there for the sampler's small batches); otherwise ``2 sigmoid(2x) - 1``."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Tanh.apply(x)
    if x.device.type == "cpu":
        return torch.from_numpy(np.tanh(x.numpy()))
    return _tanh_values(x)


ACTIVATIONS = {"tanh": tanh, "relu": torch.relu, "elu": nn.functional.elu}
MIN_LOG_STD = math.log(1e-6)


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    if weight.dim() == 3:  # per-task parameters: x is [n_tasks, N, in]
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    return nn.functional.linear(x, weight, bias)


class MLPPolicy(nn.Module):
    """Shared trunk: ``len(hidden_sizes)`` layers plus an output layer of ``out_dim``.

    Weights start Xavier-uniform, the output layer's times ``output_scale`` (a small scale
    starts the policy near mean-zero actions, or near-uniform choices).
    """

    action_shape: tuple[int, ...]
    action_dtype: torch.dtype

    def __init__(
        self, obs_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation: str,
        output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {list(ACTIVATIONS)}")
        sizes = [obs_dim, *hidden_sizes, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        linears = [cast(nn.Linear, layer) for layer in self.layers]
        for layer in linears:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            linears[-1].weight.mul_(output_scale)
        self.activation_name = activation
        self._activation = ACTIVATIONS[activation]

    def parameters_dict(self) -> Params:
        """The module's own parameters as a dict (shared, differentiable leaves)."""
        return dict(self.named_parameters())

    def _trunk(self, obs: Tensor, params: Params) -> Tensor:
        x = obs
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            x = _linear(x, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
            if i < last:
                x = self._activation(x)
        return x

    def distribution(self, obs: Tensor, params: Params | None = None) -> Distribution:
        raise NotImplementedError

    def noise(
        self, batch_shape: Sequence[int], generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        """Standard noise for :meth:`actions_from_noise`: draw a whole rollout's at once."""
        raise NotImplementedError

    def actions_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        """The actions ``dist`` gives for standard ``noise`` (a reparameterised sample)."""
        raise NotImplementedError

    def act(self, obs: Tensor, params: Params, noise: Tensor) -> Tensor:
        """``actions_from_noise(distribution(obs, params), noise)``; subclasses may skip
        building the distribution (the sampler calls this once per time step)."""
        return self.actions_from_noise(self.distribution(obs, params), noise)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        """Draw one action per batch entry using ``generator`` (reproducible sampling)."""
        noise = self.noise(dist.batch_shape, generator, dist.mean.device)
        return self.actions_from_noise(dist, noise)


class GaussianMLPPolicy(MLPPolicy):
    """Diagonal Gaussian over Box actions; state-independent log std (init std 1)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh", init_std: float = 1.0, output_scale: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden_sizes, activation, output_scale)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.action_shape: tuple[int, ...] = (act_dim,)
        self.action_dtype = torch.float32

    @staticmethod
    def _std(params: Params) -> Tensor:
        """Standard deviations, shaped to broadcast against means (shared or per task)."""
        log_std = params["log_std"]
        if log_std.dim() == 2:
            log_std = log_std.unsqueeze(1)
        return torch.exp(torch.clamp(log_std, min=MIN_LOG_STD))

    def distribution(self, obs: Tensor, params: Params | None = None) -> Distribution:
        params = self.parameters_dict() if params is None else params
        mean = self._trunk(obs, params)
        std = self._std(params).expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)

    def act(self, obs: Tensor, params: Params, noise: Tensor) -> Tensor:
        return self._trunk(obs, params) + self._std(params) * noise

    def noise(
        self, batch_shape: Sequence[int], generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        return torch.randn((*batch_shape, *self.action_shape), generator=generator, device=device)

    def actions_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        base = cast(Independent, dist).base_dist
        return base.loc + base.scale * noise


class CategoricalMLPPolicy(MLPPolicy):
    """Categorical over Discrete actions."""

    def __init__(
        self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh", output_scale: float = 1.0,
    ) -> None:
        super().__init__(obs_dim, n_actions, hidden_sizes, activation, output_scale)
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = torch.int64

    def distribution(self, obs: Tensor, params: Params | None = None) -> Distribution:
        params = self.parameters_dict() if params is None else params
        return Categorical(logits=self._trunk(obs, params), validate_args=False)

    def noise(
        self, batch_shape: Sequence[int], generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        return torch.rand(tuple(batch_shape), generator=generator, device=device)

    def actions_from_noise(self, dist: Distribution, noise: Tensor) -> Tensor:
        """Inverse-CDF sampling: the first action whose cumulative probability exceeds noise."""
        probs = cast(Categorical, dist).probs
        cdf = probs.cumsum(dim=-1)
        below = (cdf < noise.unsqueeze(-1) * cdf[..., -1:]).sum(dim=-1)
        return below.clamp(max=probs.shape[-1] - 1)


def make_policy(
    observation_space: gym.Space, action_space: gym.Space,
    hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh", init_std: float = 1.0,
    output_scale: float = 1.0,
) -> MLPPolicy:
    """The policy matching a family's spaces: Gaussian for Box actions (``init_std`` its initial
    action standard deviation), Categorical for Discrete; ``output_scale`` see MLPPolicy."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"policies need a flat Box observation space, got {observation_space}")
    obs_dim = observation_space.shape[0]
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianMLPPolicy(obs_dim, action_space.shape[0], hidden_sizes, activation,
                                 init_std, output_scale)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden_sizes, activation,
                                    output_scale)
    raise ValueError(f"no policy for action space {action_space}: use a flat Box or Discrete")
