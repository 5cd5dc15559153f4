"""MBML: model-based meta-learning (article section 2), adaptation from few real episodes.

The article's "meta-learning model that stores model parameters and training strategies" is a
learned model of the task family, ``f(s, a, z) -> (s' - s, r, termination)``: what all tasks
share lives in its weights phi, what differs between tasks in a small task latent ``z``
(``--latent-size`` numbers). The model is linear in ``z`` over meta-learned features
(:class:`LatentModel`), so inferring a task's latent is Bayesian linear regression in closed
form (as ALPaCA does), batched over tasks.

Notation of the article: theta_0 the policy's meta-parameters, theta_t the policy adapted to
task t, alpha the inner step size (``--inner-lr``); phi the model's weights, z_0 and Lambda_0
the latent prior's mean and precision (meta-learned), L the model loss (Gaussian negative
log-likelihood of observation change and reward, Bernoulli of termination).

Adapting to task t:

1. sample ``--real-episodes`` real episodes D_t with theta_0;
2. infer the task latent z_t = argmin_z L(phi, z; D_t) + |z - z_0|^2_{Lambda_0} / 2, one
   linear solve per task (the limit of gradient steps on z alone);
3. roll out ``--imagined-episodes`` episodes per task with theta_0 in the model with ``z_t``,
   from the real episodes' start states (the model is itself a batched env, run by the
   ordinary :class:`metarl.rollout.sampler.Sampler`);
4. ``theta_t = theta_0 + alpha grad J_t^model(theta_0)``: the policy-gradient inner step on
   the imagined episodes.

Meta-training, per iteration, on fresh real episodes D'_t sampled with theta_t:

- policy: ``theta_0 <- argmax E_t[J_t(theta_t)]`` through the imagined inner step, with MAML's
  outer update (TRPO by default, see :class:`metarl.learn.outer.MAMLOuter`);
- model: ``phi, z_0, Lambda_0 <- Adam(grad E_t[L(phi, z_t; D_t) + L(phi, z_t; D'_t)])`` with
  z_t inferred from D_t and differentiated through: the latent inferred from theta_0's
  episodes must predict the episodes of the adapted policy, which go where theta_0's do not.
  Each iteration adds (D_t, ``--model-query-episodes`` of D'_t) to a buffer of the last
  ``--model-buffer`` iterations, which the model trains on (``--model-epochs`` steps).

``--model oracle`` puts the family's true dynamics in the model's place (the imagined
episodes are real episodes of the same tasks, sampled with theta_0): MBML then is MAML with
``--imagined-episodes`` inner episodes, which separates "the model is wrong" from "the
imagined step is wrong".

Every iteration logs the model's errors on the post-adaptation real transitions, with the
prior latent ``z_0`` and with the inferred ``z_t`` (``model_reward_error[_prior]``,
``model_transition_error[_prior]``: mean squared errors of the mean prediction in the
family's own units), before the model trains on them, and the cosine between the inner
step's gradient on imagined and on real episodes (``imagined_gradient_cosine``).

The point is test-time sample efficiency: adaptation uses ``--real-episodes`` real episodes per
task (default 5) where MAML uses ``--episodes-per-task`` (20).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metarl.config import ConfigError, option
from metarl.family.vector import BatchedEnv
from metarl.learn.gradient import Episodes, GradientLearner, Rollouts
from metarl.learn.learner import Timer
from metarl.learn.outer import MAMLOuter, MAMLOuterOptions
from metarl.learn.surrogates import inner_gradient
from metarl.policies.params import Params, detach_params, per_task
from metarl.registry import register_learner
from metarl.rollout.episodes import EpisodeBatch
from metarl.rollout.sampler import Sampler

MIN_LOG_STD, MAX_LOG_STD = -7.0, 2.0
"""Bounds of the model's predicted log standard deviations (standardised units)."""


