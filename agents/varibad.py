"""VariBAD (Zintgraf et al., ICLR 2020): a belief over the task from a recurrent VAE, and a PPO
policy that acts on it, so that it explores a new task as a Bayes-optimal agent would.

- **Trials.** A training trial is ``--trial-episodes`` x horizon steps of one task (that many
  episodes, more where episodes end early), every task of the batch stepped at once through
  the trial stepper (:class:`metarl.rollout.trials.TrialBatch`). The policy maximises the
  return of the whole trial, so it learns to spend its first steps finding out what the task
  is when that pays later.
- **Encoder.** A GRU over trial observations (observation, previous action, reward and
  episode-end flag, each embedded by a ReLU layer) gives a diagonal Gaussian belief
  ``q(m | tau_:t)`` over a task latent ``m`` (``--latent-size``) after every step; it runs on
  across the episodes of a trial and restarts with the next trial.
- **Decoder and ELBO.** A reward decoder ``p(r_j | m, x_j)`` reconstructs the whole trial,
  past and future, from every prefix's belief; each belief has a KL to the belief before it
  (the first to ``N(0, I)``). The ELBO is estimated on ``--elbo-terms`` prefixes and
  ``--decode-targets`` targets drawn per trial. ``x_j`` is the state the step led to,
  ``s_{j+1}`` (where rewards depend on where the agent is: Navigation2D), or the state and
  the action ``(s_j, a_j)`` (where they depend on what it did: bandits, tabular MDPs; a
  bandit's next observation holds the reward itself, which would leave the latent nothing to
  learn); ``--decoder-inputs auto`` takes the state and action for Discrete actions. The VAE
  trains on a buffer of the last ``--vae-buffer`` trials with its own Adam optimiser (no
  policy gradient reaches it); the first ``--vae-pretrain-iterations`` iterations train only
  the VAE, on the first ``--vae-pretrain-steps`` steps of the trials, so the belief means
  something before the policy learns to use it.
- **Policy.** PPO (GAE, clipped surrogate, ``--epochs`` of ``--minibatches``) on (observation,
  belief mean, belief log-variance), inputs standardised by running statistics and rewards
  by the running spread of the discounted return; a Gaussian with a state-dependent spread
  for Box actions (offered as ``[-1, 1]^d``, clipped and rescaled), a categorical for
  Discrete ones. The critic also sees the time left in the trial and in the episode.

Evaluation is the harness's (:func:`metarl.learn.memory.trial_adaptation`): block ``k`` is
episodes ``k*E .. (k+1)*E - 1`` of one trial per task, the belief kept throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from metarl.config import ConfigError, option
from metarl.learn.adaptation import BlockEpisodes
from metarl.learn.learner import Learner, Timer
from metarl.learn.memory import Memory, MemoryAdaptation, trial_adaptation, trial_metrics
from metarl.policies.mlp import ACTIVATIONS
from metarl.registry import register_learner
from metarl.rollout.trials import ActionCodec, TrialBatch

if TYPE_CHECKING:
    from stable_baselines3.common.running_mean_std import RunningMeanStd

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
OBS_EMBED, ACTION_EMBED, REWARD_EMBED = 32, 16, 16
"""Widths of the encoder's embeddings of observation, previous action, and reward with flag."""
MIN_LOG_STD, MAX_LOG_STD = -5.0, 1.0
MIN_LOGVAR = -12.0
PPO_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
               "explained_variance")
"""The policy update's columns of the metrics log."""
INPUT_CLIP = 10.0
"""Standardised policy inputs are clipped to this many standard deviations."""


