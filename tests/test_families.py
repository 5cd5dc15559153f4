"""Every registered family passes the contract checker; the checker catches each violation."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from families import META_WORLD_REPRESENTATIVE, conformance_families

import metarl
from metarl.envs.navigation2d import Navigation2D, NavigationTask
from metarl.family.checker import FamilyContractError, assert_family_ok, check_family


@pytest.mark.parametrize("name", [name for name in conformance_families()
                                  if name != META_WORLD_REPRESENTATIVE])  # its own file does
def test_registered_family_passes_checker(name):
    assert check_family(metarl.get_family(name)) == []


@pytest.mark.parametrize("name", conformance_families())
def test_gymnasium_make_and_frames(name):
    family = metarl.get_family(name)
    task = family.test_tasks(2)[1]
    env = gym.make(family.env_id, task=family.task_to_json(task), render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.std() > 0
    frames = [first]
    for _ in range(5):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(env.render())
        if terminated or truncated:
            break
    assert any(not np.array_equal(first, frame) for frame in frames[1:])


def test_all_six_families_are_listed():
    names = set(metarl.family_names())
    assert {"navigation2d", "tabular-mdp", "cartpole-tasks", "maze", "catch"} <= names
    assert any(name.startswith("bandit") for name in names)


def test_held_out_split_is_fixed_and_separate_from_training():
    family = metarl.get_family("navigation2d")
    assert family.test_tasks(5, seed=0) == family.test_tasks(5, seed=0)
    assert family.test_tasks(5, seed=0) != family.test_tasks(5, seed=1)
    assert family.test_tasks(5, seed=0) != family.sample_tasks(5, np.random.default_rng(0))
    assert all(max(map(abs, t.goal)) > 0.5 for t in family.test_tasks(10, split="ood"))
    with pytest.raises(ValueError, match="no split 'hard'"):
        family.test_tasks(3, split="hard")


# --- families that break the contract, one way each -------------------------------------------
class WrongSpace(Navigation2D):
    observation_space = gym.spaces.Box(-0.01, 0.01, shape=(2,), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class ArrayGoalTask:
    goal: np.ndarray


class NotSerialisable(Navigation2D):
    task_type = ArrayGoalTask

    def sample_tasks(self, n, rng):
        return [ArrayGoalTask(goal=g) for g in rng.uniform(-0.5, 0.5, size=(n, 2))]

    def task_params(self, tasks):
        return {"goal": np.array([t.goal for t in tasks])}


class Disagreeing(Navigation2D):
    """The batched env scales actions differently from the single env."""

    def make_vector_env(self, tasks, episodes_per_task):
        env = super().make_vector_env(tasks, episodes_per_task)
        if env.num_envs > 1:
            env.params = {"goal": env.params["goal"] + 1.0}
        return env


class NonDeterministic(Navigation2D):
    def initial_state(self, params, rng):
        return {"position": np.random.default_rng().normal(size=(rng.batch_size, 2)) * 0.01}


class NonFiniteReward(Navigation2D):
    def transition(self, state, action, params, rng):
        state, reward, terminated = super().transition(state, action, params, rng)
        return state, reward * np.inf, terminated


class NotFrozen(Navigation2D):
    @dataclasses.dataclass
    class MutableTask:
        goal: tuple[float, float]

    task_type = MutableTask


@pytest.mark.parametrize(
    ("family_class", "message"),
    [
        (WrongSpace, "outside observation_space"),
        (NotSerialisable, "not JSON-serialisable"),
        (Disagreeing, "batched and single env disagree"),
        (NonDeterministic, "not deterministic under a seed"),
        (NonFiniteReward, "not finite"),
        (NotFrozen, "not a frozen dataclass"),
    ],
)
def test_checker_names_each_violation(family_class, message):
    problems = check_family(family_class())
    assert any(message in problem for problem in problems), problems
    with pytest.raises(FamilyContractError, match=message):
        assert_family_ok(family_class())


def test_task_json_round_trip_and_bad_task():
    family = metarl.get_family("navigation2d")
    task = NavigationTask(goal=(0.25, -0.125))
    assert family.task_from_json(family.task_to_json(task)) == task
    with pytest.raises(ValueError, match="unknown"):
        family.task_from_json({"goal": [0, 0], "speed": 2})
    env = family.make_env({"goal": [0.3, 0.3]})
    env.reset(seed=0, options={"task": {"goal": [-0.3, 0.1]}})
    assert env.unwrapped.task == NavigationTask(goal=(-0.3, 0.1))