@dataclass(frozen=True)
class MBMLOptions(MAMLOuterOptions):
    real_episodes: int = option(5, "real episodes per task, sampled with theta_0, from which "
                                   "the task latent is inferred", min=1)
    imagined_episodes: int = option(50, "episodes per task imagined in the model for the inner "
                                        "step", min=1)
    model: str = option("learned", "'learned' latent model, or 'oracle': the family's true "
                        "dynamics in its place (a check of the imagined step)",
                        choices=("learned", "oracle"))
    latent_size: int = option(8, "numbers in the task latent z", min=1)
    model_hidden: tuple[int, ...] = option((128, 128), "model hidden layer sizes", min=1)
    model_lr: float = option(1e-3, "model optimiser: Adam step size", above=0.0)
    model_epochs: int = option(40, "model training steps per meta-iteration", min=1)
    model_buffer: int = option(10, "meta-iterations of real episodes the model trains on",
                               min=1)
    model_query_episodes: int = option(5, "post-adaptation real episodes per task kept for "
                                          "training the model", min=1)
    model_batch: int = option(256, "transitions per task in each model training step (for "
                                   "the latent steps, and again for the loss)", min=1)
    imagine_mean: bool = option(False, "imagine with the model's mean prediction instead of "
                                       "sampling from it")


@dataclass
class Transitions:
    """Grouped transitions of an episode batch: ``[n_tasks, N, ...]``, N = T * episodes."""

    obs: Tensor  # [n, N, obs_dim]
    actions: Tensor  # [n, N, act_dim] or [n, N]
    delta: Tensor  # [n, N, obs_dim] next observation minus observation
    reward: Tensor  # [n, N]
    terminated: Tensor  # [n, N] 1 where the episode ended after this step
    mask: Tensor  # [n, N] the step happened
    next_mask: Tensor  # [n, N] a next observation exists
    end_mask: Tensor  # [n, N] termination is known (step happened, not the horizon's last)

    @classmethod
    def of(cls, episodes: EpisodeBatch) -> Transitions:
        obs, mask = episodes.observations, episodes.mask
        next_mask = torch.cat([mask[1:], torch.zeros_like(mask[:1])])
        known_end = mask.clone()
        known_end[-1] = 0.0  # the horizon truncates, it does not terminate
        delta = torch.cat([obs[1:] - obs[:-1], torch.zeros_like(obs[:1])]) * next_mask[..., None]
        group = episodes.group
        return cls(
            obs=group(obs), actions=group(episodes.actions), delta=group(delta),
            reward=group(episodes.rewards), terminated=group(known_end * (1.0 - next_mask)),
            mask=group(mask), next_mask=group(next_mask), end_mask=group(known_end),
        )

    def subsample(self, count: int, generator: torch.Generator) -> Transitions:
        """``count`` of each task's transitions (the same positions for every task), drawn
        with ``generator``; all of them when there are no more."""
        total = self.obs.shape[1]
        if count >= total:
            return self
        index = torch.randperm(total, generator=generator, device=generator.device)[:count]
        index = index.to(self.obs.device)
        return Transitions(*(value[:, index] for value in vars(self).values()))

    def cat(self, other: Transitions) -> Transitions:
        """Both sets of transitions, task by task (same tasks, more transitions each)."""
        return Transitions(*(torch.cat([a, b], dim=1) for a, b in
                             zip(vars(self).values(), vars(other).values(), strict=True)))


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per task, ``[n]``: the mean of ``x`` ``[n, N]`` over the entries where ``mask`` is 1."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