@dataclass(frozen=True)
class VariBADOptions:
    trial_episodes: int = option(3, "length of a training trial in episodes (trial-episodes x "
                                    "horizon steps); the belief runs on across them", min=1)
    latent_size: int = option(5, "numbers in the task latent the belief is over", min=1)
    encoder_hidden: int = option(128, "GRU units of the belief's encoder", min=1)
    belief_init_logvar: float = option(-4.0, "the belief's log-variance head starts at this "
                                             "bias (a confident start learns faster)",
                                       min=-12.0, max=4.0)
    reward_decoder: tuple[int, ...] = option((64, 32), "hidden layers of the reward decoder",
                                             min=1)
    decoder_inputs: str = option("auto", "what the reward decoder sees beside the latent: "
                                         "'state' (the state a step led to), 'state-action' "
                                         "(the state a step started in and its action) or "
                                         "'auto' (state-action for Discrete actions, else "
                                         "state)",
                                 choices=("auto", "state", "state-action"))
    kl_weight: float = option(0.1, "weight of the KL terms in the ELBO", min=0.0)
    vae_lr: float = option(3e-3, "VAE Adam step size while it pre-trains", above=0.0)
    vae_lr_trained: float = option(5e-4, "VAE Adam step size once the policy trains too",
                                   above=0.0)
    vae_grad_clip: float = option(1.0, "VAE gradient norm clip", above=0.0)
    vae_buffer: int = option(2000, "recent trials the VAE trains on", min=1)
    vae_batch: int = option(32, "trials per VAE gradient step", min=1)
    vae_updates: int = option(3, "VAE gradient steps per iteration", min=0)
    vae_pretrain_iterations: int = option(8, "first iterations that train only the VAE", min=0)
    vae_pretrain_updates: int = option(100, "VAE gradient steps per pre-training iteration",
                                       min=1)
    vae_pretrain_steps: int = option(100, "steps of each trial the VAE sees while it "
                                          "pre-trains (0: all)", min=0)
    elbo_terms: int = option(16, "belief prefixes per trial in an ELBO estimate (0: all)",
                             min=0)
    decode_targets: int = option(32, "rewards per trial each belief reconstructs (0: all)",
                                 min=0)
    learning_rate: float = option(1e-3, "PPO Adam step size", above=0.0)
    learning_rate_final: float = option(0.1, "PPO step size at the last iteration, as a "
                                             "fraction of --learning-rate (linear decay)",
                                        above=0.0, max=1.0)
    epochs: int = option(4, "PPO epochs per iteration", min=1)
    minibatches: int = option(16, "PPO minibatches per epoch", min=1)
    clip_range: float = option(0.2, "PPO ratio clip", above=0.0)
    ent_coef: float = option(0.0, "entropy bonus coefficient", min=0.0)
    vf_coef: float = option(0.5, "value loss coefficient", above=0.0)
    max_grad_norm: float = option(0.5, "PPO gradient norm clip", above=0.0)
    ppo_gae_lambda: float = option(0.9, "GAE lambda of the PPO advantages", min=0.0, max=1.0)


def _mlp(sizes: Sequence[int], activation: type[nn.Module], out_gain: float) -> nn.Sequential:
    """Linear layers (orthogonal init, zero bias) with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


class Activation(nn.Module):
    """The policies' activation by name (metarl's fast tanh, relu, elu) as a module."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.function = ACTIVATIONS[name]

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)


def _stats_state(stats: RunningMeanStd) -> dict[str, Any]:
    """A running mean and variance as checkpoint tensors."""
    return {"mean": torch.as_tensor(stats.mean), "var": torch.as_tensor(stats.var),
            "count": float(stats.count)}


def _load_stats(stats: RunningMeanStd, state: dict[str, Any]) -> None:
    stats.mean = state["mean"].numpy().astype(np.float64)
    stats.var = state["var"].numpy().astype(np.float64)
    stats.count = float(state["count"])


