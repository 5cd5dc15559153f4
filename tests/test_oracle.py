"""The oracle reference (a policy that knows the task): every family's oracle against a random
policy, the values it must reach where they are known, determinism, and the errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import metarl.envs  # noqa: F401  (registers the families)
import metarl.envs.maze as maze
from metarl.config import ConfigError
from metarl.envs.navigation2d import Navigation2D
from metarl.family.array import ArrayFamily, State, TaskArrays
from metarl.family.checker import check_family, run_checks
from metarl.family.oracle import has_oracle, oracle_returns, policy_returns
from metarl.family.vector import BatchedEnv
from metarl.registry import get_family

ORACLE_FAMILIES = ["navigation2d", "bandit-5", "bandit-10", "bandit-50", "tabular-mdp", "maze",
                   "catch", "cartpole-tasks"]


def random_actor(space: gym.spaces.Space, seed: int):
    """A policy that acts uniformly at random in ``space``, for a batch."""
    rng = np.random.default_rng(seed)

    def act(env: BatchedEnv) -> np.ndarray:
        batch = env.num_envs
        if isinstance(space, gym.spaces.Discrete):
            return rng.integers(space.n, size=batch)
        return rng.uniform(space.low, space.high, size=(batch, *space.shape)).astype(space.dtype)

    return act


def t_statistic(values: np.ndarray) -> float:
    return float(np.mean(values) / (np.std(values, ddof=1) / np.sqrt(len(values))))


@pytest.mark.parametrize("name", ORACLE_FAMILIES)
def test_oracle_beats_a_random_policy_on_held_out_tasks(name):
    family = get_family(name)
    assert has_oracle(family)
    tasks = family.test_tasks(40, seed=0)
    episodes = 1 if name == "cartpole-tasks" else 4  # its oracle plans ahead: the slow one
    oracle = oracle_returns(family, tasks, episodes, seed=0)
    random = policy_returns(family, tasks, episodes, 0, random_actor(family.action_space, 0))
    assert oracle.shape == (40,)
    gain = oracle - random
    assert np.mean(gain > 0) >= 0.9, (name, oracle, random)
    assert t_statistic(gain) > 10, (name, oracle.mean(), random.mean())


def test_navigation2d_oracle_return():
    family = Navigation2D()
    returns = oracle_returns(family, family.test_tasks(200, seed=0), 1, seed=0)
    assert round(float(returns.mean()), 2) == -0.54, returns.mean()


def triangulating_agent(family: Navigation2D, tasks, seed: int) -> np.ndarray:
    """A hand-written agent's first-episode return per task on Navigation2D: it stays put,
    moves 0.1 right, then 0.1 up, so its first three rewards are minus the distances to the
    goal from three known points; it solves for the goal and walks straight to it (as the
    oracle). It sees only its observations and rewards."""
    env = family.make_vector_env(tasks, 1)
    position, _ = env.reset(seed=seed)
    probes = [np.array([0.0, 0.0]), np.array([0.1, 0.0]), np.array([0.0, 0.1])]
    points, distances = [], []
    totals = np.zeros(env.num_envs)
    alive = np.ones(env.num_envs, dtype=bool)
    goal = None
    for t in range(family.max_episode_steps):
        if t < len(probes):
            action = np.tile(probes[t], (env.num_envs, 1))
        else:
            if goal is None:  # |g - p_i|^2 = d_i^2, less the first: two linear equations
                p0, d0 = points[0], distances[0]
                lhs = np.stack([2 * (p - p0) for p in points[1:]], axis=1)
                rhs = np.stack([d0**2 - d**2 + (p**2).sum(-1) - (p0**2).sum(-1)
                                for p, d in zip(points[1:], distances[1:], strict=True)], axis=1)
                goal = np.linalg.solve(lhs, rhs[..., None])[..., 0]
            action = np.clip(goal - position, -0.1, 0.1)
        position, reward, terminated, _, _ = env.step(action.astype(np.float32))
        if t < len(probes):
            points.append(position.astype(np.float64))
            distances.append(-reward)
        totals += np.where(alive, reward, 0.0)
        alive &= ~terminated
    return totals


def test_navigation2d_triangulating_agent_return():
    family = Navigation2D()
    tasks = family.test_tasks(200, seed=0)
    returns = triangulating_agent(family, tasks, seed=0)
    oracle = oracle_returns(family, tasks, 1, seed=0)
    assert abs(returns.mean() - -1.83) < 0.01, returns.mean()
    assert np.all(returns <= oracle + 1e-9)


@pytest.mark.parametrize("name", ["bandit-5", "bandit-10", "bandit-50"])
def test_bandit_oracle_earns_the_best_arms_expected_reward(name):
    family = get_family(name)
    tasks = family.test_tasks(40, seed=0)
    episodes = 50
    returns = oracle_returns(family, tasks, episodes, seed=0)
    best = np.array([task.best_prob for task in tasks])
    expected = 10 * best
    # Each episode's return is Binomial(10, best); the error of the mean over every episode:
    error = np.sqrt(np.sum(10 * best * (1 - best) / episodes)) / len(tasks)
    assert abs(returns.mean() - expected.mean()) < 4 * error, (returns.mean(), expected.mean())
    assert np.all(np.abs(returns - expected) < 4 * np.sqrt(10 * 0.25 / episodes) + 1e-9)


@pytest.mark.parametrize("split", ["test", "ood"])
def test_maze_oracle_reaches_every_goal_by_a_shortest_path(split):
    family = get_family("maze")
    tasks = list(maze.TRAIN_TASKS if split == "test" else maze.OOD_TASKS)
    distance = np.array([task.distance_from_start for task in tasks])
    assert np.all(distance < maze.N_CELLS)  # every goal is reachable
    env = family.make_vector_env(tasks, 1)
    env.reset(seed=0)
    steps = np.zeros(len(tasks), dtype=np.int64)
    totals = np.zeros(len(tasks))
    alive = np.ones(len(tasks), dtype=bool)
    for _ in range(family.max_episode_steps):
        _, reward, terminated, _, _ = env.step(family.oracle_action(env.state, env.params))
        totals += np.where(alive, reward, 0.0)
        steps += alive
        alive &= ~terminated
    assert not alive.any()
    np.testing.assert_array_equal(steps, distance)
    np.testing.assert_allclose(totals, 1 - 0.1 * distance * (distance - 1) / 2, atol=1e-12)
    np.testing.assert_allclose(oracle_returns(family, tasks, 2, seed=0), totals, atol=1e-12)


def greedy_on_immediate_reward(env: BatchedEnv) -> np.ndarray:
    """Tabular MDP: the action of largest mean reward in the current state."""
    state, params = env.state, env.params
    batch = np.arange(state["state"].size)
    return np.argmax(params["reward_means"][batch, state["state"]], axis=-1)


def test_tabular_mdp_oracle_is_optimal():
    family = get_family("tabular-mdp")
    tasks = family.test_tasks(40, seed=0)
    params = family.task_params(tasks)
    # The expected optimal return, computed: the value of the start state 0 at step 0.
    best = params["optimal_q"][:, 0, 0].max(axis=-1)
    # The greedy policy's expected return, by backward policy evaluation.
    greedy = params["reward_means"].argmax(axis=-1)  # [n, S]
    rows = np.arange(len(tasks))[:, None], np.arange(tasks[0].n_states)[None, :]
    reward, moves = params["reward_means"][(*rows, greedy)], params["transitions"][(*rows, greedy)]
    value = np.zeros(reward.shape)
    for _ in range(family.max_episode_steps):
        value = reward + np.einsum("nsj,nj->ns", moves, value)
    assert np.all(best >= value[:, 0] - 1e-9) and best.mean() > value[:, 0].mean() + 0.2

    episodes = 200
    returns = oracle_returns(family, tasks, episodes, seed=0)
    greedy_returns = policy_returns(family, tasks, episodes, 0, greedy_on_immediate_reward)
    assert t_statistic(returns - greedy_returns) > 3, (returns.mean(), greedy_returns.mean())
    for sampled, expected in ((returns, best), (greedy_returns, value[:, 0])):
        error = sampled - expected
        assert abs(error.mean()) < 4 * error.std(ddof=1) / np.sqrt(len(tasks)), \
            (sampled.mean(), expected.mean())


@pytest.mark.parametrize("name", ["catch", "tabular-mdp"])
def test_oracle_returns_are_reproducible_for_a_seed(name):
    family = get_family(name)
    tasks = family.test_tasks(10, seed=0)
    first = oracle_returns(family, tasks, 3, seed=5)
    np.testing.assert_array_equal(first, oracle_returns(family, tasks, 3, seed=5))
    assert not np.array_equal(first, oracle_returns(family, tasks, 3, seed=6))


def test_oracle_returns_columns_are_seeded_like_single_envs():
    family = get_family("catch")
    tasks = family.test_tasks(3, seed=0)
    together = oracle_returns(family, tasks, 2, seed=7)
    # Column i = 2 * task + episode is seeded with 7 + i, as a single env would be.
    alone = [oracle_returns(family, [tasks[i // 2]], 1, seed=7 + i)[0] for i in range(6)]
    np.testing.assert_allclose(together, np.reshape(alone, (3, 2)).mean(axis=1))


class BlindNavigation(Navigation2D):
    """Navigation2D without an oracle."""

    name = "blind-navigation"
    oracle_action = ArrayFamily.oracle_action


def test_a_family_without_an_oracle_says_so():
    family = BlindNavigation()
    assert not family.has_oracle and not has_oracle(family)
    with pytest.raises(ConfigError, match="family 'blind-navigation' has no oracle"):
        oracle_returns(family, family.test_tasks(2), 1, seed=0)
    result = {r.name: r for r in run_checks(family)}["oracle"]
    assert result.problems == [] and result.status == "n/a"


def test_locomotion_families_have_no_oracle():
    pytest.importorskip("mujoco")
    family = get_family("halfcheetah-vel")
    assert not has_oracle(family)
    with pytest.raises(ConfigError, match="family 'halfcheetah-vel' has no oracle"):
        oracle_returns(family, family.test_tasks(1), 1, seed=0)


def test_bad_arguments_are_config_errors():
    family = Navigation2D()
    with pytest.raises(ConfigError, match="episodes"):
        oracle_returns(family, family.test_tasks(2), 0, seed=0)
    with pytest.raises(ConfigError, match="at least one task"):
        oracle_returns(family, [], 1, seed=0)


class WrongShapeOracle(Navigation2D):
    name = "wrong-shape-oracle"

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        return super().oracle_action(state, params)[:, 0]


class OutsideOracle(Navigation2D):
    name = "outside-oracle"

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        return (params["goal"] - state["position"]).astype(np.float32)  # not clipped


@pytest.mark.parametrize(("family_class", "message"), [
    (WrongShapeOracle, "oracle_action(state, params) must return a numpy array of actions "
                       "[B, *action shape] = (6, 2), got ndarray of shape (6,)"),
    (OutsideOracle, "outside the action space Box(-0.1, 0.1, (2,), float32)"),
])
def test_checker_catches_a_bad_oracle(family_class, message):
    problems = check_family(family_class())
    assert len(problems) == 1 and message in problems[0], problems
    assert {r.name: r for r in run_checks(family_class())}["oracle"].status == "FAIL"
