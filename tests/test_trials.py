"""The trial stepper (:mod:`metarl.rollout.trials`): trial observations, episodes restarting
inside a trial, trials of episodes or of steps, every column at once through the native or the
generic batched env, and the single trial env (a batch of one)."""

from __future__ import annotations

import copy as copy_module
import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import SyncBatchedEnv, TaskFamily, registry
from metarl.config import ConfigError
from metarl.rollout.trials import Trial, TrialBatch, TrialEnv


def test_trial_observation_holds_previous_action_reward_and_episode_end() -> None:
    family = registry.get_family("bandit-5")
    task = family.test_tasks(1)[0]
    env = TrialEnv(family, task, episodes=3)
    assert env.observation_space.shape == (6 + 5 + 2,)
    obs, _ = env.reset(seed=0)
    assert not obs[6:].any()  # no previous action, reward or episode end at a trial's start
    total, ends = 0.0, []
    for t in range(3 * family.max_episode_steps):
        action = t % 5
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert obs in env.observation_space
        assert np.array_equal(obs[6:11], np.eye(5)[action]) and obs[11] == reward
        last_of_episode = (t + 1) % family.max_episode_steps == 0
        assert obs[12] == float(last_of_episode)
        if last_of_episode:
            ends.append(info["episode_return"])
            assert info["trial_episode"] == len(ends) - 1
            if len(ends) < 3:  # already the next episode's first observation
                assert not obs[:6].any()
        assert not terminated and truncated == (t == 3 * family.max_episode_steps - 1)
    assert len(ends) == 3 and sum(ends) == total
    assert env.trials.pop_completed() == [Trial(ends, total)]


def test_trial_of_box_actions_rescales_and_restarts_episodes_that_end_early() -> None:
    family = registry.get_family("navigation2d")
    env = TrialEnv(family, {"goal": [0.1, 0.0]}, episodes=2)
    assert env.action_space.low.tolist() == [-1.0, -1.0]
    obs, _ = env.reset(seed=0)
    obs, reward, _, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    # A unit action is the family's largest step (0.1): it reaches the goal, ending episode 0;
    # the observation is the next episode's start at the origin, flagged.
    assert info["trial_episode"] == 0 and not truncated
    assert np.allclose(obs, [0.0, 0.0, 1.0, 0.0, reward, 1.0])
    obs, _, _, _, _ = env.step(np.array([-3.0, 0.5], dtype=np.float32))
    assert np.allclose(obs[:2], [-0.1, 0.05]) and np.allclose(obs[2:4], [-1.0, 0.5])
    assert obs[5] == 0.0


def test_trial_of_steps_plays_on_past_early_ends_and_stops_inside_an_episode() -> None:
    family = registry.get_family("navigation2d")
    env = TrialEnv(family, {"goal": [0.1, 0.0]}, steps=5)
    env.reset(seed=0)
    to_goal, away = np.array([1.0, 0.0], np.float32), np.array([-1.0, 0.0], np.float32)
    ends = []
    for action in (to_goal, to_goal, away, away):  # two one-step episodes, then a long one
        _, _, _, truncated, info = env.step(action)
        ends.append(info.get("trial_episode"))
        assert not truncated
    _, reward, terminated, truncated, _ = env.step(away)
    assert ends == [0, 1, None, None] and not terminated and truncated
    (trial,) = env.trials.pop_completed()
    assert len(trial.returns) == 2 and trial.total < sum(trial.returns)


def test_a_trial_needs_a_length() -> None:
    family = registry.get_family("bandit-5")
    with pytest.raises(ConfigError, match="give episodes, steps or both"):
        TrialEnv(family)
    with pytest.raises(ConfigError, match="at least 1 of its steps, got 0"):
        TrialEnv(family, steps=0)


def fallback(family: TaskFamily) -> TaskFamily:
    """``family`` with the generic batched env over single envs in place of its native one."""
    copy = copy_module.copy(family)
    copy.make_vector_env = functools.partial(TaskFamily.make_vector_env, family)  # type: ignore
    return copy


@pytest.mark.parametrize(("name", "episodes"), [("bandit-5", 1), ("navigation2d", 3),
                                              ("maze", 3)])
def test_trials_step_alike_through_the_native_and_the_generic_batched_env(
    name: str, episodes: int
) -> None:
    # navigation2d and maze start every episode in the same state, so their trials agree
    # across the episodes that restart inside them; bandit-5's draws agree within an episode
    # (a single env restarted without a seed draws a new stream).
    family = registry.get_family(name)
    steps = episodes * family.max_episode_steps
    tasks = family.test_tasks(3)
    if name == "navigation2d":  # column 0 reaches its goal in one step, every episode
        tasks[0] = {"goal": [0.1, 0.0]}
    batched, looped = TrialBatch(family, tasks, steps=steps), TrialBatch(fallback(family), tasks,
                                                                         steps=steps)
    assert isinstance(looped.env, SyncBatchedEnv) and not isinstance(batched.env, SyncBatchedEnv)
    rng = np.random.default_rng(0)
    assert np.array_equal(batched.reset(7), looped.reset(7))
    ends = 0
    for _ in range(steps):
        if isinstance(batched.codec.space, gym.spaces.Box):
            actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
            actions[0] = [1.0, 0.0]
        else:
            actions = rng.integers(batched.codec.space.n, size=3)
        a, b = batched.step(actions), looped.step(actions)
        for field in ("observations", "rewards", "episode_returns"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-6)
        for field in ("episode_ended", "trial_over", "episode_index"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
        ends += int(a.episode_ended.sum())
    assert a.trial_over.all() and not batched.running.any()
    assert ends >= (3 if name != "navigation2d" else steps + 2)
    for x, y in zip(batched.pop_completed(), looped.pop_completed(), strict=True):
        np.testing.assert_allclose(x.returns, y.returns, atol=1e-6)
        assert x.total == pytest.approx(y.total)
    assert batched.pop_completed() == [] == looped.pop_completed()


def test_columns_end_their_trials_apart_and_stay_over() -> None:
    """Episode-limited trials of a family whose episodes end early end at different steps;
    a finished column earns nothing more until the batch restarts."""
    family = registry.get_family("navigation2d")
    trials = TrialBatch(family, [{"goal": [0.1, 0.0]}, {"goal": [0.4, 0.0]}], episodes=2)
    trials.reset(0)
    to_goal = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    first = trials.step(to_goal)
    assert first.episode_ended.tolist() == [True, False] and first.episode_index.tolist() == [0, 0]
    second = trials.step(to_goal)
    assert second.trial_over.tolist() == [True, False]
    third = trials.step(to_goal)
    assert third.rewards[0] == 0.0 and third.rewards[1] < 0
    assert trials.running.tolist() == [False, True]
    assert trials.restart()[:, :2].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert trials.running.all()


@pytest.mark.parametrize("name", ["bandit-5", "navigation2d", "maze"])
def test_trial_env_passes_gymnasiums_checker(name: str) -> None:
    family = registry.get_family(name)
    check_env(TrialEnv(family, episodes=2), skip_render_check=True)


def test_trial_switches_task_at_its_start() -> None:
    family = registry.get_family("bandit-5")
    first, second = family.test_tasks(2)
    env = TrialEnv(family, first, episodes=1)
    env.reset(seed=0, options={"task": second})
    assert env.task == second and env.trials.tasks == [second]
    env.reset(seed=0)
    assert env.task == second
