"""The MuJoCo locomotion families: contract, physics and rewards against Gymnasium's v5 envs,
splits, threads, clipping, drawing, SB3, and the optional dependency."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from frames import assert_every_step_redraws

import metarl
from metarl.family.checker import check_family

mujoco = pytest.importorskip("mujoco")

from metarl.envs.locomotion import (  # noqa: E402
    AntDir,
    AntGoal,
    DirectionTask,
    GoalTask,
    HalfCheetahDir,
    HalfCheetahVel,
    VelocityTask,
)
from metarl.envs.locomotion import ant as ant_module  # noqa: E402
from metarl.envs.locomotion import half_cheetah as cheetah_module  # noqa: E402

NAMES = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal"]
GYMNASIUM_ID = {"halfcheetah-vel": "HalfCheetah-v5", "halfcheetah-dir": "HalfCheetah-v5",
                "ant-dir": "Ant-v5", "ant-goal": "Ant-v5"}
STEPS = 60


def gymnasium_v5(env_id: str) -> gymnasium.Env:
    """Gymnasium's own env, built with MuJoCo's deprecation notice about its model file
    silenced (it would otherwise go to stderr and to MUJOCO_LOG.TXT in the working folder)."""
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)
    try:
        return gymnasium.make(env_id).unwrapped
    finally:
        mujoco.set_mju_user_warning(previous)


def expected_reward(name: str, task, info: dict) -> float:
    """The task's reward, written out from Gymnasium's own ``info`` for the same step."""
    if name == "halfcheetah-vel":
        return -abs(info["x_velocity"] - task.velocity) + info["reward_ctrl"]
    if name == "halfcheetah-dir":
        return task.direction * info["x_velocity"] + info["reward_ctrl"]
    costs = info["reward_ctrl"] + info["reward_contact"]  # both negative
    if name == "ant-dir":
        return task.direction * info["x_velocity"] + info["reward_survive"] + costs
    distance = math.hypot(info["x_position"] - task.goal[0], info["y_position"] - task.goal[1])
    return -distance + 4.0 * info["reward_survive"] + costs


@pytest.fixture(scope="module", params=NAMES)
def family(request):
    return metarl.get_family(request.param)


def test_family_passes_the_checker(family) -> None:
    assert check_family(family) == []


def test_batched_env_steps_like_gymnasium_v5(family) -> None:
    """Every column of a batched env, started from its own reset state, follows a Gymnasium
    v5 env put in that state and given the same actions: observations to float tolerance,
    rewards equal to the task's formula applied to Gymnasium's info, same terminations."""
    tasks = family.test_tasks(3)
    batched = family.make_vector_env(tasks, 1)
    obs, _ = batched.reset(seed=7)
    physics = batched.state["physics"].copy()
    if family.name.startswith("ant"):
        # column 2 starts too high: unhealthy after the first step, for both
        physics[2, 2] = 1.4
        batched.state["physics"] = physics.copy()
        batched.state["torso_xy"] = physics[:, :2].copy()
        obs = family.observe(batched.state, batched.params)
    model = family.physics
    references = []
    for column in range(3):
        env = gymnasium_v5(GYMNASIUM_ID[family.name])
        env.reset(seed=column)
        env.set_state(model.qpos(physics)[column], model.qvel(physics)[column])
        np.testing.assert_allclose(obs[column], env._get_obs(), rtol=0, atol=1e-12)
        references.append(env)
    rng = np.random.default_rng(0)
    alive = np.ones(3, dtype=bool)
    for _ in range(STEPS):
        actions = rng.uniform(-1, 1, size=batched.action_space.shape).astype(np.float32)
        obs, reward, terminated, _, _ = batched.step(actions)
        for column, env in enumerate(references):
            if not alive[column]:
                continue
            ref_obs, _, ref_terminated, _, info = env.step(actions[column])
            np.testing.assert_allclose(obs[column], ref_obs, rtol=1e-12, atol=1e-12)
            expected = expected_reward(family.name, tasks[column], info)
            assert reward[column] == pytest.approx(expected, rel=1e-6, abs=1e-6)
            assert terminated[column] == ref_terminated
        alive &= ~terminated
    if family.name.startswith("ant"):
        assert not alive[2], "the ant started too high should have terminated"


def test_terminated_columns_are_no_longer_simulated(monkeypatch) -> None:
    family = AntDir()
    env = family.make_vector_env(family.test_tasks(2), 1)
    env.reset(seed=0)
    env.state["physics"][1, 2] = 1.4  # too high: unhealthy after one step
    zero = np.zeros((2, 8), dtype=np.float32)
    assert env.step(zero)[2].tolist() == [False, True]
    step = family.physics.step
    simulated = []

    def recording_step(physics, ctrl, active=None):
        simulated.append(active.tolist())
        out = step(physics, ctrl, active)
        assert np.array_equal(out["physics"][1], physics[1]) and not out["cfrc_ext"][1].any()
        return out

    monkeypatch.setattr(family.physics, "step", recording_step)
    env.step(zero)
    assert simulated == [[True, False]]


def test_horizon_is_200_by_registration(family) -> None:
    env = gymnasium.make(family.env_id)
    assert env.spec.max_episode_steps == 200
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    for step in range(1, 201):
        _, _, terminated, truncated, _ = env.step(zero)
        if terminated:
            pytest.fail(f"{family.name} terminated at step {step} with zero actions")
        assert truncated == (step == 200)


def test_threads_do_not_change_results(family) -> None:
    threaded = type(family)(threads=2)
    tasks = family.test_tasks(4)
    envs = [f.make_vector_env(tasks, 2) for f in (family, threaded)]
    first = [env.reset(seed=3)[0] for env in envs]
    np.testing.assert_array_equal(*first)
    rng = np.random.default_rng(1)
    for _ in range(10):
        actions = rng.normal(size=envs[0].action_space.shape)
        one, two = (env.step(actions) for env in envs)
        for a, b in zip(one[:3], two[:3]):
            np.testing.assert_array_equal(a, b)
    threaded.physics.close()


def test_actions_outside_the_box_are_clipped(family) -> None:
    tasks = family.test_tasks(1)
    envs = [family.make_vector_env(tasks, 1) for _ in range(2)]
    for env in envs:
        env.reset(seed=5)
    big = np.full(envs[0].action_space.shape, 3.0)
    wild, clipped = envs[0].step(big), envs[1].step(np.ones_like(big))
    for a, b in zip(wild[:3], clipped[:3]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="finite"):
        envs[0].step(np.full_like(big, np.nan))


def test_family_pickles_and_steps_the_same(family) -> None:
    copy = pickle.loads(pickle.dumps(family))
    tasks = family.test_tasks(2)
    envs = [f.make_vector_env(tasks, 1) for f in (family, copy)]
    np.testing.assert_array_equal(*(env.reset(seed=0)[0] for env in envs))
    actions = np.full(envs[0].action_space.shape, 0.5)
    np.testing.assert_array_equal(*(env.step(actions)[0] for env in envs))


def test_frames_show_each_step(family) -> None:
    env = gymnasium.make(family.env_id, task=family.task_to_json(family.test_tasks(1)[0]),
                         render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (*reversed(family.env_class.render_size), 3)
    rng = np.random.default_rng(0)
    assert_every_step_redraws(
        env, [rng.uniform(-0.3, 0.3, env.action_space.shape).astype(np.float32)
              for _ in range(3)]
    )


def test_stable_baselines3_ppo_runs(family) -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gymnasium.make(family.env_id), n_steps=64, batch_size=32,
                n_epochs=1, seed=0, device="cpu")
    model.learn(128)


# --- tasks and splits --------------------------------------------------------------------------
def test_tasks_round_trip_through_json() -> None:
    for family, task in [
        (HalfCheetahVel(), VelocityTask(1.25)),
        (HalfCheetahDir(), DirectionTask(-1)),
        (AntDir(), DirectionTask(1)),
        (AntGoal(), GoalTask((1.5, -0.5))),
    ]:
        data = json.loads(json.dumps(family.task_to_json(task)))
        assert family.task_from_json(data) == task
        env = gymnasium.make(family.env_id, task=data)
        assert env.unwrapped.task == task
        env.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: VelocityTask(float("nan")), "velocity"),
        (lambda: VelocityTask("fast"), "velocity"),
        (lambda: DirectionTask(0), "direction"),
        (lambda: DirectionTask(True), "direction"),
        (lambda: GoalTask((1.0,)), "pair"),
        (lambda: GoalTask((1.0, float("inf"))), "goal"),
    ],
)
def test_bad_tasks_are_rejected(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_splits() -> None:
    vel = HalfCheetahVel()
    low, high = cheetah_module.TRAIN_VELOCITIES
    for tasks in (vel.sample_tasks(300, np.random.default_rng(0)), vel.test_tasks(300)):
        assert all(low <= t.velocity <= high for t in tasks)
    ood = vel.test_tasks(300, split="ood")
    assert all(2.0 < t.velocity <= 3.0 for t in ood)
    assert vel.test_tasks(5) != vel.sample_tasks(5, np.random.default_rng(0))

    goal = AntGoal()
    train = goal.sample_tasks(500, np.random.default_rng(0))
    radii = np.array([t.distance_from_start for t in train])
    assert radii.max() <= ant_module.GOAL_RADIUS
    # uniform in area: a quarter of the goals within half the radius
    assert abs(np.mean(radii <= ant_module.GOAL_RADIUS / 2) - 0.25) < 0.06
    ood_radii = [t.distance_from_start for t in goal.test_tasks(300, split="ood")]
    assert all(ant_module.GOAL_RADIUS < r <= ant_module.OOD_RADIUS for r in ood_radii)

    for family in (HalfCheetahDir(), AntDir()):
        directions = {t.direction for t in family.test_tasks(40)}
        assert directions == {-1, 1}
        assert family.splits == ("test",)


def test_ant_goal_survive_reward_outweighs_any_training_distance() -> None:
    """Standing still at the start must earn more than ending the episode, for every goal."""
    assert ant_module.GOAL_SURVIVE_REWARD > ant_module.GOAL_RADIUS
    family = AntGoal()
    far = GoalTask((0.0, ant_module.GOAL_RADIUS))
    env = family.make_vector_env([far], 1)
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.zeros((1, 8), dtype=np.float32))
    assert not terminated[0] and reward[0] > 0


# --- the optional dependency --------------------------------------------------------------------
def test_without_mujoco_the_families_are_listed_as_unavailable(tmp_path):
    """With mujoco missing, every other family works and these four say how to install it."""
    script = (
        "import sys; sys.modules['mujoco'] = None\n"
        "from metarl.cli import main\n"
        "assert main(['families']) == 0\n"
        "assert main(['train', '--family', 'ant-dir', '--out', 'x']) == 2\n"
        "import metarl; assert 'navigation2d' in metarl.family_names()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ant-dir          unavailable: needs MuJoCo: pip install -e '.[mujoco]'" in done.stdout
    assert "task family 'ant-dir' needs MuJoCo" in done.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.parametrize("name", ["halfcheetah-dir", "halfcheetah-vel"])
def test_maml_adapts_on_the_half_cheetah(name: str, tmp_path) -> None:
    """The README's locomotion runs (scripts/locomotion_results.sh): 200 meta-iterations of
    20 tasks x 20 episodes, about an hour each on one core. One step from 20 episodes beats
    the return before adaptation on 200 held-out tasks, intervals apart (on 40, the
    half-cheetah-vel's just touch: the target velocities spread the returns)."""
    from metarl.config import TrainConfig
    from metarl.run.evaluation import evaluate
    from metarl.run.training import train

    config = TrainConfig(family=name, algo="maml", iterations=200, hidden_sizes=(100, 100),
                         seed=0, device="cpu")
    learner = train(config, tmp_path / name, log=None)
    result = evaluate(learner, learner.family.test_tasks(200, seed=0), adapt_steps=1,
                      episodes=20, seed=0)
    assert result.ci95_low[1] > result.ci95_high[0], result


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("name, iterations", [("ant-dir", 463), ("ant-goal", 453)])
def test_maml_adapts_on_the_ant(name: str, iterations: int, tmp_path) -> None:
    """The README's ant runs (scripts/locomotion_results.sh): an hour each on one core of
    10 tasks x 10 episodes per iteration, from a policy with action spread 0.3 and near-zero
    mean torques. One step from 10 episodes raises the return on 200 held-out tasks, paired
    per task; for ant-dir the intervals are apart too (ant-goal's goals spread the returns)."""
    from scipy import stats

    from metarl.config import TrainConfig
    from metarl.run.evaluation import evaluate
    from metarl.run.training import train

    config = TrainConfig(family=name, algo="maml", iterations=iterations, meta_batch_size=10,
                         episodes_per_task=10, hidden_sizes=(100, 100), init_std=0.3,
                         init_output_scale=0.01, seed=0, device="cpu")
    learner = train(config, tmp_path / name, log=None)
    result = evaluate(learner, learner.family.test_tasks(200, seed=0), adapt_steps=1,
                      episodes=10, seed=0)
    before, after = np.asarray(result.task_returns[0]), np.asarray(result.task_returns[1])
    assert stats.ttest_rel(after, before, alternative="greater").pvalue < 0.01, result
    if name == "ant-dir":
        assert result.ci95_low[1] > result.ci95_high[0], result
