"""RL^2 (Duan et al. 2016; Wang et al. 2016): a recurrent policy that adapts in its memory.

A *trial* is several episodes of one task played back to back
(:class:`metarl.rollout.trials.TrialBatch`, every trial of a batch stepped at once through the
family's batched env). The policy, an LSTM (sb3-contrib's ``MlpLstmPolicy``: separate actor
and critic LSTMs of ``--hidden-size`` units, then ``--hidden-sizes`` layers), sees the trial
observation: the observation plus the previous action, reward and episode-end flag. Its memory
runs on across the episodes of a trial and starts from zero at every trial, so what it learns
is how to explore a task and exploit what it found. Training is sb3-contrib's ``RecurrentPPO``
over trials of tasks drawn from the family (:class:`TrialVecEnv`): a training trial lasts
``--trial-episodes`` x horizon steps (that many episodes, more where episodes end early), and
each meta-iteration plays exactly one trial in each of ``--meta-batch-size`` x
``--rollout-trials`` parallel envs (``--rollout-trials`` per task of the batch), then updates.
No trial starts inside an update's rollout, so the update runs every sequence through the LSTM
in one call.

Evaluation lines up with the gradient learners' blocks (:func:`metarl.learn.memory.
trial_adaptation`): on each held-out task one trial of ``(K + 1) * E`` episodes, block ``k``
being episodes ``k*E .. (k+1)*E - 1`` (after ``k*E`` episodes of the task), the same
real-episode budget as K adaptation steps of E episodes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.config import ConfigError, option
from metarl.learn.adaptation import BlockEpisodes
from metarl.learn.learner import Learner
from metarl.learn.memory import Memory, MemoryAdaptation, trial_adaptation, trial_metrics
from metarl.process import seeded_global_rng
from metarl.registry import register_learner
from metarl.rollout.trials import ActionCodec

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU}


@dataclass(frozen=True)
class RL2Options:
    trial_episodes: int = option(10, "length of a training trial in episodes (trial-episodes x "
                                     "horizon steps: more episodes where they end early); the "
                                     "memory runs on across them and is reset between trials",
                                 min=1)
    hidden_size: int = option(128, "LSTM units (actor and critic LSTM each)", min=1)
    rollout_trials: int = option(1, "trials per task in one PPO update, played in parallel "
                                    "envs (environment steps per update: meta-batch-size x "
                                    "rollout-trials x trial-episodes x horizon)", min=1)
    learning_rate: float = option(3e-3, "Adam step size", above=0.0)
    epochs: int = option(4, "PPO epochs over each update's trials", min=1)
    minibatches: int = option(4, "minibatches per epoch (at most --meta-batch-size x "
                                 "--rollout-trials)", min=1)
    clip_range: float = option(0.2, "PPO ratio clip", above=0.0)
    ent_coef: float = option(0.01, "entropy bonus coefficient", min=0.0)
    vf_coef: float = option(0.5, "value loss coefficient", above=0.0)
    max_grad_norm: float = option(0.5, "gradient norm clip", above=0.0)
    ppo_gae_lambda: float = option(0.3, "GAE lambda of the PPO advantages (--gae-lambda is "
                                         "the gradient learners')", min=0.0, max=1.0)
    normalize_reward: bool = option(False, "scale training rewards by a running estimate of the "
                                          "discounted return's spread (SB3 VecNormalize)")


def _timers() -> Any:
    """A callback timing the rollout and the update of one ``learn`` call."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Times(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: dict[str, float] = {}

        def _on_rollout_start(self) -> None:
            self.marks["start"] = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.marks["rollout_end"] = time.perf_counter()

        def _on_step(self) -> bool:
            return True

    return Times()