class Encoder(nn.Module):
    """GRU over trial observations -> the Gaussian belief after every step."""

    def __init__(self, obs_dim: int, action_width: int, options: VariBADOptions) -> None:
        super().__init__()
        self.obs_dim, self.action_width = obs_dim, action_width
        self.obs_fc = nn.Linear(obs_dim, OBS_EMBED)
        self.action_fc = nn.Linear(action_width, ACTION_EMBED)
        self.reward_fc = nn.Linear(2, REWARD_EMBED)
        self.gru = nn.GRU(OBS_EMBED + ACTION_EMBED + REWARD_EMBED, options.encoder_hidden)
        for name, parameter in self.gru.named_parameters():
            (nn.init.zeros_ if "bias" in name else nn.init.orthogonal_)(parameter)
        self.fc_mu = nn.Linear(options.encoder_hidden, options.latent_size)
        self.fc_logvar = nn.Linear(options.encoder_hidden, options.latent_size)
        nn.init.constant_(self.fc_logvar.bias, options.belief_init_logvar)
        self.hidden = options.encoder_hidden

    def embed(self, trial_obs: Tensor) -> Tensor:
        """Embeddings of trial observations ``[..., obs + action width + 2]``."""
        obs = trial_obs[..., :self.obs_dim]
        action = trial_obs[..., self.obs_dim:self.obs_dim + self.action_width]
        reward_flag = trial_obs[..., -2:]
        return torch.cat([F.relu(self.obs_fc(obs)), F.relu(self.action_fc(action)),
                          F.relu(self.reward_fc(reward_flag))], dim=-1)

    def step(self, trial_obs: Tensor, hidden: Tensor) -> Tensor:
        """The GRU state ``[B, hidden]`` after one more trial observation ``[B, width]``."""
        weights = cast(list[Tensor], self.gru.all_weights[0])  # w_ih, w_hh, b_ih, b_hh
        return torch.gru_cell(self.embed(trial_obs), hidden, *weights)

    def belief(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of the belief for GRU states."""
        return self.fc_mu(hidden), self.fc_logvar(hidden).clamp(min=MIN_LOGVAR)

    def sequence(self, trial_obs: Tensor) -> tuple[Tensor, Tensor]:
        """Beliefs ``[T, B, latent]`` after each step of whole trials ``[T, B, width]``."""
        hidden, _ = self.gru(self.embed(trial_obs))
        return self.belief(hidden)


class RewardDecoder(nn.Module):
    """``r_j`` from a latent sample and the step's decoder input ``x_j`` (see the module
    docstring). The first layer is split in a latent part and an input part, so every
    (belief, target) pair of the ELBO costs one broadcast addition before the hidden
    layers."""

    def __init__(self, latent: int, input_dim: int, layers: Sequence[int]) -> None:
        super().__init__()
        self.obs_fc = nn.Linear(input_dim, OBS_EMBED)
        self.z_fc = nn.Linear(latent, layers[0])
        self.x_fc = nn.Linear(OBS_EMBED, layers[0], bias=False)
        self.net = _mlp([layers[0], *layers[1:], 1], nn.ReLU, out_gain=1.0)

    def pairs(self, z: Tensor, inputs: Tensor) -> Tensor:
        """Predicted rewards ``[E, D, B]`` for every latent ``z [E, B, L]`` with every decoder
        input ``inputs [D, B, width]``."""
        features = self.x_fc(F.relu(self.obs_fc(inputs)))
        return self.net(F.relu(self.z_fc(z)[:, None] + features[None])).squeeze(-1)


def belief_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(q_t || q_{t-1})`` of every belief ``[T, B, L]`` to the one before it, the first to
    ``N(0, I)``: ``[T, B]``."""
    prev_mu = torch.cat([torch.zeros_like(mu[:1]), mu[:-1]])
    prev_logvar = torch.cat([torch.zeros_like(logvar[:1]), logvar[:-1]])
    return 0.5 * (prev_logvar - logvar - 1.0 + (logvar - prev_logvar).exp()
                  + (mu - prev_mu).pow(2) / prev_logvar.exp()).sum(-1)