class LatentModel(nn.Module):
    """``(s, a, z) -> (s' - s, r, termination logit)``, shared by all tasks of a family.

    The latent enters linearly: a trunk MLP of ``(s, a)`` gives, for every target (the
    observation change and the reward, standardised), a row ``w(s, a)`` and an offset
    ``b(s, a)``, and predicts ``w . z + b`` with one noise level per target (the same for
    every state: a noise level per state could explain a task's structure away as noise);
    the termination logit is linear in ``z`` too. So the loss of a task's transitions is
    quadratic in ``z``, and the gradient steps on ``z`` alone converge to a closed form: the
    posterior mean of Bayesian linear regression under a Gaussian prior ``N(z_0, Lambda_0^-1)``
    (as ALPaCA does). :meth:`infer` takes it, for every task in one batched solve;
    ``z_0`` and ``Lambda_0`` are meta-learned with the weights.

    Inputs and targets are standardised with statistics of the real transitions the model
    trains on, refitted before every training round (buffers, saved with the model): the
    policy's episodes narrow as it learns, and the model must resolve the differences within
    a task, not only across tasks. Box actions are clipped to their bounds, Discrete actions
    one-hot encoded.
    """

    action_low: Tensor
    action_high: Tensor

    def __init__(
        self, observation_space: gym.spaces.Box, action_space: gym.Space, latent_size: int,
        hidden_sizes: Sequence[int],
    ) -> None:
        super().__init__()
        self.obs_dim = int(observation_space.shape[0])
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if isinstance(action_space, gym.spaces.Discrete):
            self.action_dim = int(action_space.n)
        else:
            action_space = cast(gym.spaces.Box, action_space)
            self.action_dim = int(action_space.shape[0])
            self.register_buffer("action_low", torch.as_tensor(action_space.low).float())
            self.register_buffer("action_high", torch.as_tensor(action_space.high).float())
        self.latent_size = latent_size
        self.targets = self.obs_dim + 1  # observation change and reward
        features = self.obs_dim + self.action_dim
        outputs = (self.targets + 1) * (latent_size + 1)
        sizes = [features, *hidden_sizes]
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(sizes[-1], outputs)
        self.latent_init = nn.Parameter(torch.zeros(latent_size))
        self.prior_log_precision = nn.Parameter(torch.zeros(latent_size))
        self.log_noise = nn.Parameter(torch.zeros(self.targets))
        self.register_buffer("input_mean", torch.zeros(features))
        self.register_buffer("input_std", torch.ones(features))
        self.register_buffer("target_mean", torch.zeros(self.targets))
        self.register_buffer("target_std", torch.ones(self.targets))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # --- inputs and outputs -------------------------------------------------------------------
    def action_features(self, actions: Tensor) -> Tensor:
        if self.discrete:
            return nn.functional.one_hot(actions.long(), self.action_dim).float()
        return torch.maximum(torch.minimum(actions.float(), self.action_high), self.action_low)

    def fit_normaliser(self, data: Transitions) -> None:
        """Set the standardisation statistics from ``data``."""

        def moments(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
            x, weight = x.reshape(-1, x.shape[-1]), mask.reshape(-1, 1)
            mean = (x * weight).sum(0) / weight.sum().clamp(min=1.0)
            var = (((x - mean) * weight) ** 2).sum(0) / weight.sum().clamp(min=1.0)
            return mean, var.sqrt().clamp(min=1e-3)

        with torch.no_grad():
            inputs = torch.cat([data.obs, self.action_features(data.actions)], dim=-1)
            self.input_mean, self.input_std = moments(inputs, data.mask)
            delta_mean, delta_std = moments(data.delta, data.next_mask)
            reward_mean, reward_std = moments(data.reward[..., None], data.mask)
            self.target_mean = torch.cat([delta_mean, reward_mean])
            self.target_std = torch.cat([delta_std, reward_std])
            cast(Tensor, self.fitted).fill_(True)

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """For grouped ``obs`` ``[n, N, obs_dim]`` and actions: the rows ``w`` and offsets
        ``b`` ``[n, N, targets + 1, latent + 1]`` (``w`` then ``b`` in the last dimension;
        the last target is the termination logit) of the standardised targets."""
        inputs = torch.cat([obs, self.action_features(actions)], dim=-1)
        x = (inputs - self.input_mean) / self.input_std
        for layer in cast(list[nn.Linear], list(self.trunk)):
            x = torch.relu(layer(x))
        return self.head(x).unflatten(-1, (self.targets + 1, self.latent_size + 1))

    @property
    def noise_log_std(self) -> Tensor:
        """Log standard deviation of each standardised target's noise, ``[targets]``."""
        return self.log_noise.clamp(MIN_LOG_STD, MAX_LOG_STD)

    def _standardised(self, data: Transitions) -> tuple[Tensor, Tensor]:
        """Targets ``[n, N, targets]`` and their masks."""
        targets = torch.cat([data.delta, data.reward[..., None]], dim=-1)
        masks = torch.cat([data.next_mask[..., None].expand_as(data.delta),
                           data.mask[..., None]], dim=-1)
        return (targets - self.target_mean) / self.target_std, masks

    def prior_latent(self, n_tasks: int) -> Tensor:
        return self.latent_init.expand(n_tasks, -1)

    def infer(self, data: Transitions) -> Tensor:
        """Each task's latent, ``[n, latent_size]``: the minimiser over z of the task's
        Gaussian loss on ``data`` plus the prior's, by one batched linear solve
        (differentiable in the model)."""
        linear = self(data.obs, data.actions)
        targets, masks = self._standardised(data)
        rows, offsets = linear[..., :-1, :-1], linear[..., :-1, -1]  # [n, N, T, d], [n, N, T]
        weight = masks * torch.exp(-2 * self.noise_log_std)
        precision = self.prior_log_precision.exp()
        system = torch.einsum("nktd,nkt,nkte->nde", rows, weight, rows)
        system = system + torch.diag_embed(precision.expand(system.shape[0], -1))
        moment = torch.einsum("nktd,nkt->nd", rows, weight * (targets - offsets))
        moment = moment + precision * self.latent_init
        return torch.linalg.solve(system, moment)

    def _predict_standardised(
        self, obs: Tensor, actions: Tensor, latent: Tensor
    ) -> tuple[Tensor, Tensor]:
        z = torch.cat([latent, torch.ones_like(latent[:, :1])], dim=-1)  # [n, d + 1]
        out = torch.einsum("nkte,ne->nkt", self(obs, actions), z)
        return out[..., :-1], out[..., -1]

    def loss(self, latent: Tensor, data: Transitions) -> Tensor:
        """Per task, ``[n]``: the negative log-likelihood of the transitions (standardised
        Gaussian observation change and reward, Bernoulli termination) under ``latent``."""
        mean, logit = self._predict_standardised(data.obs, data.actions, latent)
        targets, _ = self._standardised(data)
        log_std = self.noise_log_std
        nll = 0.5 * ((targets - mean) / log_std.exp()) ** 2 + log_std
        termination = nn.functional.binary_cross_entropy_with_logits(
            logit, data.terminated, reduction="none"
        )
        return (
            _masked_mean(nll[..., :-1].mean(-1), data.next_mask)
            + _masked_mean(nll[..., -1], data.mask)
            + _masked_mean(termination, data.end_mask)
        )

    def predict(self, obs: Tensor, actions: Tensor, latent: Tensor) -> tuple[Tensor, ...]:
        """Mean and standard deviation of the next observation and of the reward, and the
        termination logit, in the family's units (grouped inputs, per-task latents)."""
        mean, logit = self._predict_standardised(obs, actions, latent)
        mean = mean * self.target_std + self.target_mean
        std = (self.noise_log_std.exp() * self.target_std).expand_as(mean)
        return obs + mean[..., :-1], std[..., :-1], mean[..., -1], std[..., -1], logit

    @torch.no_grad()
    def errors(self, latent: Tensor, data: Transitions) -> tuple[float, float]:
        """Mean squared errors of the predicted mean reward and observation change (in the
        family's units) over the transitions of ``data``."""
        next_obs, _, reward, _, _ = self.predict(data.obs, data.actions, latent)
        reward_error = ((reward - data.reward) ** 2 * data.mask).sum() / data.mask.sum()
        delta_error = ((next_obs - data.obs - data.delta) ** 2).mean(-1)
        transition_error = (delta_error * data.next_mask).sum() / data.next_mask.sum().clamp(1)
        return float(reward_error), float(transition_error)


class ModelEnv(BatchedEnv):
    """The model with each task's latent, as a batched env.

    Semantics of :mod:`metarl.family.vector`: column ``b`` belongs to task
    ``b // episodes_per_task``; at reset each column starts from one of its task's real start
    observations. Steps sample the model's Gaussian (or take its mean); terminations are the
    model's (logit > 0), and a terminated column stays terminated with reward 0.
    """

    def __init__(
        self, model: LatentModel, latent: Tensor, start_observations: Tensor,
        episodes_per_task: int, horizon: int, observation_space: gym.spaces.Box,
        action_space: gym.Space, use_mean: bool = False,
    ) -> None:
        self.model = model
        self.latent = latent  # [n_tasks, latent_size]
        self.starts = start_observations  # [n_tasks, S, obs_dim]
        self.n_tasks = start_observations.shape[0]
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        self.use_mean = use_mean
        self._set_spaces(self.n_tasks * episodes_per_task, observation_space, action_space)
        device = start_observations.device
        self.low = torch.as_tensor(observation_space.low, device=device).float()
        self.high = torch.as_tensor(observation_space.high, device=device).float()
        self.generator = torch.Generator(device=device)
        self._obs = torch.zeros(self.n_tasks, episodes_per_task, model.obs_dim, device=device)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        seed = int(np.random.default_rng().integers(2**62)) if seed is None else seed
        self.generator.manual_seed(seed)
        device = self.starts.device
        start = torch.randint(self.starts.shape[1], (self.n_tasks, self.episodes_per_task),
                              generator=self.generator, device=device)
        tasks = torch.arange(self.n_tasks, device=device)[:, None]
        self._obs = self.starts[tasks, start].clone()
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._t = 0
        return self._obs.reshape(self.num_envs, -1).cpu().numpy(), {}

    @torch.no_grad()
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        device = self._obs.device
        action = torch.as_tensor(np.asarray(actions), device=device)
        action = action.reshape(self.n_tasks, self.episodes_per_task, *action.shape[1:])
        next_obs, obs_std, reward, reward_std, logit = self.model.predict(
            self._obs, action, self.latent
        )
        if not self.use_mean:
            next_obs = next_obs + obs_std * torch.randn(
                next_obs.shape, generator=self.generator, device=device)
            reward = reward + reward_std * torch.randn(
                reward.shape, generator=self.generator, device=device)
        next_obs = torch.maximum(torch.minimum(next_obs, self.high), self.low)
        done = torch.as_tensor(self._done, device=device).view(self.n_tasks, -1, 1)
        self._obs = torch.where(done, self._obs, next_obs)
        reward_np = np.where(self._done, 0.0, reward.reshape(-1).double().cpu().numpy())
        self._done = self._done | (logit.reshape(-1) > 0).cpu().numpy()
        self._t += 1
        truncated = np.full(self.num_envs, self._t >= self.horizon) & ~self._done
        return self._obs.reshape(self.num_envs, -1).cpu().numpy(), reward_np, \
            self._done.copy(), truncated, {}


class ImaginedTasks:
    """The model with inferred latents in the place of a task family, for the sampler
    (:class:`metarl.rollout.sampler.EnvSource`); a task is the index of its latent."""

    def __init__(
        self, model: LatentModel, latent: Tensor, start_observations: Tensor, horizon: int,
        observation_space: gym.spaces.Box, action_space: gym.Space, use_mean: bool,
    ) -> None:
        self.model = model
        self.latent = latent
        self.starts = start_observations
        self.max_episode_steps = horizon
        self.observation_space = observation_space
        self.action_space = action_space
        self.use_mean = use_mean

    def make_vector_env(self, tasks: Sequence[int], episodes_per_task: int) -> ModelEnv:
        index = torch.as_tensor(list(tasks), dtype=torch.long, device=self.starts.device)
        return ModelEnv(
            self.model, self.latent[index], self.starts[index], episodes_per_task,
            self.max_episode_steps, self.observation_space, self.action_space, self.use_mean,
        )


@register_learner("mbml")
class MBML(GradientLearner):
    """Imagined inner steps (:meth:`model_steps`) and MAML's outer update (:class:`MAMLOuter`)."""

    Options = MBMLOptions
    phases = ("sampling", "inner", "outer", "model")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outer = MAMLOuter(self, self.options)
        if not isinstance(self.family.observation_space, gym.spaces.Box) or len(
            self.family.observation_space.shape
        ) != 1:
            raise ConfigError(f"mbml needs a flat Box observation space; family "
                              f"{self.family.name!r} has {self.family.observation_space}")
        options = self.options
        self.model = LatentModel(
            self.family.observation_space, self.family.action_space, options.latent_size,
            options.model_hidden,
        ).to(self.device)
        self.model_optimizer = torch.optim.Adam(self.model.parameters(), lr=options.model_lr)
        self.buffer: list[tuple[EpisodeBatch, EpisodeBatch]] = []
        """(support, query) real episodes of recent iterations, oldest first."""

    # --- adaptation ---------------------------------------------------------------------------
    def imagine(self, real: EpisodeBatch, params: Params) -> EpisodeBatch:
        """``--imagined-episodes`` episodes per task with ``params``: in the model with the
        latents inferred from the ``real`` episodes, or in the true envs (oracle)."""
        generator = self.sampler.generator
        seed = int(torch.randint(2**31, (1,), generator=generator, device=generator.device))
        episodes = self.options.imagined_episodes
        if self.options.model == "oracle":
            return self.sampler.sample(real.tasks, episodes, params, seed)
        data = Transitions.of(real)
        if not bool(self.model.fitted):
            self.model.fit_normaliser(data)
        with torch.no_grad():
            latent = self.model.infer(data)
        starts = real.observations[0].view(real.n_tasks, real.episodes_per_task, -1)
        source = ImaginedTasks(
            self.model, latent, starts, self.family.max_episode_steps,
            cast(gym.spaces.Box, self.family.observation_space), self.family.action_space,
            self.options.imagine_mean,
        )
        sampler = Sampler(source, self.policy, self.device)
        sampler.generator = generator
        return sampler.sample(range(real.n_tasks), episodes, params, seed)

    def model_steps(
        self, params: Params, real: EpisodeBatch, create_graph: bool
    ) -> tuple[Params, list[Episodes]]:
        """``--inner-steps`` policy-gradient steps, each on fresh episodes imagined in the
        model with the latents inferred from the same ``real`` episodes; the adapted
        parameters and the imagined episodes of every step."""
        inner: list[Episodes] = []
        for _ in range(self.config.inner_steps):
            episodes = self.with_advantages(self.imagine(real, detach_params(params)))
            params = self.inner_step(params, episodes, create_graph)
            inner.append(episodes)
        return params, inner

    @property
    def second_order(self) -> bool:
        return self.outer.second_order

    def adapt_params(
        self, params: Params, episodes: EpisodeBatch, create_graph: bool = False
    ) -> Params:
        """Adapt from the (real) ``episodes`` entirely in the model, as in training."""
        return self.model_steps(params, episodes, create_graph)[0]

    def collect(self, tasks: Sequence[Any], timer: Timer) -> Rollouts:
        """Real episodes with theta_0, imagined inner steps, real episodes after."""
        params = self.policy.parameters_dict()  # live: see GradientLearner.collect
        with timer("sampling"):
            real = self.sample(tasks, self.meta_params(), self.options.real_episodes)
        with timer("inner"):
            params, inner = self.model_steps(params, real, self.second_order)
        after = self.sample_after_adaptation(tasks, params, timer)
        return Rollouts(tasks, real, inner, after, params)

    # --- the meta-update ------------------------------------------------------------------------
    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        with timer("model"):
            imagined = {
                "imagined_return": float(rollouts.inner[0].batch.task_returns().mean()),
                "imagined_gradient_cosine": self.gradient_agreement(rollouts),
            }
        stats = self.outer.update(rollouts)
        if self.options.model == "oracle":
            return {**imagined, **stats}
        with timer("model"):
            after = rollouts.after.batch
            diagnostics = self.model_errors(rollouts.before, after)
            kept = self.options.model_query_episodes / after.episodes_per_task
            if kept < 1.0:
                after = after.select_columns(after.sample_columns(kept, self.sampler.generator))
            self.buffer = [*self.buffer, (rollouts.before, after)][-self.options.model_buffer:]
            model_loss = self.train_model()
        return {**imagined, "model_loss": model_loss, **diagnostics, **stats}

    def gradient_agreement(self, rollouts: Rollouts) -> float:
        """Mean over tasks of the cosine between theta_0's policy gradient on the imagined
        episodes of the first inner step and on the real episodes they were imagined from:
        near 1 when the model points the inner step where the real task does (the real
        gradient is from few episodes, so even a perfect model stays below 1)."""

        def gradient(episodes: Episodes) -> Tensor:
            leaves = {key: value.clone().requires_grad_() for key, value in
                      per_task(self.meta_params(), episodes.batch.n_tasks).items()}
            grads = inner_gradient(self.policy, leaves, episodes.batch, episodes.advantages,
                                   create_graph=False)
            return torch.cat([g.flatten(1) for g in grads], dim=1)

        real = gradient(self.with_advantages(rollouts.before))
        cosine = nn.functional.cosine_similarity(gradient(rollouts.inner[0]), real, dim=1)
        return float(cosine.mean())

    def model_errors(self, support: EpisodeBatch, query: EpisodeBatch) -> dict[str, float]:
        """The model's errors on ``query`` with the prior latent and with the latent inferred
        from ``support`` (the same tasks)."""
        query_data = Transitions.of(query)
        prior = self.model.prior_latent(query.n_tasks).detach()
        with torch.no_grad():
            inferred = self.model.infer(Transitions.of(support))
        reward_prior, transition_prior = self.model.errors(prior, query_data)
        reward, transition = self.model.errors(inferred, query_data)
        return {
            "model_reward_error_prior": reward_prior, "model_reward_error": reward,
            "model_transition_error_prior": transition_prior,
            "model_transition_error": transition,
        }

    def train_model(self) -> float:
        """``--model-epochs`` Adam steps, each on one buffered iteration drawn at random:
        infer the latents from ``--model-batch`` of its support transitions (differentiably)
        and score them on as many support and query transitions of the same tasks. The
        standardisation is refitted to the whole buffer first."""
        generator, count = self.sampler.generator, self.options.model_batch
        buffered = [Transitions.of(batch) for pair in self.buffer for batch in pair]
        self.model.fit_normaliser(Transitions(*(torch.cat([vars(t)[key].flatten(0, 1)[None]
                                                           for t in buffered], dim=1)
                                                for key in vars(buffered[0]))))
        total = 0.0
        for _ in range(self.options.model_epochs):
            pick = int(torch.randint(len(self.buffer), (1,), generator=generator,
                                     device=generator.device))
            support, query = (Transitions.of(batch) for batch in self.buffer[pick])
            latent = self.model.infer(support.subsample(count, generator))
            scored = support.subsample(count, generator).cat(query.subsample(count, generator))
            loss = self.model.loss(latent, scored).mean()
            self.model_optimizer.zero_grad()
            loss.backward()
            self.model_optimizer.step()
            total += float(loss.detach())
        return total / self.options.model_epochs

    # --- checkpointing ------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {
            **self.outer.state_dict(),
            "model": self.model.state_dict(),
            "model_optimizer": self.model_optimizer.state_dict(),
            "buffer": [[{key: value for key, value in vars(batch).items() if key != "tasks"}
                        for batch in pair] for pair in self.buffer],
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.outer.load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
        self.buffer = [
            (EpisodeBatch(**support).to(self.device), EpisodeBatch(**query).to(self.device))
            for support, query in state["buffer"]
        ]
