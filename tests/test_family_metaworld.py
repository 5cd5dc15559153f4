"""The Meta-World families: tasks and their JSON, splits against Meta-World's benchmarks,
success, batched envs (in worker processes) against single envs, the checker, frames, and the
optional dependency.

Needs the ``[metaworld]`` extra (its own environment, ``make .venv-mw``: Meta-World pins
MuJoCo 3.3.0); elsewhere only the test of the unavailable listing runs.
"""

from __future__ import annotations

import functools
import json
import pickle
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import gymnasium
import numpy as np
import pytest

import metarl
from metarl.family.checker import check_family
from metarl.family.parallel import ParallelBatchedEnv
from metarl.family.vector import SyncBatchedEnv, episode_successes


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


HAVE_METAWORLD = _installed("metaworld") is not None and _installed("mujoco") == "3.3.0"
needs_metaworld = pytest.mark.skipif(
    not HAVE_METAWORLD,
    reason="needs the [metaworld] extra with mujoco 3.3.0 (make .venv-mw; make test runs "
           "this file there)",
)

if HAVE_METAWORLD:
    import metaworld
    from metaworld import env_dict

    from metarl.envs.metaworld import ML1_ENVS, MetaWorldTask
    from metarl.envs.metaworld import env as env_module
    from metarl.envs.metaworld.family import _column_env, split_goals
    from metarl.envs.metaworld.render import RenderError


def reach():
    return metarl.get_family("ml1-reach")


def goal_position(env: gymnasium.Env) -> np.ndarray:
    """Where the env's goal is (hidden from the observation), after a reset."""
    return np.array(env.unwrapped.simulator._target_pos)


