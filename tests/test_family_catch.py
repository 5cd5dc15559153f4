"""The catch family: contract, catching and drift worked out by hand, tools, drawing."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest

import metarl.envs.catch as catch
from metarl.family.checker import check_family
from metarl.family.rng import BatchRNG

LEFT, STAY, RIGHT = range(3)
ORANGE, BLUE = range(2)
TASK = catch.CatchTask(good_kind=ORANGE, fall_speed=0.1, wind=0.02, paddle_speed=0.08)


@pytest.fixture(scope="module")
def family() -> catch.Catch:
    return catch.Catch()


def step(
    family: catch.Catch, task: catch.CatchTask, actions: list[int], **state: list[float]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One transition of a hand-built batch whose columns all play ``task``."""
    n = len(actions)
    params = {k: np.repeat(v, n) for k, v in family.task_params([task]).items()}
    arrays = {key: np.asarray(value) for key, value in state.items()}
    return family.transition(arrays, np.array(actions), params, BatchRNG.from_seed(0, n))


def test_contract(family: catch.Catch) -> None:
    assert check_family(family) == []


def test_catching_good_gives_plus_one_and_bad_minus_one(family: catch.Catch) -> None:
    still = catch.CatchTask(good_kind=ORANGE, fall_speed=0.1, wind=0.0, paddle_speed=0.08)
    _, reward, terminated = step(
        family,
        still,
        [STAY, STAY, STAY, STAY, STAY],
        paddle=[0.5, 0.5, 0.5, 0.5, 0.5],
        item_x=[0.5, 0.5, 0.62, 0.64, 0.5],  # caught within 0.13 of the paddle's centre
        item_y=[0.1, 0.1, 0.1, 0.1, 0.2],  # the last one is still falling
        kind=[ORANGE, BLUE, ORANGE, ORANGE, ORANGE],
    )
    assert reward.tolist() == [1.0, -1.0, 1.0, 0.0, 0.0]
    assert not terminated.any()

    flipped = catch.CatchTask(good_kind=BLUE, fall_speed=0.1, wind=0.0, paddle_speed=0.08)
    _, reward, _ = step(
        family,
        flipped,
        [STAY, STAY],
        paddle=[0.5, 0.5],
        item_x=[0.5, 0.5],
        item_y=[0.1, 0.1],
        kind=[ORANGE, BLUE],
    )
    assert reward.tolist() == [-1.0, 1.0]


def test_wind_fall_and_paddle_speed_move_as_the_task_says(family: catch.Catch) -> None:
    state, reward, _ = step(
        family,
        catch.CatchTask(good_kind=ORANGE, fall_speed=0.15, wind=-0.03, paddle_speed=0.1),
        [LEFT, RIGHT, STAY, LEFT],
        paddle=[0.5, 0.5, 0.5, 0.05],
        item_x=[0.3, 0.3, 0.01, 0.3],
        item_y=[0.9, 0.9, 0.9, 0.9],
        kind=[ORANGE, BLUE, ORANGE, ORANGE],
    )
    np.testing.assert_allclose(state["paddle"], [0.4, 0.6, 0.5, 0.0])  # the last stops at 0
    np.testing.assert_allclose(state["item_x"], [0.27, 0.27, 0.0, 0.27])  # wall at 0
    np.testing.assert_allclose(state["item_y"], [0.75] * 4)
    assert state["kind"].tolist() == [ORANGE, BLUE, ORANGE, ORANGE]
    assert reward.tolist() == [0.0] * 4


def test_an_episode_lands_items_on_schedule_and_respawns_them() -> None:
    env = gym.make(catch.Catch.env_id, task=dataclasses.replace(TASK, wind=0.0))
    obs, _ = env.reset(seed=3)
    paddle, item_x = obs[0], obs[1]
    assert paddle == pytest.approx(0.5) and obs[2] == 1.0 and obs[3] + obs[4] == 1
    value = TASK.item_values[int(obs[4])]
    # Walk the paddle under the item, then wait: with fall speed 0.1 it lands on step 10.
    heights, total = [], 0.0
    for _ in range(10):
        gap = item_x - paddle
        action = STAY if abs(gap) < 0.04 else (RIGHT if gap > 0 else LEFT)
        obs, reward, terminated, truncated, _ = env.step(action)
        paddle, total = obs[0], total + reward
        heights.append(float(obs[2]))
        assert not terminated and not truncated
    np.testing.assert_allclose(
        heights, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 1.0], atol=1e-6
    )
    assert total == value  # the first item was caught: +1 if orange, -1 if blue
    for _ in range(50):
        *_, terminated, truncated, _ = env.step(STAY)
    assert truncated and not terminated  # 60 steps, no termination


def test_item_spawns_come_from_the_seed() -> None:
    env = gym.make(catch.Catch.env_id, task=TASK)
    first = [env.reset(seed=s)[0][[1, 3]].tolist() for s in (0, 1, 2, 0)]
    assert first[0] == first[3]
    assert len({tuple(x) for x in first[:3]}) == 3


def test_task_json_round_trip_and_validation(family: catch.Catch) -> None:
    data = json.loads(json.dumps(family.task_to_json(TASK)))
    assert data == {"good_kind": 0, "fall_speed": 0.1, "wind": 0.02, "paddle_speed": 0.08}
    assert family.task_from_json(data) == TASK
    assert TASK.item_values == (1.0, -1.0)
    assert TASK.steps_to_fall == pytest.approx(10.0)
    assert TASK.drift_per_fall == pytest.approx(0.2)
    with pytest.raises(ValueError, match="good_kind 2"):
        catch.CatchTask(good_kind=2, fall_speed=0.1, wind=0.0, paddle_speed=0.1)
    with pytest.raises(ValueError, match="fall_speed 0.0"):
        catch.CatchTask(good_kind=0, fall_speed=0.0, wind=0.0, paddle_speed=0.1)


def test_splits(family: catch.Catch) -> None:
    train = family.sample_tasks(300, np.random.default_rng(0))
    ood = family.test_tasks(50, split="ood")
    assert max(abs(t.wind) for t in train) <= catch.WIND_LIMIT
    assert min(abs(t.wind) for t in ood) >= catch.WIND_LIMIT
    assert {t.good_kind for t in train} == {ORANGE, BLUE}


def test_invalid_action_is_named(family: catch.Catch) -> None:
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        step(family, TASK, [3], paddle=[0.5], item_x=[0.5], item_y=[1.0], kind=[0])


def test_stable_baselines3_runs_unchanged() -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make(catch.Catch.env_id), n_steps=64, batch_size=32, n_epochs=1)
    model.learn(128)


def test_rgb_frames_are_drawn_and_change() -> None:
    env = gym.make(catch.Catch.env_id, task=TASK, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.min() < first.max()
    for _ in range(3):
        env.step(RIGHT)
    assert not np.array_equal(first, env.render())
    env.close()