@register_learner("rl2")
class RL2(Learner):
    """RL^2 with RecurrentPPO over trials (see the module docstring)."""

    Options = RL2Options
    phases = ("sampling", "update")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from sb3_contrib import RecurrentPPO
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import VecEnv, VecNormalize

        from metarl.agents.rl2_env import TrialVecEnv

        config, options = self.config, self.options
        if config.backend != "local":
            raise ConfigError(f"rl2 steps its own envs; --backend {config.backend} does not "
                              "apply (use --backend local)")
        if config.init_output_scale != 1.0:
            raise ConfigError("--init-output-scale does not apply to --algo rl2 (SB3 starts its "
                              "action layer with gain 0.01); leave it at 1")
        n_envs = config.meta_batch_size * options.rollout_trials
        if options.minibatches > n_envs:
            raise ConfigError(f"--minibatches must be <= --meta-batch-size x --rollout-trials "
                              f"(a trial's steps per minibatch at least), got "
                              f"{options.minibatches} > {n_envs}")
        self.horizon = self.family.max_episode_steps
        self.n_steps = options.trial_episodes * self.horizon
        """Steps of one training trial, and of one update's rollout in each env."""
        self.envs = TrialVecEnv(self.family, n_envs, self.n_steps)
        self.codec = ActionCodec(self.family.action_space)
        self.training_env: VecEnv = self.envs
        self.normalizer = None
        if options.normalize_reward:
            self.normalizer = VecNormalize(self.envs, norm_obs=False, gamma=config.gamma)
            self.training_env = self.normalizer
        # RecurrentPPO's initial weights come from the run's seed alone, not from what is left
        # of the stream after the feed-forward policy every learner is built with.
        torch.manual_seed(config.seed)
        # Any: RecurrentPPO's annotations are the generic on-policy algorithm's.
        self.model: Any = RecurrentPPO(
            "MlpLstmPolicy", self.training_env, learning_rate=options.learning_rate,
            n_steps=self.n_steps,
            batch_size=self.n_steps * n_envs // options.minibatches,
            n_epochs=options.epochs, gamma=config.gamma, gae_lambda=options.ppo_gae_lambda,
            clip_range=options.clip_range, ent_coef=options.ent_coef, vf_coef=options.vf_coef,
            max_grad_norm=options.max_grad_norm, device=self.device, seed=None,
            policy_kwargs={
                "lstm_hidden_size": options.hidden_size,
                "net_arch": list(config.hidden_sizes),
                "activation_fn": ACTIVATIONS[config.activation],
                "log_std_init": math.log(config.init_std),
            },
        )
        self.model.set_logger(Logger(folder=None, output_formats=[]))

    # --- the protocol ----------------------------------------------------------------------
    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One PPO update on one fresh trial per parallel env: envs ``i * R .. (i + 1) * R - 1``
        play ``tasks[i]`` (R = ``--rollout-trials``)."""
        if len(tasks) != self.config.meta_batch_size:
            raise ConfigError(f"rl2 plays --meta-batch-size {self.config.meta_batch_size} tasks "
                              f"per iteration, got {len(tasks)}")
        model = self.model
        self.envs.set_tasks([task for task in tasks for _ in range(self.options.rollout_trials)])
        self.training_env.seed(int(self.rng.integers(2**31)))
        # Every update starts fresh trials from a zero memory and ends with them. The start is
        # not flagged as an episode start: the memory is zero already, and with no flag in the
        # rollout every sequence takes the LSTM's one-call path in the update.
        model._last_obs = self.training_env.reset()
        model._last_episode_starts = np.zeros(self.envs.num_envs, dtype=bool)
        for states in model._last_lstm_states:
            for state in states:
                state.zero_()
        seed = int(self.rng.integers(2**31))
        timer = _timers()
        steps_before = model.num_timesteps
        with seeded_global_rng(seed, self.device):
            model.learn(self.n_steps * self.envs.num_envs, callback=timer, log_interval=None,
                        reset_num_timesteps=False)
        done = time.perf_counter()
        steps = model.num_timesteps - steps_before
        self.env_steps += steps
        logged = model.logger.name_to_value
        return {
            **trial_metrics(self.envs.pop_completed()),
            "entropy": -float(logged["train/entropy_loss"]),
            "approx_kl": float(logged["train/approx_kl"]),
            "clip_fraction": float(logged["train/clip_fraction"]),
            "value_loss": float(logged["train/value_loss"]),
            "explained_variance": float(logged["train/explained_variance"]),
            "env_steps": steps,
            "sampling_seconds": timer.marks["rollout_end"] - timer.marks["start"],
            "update_seconds": done - timer.marks["rollout_end"],
        }

    def adaptation(
        self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes, seed: int
    ) -> MemoryAdaptation:
        """One trial of ``(adapt_steps + 1) * episodes`` episodes per task, every task at once
        (:func:`trial_adaptation`)."""
        return trial_adaptation(self, self.family, tasks, adapt_steps, episodes, seed)

    # --- acting (a TrialPolicy) ----------------------------------------------------------------
    def initial_memory(self, n: int) -> Memory:
        """The actor LSTM's (hidden, cell) state at a trial's start, for ``n`` columns."""
        lstm = self.model.policy.lstm_actor
        shape = (lstm.num_layers, n, lstm.hidden_size)
        return (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: Memory, generator: torch.Generator,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Memory]:
        """The policy's actions (in its own action space) for trial observations ``obs``
        ``[n, ...]`` and the next memory; noise from ``generator``."""
        policy = self.model.policy
        policy.set_training_mode(False)
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        starts = torch.zeros(len(obs), device=self.device)
        dist, state = policy.get_distribution(obs_t, state, starts)
        inner = dist.distribution
        if deterministic:
            action = dist.mode()
        elif isinstance(inner, torch.distributions.Categorical):
            action = torch.multinomial(inner.probs, 1, generator=generator).squeeze(-1)
        else:
            noise = torch.randn(inner.mean.shape, generator=generator, device=self.device)
            action = inner.mean + inner.stddev * noise
        actions = action.cpu().numpy()
        if isinstance(self.codec.space, gym.spaces.Box):
            actions = np.clip(actions, self.codec.space.low, self.codec.space.high)
        return actions, state

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.model.policy.state_dict(),
            "optimizer": self.model.policy.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "env_steps": self.env_steps,
            "num_timesteps": self.model.num_timesteps,
            "updates": self.model._n_updates,
        }
        if self.normalizer is not None:
            stats = self.normalizer.ret_rms
            state["reward_scale"] = [float(stats.mean), float(stats.var), float(stats.count)]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["updates"])
        if self.normalizer is not None:
            stats = self.normalizer.ret_rms
            mean, var, count = (np.asarray(v, dtype=np.float64) for v in state["reward_scale"])
            stats.mean, stats.var, stats.count = mean, var, float(count)
