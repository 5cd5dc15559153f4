"""The cart-pole task family: contract, physics against Gymnasium, splits, rendering, SB3."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

import metarl.envs.cartpole as cartpole
from metarl.envs.cartpole import CartPoleTask, CartPoleTasks
from metarl.family.checker import check_family

FAMILY = CartPoleTasks()
GYMNASIUM_STATES = [
    (0.0, 0.0, 0.0, 0.0),
    (0.03, -0.02, 0.04, 0.01),
    (-1.2, 0.7, -0.15, 1.3),
    (2.0, -1.5, 0.2, -2.0),
]


def _env_at(task: CartPoleTask, state: tuple[float, float, float, float]) -> gymnasium.Env:
    """A single env for ``task`` placed in ``state``."""
    env = FAMILY.make_env(task)
    env.reset(seed=0)
    x, x_dot, theta, theta_dot = state
    env.unwrapped.state = {
        "x": np.array([x]),
        "x_dot": np.array([x_dot]),
        "theta": np.array([theta]),
        "theta_dot": np.array([theta_dot]),
        "force": np.zeros(1),
    }
    return env


def test_family_passes_the_checker() -> None:
    assert check_family(FAMILY) == []


@pytest.mark.parametrize("state", GYMNASIUM_STATES)
@pytest.mark.parametrize("action", [0, 1])
def test_default_task_steps_like_gymnasium(state: tuple[float, ...], action: int) -> None:
    reference = CartPoleEnv()
    reference.reset(seed=0)
    reference.state = np.array(state, dtype=np.float64)
    expected_obs, _, expected_terminated, _, _ = reference.step(action)

    env = _env_at(CartPoleTask(), state)
    obs, _, terminated, _, _ = env.step(action)
    inner = env.unwrapped.state
    stepped = [inner[key][0] for key in ("x", "x_dot", "theta", "theta_dot")]
    np.testing.assert_array_equal(stepped, reference.state)
    np.testing.assert_array_equal(obs, expected_obs)
    assert terminated == expected_terminated


@pytest.mark.parametrize("action", [0, 1])
def test_reversed_actuator_swaps_the_actions(action: int) -> None:
    state = GYMNASIUM_STATES[2]
    reversed_obs = _env_at(CartPoleTask(actuator_sign=-1), state).step(action)[0]
    plain_obs = _env_at(CartPoleTask(), state).step(1 - action)[0]
    np.testing.assert_array_equal(reversed_obs, plain_obs)


def test_one_step_worked_by_hand() -> None:
    task = CartPoleTask(gravity=10.0, cart_mass=0.9, pole_mass=0.1, pole_half_length=0.5)
    env = _env_at(task, (0.5, 0.2, 0.0, 0.0))
    obs, reward, terminated, _, _ = env.step(1)
    # Upright and at rest: temp = F / M = 10 / 1 = 10; thetaacc = -10 / (0.5 * (4/3 - 0.1)) =
    # -16.2162...; xacc = 10 - 0.05 * thetaacc / 1 = 10.8108...
    thetaacc = -10.0 / (0.5 * (4.0 / 3.0 - 0.1))
    xacc = 10.0 - 0.05 * thetaacc
    expected = [0.5 + 0.02 * 0.2, 0.2 + 0.02 * xacc, 0.0, 0.02 * thetaacc]
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    assert reward == pytest.approx(math.exp(-0.5 * (0.504 / 0.5) ** 2))
    assert not terminated


def test_pole_falls_without_control() -> None:
    task = CartPoleTask(force_mag=1e-9)
    env = _env_at(task, (0.0, 0.0, 0.01, 0.0))
    thetaacc = 9.8 * math.sin(0.01) / (0.5 * (4.0 / 3.0 - 0.1 * math.cos(0.01) ** 2 / 1.1))
    angles = []
    for step in range(200):
        obs, _, terminated, _, _ = env.step(step % 2)
        angles.append(obs[2])
        if step == 0:
            assert obs[3] == pytest.approx(0.02 * thetaacc, rel=1e-6)
        if terminated:
            break
    assert terminated and angles[-1] > cartpole.THETA_THRESHOLD
    assert np.all(np.diff(angles[1:]) > 0), "the pole should lean further every step"
    assert abs(obs[0]) < 0.1, "with no force the cart only recoils a little"


@pytest.mark.parametrize(
    ("state", "terminated"),
    [
        ((2.38, 0.5, 0.0, 0.0), False),
        ((2.39, 1.0, 0.0, 0.0), True),
        ((-2.39, -1.0, 0.0, 0.0), True),
        ((0.0, 0.0, 0.2, 0.0), False),
        ((0.0, 0.0, 0.2, 0.5), True),
        ((0.0, 0.0, -0.2, -0.5), True),
    ],
)
def test_termination(state: tuple[float, ...], terminated: bool) -> None:
    env = _env_at(CartPoleTask(force_mag=1e-9), state)
    assert env.step(0)[2] is terminated


def test_reward_peaks_on_the_hidden_target() -> None:
    task = CartPoleTask(target=0.7)
    assert _env_at(task, (0.7, 0.0, 0.0, 0.0)).step(0)[1] == pytest.approx(1.0)
    assert _env_at(task, (0.2, 0.0, 0.0, 0.0)).step(0)[1] == pytest.approx(math.exp(-0.5))
    assert _env_at(task, (-0.7, 0.0, 0.0, 0.0)).step(0)[1] < 0.05


def test_task_json_round_trip_and_make() -> None:
    task = FAMILY.test_tasks(1)[0]
    data = json.loads(json.dumps(FAMILY.task_to_json(task)))
    assert FAMILY.task_from_json(data) == task
    assert set(data) == {f.name for f in dataclasses.fields(CartPoleTask)}
    env = gymnasium.make("metarl/CartPoleTasks-v0", task=data)
    assert env.unwrapped.task == task
    assert env.spec.max_episode_steps == FAMILY.max_episode_steps
    env.reset(seed=0, options={"task": {**data, "actuator_sign": -task.actuator_sign}})
    assert env.unwrapped.task.actuator_sign == -task.actuator_sign


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actuator_sign": 0}, "actuator_sign"),
        ({"pole_mass": -0.1}, "pole_mass"),
        ({"target": 3.0}, "target"),
    ],
)
def test_bad_tasks_are_rejected(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CartPoleTask(**change)


def test_bad_action_is_rejected() -> None:
    env = FAMILY.make_env(CartPoleTask())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="0 or 1"):
        env.unwrapped.step(2)


def test_splits() -> None:
    train = FAMILY.sample_tasks(200, np.random.default_rng(0))
    test = FAMILY.test_tasks(200)
    ood = FAMILY.test_tasks(200, split="ood")
    for tasks in (train, test):
        assert all(abs(t.target) <= cartpole.TRAIN_TARGET for t in tasks)
        for key, (low, high) in cartpole.TRAIN_RANGES.items():
            assert all(low <= getattr(t, key) <= high for t in tasks)
        assert {t.actuator_sign for t in tasks} == {-1, 1}
    assert all(cartpole.TRAIN_TARGET < abs(t.target) <= cartpole.OOD_TARGET for t in ood)
    assert all(t.pole_half_length > cartpole.TRAIN_RANGES["pole_half_length"][1] for t in ood)
    assert test != train[:200]
    assert FAMILY.test_tasks(5, seed=1) != FAMILY.test_tasks(5, seed=0)


def test_rgb_array_frames_change_over_an_episode() -> None:
    env = gymnasium.make("metarl/CartPoleTasks-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (400, 600, 3) and first.dtype == np.uint8
    assert first.min() < first.max()
    for _ in range(10):
        env.step(1)
    assert not np.array_equal(env.render(), first)
    env.close()


def test_stable_baselines3_ppo_runs_unchanged() -> None:
    from stable_baselines3 import PPO

    model = PPO(
        "MlpPolicy",
        gymnasium.make("metarl/CartPoleTasks-v0"),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
    )
    model.learn(128)
