"""The Bernoulli bandit families: contract, payoffs worked out by hand, Gymnasium tools, drawing."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from frames import assert_every_step_redraws

from metarl.envs.bandit import PULLS, Bandit, BanditTask
from metarl.family.checker import check_family

VARIANTS = [(5, "metarl/Bandit5-v0"), (10, "metarl/Bandit10-v0"), (50, "metarl/Bandit50-v0")]


@pytest.mark.parametrize("arms", [5, 10, 50])
def test_contract(arms: int) -> None:
    assert check_family(Bandit(arms)) == []


@pytest.mark.parametrize(("arms", "env_id"), VARIANTS)
def test_registered_variants(arms: int, env_id: str) -> None:
    family = Bandit(arms)
    assert (family.name, family.env_id) == (f"bandit-{arms}", env_id)
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == PULLS
    assert env.action_space == gym.spaces.Discrete(arms)
    assert env.observation_space.shape == (arms + 1,)
    assert env.unwrapped.task.arms == arms
    env.close()


def test_certain_arms_pay_always_or_never() -> None:
    task = BanditTask(probs=(1.0, 0.0, 0.5, 0.5, 0.5))
    env = Bandit(5).make_vector_env([task], episodes_per_task=200)
    env.reset(seed=7)
    for _ in range(PULLS // 2):
        _, reward, *_ = env.step(np.zeros(200, dtype=np.int64))
        assert np.all(reward == 1.0)
        _, reward, *_ = env.step(np.ones(200, dtype=np.int64))
        assert np.all(reward == 0.0)


def test_mean_payoff_matches_probability() -> None:
    probs = (0.1, 0.3, 0.8, 0.5, 0.5)
    columns = 4000
    env = Bandit(5).make_vector_env([BanditTask(probs=probs)], episodes_per_task=columns)
    env.reset(seed=3)
    rewards = np.array([env.step(np.arange(columns) % 3)[1] for _ in range(PULLS)])
    for arm in range(3):
        pulls = rewards[:, np.arange(columns) % 3 == arm]
        std = np.sqrt(probs[arm] * (1 - probs[arm]) / pulls.size)
        assert abs(pulls.mean() - probs[arm]) < 5 * std


def test_observation_is_last_pull_and_its_reward() -> None:
    env = Bandit(5).make_env(BanditTask(probs=(0.0, 0.0, 0.0, 1.0, 0.0)))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.zeros(6))
    obs, reward, terminated, truncated, _ = env.step(3)
    np.testing.assert_array_equal(obs, [0, 0, 0, 1, 0, 1])
    assert (reward, terminated, truncated) == (1.0, False, False)
    obs, reward, *_ = env.step(1)
    np.testing.assert_array_equal(obs, [0, 1, 0, 0, 0, 0])
    assert reward == 0.0
    for _ in range(PULLS - 3):
        assert not env.step(0)[3]
    assert env.step(0)[3]


def test_task_json_round_trip_and_bad_tasks() -> None:
    family = Bandit(10)
    for task in family.test_tasks(4) + family.test_tasks(4, split="ood"):
        data = json.loads(json.dumps(family.task_to_json(task)))
        assert family.task_from_json(data) == task
    assert BanditTask(probs=np.array([0.25, 0.75])).probs == (0.25, 0.75)
    with pytest.raises(ValueError, match="1.5"):
        BanditTask(probs=(0.2, 1.5))
    with pytest.raises(ValueError, match="expects 10"):
        family.make_env(BanditTask(probs=(0.2, 0.4)))
    with pytest.raises(ValueError, match="arms must be"):
        Bandit(1)
    env = family.make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        env.step(10)


def test_ood_split_pays_less_than_training() -> None:
    family = Bandit(10)
    train = np.array([task.probs for task in family.test_tasks(200)])
    ood = np.array([task.probs for task in family.test_tasks(200, split="ood")])
    assert abs(train.mean() - 0.5) < 0.02
    assert abs(ood.mean() - 1 / 6) < 0.02


def test_stable_baselines3_ppo_runs() -> None:
    from stable_baselines3 import PPO

    env = gym.make("metarl/Bandit5-v0")
    PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0).learn(128)
    env.close()


@pytest.mark.parametrize("arms", [5, 50])
def test_rgb_frames_show_the_pulls(arms: int) -> None:
    assert_every_step_redraws(
        gym.make(Bandit(arms).env_id, render_mode="rgb_array"), (0, 1, 1)
    )
