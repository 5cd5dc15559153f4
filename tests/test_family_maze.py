"""The maze family: contract, wall and goal dynamics worked out by hand, tools, drawing."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import metarl.envs.maze as maze
from metarl.family.checker import check_family
from metarl.family.rng import BatchRNG

UP, RIGHT, DOWN, LEFT = range(4)


@pytest.fixture(scope="module")
def family() -> maze.Maze:
    return maze.Maze()


def cell(row: int, col: int) -> int:
    return row * maze.SIZE + col


def step(family: maze.Maze, task: maze.MazeTask, cells: list[int], actions: list[int]):
    params = {k: np.repeat(v, len(cells)) for k, v in family.task_params([task]).items()}
    state = {"cell": np.array(cells, dtype=np.int64)}
    rng = BatchRNG.from_seed(0, len(cells))
    return family.transition(state, np.array(actions), params, rng)


def test_contract(family: maze.Maze) -> None:
    assert check_family(family) == []


def test_every_free_cell_is_reachable_from_the_start() -> None:
    for layout in range(len(maze.LAYOUTS)):
        free = maze.FREE[layout].reshape(-1)
        assert free[maze.START_CELL]
        assert np.all(maze.DISTANCE[layout, maze.START_CELL, free] < maze.N_CELLS)


def test_moves_into_walls_and_off_the_grid_stay_put(family: maze.Maze) -> None:
    task = maze.MazeTask(goal=(0, 5), layout=1)  # the box: walls at (1, 1..5), (2..4, 1), ...
    cells = [cell(2, 3), cell(2, 2), cell(3, 4), cell(0, 0), cell(0, 0), cell(6, 6), cell(2, 3)]
    actions = [UP, LEFT, RIGHT, UP, LEFT, DOWN, LEFT]
    state, _, terminated = step(family, task, cells, actions)
    expected = [cell(2, 3), cell(2, 2), cell(3, 4), cell(0, 0), cell(0, 0), cell(6, 6), cell(2, 2)]
    assert state["cell"].tolist() == expected
    assert not terminated.any()


def test_rewards_follow_the_maze_distance_and_the_goal_terminates() -> None:
    # Box layout, goal (0, 5): out of the south door, round the east side, 13 moves.
    env = gym.make(maze.Maze.env_id, task={"goal": [0, 5], "layout": 1})
    obs, _ = env.reset(seed=0)
    assert obs.argmax() == maze.START_CELL and obs.sum() == 1
    path = [DOWN] * 3 + [RIGHT] * 3 + [UP] * 6 + [LEFT]
    rewards, flags = [], []
    for action in path:
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        flags.append(terminated)
    np.testing.assert_allclose(rewards, [-0.1 * d for d in range(12, 0, -1)] + [1.0])
    assert flags == [False] * 12 + [True]
    assert obs.argmax() == cell(0, 5)
    assert maze.MazeTask(goal=(0, 5), layout=1).distance_from_start == 13


def test_bumping_a_wall_keeps_the_distance_penalty(family: maze.Maze) -> None:
    task = maze.MazeTask(goal=(0, 3), layout=1)  # straight above the start, behind the wall
    _, reward, _ = step(family, task, [cell(2, 3)], [UP])
    assert reward[0] == pytest.approx(-0.1 * 16)  # (2,3) -> door (5,3) -> ring -> (0,3)


def test_task_json_round_trip_and_validation(family: maze.Maze) -> None:
    task = maze.MazeTask(goal=(6, 2), layout=2)
    data = json.loads(json.dumps(family.task_to_json(task)))
    assert data == {"goal": [6, 2], "layout": 2}
    assert family.task_from_json(data) == task
    with pytest.raises(ValueError, match="not a free cell"):
        maze.MazeTask(goal=(1, 1), layout=1)  # a wall
    with pytest.raises(ValueError, match="other than the start"):
        maze.MazeTask(goal=maze.START, layout=0)
    with pytest.raises(ValueError, match="layout 7"):
        maze.MazeTask(goal=(0, 0), layout=7)


def test_ood_goals_are_never_training_goals(family: maze.Maze) -> None:
    train = family.sample_tasks(500, np.random.default_rng(0))
    ood = family.test_tasks(50, split="ood")
    assert not {t.goal for t in train} & set(maze.OOD_GOALS)
    assert {t.goal for t in ood} <= set(maze.OOD_GOALS)
    assert {t.layout for t in train} == set(range(len(maze.LAYOUTS)))


def test_invalid_action_is_named(family: maze.Maze) -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        step(family, maze.MazeTask(goal=(0, 0)), [maze.START_CELL], [4])


def test_stable_baselines3_runs_unchanged() -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make(maze.Maze.env_id), n_steps=64, batch_size=32, n_epochs=1)
    model.learn(128)


def test_rgb_frames_are_drawn_and_change() -> None:
    env = gym.make(maze.Maze.env_id, task={"goal": [0, 6], "layout": 0}, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.min() < first.max()
    for action in (RIGHT, RIGHT, UP):
        env.step(action)
    assert not np.array_equal(first, env.render())
    env.close()