def towards_goal(obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """A scripted reach: move the hand (obs[:3]) toward the goal, gripper open."""
    return np.append(np.clip(10.0 * (goal - obs[:3]), -1, 1), -1.0).astype(np.float32)


# --- the optional dependency ------------------------------------------------------------------
@pytest.mark.skipif(_installed("metaworld") is not None, reason="Meta-World is installed here")
def test_without_metaworld_the_families_are_listed_as_unavailable(tmp_path) -> None:
    script = (
        "from metarl.cli import main\n"
        "assert main(['families']) == 0\n"
        "assert main(['check', 'ml1-reach']) == 2\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(52 families) unavailable: needs Meta-World: pip install -e '.[metaworld]'" \
        in done.stdout
    assert "task family 'ml1-reach' needs Meta-World" in done.stderr


@needs_metaworld
def test_another_mujoco_is_explained(monkeypatch) -> None:
    """Meta-World's envs fail to build on MuJoCo 4: the families say which version they need."""
    import metarl.envs.metaworld as package

    monkeypatch.setattr(package, "_installed",
                        lambda name: "4.0.0" if name == "mujoco" else "3.1.1")
    reason = package._why_unavailable()
    assert reason.startswith("needs mujoco==3.3.0 (Meta-World's pin), found 4.0.0: pip install")


# --- names, tasks, splits -----------------------------------------------------------------------
@needs_metaworld
def test_one_family_per_environment_plus_ml10_and_ml45() -> None:
    assert list(ML1_ENVS) == list(env_dict.ALL_V3_ENVIRONMENTS) == metaworld.ML1.ENV_NAMES
    names = set(metarl.family_names())
    assert {"ml1-reach", "ml1-push", "ml1-pick-place", "ml1-button-press-topdown-wall",
            "ml10", "ml45"} <= names
    assert len([name for name in names if name.startswith("ml1-")]) == 50
    family = reach()
    assert family.env_id == "metarl/ML1-reach-v0" and family.max_episode_steps == 500
    assert family.success_key == "success"
    assert family.action_space == gymnasium.spaces.Box(-1, 1, (4,), np.float32)


@needs_metaworld
def test_tasks_round_trip_through_json() -> None:
    for name in ("ml1-reach", "ml10", "ml45"):
        family = metarl.get_family(name)
        tasks = family.sample_tasks(3, np.random.default_rng(0)) + family.test_tasks(3)
        for task in tasks:
            text = json.dumps(family.task_to_json(task))
            assert set(json.loads(text)) == {"benchmark", "env", "split", "goal", "seed"}
            assert family.task_from_json(json.loads(text)) == task
    task = reach().test_tasks(1)[0]
    env = gymnasium.make("metarl/ML1-reach-v0", task=reach().task_to_json(task))
    assert env.unwrapped.task == task and env.spec.max_episode_steps == 500
    env.close()


@needs_metaworld
@pytest.mark.parametrize(("data", "message"), [
    ({"benchmark": "ML2", "env": "reach-v3", "split": "train", "goal": 0, "seed": 0},
     "benchmark"),
    ({"benchmark": "ML1", "env": "reach-v2", "split": "train", "goal": 0, "seed": 0}, "env"),
    ({"benchmark": "ML10", "env": "reach-v3", "split": "test", "goal": 0, "seed": 0}, "env"),
    ({"benchmark": "ML1", "env": "reach-v3", "split": "valid", "goal": 0, "seed": 0}, "split"),
    ({"benchmark": "ML1", "env": "reach-v3", "split": "test", "goal": 50, "seed": 0}, "goal"),
    ({"benchmark": "ML1", "env": "reach-v3", "split": "test", "goal": 1.0, "seed": 0}, "goal"),
    ({"benchmark": "ML1", "env": "reach-v3", "split": "test", "goal": 1, "seed": -1}, "seed"),
    ({"benchmark": "ML1", "env": "push-v3", "split": "test", "goal": 1, "seed": 0},
     "not a task of family 'ml1-reach'"),
])
def test_bad_tasks_are_rejected(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        reach().coerce_task(data)


@needs_metaworld
def test_goals_are_meta_worlds() -> None:
    """The goals a task rebuilds are those of metaworld.ML1(env, seed), train and test."""
    benchmark = metaworld.ML1("reach-v3", seed=3)
    for split, theirs in (("train", benchmark.train_tasks), ("test", benchmark.test_tasks)):
        ours = split_goals("ML1", split, 3, "reach-v3")["reach-v3"]
        assert [task.data for task in ours] == [task.data for task in theirs]
    env_class, resolved = reach().resolve(MetaWorldTask("ML1", "reach-v3", "test", 7, 3))
    assert env_class is env_dict.ALL_V3_ENVIRONMENTS["reach-v3"]
    assert resolved.data == benchmark.test_tasks[7].data


@needs_metaworld
def test_ml1_train_and_test_goals_differ() -> None:
    family = reach()
    train = family.sample_tasks(200, np.random.default_rng(0))
    test = family.test_tasks(50)
    assert {task.split for task in train} == {"train"} and {t.split for t in test} == {"test"}
    assert len(set(test)) == 50 and len({t.goal for t in train}) > 40

    def rand_vecs(split: str) -> set[tuple[float, ...]]:
        goals = split_goals("ML1", split, 0, "reach-v3")["reach-v3"]
        return {tuple(pickle.loads(task.data)["rand_vec"]) for task in goals}

    assert len(rand_vecs("train")) == len(rand_vecs("test")) == 50
    assert not rand_vecs("train") & rand_vecs("test")
    # and the envs put the goal at different places
    positions = []
    for task in (train[0], test[0]):
        env = family.make_env(task)
        env.reset(seed=0)
        positions.append(goal_position(env))
        env.close()
    assert np.abs(positions[0] - positions[1]).max() > 1e-3


@needs_metaworld
@pytest.mark.parametrize("name", ["ml10", "ml45"])
def test_ml10_and_ml45_train_and_test_environments_differ(name: str) -> None:
    family = metarl.get_family(name)
    table = {"ml10": env_dict.ML10_V3, "ml45": env_dict.ML45_V3}[name]
    train_envs = {task.env for task in family.sample_tasks(1000, np.random.default_rng(0))}
    test = family.test_tasks(250)
    assert train_envs == set(table["train"]) and {t.env for t in test} == set(table["test"])
    assert not train_envs & {t.env for t in test}
    assert len(train_envs) == {"ml10": 10, "ml45": 45}[name]
    assert len(set(test)) == 250  # 5 environments x 50 goals, each once
    first = [task.env for task in test[:10]]
    assert sorted(first) == sorted(2 * list(table["test"]))  # environments in turn
    assert family.test_tasks(10, seed=0) == test[:10] != family.test_tasks(10, seed=1)


# --- success --------------------------------------------------------------------------------------
@needs_metaworld
def test_success_is_counted_once_per_episode_that_reaches_it() -> None:
    """Column 0 reaches for the goal (scripted), column 1 does nothing: the batched env's
    flags say success from some step on in column 0 only, and episode_successes counts one."""
    family = reach()
    task = family.test_tasks(1)[0]
    probe = family.make_env(task)
    probe.reset(seed=0)
    goal = goal_position(probe)
    probe.close()
    env = family.make_vector_env([task], 2)
    obs, _ = env.reset(seed=0)
    flags = []
    for _ in range(120):
        actions = np.stack([towards_goal(obs[0], goal), np.zeros(4, dtype=np.float32)])
        obs, _, _, _, info = env.step(actions)
        flags.append(info["success"])
    env.close()
    flags = np.array(flags)
    assert flags.dtype == np.bool_ and flags.shape == (120, 2)
    first = int(np.argmax(flags[:, 0]))
    assert 0 < first < 100 and not flags[:, 1].any()
    assert episode_successes(flags).tolist() == [True, False]
    assert episode_successes(flags).sum() == 1
    mask = np.ones_like(flags, dtype=np.float32)
    mask[first:] = 0  # an episode that ended before it got there did not succeed
    assert episode_successes(flags, mask).tolist() == [False, False]


# --- envs ----------------------------------------------------------------------------------------
@needs_metaworld
def test_batched_env_agrees_with_single_envs_in_worker_processes() -> None:
    family = type(reach())("reach-v3", workers=2)
    tasks = family.test_tasks(2) + family.sample_tasks(1, np.random.default_rng(0))
    batched = family.make_vector_env(tasks, 2)
    assert isinstance(batched, ParallelBatchedEnv) and batched.num_envs == 6
    singles = [family.make_env(task) for task in tasks for _ in range(2)]
    obs, _ = batched.reset(seed=5)
    np.testing.assert_array_equal(obs, [env.reset(seed=5 + i)[0] for i, env in
                                        enumerate(singles)])
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.uniform(-1, 1, size=(6, 4)).astype(np.float32)
        obs, reward, terminated, truncated, info = batched.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, single_info = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert reward[i] == r and terminated[i] == term and not truncated[i]
            assert info["success"][i] == single_info["success"]
    batched.close()
    for env in singles:
        env.close()


@needs_metaworld
def test_parallel_env_agrees_with_sync_batched_env() -> None:
    """pick-place, 3 uneven shares (2, 1, 1): the same columns here and in workers."""
    family = metarl.get_family("ml1-pick-place")
    tasks = family.test_tasks(2) + family.sample_tasks(1, np.random.default_rng(1))
    columns = [*tasks, tasks[0]]
    sync = SyncBatchedEnv([family.make_env(task) for task in columns], flags=("success",))
    factories = [functools.partial(_column_env, family, task, family.resolve(task))
                 for task in columns]
    parallel = ParallelBatchedEnv(factories, workers=3, flags=("success",))
    np.testing.assert_array_equal(sync.reset(seed=11)[0], parallel.reset(seed=11)[0])
    rng = np.random.default_rng(2)
    for _ in range(40):
        actions = rng.uniform(-1, 1, size=(4, 4)).astype(np.float32)
        for a, b in zip(sync.step(actions), parallel.step(actions)):
            if isinstance(a, dict):
                assert a.keys() == b.keys() and np.array_equal(a["success"], b["success"])
            else:
                np.testing.assert_array_equal(a, b)
    sync.close()
    parallel.close()


@needs_metaworld
def test_reused_simulator_behaves_like_a_new_one() -> None:
    family = metarl.get_family("ml1-push")
    first, second = family.sample_tasks(2, np.random.default_rng(3))
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(50, 4)).astype(np.float32)

    def trajectory(env: gymnasium.Env) -> np.ndarray:
        steps = [env.reset(seed=0)[0]]
        steps += [np.append(env.step(action)[0], env.step(action)[1]) for action in actions[:25]]
        return np.concatenate(steps)

    used = family.make_env(first)
    trajectory(used)
    used.close()  # its simulator goes back to the process's pool ...
    reused = family.make_env(second)
    assert reused.unwrapped.simulator is not None
    env_class, _ = family.resolve(second)
    kept = env_module._IDLE.pop(env_class, [])  # ... and a new one comes from nowhere else
    fresh = family.make_env(second)
    env_module._IDLE.setdefault(env_class, []).extend(kept)
    np.testing.assert_array_equal(trajectory(reused), trajectory(fresh))
    reused.close()
    fresh.close()


@needs_metaworld
def test_kept_simulators_stay_within_the_cap_after_a_class_is_leased_empty(monkeypatch) -> None:
    """A class whose kept simulators were all leased leaves no empty entry for the eviction
    to trip on (an ML10 run died there at iteration 29)."""
    class Simulator:
        closed = 0

        def close(self) -> None:
            Simulator.closed += 1

    class Reach(Simulator):
        pass

    class Push(Simulator):
        pass

    monkeypatch.setattr(env_module, "_IDLE", type(env_module._IDLE)())
    monkeypatch.setattr(env_module, "MAX_IDLE_SIMULATORS", 3)
    env_module.release(Reach())
    assert isinstance(env_module.lease(Reach), Reach)  # Reach's list is now empty
    assert env_module.idle_simulators() == 0
    for _ in range(4):
        env_module.release(Push())
    assert env_module.idle_simulators() == 3
    assert Simulator.closed == 1
    assert isinstance(env_module.lease(Reach), Reach)  # none kept: a new one


@needs_metaworld
def test_episode_is_500_steps() -> None:
    env = gymnasium.make("metarl/ML1-reach-v0")
    env.reset(seed=0)
    zero = np.zeros(4, dtype=np.float32)
    for step in range(1, 501):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated and truncated == (step == 500)
    with pytest.raises(RuntimeError, match="500 steps"):
        env.unwrapped.step(zero)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.unwrapped.step(np.full(4, np.nan))
    env.close()


@needs_metaworld
def test_checker_passes() -> None:
    assert check_family(reach()) == []


@needs_metaworld
def test_ml10_env_switches_environment_by_reset_options() -> None:
    family = metarl.get_family("ml10")
    drawer, door = (next(t for t in family.test_tasks(10) if t.env == env)
                    for env in ("drawer-open-v3", "door-close-v3"))
    env = family.make_env(drawer)
    env.reset(seed=0)
    assert type(env.unwrapped.simulator).__name__ == "SawyerDrawerOpenEnvV3"
    obs, _ = env.reset(seed=0, options={"task": family.task_to_json(door)})
    assert env.unwrapped.task == door
    assert type(env.unwrapped.simulator).__name__ == "SawyerDoorCloseEnvV3"
    assert env.observation_space.contains(obs)
    env.close()


# --- frames -------------------------------------------------------------------------------------
@needs_metaworld
def test_frames_show_the_scene_and_each_step() -> None:
    env = gymnasium.make("metarl/ML1-reach-v0", render_mode="rgb_array")
    env.reset(seed=0)
    try:
        frame = env.render()
    except RenderError as error:
        pytest.skip(str(error))
    assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8 and frame.std() > 20
    before = env.render()
    for _ in range(3):
        env.step(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    assert np.abs(env.render().astype(int) - before).sum() > 1000  # the arm moved
    env.close()


@needs_metaworld
def test_a_missing_opengl_is_one_line_naming_the_fix(monkeypatch) -> None:
    """OSMesa asked for while PyOpenGL is set up for EGL (or OSMesa missing, as on the
    machine image): one line that names the packages to install."""
    from metarl.envs.metaworld import render

    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")  # so nothing switches this process to OSMesa
    env = reach().make_env(render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(render.RenderError) as error:
        env.render()
    env.close()
    message = str(error.value)
    assert "\n" not in message and message.startswith("MuJoCo cannot render offscreen here")
    assert "libegl1" in message and "libosmesa6" in message


# --- a smoke run --------------------------------------------------------------------------------
@needs_metaworld
def test_random_actions_through_the_batched_env_and_pickling() -> None:
    family = pickle.loads(pickle.dumps(metarl.get_family("ml1-pick-place")))
    env = family.make_vector_env(family.sample_tasks(3, np.random.default_rng(0)), 2)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (6, 39) and np.isfinite(reward).all() and not terminated.any()
    assert ((0 <= reward) & (reward <= 10)).all() and info["success"].shape == (6,)
    assert all(family.observation_space.contains(o) for o in obs)
    env.close()


@pytest.mark.slow
@needs_metaworld
@pytest.mark.parametrize("name", ["ML10", "ML45"])
def test_ml10_and_ml45_goals_are_meta_worlds(name: str) -> None:
    """Both splits, built one at a time, equal Meta-World's own benchmark (about 15 s for
    ML10, a minute and a half for ML45)."""
    benchmark = getattr(metaworld, name)(seed=0)
    for split, theirs in (("train", benchmark.train_tasks), ("test", benchmark.test_tasks)):
        ours = [task for goals in split_goals(name, split, 0).values() for task in goals]
        assert [t.data for t in ours] == [t.data for t in theirs]
