"""The random tabular MDP family: contract, dynamics checked against the task, tools, drawing."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from frames import assert_every_step_redraws

from metarl.envs.tabular_mdp import HORIZON, N_ACTIONS, N_STATES, TabularMDP, TabularMDPTask
from metarl.family.checker import check_family


def constant_task(next_state: int, reward: float) -> TabularMDPTask:
    """Every (state, action) leads to ``next_state`` with mean reward ``reward``."""
    transitions = np.zeros((N_STATES, N_ACTIONS, N_STATES))
    transitions[:, :, next_state] = 1.0
    return TabularMDPTask(
        transitions=transitions, reward_means=np.full((N_STATES, N_ACTIONS), reward)
    )


def test_contract() -> None:
    assert check_family(TabularMDP()) == []


def test_registered() -> None:
    env = gym.make("metarl/TabularMDP-v0")
    assert env.spec.max_episode_steps == HORIZON == 10
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space.shape == (10,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.eye(N_STATES)[0])
    for _ in range(HORIZON - 1):
        obs, _, terminated, truncated, _ = env.step(0)
        assert obs.sum() == 1.0 and not (terminated or truncated)
    *_, terminated, truncated, _ = env.step(0)
    assert (terminated, truncated) == (False, True)
    env.close()


def test_transitions_follow_the_task_matrix() -> None:
    transitions = np.full((N_STATES, N_ACTIONS, N_STATES), 1.0 / N_STATES)
    row = np.array([0.1, 0.0, 0.2, 0.3, 0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    transitions[0, 2] = row
    task = TabularMDPTask(transitions=transitions, reward_means=np.zeros((N_STATES, N_ACTIONS)))
    columns = 20000
    env = TabularMDP().make_vector_env([task], episodes_per_task=columns)
    env.reset(seed=5)
    obs, *_ = env.step(np.full(columns, 2))
    frequencies = obs.mean(axis=0)
    std = np.sqrt(row * (1 - row) / columns)
    assert np.all(np.abs(frequencies - row) <= 5 * std + 1e-12)
    assert np.all(frequencies[row == 0] == 0)


def test_rewards_are_the_mean_plus_unit_noise() -> None:
    means = np.arange(N_STATES * N_ACTIONS, dtype=float).reshape(N_STATES, N_ACTIONS) / 10
    transitions = np.zeros((N_STATES, N_ACTIONS, N_STATES))
    transitions[:, :, 4] = 1.0
    task = TabularMDPTask(transitions=transitions, reward_means=means)
    columns = 20000
    env = TabularMDP().make_vector_env([task], episodes_per_task=columns)
    env.reset(seed=9)
    _, first, *_ = env.step(np.full(columns, 3))
    _, second, *_ = env.step(np.full(columns, 1))
    tolerance = 5 / np.sqrt(columns)
    assert abs(first.mean() - means[0, 3]) < tolerance
    assert abs(second.mean() - means[4, 1]) < tolerance
    assert abs(first.std() - 1.0) < 0.05


def test_each_column_runs_its_own_task() -> None:
    tasks = [constant_task(3, -1.0), constant_task(7, 2.0)]
    env = TabularMDP().make_vector_env(tasks, episodes_per_task=4)
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.arange(8) % N_ACTIONS)
    np.testing.assert_array_equal(obs.argmax(axis=1), [3] * 4 + [7] * 4)
    assert reward[:4].mean() < reward[4:].mean()


def test_sampled_tasks_match_the_prior() -> None:
    family = TabularMDP()
    tasks = family.sample_tasks(100, np.random.default_rng(0))
    transitions = np.array([task.transitions for task in tasks])
    means = np.array([task.reward_means for task in tasks])
    assert transitions.shape == (100, N_STATES, N_ACTIONS, N_STATES)
    np.testing.assert_allclose(transitions.sum(axis=-1), 1.0)
    assert abs(transitions.mean() - 1 / N_STATES) < 1e-9
    assert abs(means.mean() - 1.0) < 0.05 and abs(means.std() - 1.0) < 0.05


def test_task_json_round_trip_and_bad_tasks() -> None:
    family = TabularMDP()
    for task in family.test_tasks(3):
        data = json.loads(json.dumps(family.task_to_json(task)))
        assert family.task_from_json(data) == task
        assert isinstance(task.transitions[0][0], tuple)
    good = constant_task(0, 1.0)
    with pytest.raises(ValueError, match=r"transitions\[0\]\[0\]"):
        TabularMDPTask(
            transitions=np.full((N_STATES, N_ACTIONS, N_STATES), 0.2),
            reward_means=good.reward_means,
        )
    with pytest.raises(ValueError, match="reward_means must have shape"):
        TabularMDPTask(transitions=good.transitions, reward_means=((1.0,),))
    small = TabularMDPTask(transitions=np.ones((2, 1, 2)) / 2, reward_means=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="expects 10 and 5"):
        family.make_env(small)
    env = family.make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        env.step(5)


def test_stable_baselines3_ppo_runs() -> None:
    from stable_baselines3 import PPO

    env = gym.make("metarl/TabularMDP-v0")
    PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0).learn(128)
    env.close()


def test_rgb_frames_show_the_moves() -> None:
    assert_every_step_redraws(
        gym.make("metarl/TabularMDP-v0", render_mode="rgb_array"), (0, 1, 2)
    )