class ActorCritic(nn.Module):
    """The policy (logits, or a Gaussian's mean and state-dependent log std) and the critic
    (which also sees two time features)."""

    def __init__(self, in_dim: int, discrete: bool, outputs: int, hidden: Sequence[int],
                 activation: str) -> None:
        super().__init__()
        act: Any = lambda: Activation(activation)  # noqa: E731
        self.discrete = discrete
        self.actor = _mlp([in_dim, *hidden, outputs * (1 if discrete else 2)], act, 0.01)
        self.critic = _mlp([in_dim + 2, *hidden, 1], act, 1.0)

    def head(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.actor(x)
        if self.discrete:
            return out, None
        mean, raw = out.chunk(2, dim=-1)
        return mean, raw.clamp(MIN_LOG_STD, MAX_LOG_STD)

    def log_prob_entropy(self, x: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        out, log_std = self.head(x)
        if log_std is None:
            logp_all = F.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, actions.long()[:, None]).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        return gaussian_log_prob(out, log_std, actions), (0.5 + HALF_LOG_2PI + log_std).sum(-1)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    return (-0.5 * ((actions - mean) / log_std.exp()).pow(2) - log_std - HALF_LOG_2PI).sum(-1)


@dataclass
class Rollout:
    """One iteration's trials, time-major ``[T, B, ...]``."""

    trial_obs: Tensor
    inputs: Tensor
    actions: Tensor
    log_probs: Tensor
    rewards: np.ndarray
    ended: np.ndarray
    episode_time: np.ndarray
    decoder_inputs: Tensor


@register_learner("varibad")
class VariBAD(Learner):
    """VariBAD (see the module docstring)."""

    Options = VariBADOptions
    phases = ("sampling", "encoder", "vae", "update")
    defaults: ClassVar[dict[str, Any]] = {"meta_batch_size": 256, "iterations": 80}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config, options, family = self.config, self.options, self.family
        if config.backend != "local":
            raise ConfigError(f"varibad steps its own trials; --backend {config.backend} does "
                              "not apply (use --backend local)")
        if options.minibatches > config.meta_batch_size * options.trial_episodes * \
                family.max_episode_steps:
            raise ConfigError("--minibatches is more than the steps of an iteration")
        self.codec = ActionCodec(family.action_space)
        self.discrete = isinstance(self.codec.space, gym.spaces.Discrete)
        self.obs_dim = gym.spaces.flatdim(family.observation_space)
        self.horizon = family.max_episode_steps
        self.trial_steps = options.trial_episodes * self.horizon
        device = self.device
        self.encoder = Encoder(self.obs_dim, self.codec.width, options).to(device)
        inputs = options.decoder_inputs
        self.decode_actions = inputs == "state-action" or (inputs == "auto" and self.discrete)
        decoder_width = self.obs_dim + (self.codec.width if self.decode_actions else 0)
        self.decoder = RewardDecoder(options.latent_size, decoder_width,
                                     options.reward_decoder).to(device)
        self.vae_params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.vae_optimizer = torch.optim.Adam(self.vae_params, lr=options.vae_lr)
        self.in_dim = self.obs_dim + 2 * options.latent_size
        outputs = int(self.codec.space.n) if self.discrete else self.codec.width
        self.policy = ActorCritic(self.in_dim, self.discrete, outputs, config.hidden_sizes,
                                  config.activation).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=options.learning_rate,
                                          eps=1e-5)
        from stable_baselines3.common.running_mean_std import RunningMeanStd  # 0.4 s to import

        self.input_stats = RunningMeanStd(shape=(self.in_dim,))
        self.return_stats = RunningMeanStd(shape=())
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self.vae_generator = torch.Generator(device=device)
        self.vae_generator.manual_seed(config.seed + 1)
        self.iteration = 0
        width = self.obs_dim + self.codec.tail_width
        self.buffer = {  # the last --vae-buffer trials, on the host
            "trial_obs": torch.zeros(0, self.trial_steps, width),
            "decoder_inputs": torch.zeros(0, self.trial_steps, decoder_width),
            "rewards": torch.zeros(0, self.trial_steps),
        }

    # --- acting (a TrialPolicy) ------------------------------------------------------------------
    def initial_memory(self, n: int) -> Memory:
        return (torch.zeros(1, n, self.encoder.hidden, device=self.device),)

    def _policy_input(self, trial_obs: Tensor, memory: Memory) -> tuple[Tensor, Memory]:
        """The policy's raw input (observation, belief mean and log-variance) after the
        encoder consumed ``trial_obs``, and the next memory."""
        hidden = self.encoder.step(trial_obs, memory[0][0])
        mu, logvar = self.encoder.belief(hidden)
        return torch.cat([trial_obs[:, :self.obs_dim], mu, logvar], dim=-1), (hidden[None],)

    def _standardise(self, inputs: Tensor) -> Tensor:
        mean = torch.as_tensor(self.input_stats.mean, dtype=torch.float32, device=self.device)
        std = torch.as_tensor(np.sqrt(self.input_stats.var + 1e-8), dtype=torch.float32,
                              device=self.device)
        return ((inputs - mean) / std).clamp(-INPUT_CLIP, INPUT_CLIP)

    def _sample(self, x: Tensor, generator: torch.Generator,
                deterministic: bool) -> tuple[Tensor, Tensor]:
        """Raw actions for standardised inputs and their log-probabilities."""
        out, log_std = self.policy.head(x)
        if log_std is None:
            logp_all = F.log_softmax(out, dim=-1)
            action = out.argmax(-1) if deterministic else torch.multinomial(
                logp_all.exp(), 1, generator=generator).squeeze(-1)
            return action, logp_all.gather(-1, action[:, None]).squeeze(-1)
        if deterministic:
            return out, torch.zeros(len(out), device=self.device)
        action = out + log_std.exp() * torch.randn(out.shape, generator=generator,
                                                   device=self.device)
        return action, gaussian_log_prob(out, log_std, action)

    def _to_codec(self, raw: Tensor) -> np.ndarray:
        actions = raw.cpu().numpy()
        return actions if self.discrete else np.clip(actions, -1.0, 1.0)

    @torch.no_grad()
    def act(self, observations: np.ndarray, memory: Memory, generator: torch.Generator,
            deterministic: bool = False) -> tuple[np.ndarray, Memory]:
        trial_obs = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        inputs, memory = self._policy_input(trial_obs, memory)
        raw, _ = self._sample(self._standardise(inputs), generator, deterministic)
        return self._to_codec(raw), memory

    def adaptation(self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes,
                   seed: int) -> MemoryAdaptation:
        return trial_adaptation(self, self.family, tasks, adapt_steps, episodes, seed)

    # --- training --------------------------------------------------------------------------------
    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        timer = Timer(self.phases)
        with timer("sampling"):
            trials = TrialBatch(self.family, tasks, steps=self.trial_steps)
            rollout = self.rollout(trials, int(self.rng.integers(2**31)), timer)
        metrics = trial_metrics(trials.pop_completed())
        with timer("vae"):
            self.remember(rollout)
            pretraining = self.iteration < self.options.vae_pretrain_iterations
            if pretraining:
                vae = self.vae_update(self.options.vae_pretrain_updates,
                                      self.options.vae_pretrain_steps, self.options.vae_lr)
            else:
                vae = self.vae_update(self.options.vae_updates, 0, self.options.vae_lr_trained)
        with timer("update"):  # the policy's columns are 0 while only the VAE trains
            ppo = dict.fromkeys(PPO_METRICS, 0.0) if pretraining else self.ppo_update(rollout)
        self.iteration += 1
        steps = len(tasks) * self.trial_steps
        self.env_steps += steps
        return {**metrics, **vae, **ppo, "env_steps": steps, **timer.metrics()}

    @torch.no_grad()
    def rollout(self, trials: TrialBatch, seed: int, timer: Timer | None = None) -> Rollout:
        """One trial per task, all stepped at once; what PPO and the VAE train on (the
        encoder's share of the time in ``timer``'s ``encoder`` phase)."""
        timer = timer or Timer(self.phases)
        n, steps, device = trials.n, self.trial_steps, self.device
        obs = torch.as_tensor(trials.reset(seed), device=device)
        memory = self.initial_memory(n)
        trial_obs = torch.zeros(steps, n, obs.shape[1], device=device)
        inputs = torch.zeros(steps, n, self.in_dim, device=device)
        actions = torch.zeros(steps, n, *(() if self.discrete else (self.codec.width,)),
                              device=device)
        log_probs = torch.zeros(steps, n, device=device)
        reached = torch.zeros(steps, n, self.obs_dim, device=device)
        rewards, ended = np.zeros((steps, n)), np.zeros((steps, n), dtype=bool)
        episode_time = np.zeros((steps, n))
        clock = np.zeros(n)
        for t in range(steps):
            trial_obs[t] = obs
            with timer("encoder"):
                inputs[t], memory = self._policy_input(obs, memory)
            raw, log_probs[t] = self._sample(self._standardise(inputs[t]), self.generator,
                                             False)
            actions[t] = raw
            result = trials.step(self._to_codec(raw))
            clock += 1
            episode_time[t] = clock
            clock[result.episode_ended] = 0
            rewards[t], ended[t] = result.rewards, result.episode_ended
            assert result.next_observations is not None
            reached[t] = torch.as_tensor(result.next_observations, device=device)
            obs = torch.as_tensor(result.observations, device=device)
        trials.close()
        return Rollout(trial_obs, inputs, actions, log_probs, rewards, ended, episode_time,
                       self._decoder_inputs(trial_obs, actions, reached))

    def _decoder_inputs(self, trial_obs: Tensor, actions: Tensor, reached: Tensor) -> Tensor:
        """What the reward decoder sees of each step ``[T, B, ...]``: the state reached, or the
        state the step started in and the action's features."""
        if not self.decode_actions:
            return reached
        steps, n = reached.shape[:2]
        taken = self.codec.batch_features(actions.reshape(steps * n, -1).squeeze(-1)
                                          .cpu().numpy())
        return torch.cat([trial_obs[..., :self.obs_dim],
                          torch.as_tensor(taken, device=self.device).reshape(steps, n, -1)],
                         dim=-1)

    # --- the VAE ---------------------------------------------------------------------------------
    def remember(self, rollout: Rollout) -> None:
        """Add the rollout's trials to the VAE's buffer, dropping the oldest past its size."""
        new = {"trial_obs": rollout.trial_obs, "decoder_inputs": rollout.decoder_inputs,
               "rewards": torch.as_tensor(rollout.rewards, dtype=torch.float32)}
        keep = self.options.vae_buffer
        self.buffer = {key: torch.cat([self.buffer[key], value.transpose(0, 1).cpu()])[-keep:]
                       for key, value in new.items()}

    def vae_loss(self, trials: dict[str, Tensor], length: int = 0
                 ) -> tuple[Tensor, dict[str, float]]:
        """The negative ELBO of ``trials`` (``[B, T, ...]``, the first ``length`` steps; 0:
        all), averaged over trials: reward reconstruction of sampled targets from sampled
        belief prefixes, and the KL of every belief to the one before it."""
        options = self.options
        steps = trials["rewards"].shape[1]
        steps = steps if length <= 0 else min(length, steps)
        trial_obs = trials["trial_obs"][:, :steps].transpose(0, 1).to(self.device)
        decoder_inputs = trials["decoder_inputs"][:, :steps].transpose(0, 1).to(self.device)
        rewards = trials["rewards"][:, :steps].transpose(0, 1).to(self.device)
        n = trial_obs.shape[1]
        mu, logvar = self.encoder.sequence(trial_obs)
        kl = belief_kl(mu, logvar).sum(0).mean()
        gen, columns = self.vae_generator, torch.arange(n, device=self.device)
        terms = options.elbo_terms or steps
        targets = options.decode_targets or steps
        prefix = (torch.randint(0, steps, (terms, n), generator=gen, device=self.device)
                  if options.elbo_terms else
                  torch.arange(steps, device=self.device)[:, None].expand(terms, n))
        target = (torch.randint(0, steps, (targets, n), generator=gen, device=self.device)
                  if options.decode_targets else
                  torch.arange(steps, device=self.device)[:, None].expand(targets, n))
        m, s = mu[prefix, columns], (0.5 * logvar[prefix, columns]).exp()
        z = m + s * torch.randn(m.shape, generator=gen, device=self.device)
        predicted = self.decoder.pairs(z, decoder_inputs[target, columns])
        error = (predicted - rewards[target, columns][None]).pow(2)
        # an estimate of the sum over every prefix and every target, per trial
        reconstruction = error.sum() * (steps / terms) * (steps / targets) / n
        loss = (reconstruction + options.kl_weight * kl) / (steps * steps)
        return loss, {"vae_reward_error": float(error.detach().mean()),
                      "vae_kl": float(kl.detach())}

    def vae_update(self, updates: int, length: int, lr: float) -> dict[str, float]:
        """``updates`` Adam steps on the ELBO of random buffered trials."""
        for group in self.vae_optimizer.param_groups:
            group["lr"] = lr
        info: dict[str, float] = {}
        size = self.buffer["rewards"].shape[0]
        for _ in range(updates):
            pick = torch.randperm(size, generator=torch.Generator().manual_seed(
                int(self.rng.integers(2**31))))[:self.options.vae_batch]
            loss, info = self.vae_loss({key: value[pick] for key, value in self.buffer.items()},
                                       length)
            self.vae_optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.vae_params, self.options.vae_grad_clip)
            self.vae_optimizer.step()
        return info

    # --- PPO -------------------------------------------------------------------------------------
    def ppo_update(self, rollout: Rollout) -> dict[str, float]:
        options, config = self.options, self.config
        steps, n = rollout.rewards.shape
        x = self._standardise(rollout.inputs).reshape(steps * n, -1)
        clock = np.stack([np.broadcast_to(np.arange(steps)[:, None] / steps, (steps, n)),
                          (rollout.episode_time - 1) / self.horizon], axis=-1)
        critic_x = torch.cat([x, torch.as_tensor(clock.reshape(steps * n, 2),
                                                 dtype=torch.float32, device=self.device)], -1)
        rewards = rollout.rewards
        discounted, running = np.zeros((steps, n)), np.zeros(n)
        for t in range(steps):
            running = running * config.gamma + rewards[t]
            discounted[t] = running
        self.return_stats.update(discounted.reshape(-1))
        rewards = rewards / math.sqrt(float(self.return_stats.var) + 1e-8)
        with torch.no_grad():
            values = self.policy.critic(critic_x).squeeze(-1).reshape(steps, n)
            values_np = values.cpu().numpy().astype(np.float64)
        advantages, last = np.zeros((steps, n)), np.zeros(n)
        for t in reversed(range(steps)):
            following = values_np[t + 1] if t + 1 < steps else 0.0  # the trial's end
            delta = rewards[t] + config.gamma * following - values_np[t]
            last = delta + config.gamma * options.ppo_gae_lambda * last
            advantages[t] = last
        returns = advantages + values_np
        adv = torch.as_tensor(advantages.reshape(-1), dtype=torch.float32, device=self.device)
        ret = torch.as_tensor(returns.reshape(-1), dtype=torch.float32, device=self.device)
        actions = rollout.actions.reshape(steps * n, *rollout.actions.shape[2:])
        old_log_probs = rollout.log_probs.reshape(-1)
        done = max(0, self.iteration - options.vae_pretrain_iterations)
        span = max(1, config.iterations - options.vae_pretrain_iterations)
        fraction = 1.0 - min(1.0, done / span) * (1.0 - options.learning_rate_final)
        for group in self.optimizer.param_groups:
            group["lr"] = options.learning_rate * fraction
        size = steps * n // options.minibatches
        totals = dict.fromkeys(PPO_METRICS[:-1], 0.0)
        for _ in range(options.epochs):
            order = torch.randperm(steps * n, generator=torch.Generator().manual_seed(
                int(self.rng.integers(2**31)))).to(self.device)
            for k in range(options.minibatches):
                i = order[k * size:(k + 1) * size]
                log_probs, entropy = self.policy.log_prob_entropy(x[i], actions[i])
                ratio = (log_probs - old_log_probs[i]).exp()
                a = (adv[i] - adv[i].mean()) / (adv[i].std() + 1e-8)
                policy_loss = -torch.min(ratio * a, ratio.clamp(
                    1 - options.clip_range, 1 + options.clip_range) * a).mean()
                value_loss = 0.5 * (self.policy.critic(critic_x[i]).squeeze(-1) - ret[i]).pow(2) \
                    .mean()
                loss = policy_loss + options.vf_coef * value_loss - options.ent_coef * \
                    entropy.mean()
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), options.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    totals["policy_loss"] += float(policy_loss)
                    totals["value_loss"] += float(value_loss)
                    totals["entropy"] += float(entropy.mean())
                    totals["approx_kl"] += float(((ratio - 1) - (log_probs - old_log_probs[i]))
                                                 .mean())
                    totals["clip_fraction"] += float(((ratio - 1).abs() > options.clip_range)
                                                     .float().mean())
        count = options.epochs * options.minibatches
        stats = {key: value / count for key, value in totals.items()}
        spread = float(np.var(returns))
        stats["explained_variance"] = (1.0 - float(np.var(returns - values_np)) / spread
                                       if spread > 0 else 0.0)
        self.input_stats.update(rollout.inputs.reshape(steps * n, -1).cpu().numpy()
                                .astype(np.float64))
        return stats

    # --- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "vae_optimizer": self.vae_optimizer.state_dict(),
            "input_stats": _stats_state(self.input_stats),
            "return_stats": _stats_state(self.return_stats),
            "generator": self.generator.get_state(),
            "vae_generator": self.vae_generator.get_state(),
            "rng": self.rng.bit_generator.state, "env_steps": self.env_steps,
            "iteration": self.iteration, "buffer": dict(self.buffer),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.vae_optimizer.load_state_dict(state["vae_optimizer"])
        _load_stats(self.input_stats, state["input_stats"])
        _load_stats(self.return_stats, state["return_stats"])
        self.generator.set_state(state["generator"])
        self.vae_generator.set_state(state["vae_generator"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])
        self.iteration = int(state["iteration"])
        buffer = dict(state["buffer"])
        if "next_obs" in buffer:  # checkpoints from before --decoder-inputs: states only
            buffer["decoder_inputs"] = buffer.pop("next_obs")
        self.buffer = {key: buffer[key] for key in self.buffer}
