"""VariBAD: the ELBO's pieces (shapes, the KL against hand-computed values, rewards decoded
from the states they were earned in or from the state and action that earned them), the
belief kept across a trial's episodes, checkpoints and resume, and (slow) that it learns to
adapt within its first episodes on Navigation2D."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.varibad import VariBAD, belief_kl
from metarl.cli import main
from metarl.learn.memory import PriorPolicy, TrialPolicy
from metarl.rollout.trials import TrialBatch

TINY = {"meta_batch_size": 8, "hidden_sizes": [16], "trial_episodes": 2,
        "vae_pretrain_iterations": 1, "vae_pretrain_updates": 2, "encoder_hidden": 16,
        "vae_batch": 4, "minibatches": 4}


def tiny(family: str = "navigation2d", **settings: object) -> VariBAD:
    learner = metarl.make(family, algo="varibad", **{**TINY, **settings}).learner
    assert isinstance(learner, VariBAD)
    return learner


def test_the_kl_of_each_belief_to_the_one_before_matches_hand_computed_values():
    mu = torch.tensor([[[0.5, -1.0]], [[1.0, 0.0]]])  # [T=2, B=1, L=2]
    logvar = torch.tensor([[[0.0, math.log(4.0)]], [[math.log(0.25), 0.0]]])
    kl = belief_kl(mu, logvar)
    # step 0 against N(0, I): 0.5 * sum(var + mu^2 - 1 - log var)
    first = 0.5 * ((1 + 0.25 - 1 - 0) + (4 + 1 - 1 - math.log(4.0)))
    # step 1 against step 0: 0.5 * sum(log(v0 / v1) - 1 + v1 / v0 + (m1 - m0)^2 / v0)
    second = 0.5 * ((0 - math.log(0.25) - 1 + 0.25 + 0.25)
                    + (math.log(4.0) - 0 - 1 + 0.25 + 1.0 / 4.0))
    torch.testing.assert_close(kl, torch.tensor([[first], [second]]))
    assert float(belief_kl(mu[:1] * 0, logvar[:1] * 0).sum()) == 0.0


def test_encoder_and_decoder_shapes():
    learner = tiny()
    width = learner.obs_dim + learner.codec.width + 2
    mu, logvar = learner.encoder.sequence(torch.zeros(7, 3, width))
    assert mu.shape == logvar.shape == (7, 3, 5)
    z, states = torch.zeros(4, 3, 5), torch.zeros(6, 3, learner.obs_dim)
    assert learner.decoder.pairs(z, states).shape == (4, 6, 3)
    loss, info = learner.vae_loss({"trial_obs": torch.zeros(3, 7, width),
                                   "decoder_inputs": torch.zeros(3, 7, learner.obs_dim),
                                   "rewards": torch.zeros(3, 7)})
    assert loss.shape == () and set(info) == {"vae_reward_error", "vae_kl"}


def test_rewards_are_decoded_from_the_states_they_were_earned_in():
    """The buffer pairs each reward with the state its step reached, also where the episode
    ended (the trial's next observation is then the next episode's start)."""
    learner = tiny()
    goals = [(0.1, 0.0), (0.3, -0.2), (-0.25, 0.4)]
    trials = TrialBatch(learner.family, [{"goal": g} for g in goals],
                        steps=learner.trial_steps)
    rollout = learner.rollout(trials, seed=0)
    learner.remember(rollout)
    assert not learner.decode_actions  # auto: Navigation2D's Box actions decode states
    rewards, reached = learner.buffer["rewards"], learner.buffer["decoder_inputs"]
    distance = (reached - torch.tensor(goals, dtype=torch.float32)[:, None]).norm(dim=-1)
    torch.testing.assert_close(rewards, -distance, atol=1e-5, rtol=0)
    ended = torch.as_tensor(rollout.ended.T)
    assert ended.any()  # the check covered steps that ended an episode
    starts = learner.buffer["trial_obs"][:, 1:, :2][ended[:, :-1]]
    assert torch.all(starts == 0)  # ... whose next trial observation is the origin


def test_discrete_families_decode_rewards_from_the_state_and_action():
    """A bandit's reward depends on the arm pulled (and its next observation holds the reward
    itself): for Discrete actions the decoder sees the state a step started in and the one-hot
    action taken."""
    learner = tiny("bandit-10")
    assert learner.decode_actions
    trials = TrialBatch(learner.family, learner.family.test_tasks(3), steps=learner.trial_steps)
    rollout = learner.rollout(trials, seed=0)
    obs_dim, width = learner.obs_dim, learner.codec.width
    inputs = rollout.decoder_inputs
    assert inputs.shape == (learner.trial_steps, 3, obs_dim + width)
    torch.testing.assert_close(inputs[..., :obs_dim], rollout.trial_obs[..., :obs_dim])
    one_hot = inputs[..., obs_dim:obs_dim + width]
    assert torch.equal(one_hot.argmax(-1), rollout.actions.long())
    assert torch.all(one_hot.sum(-1) == 1)
    assert not tiny("bandit-10", decoder_inputs="state").decode_actions


def test_the_belief_runs_on_across_a_trials_episodes():
    learner = tiny()
    tasks = learner.family.test_tasks(2)
    adaptation = learner.adaptation(tasks, adapt_steps=2, episodes=1, seed=0)
    memories = [block[0] for block in adaptation.memories]
    assert not memories[0].any() and memories[1].any() and not torch.equal(*memories[1:])
    again = learner.adaptation(tasks, adapt_steps=2, episodes=1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(adaptation.returns, again.returns,
                                                    strict=True))


@pytest.mark.parametrize("family", ["bandit-5", "maze"])
def test_discrete_families_train_and_evaluate(family):
    learner = tiny(family)
    for _ in range(2):
        metrics = learner.step(learner.family.sample_tasks(8, learner.rng))
    assert np.isfinite(list(metrics.values())).all() and metrics["policy_loss"] != 0.0
    result = metarl.api.MetaLearner(learner).evaluate(n_tasks=3, adapt_steps=1, episodes=2)
    assert len(result.mean_return) == 2


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if not k.endswith("seconds")}
                for row in csv.DictReader(handle)]


def test_a_resumed_run_repeats_a_straight_one(tmp_path: Path):
    flags = ["--family", "navigation2d", "--algo", "varibad", "--meta-batch-size", "8",
             "--hidden-sizes", "16", "--trial-episodes", "2", "--vae-pretrain-iterations",
             "1", "--vae-pretrain-updates", "2", "--encoder-hidden", "16", "--vae-batch", "4",
             "--minibatches", "4"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", "--iterations", "3", "--out", str(straight), *flags]) == 0
    assert main(["train", "--iterations", "2", "--out", str(resumed), *flags]) == 0
    assert main(["train", "--out", str(resumed), "--iterations", "3", "--resume"]) == 0
    assert rows(resumed) == rows(straight)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_its_own_default_batch_and_the_settings_given():
    assert metarl.make("navigation2d", algo="varibad").settings["meta_batch_size"] == 256
    assert metarl.make("navigation2d", algo="varibad",
                       meta_batch_size=4).settings["meta_batch_size"] == 4


@pytest.mark.slow
def test_varibad_adapts_within_its_first_episodes_on_navigation2d(tmp_path: Path):
    """A reduced budget (40 iterations of 128 trials of 3 episodes, about 1.5M env steps):
    on 200 held-out tasks, the second episode of a trial beats the first with the intervals
    apart, and both are far above a policy that does not know the goal (about -40)."""
    learner = metarl.train("navigation2d", algo="varibad", out=tmp_path / "run",
                           iterations=40, meta_batch_size=128, progress=False)
    result = learner.evaluate(n_tasks=200, adapt_steps=1, episodes=1, seed=0)
    assert result.ci95_low[1] > result.ci95_high[0], result.mean_return
    assert result.mean_return[0] > -20, result.mean_return


@pytest.mark.parametrize("algo, settings", [
    ("varibad", TINY),
    ("rl2", {"meta_batch_size": 2, "hidden_sizes": (8,), "hidden_size": 8, "minibatches": 2}),
])
def test_the_prior_policy_acts_on_the_observation_alone(algo: str, settings: dict) -> None:
    learner = metarl.make("navigation2d", algo=algo, **settings).learner
    assert isinstance(learner, TrialPolicy)
    width = learner.codec.width + 2  # previous action, reward and flag
    obs = np.repeat(np.random.default_rng(0).normal(size=(1, 2 + width)), 2, axis=0)
    obs[1, -width:] += 3.0  # the same state after another history
    obs = obs.astype(np.float32)
    memory = tuple(torch.randn(t.shape) for t in learner.initial_memory(2))
    generator = torch.Generator()
    played, _ = learner.act(obs, memory, generator, deterministic=True)
    assert not np.allclose(played[0], played[1])  # the learner itself reads its history
    prior, _ = PriorPolicy(learner).act(obs, memory, generator, deterministic=True)
    np.testing.assert_allclose(prior[0], prior[1])
    start = obs.copy()
    start[:, -width:] = 0.0
    first, _ = learner.act(start, learner.initial_memory(2), generator, deterministic=True)
    np.testing.assert_allclose(prior, first)  # as at a trial's start
