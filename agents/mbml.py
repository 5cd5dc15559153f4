"""MBML: model-based meta-learning (article section 2).

The article's "meta-learning model that stores model parameters and training strategies" is a
learned model of the environment, ``f_phi(s, a) -> (s' - s, r, termination logit)``, an
ensemble of small MLPs, meta-trained across tasks (MAML on the model loss) so that a few
gradient steps on a handful of real transitions adapt it to a task.

Notation of the article: theta_0 the policy's meta-parameters, theta_t the policy adapted to
task t, alpha the inner step size (``--inner-lr``); phi_0 the model's meta-parameters, phi_t the
model adapted to task t, alpha_m its step size (``--model-inner-lr``), L the model loss.

Adaptation to task t:

1. sample ``--real-episodes`` real episodes D_t with theta_0;
2. ``phi_t = phi_0 - alpha_m grad L(phi_0; D_t)`` (``--model-inner-steps`` times);
3. roll out ``--imagined-episodes`` episodes with theta_0 in the model phi_t (a batched env run
   by the ordinary :class:`metarl.rollout.sampler.Sampler`);
4. ``theta_t = theta_0 + alpha grad J_t^model(theta_0)``: the policy-gradient inner step
   (:func:`metarl.learn.surrogates.policy_gradient_step`) on the imagined episodes.

Meta-updates, per iteration, on fresh real episodes D'_t sampled with theta_t:

- policy: ``theta_0 <- argmax E_t[J_t(theta_t)]`` through the inner step, with MAML's outer
  optimisers (TRPO by default, see :mod:`metarl.agents.maml`);
- model: ``phi_0 <- phi_0 - Adam(grad_phi_0 E_t[L(phi_t; D'_t)])``, second order through the
  model's adaptation, so the model learns to adapt from theta_0's episodes to predict what
  the adapted policy meets.

The point is test-time sample efficiency: adaptation uses ``--real-episodes`` real episodes per
task (default 5) where MAML uses ``--episodes-per-task`` (20).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from metarl.agents.maml import MAML, MAMLOptions
from torch import Tensor, nn

from metarl.config import option
from metarl.family.vector import BatchedEnv
from metarl.learn.learner import Episodes, Rollouts, Timer
from metarl.policies.params import Params, detach_params, per_task
from metarl.registry import register_learner
from metarl.rollout.episodes import EpisodeBatch
from metarl.rollout.sampler import Sampler


@dataclass(frozen=True)
class MBMLOptions(MAMLOptions):
    real_episodes: int = option(5, "real episodes per task, sampled with theta_0, that adapt "
                                   "the model", min=1)
    imagined_episodes: int = option(20, "episodes per task imagined in the adapted model", min=1)
    ensemble_size: int = option(5, "members of the dynamics-and-reward model ensemble", min=1)
    model_hidden: tuple[int, ...] = option((32, 32), "model hidden layer sizes", min=1)
    model_lr: float = option(5e-3, "model meta-optimiser: Adam step size", above=0.0)
    model_inner_lr: float = option(0.1, "model adaptation step size alpha_m", above=0.0)
    model_inner_steps: int = option(2, "model adaptation gradient steps", min=1)
    model_epochs: int = option(5, "model meta-training steps per meta-iteration", min=1)
    model_query_episodes: int = option(
        5, "post-adaptation real episodes per task that score the adapted model", min=1
    )


@dataclass
class Transitions:
    """Grouped transitions of an episode batch: ``[n_tasks, N, ...]``, N = T * episodes."""

    inputs: Tensor  # [n, N, obs_dim + action_features]
    delta: Tensor  # [n, N, obs_dim] next observation minus observation
    reward: Tensor  # [n, N]
    terminated: Tensor  # [n, N] 1 where the episode ended after this step
    mask: Tensor  # [n, N] step happened
    next_mask: Tensor  # [n, N] a next observation exists
    end_mask: Tensor  # [n, N] termination is known (step happened, not the horizon's last)


class DynamicsModel(nn.Module):
    """An ensemble of MLPs ``(s, a) -> (s' - s, r, termination logit)`` with explicit parameters.

    Parameters (:meth:`parameters_dict`) carry a leading ensemble dimension ``E``; per-task
    parameters add ``n_tasks`` before it, like per-task policies (:mod:`metarl.policies`).
    Inputs and targets are standardised with statistics fitted once on the first real data
    (buffers, saved with the model). Box actions are clipped to their bounds, Discrete actions
    one-hot encoded.
    """

    def __init__(
        self, observation_space: gym.spaces.Box, action_space: gym.Space,
        hidden_sizes: Sequence[int], ensemble_size: int,
    ) -> None:
        super().__init__()
        self.obs_dim = int(observation_space.shape[0])
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if self.discrete:
            self.action_dim = int(action_space.n)
        else:
            self.action_dim = int(action_space.shape[0])
            self.register_buffer("action_low", torch.as_tensor(action_space.low).float())
            self.register_buffer("action_high", torch.as_tensor(action_space.high).float())
        sizes = [self.obs_dim + self.action_dim, *hidden_sizes, self.obs_dim + 2]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            weight = torch.empty(ensemble_size, fan_out, fan_in)
            for member in weight:
                nn.init.xavier_uniform_(member)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(ensemble_size, fan_out)))
        self.register_buffer("input_mean", torch.zeros(sizes[0]))
        self.register_buffer("input_std", torch.ones(sizes[0]))
        self.register_buffer("target_mean", torch.zeros(self.obs_dim + 1))
        self.register_buffer("target_std", torch.ones(self.obs_dim + 1))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def ensemble_size(self) -> int:
        return self.weights[0].shape[-3]

    def parameters_dict(self) -> Params:
        return dict(self.named_parameters())

    def action_features(self, actions: Tensor) -> Tensor:
        if self.discrete:
            return nn.functional.one_hot(actions.long(), self.action_dim).float()
        return torch.maximum(torch.minimum(actions.float(), self.action_high), self.action_low)

    def transitions(self, episodes: EpisodeBatch) -> Transitions:
        obs, mask = episodes.observations, episodes.mask
        next_mask = torch.cat([mask[1:], torch.zeros_like(mask[:1])])
        known_end = mask.clone()
        known_end[-1] = 0.0  # the horizon truncates, it does not terminate
        inputs = torch.cat([obs, self.action_features(episodes.actions)], dim=-1)
        delta = torch.cat([obs[1:] - obs[:-1], torch.zeros_like(obs[:1])]) * next_mask[..., None]
        group = episodes.group
        return Transitions(
            inputs=group(inputs), delta=group(delta), reward=group(episodes.rewards),
            terminated=group(known_end * (1.0 - next_mask)), mask=group(mask),
            next_mask=group(next_mask), end_mask=group(known_end),
        )

    def fit_normaliser(self, data: Transitions) -> None:
        """Fix the standardisation statistics from ``data`` (once, on the first real batch)."""

        def moments(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
            x, weight = x.reshape(-1, x.shape[-1]), mask.reshape(-1, 1)
            mean = (x * weight).sum(0) / weight.sum().clamp(min=1.0)
            var = (((x - mean) * weight) ** 2).sum(0) / weight.sum().clamp(min=1.0)
            return mean, var.sqrt().clamp(min=1e-3)

        with torch.no_grad():
            self.input_mean, self.input_std = moments(data.inputs, data.mask)
            delta_mean, delta_std = moments(data.delta, data.next_mask)
            reward_mean, reward_std = moments(data.reward[..., None], data.mask)
            self.target_mean = torch.cat([delta_mean, reward_mean])
            self.target_std = torch.cat([delta_std, reward_std])
            self.fitted.fill_(True)

    def forward(self, params: Params, inputs: Tensor) -> Tensor:
        """Standardised outputs ``[n, E, N, obs_dim + 2]`` for inputs ``[n, N, in]`` and
        per-task parameters."""
        x = ((inputs - self.input_mean) / self.input_std).unsqueeze(1)
        last = len(self.weights) - 1
        for i in range(last + 1):
            x = x @ params[f"weights.{i}"].transpose(-1, -2) + params[f"biases.{i}"].unsqueeze(-2)
            if i < last:
                x = torch.relu(x)
        return x

    def loss(self, params: Params, data: Transitions) -> Tensor:
        """Model loss per task and member, ``[n_tasks, E]``: squared error of the standardised
        observation change and reward, plus the termination cross-entropy."""
        out = self(params, data.inputs)
        targets = (torch.cat([data.delta, data.reward[..., None]], dim=-1) - self.target_mean)
        targets = (targets / self.target_std).unsqueeze(1)
        errors = (out[..., :-1] - targets) ** 2

        def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
            mask = mask.unsqueeze(1)
            return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)

        termination = nn.functional.binary_cross_entropy_with_logits(
            out[..., -1], data.terminated.unsqueeze(1).expand_as(out[..., -1]), reduction="none"
        )
        return (
            masked_mean(errors[..., :-1].mean(-1), data.next_mask)
            + masked_mean(errors[..., -1], data.mask)
            + masked_mean(termination, data.end_mask)
        )

    def predict(
        self, params: Params, obs: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Next observation, reward and termination logit, each ``[n, E, N, ...]``, for grouped
        observations ``[n, N, obs_dim]`` and actions."""
        inputs = torch.cat([obs, self.action_features(actions)], dim=-1)
        out = self(params, inputs)
        change = out[..., :-1] * self.target_std + self.target_mean
        return obs.unsqueeze(1) + change[..., :-1], change[..., -1], out[..., -1]


class ModelEnv(BatchedEnv):
    """A meta-trained model adapted to ``n_tasks`` tasks, as a batched env.

    Semantics of :mod:`metarl.vector`: column ``b`` belongs to task ``b // episodes_per_task``
    and steps that task's adapted model; at reset each column draws one ensemble member for the
    whole episode and a start observation among the task's real ones. Terminations are the
    model's (logit > 0); a terminated column stays terminated with reward 0.
    """

    def __init__(
        self, model: DynamicsModel, params: Params, start_observations: Tensor,
        episodes_per_task: int, horizon: int, observation_space: gym.spaces.Box,
        action_space: gym.Space,
    ) -> None:
        self.model = model
        self.params = params
        self.starts = start_observations  # [n_tasks, S, obs_dim]
        self.n_tasks = start_observations.shape[0]
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        self._set_spaces(self.n_tasks * episodes_per_task, observation_space, action_space)
        device = start_observations.device
        self.low = torch.as_tensor(observation_space.low, device=device).float()
        self.high = torch.as_tensor(observation_space.high, device=device).float()
        self._obs = torch.zeros(self.num_envs, model.obs_dim, device=device)
        self._member = torch.zeros(self.n_tasks, episodes_per_task, dtype=torch.long)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        rng = np.random.default_rng(seed)
        shape = (self.n_tasks, self.episodes_per_task)
        start = torch.as_tensor(rng.integers(self.starts.shape[1], size=shape))
        self._member = torch.as_tensor(rng.integers(self.model.ensemble_size, size=shape))
        tasks = torch.arange(self.n_tasks)[:, None]
        self._obs = self.starts[tasks, start].reshape(self.num_envs, -1).clone()
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._t = 0
        return self._obs.cpu().numpy(), {}

    @torch.no_grad()
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        shape = (self.n_tasks, self.episodes_per_task)
        device = self._obs.device
        action = torch.as_tensor(np.asarray(actions), device=device).reshape(*shape, -1)
        if self.model.discrete:
            action = action.squeeze(-1)
        next_obs, reward, logit = self.model.predict(
            self.params, self._obs.reshape(*shape, -1), action
        )
        tasks = torch.arange(self.n_tasks)[:, None]
        episodes = torch.arange(self.episodes_per_task)[None, :]
        member = self._member
        next_obs = next_obs[tasks, member, episodes].reshape(self.num_envs, -1)
        next_obs = torch.maximum(torch.minimum(next_obs, self.high), self.low)
        done = torch.as_tensor(self._done, device=device)
        self._obs = torch.where(done[:, None], self._obs, next_obs)
        reward_np = reward[tasks, member, episodes].reshape(-1).double().cpu().numpy()
        terminated = (logit[tasks, member, episodes].reshape(-1) > 0).cpu().numpy()
        reward_np = np.where(self._done, 0.0, reward_np)
        self._done = self._done | terminated
        self._t += 1
        truncated = np.full(self.num_envs, self._t >= self.horizon) & ~self._done
        return self._obs.cpu().numpy(), reward_np, self._done.copy(), truncated, {}


class ImaginedTasks:
    """Adapted models in the place of a task family, for :class:`metarl.rollout.sampler.Sampler`.

    The sampler asks a family only for ``make_vector_env(tasks, episodes_per_task)`` and
    ``max_episode_steps``; here a task is the index of an adapted model in ``params``.
    """

    def __init__(
        self, model: DynamicsModel, params: Params, start_observations: Tensor, horizon: int,
        observation_space: gym.spaces.Box, action_space: gym.Space,
    ) -> None:
        self.model = model
        self.params = params
        self.starts = start_observations
        self.max_episode_steps = horizon
        self.observation_space = observation_space
        self.action_space = action_space

    def make_vector_env(self, tasks: Sequence[int], episodes_per_task: int) -> ModelEnv:
        index = torch.as_tensor(list(tasks), dtype=torch.long, device=self.starts.device)
        return ModelEnv(
            self.model, {key: value[index] for key, value in self.params.items()},
            self.starts[index], episodes_per_task, self.max_episode_steps,
            self.observation_space, self.action_space,
        )


@register_learner("mbml")
class MBML(MAML):
    Options = MBMLOptions

    phases = ("sampling", "inner", "outer", "model")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observation_space = self.family.observation_space
        self.action_space = self.family.action_space
        options = self.options
        self.model = DynamicsModel(
            self.observation_space, self.action_space, options.model_hidden,
            options.ensemble_size,
        ).to(self.device)
        self.model_optimizer = torch.optim.Adam(self.model.parameters(), lr=options.model_lr)

    # --- the model ----------------------------------------------------------------------------
    def adapt_model(self, data: Transitions, create_graph: bool = False) -> Params:
        """phi_t for every task: ``--model-inner-steps`` gradient steps from phi_0 on ``data``."""
        params = per_task(self.model.parameters_dict(), data.inputs.shape[0])
        for _ in range(self.options.model_inner_steps):
            loss = self.model.loss(params, data).sum()
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
            params = {
                key: value - self.options.model_inner_lr * grad
                for (key, value), grad in zip(params.items(), grads, strict=True)
            }
        return params

    def train_model(self, support: EpisodeBatch, query: EpisodeBatch) -> float:
        """Meta-train phi_0: adapt on ``support`` (theta_0's episodes), score on ``query``."""
        fraction = self.options.model_query_episodes / query.episodes_per_task
        if fraction < 1.0:
            query = query.select_columns(query.sample_columns(fraction, self.sampler.generator))
        support_data, query_data = self.model.transitions(support), self.model.transitions(query)
        for _ in range(self.options.model_epochs):
            adapted = self.adapt_model(support_data, create_graph=True)
            loss = self.model.loss(adapted, query_data).mean()
            self.model_optimizer.zero_grad()
            loss.backward()
            self.model_optimizer.step()
        return float(loss.detach())

    def imagine(self, model_params: Params, real: EpisodeBatch, params: Params) -> EpisodeBatch:
        """``--imagined-episodes`` episodes per task with ``params`` in the adapted models."""
        starts = real.observations[0].view(real.n_tasks, real.episodes_per_task, -1)
        tasks = ImaginedTasks(
            self.model, model_params, starts, self.family.max_episode_steps,
            self.observation_space, self.action_space,
        )
        sampler = Sampler(tasks, self.policy, self.device)  # type: ignore[arg-type]
        sampler.generator = self.sampler.generator
        generator = self.sampler.generator
        seed = int(torch.randint(2**31, (1,), generator=generator, device=generator.device))
        return sampler.sample(range(real.n_tasks), self.options.imagined_episodes, params, seed)

    # --- the verbs -----------------------------------------------------------------------------
    def adapt(self, params: Params, episodes: EpisodeBatch, create_graph: bool = False) -> Params:
        """Adapt the model to ``episodes`` (real), then one policy-gradient step on imagined
        episodes in it."""
        model_params = detach_params(self.adapt_model(self.model.transitions(episodes)))
        return super().adapt(params, self.imagine(model_params, episodes, params), create_graph)

    def collect(self, tasks: Sequence[Any], timer: Timer) -> Rollouts:
        """Real episodes with theta_0, adapted models, imagined inner steps, real episodes after."""
        params = self.policy.parameters_dict()  # live: see MetaLearner.collect
        with timer("sampling"):
            real = self.sample(tasks, self.meta_params(), self.options.real_episodes)
        with timer("inner"):
            real_data = self.model.transitions(real)
            if not bool(self.model.fitted):
                self.model.fit_normaliser(real_data)
            model_params = detach_params(self.adapt_model(real_data))
            inner: list[Episodes] = []
            for _ in range(self.config.inner_steps):
                episodes = self.with_advantages(
                    self.imagine(model_params, real, detach_params(params))
                )
                params = self.inner_step(params, episodes, self.second_order)
                inner.append(episodes)
        after = self.sample_after_adaptation(tasks, params, timer)
        return Rollouts(tasks, real, inner, after, params)

    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        stats = super().outer_update(rollouts, timer)
        with timer("model"):
            model_loss = self.train_model(rollouts.before, rollouts.after.batch)
        return {
            "imagined_return": float(rollouts.inner[0].batch.task_returns().mean()),
            "model_loss": model_loss,
            **stats,
        }

    # --- checkpointing ------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {
            **super().extra_state(),
            "model": self.model.state_dict(),
            "model_optimizer": self.model_optimizer.state_dict(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.model.load_state_dict(state["model"])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
