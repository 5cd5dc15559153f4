"""RL^2: the trial wrapper, the recurrent memory across a trial, training, evaluation in the
harness's blocks, checkpoints, the command line, and (slow) that it learns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from families import conformance_families
from gymnasium.utils.env_checker import check_env

from metarl import registry
from metarl.agents.rl2 import RL2
from metarl.agents.trials import ArrayTrials, EnvTrials, Trial, TrialEnv
from metarl.cli import main
from metarl.config import ConfigError, EvaluationConfig, TrainConfig
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner
from metarl.run.training import train
from metarl.tools.compare import compare
from metarl.tools.viewer import AdaptationView

TINY = {"meta_batch_size": 2, "hidden_sizes": (8,), "device": "cpu"}
TINY_OPTIONS = {"trial_episodes": 2, "hidden_size": 8, "minibatches": 2, "epochs": 1}
TINY_FLAGS = ["--meta-batch-size", "2", "--hidden-sizes", "8", "--trial-episodes", "2",
              "--hidden-size", "8", "--minibatches", "2", "--epochs", "1", "--seed", "1"]


def tiny(family: str = "bandit-5", iterations: int = 2, **options: object) -> RL2:
    config = TrainConfig(family=family, algo="rl2", iterations=iterations, **TINY,
                         algo_options={**TINY_OPTIONS, **options})
    learner = build_learner(config)
    assert isinstance(learner, RL2)
    return learner


# --- the trial wrapper ---------------------------------------------------------------------------
def test_trial_observation_holds_previous_action_reward_and_episode_end() -> None:
    family = registry.get_family("bandit-5")
    task = family.test_tasks(1)[0]
    env = TrialEnv(family.make_env(task), episodes=3)
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
    assert env.completed == [Trial(ends, total)]


def test_trial_of_box_actions_rescales_and_restarts_episodes_that_end_early() -> None:
    family = registry.get_family("navigation2d")
    env = TrialEnv(family.make_env({"goal": [0.1, 0.0]}), episodes=2)
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
    env = TrialEnv(family.make_env({"goal": [0.1, 0.0]}), steps=5)
    env.reset(seed=0)
    to_goal, away = np.array([1.0, 0.0], np.float32), np.array([-1.0, 0.0], np.float32)
    ends = []
    for action in (to_goal, to_goal, away, away):  # two one-step episodes, then a long one
        _, _, _, truncated, info = env.step(action)
        ends.append(info.get("trial_episode"))
        assert not truncated
    _, reward, terminated, truncated, _ = env.step(away)
    assert ends == [0, 1, None, None] and not terminated and truncated
    (trial,) = env.completed
    assert len(trial.returns) == 2 and trial.total < sum(trial.returns)


def test_a_trial_needs_a_length() -> None:
    env = registry.get_family("bandit-5").make_env()
    with pytest.raises(ConfigError, match="give episodes, steps or both"):
        TrialEnv(env)
    with pytest.raises(ConfigError, match="at least 1 of its steps, got 0"):
        TrialEnv(env, steps=0)


@pytest.mark.parametrize(("name", "episodes"), [("bandit-5", 1), ("navigation2d", 3),
                                              ("maze", 3)])
def test_array_trials_step_as_trial_envs_in_a_dummy_vec_env_do(name: str, episodes: int) -> None:
    # navigation2d and maze start every episode in the same state, so their trials agree
    # across the episodes that restart inside them; bandit-5's draws agree within an episode.
    family = registry.get_family(name)
    steps = episodes * family.max_episode_steps
    tasks = family.test_tasks(3)
    if name == "navigation2d":  # column 0 reaches its goal in one step, every episode
        tasks[0] = {"goal": [0.1, 0.0]}
    batched, looped = ArrayTrials(family, 3, steps), EnvTrials(family, 3, steps)
    for trials in (batched, looped):
        trials.set_tasks(tasks)
        trials.seed(7)
    rng = np.random.default_rng(0)
    observations = [batched.reset(), looped.reset()]
    assert np.array_equal(*observations)
    ends = 0
    for _ in range(steps):
        if isinstance(batched.action_space, gym.spaces.Box):
            actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
            actions[0] = [1.0, 0.0]
        else:
            actions = rng.integers(batched.action_space.n, size=3)
        (obs_a, rew_a, done_a, info_a), (obs_b, rew_b, done_b, info_b) = (
            trials.step(actions) for trials in (batched, looped))
        np.testing.assert_allclose(obs_a, obs_b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(rew_a, rew_b, rtol=0, atol=1e-6)
        assert np.array_equal(done_a, done_b)
        for a, b in zip(info_a, info_b, strict=True):
            assert a.keys() == b.keys()
            assert a.get("trial_episode") == b.get("trial_episode")
            assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            if "terminal_observation" in a:
                np.testing.assert_allclose(a["terminal_observation"], b["terminal_observation"],
                                           atol=1e-6)
        ends += sum("trial_episode" in info for info in info_a)
    assert done_a.all() and ends >= (3 if name != "navigation2d" else steps + 2)
    for a, b in zip(batched.pop_completed(), looped.pop_completed(), strict=True):
        np.testing.assert_allclose(a.returns, b.returns, atol=1e-6)
        assert a.total == pytest.approx(b.total)
    assert batched.pop_completed() == [] == looped.pop_completed()


@pytest.mark.parametrize("name", ["bandit-5", "navigation2d", "maze"])
def test_trial_env_passes_gymnasiums_checker(name: str) -> None:
    family = registry.get_family(name)
    check_env(TrialEnv(family.make_env(), episodes=2), skip_render_check=True)


def test_trial_switches_task_at_its_start() -> None:
    family = registry.get_family("bandit-5")
    first, second = family.test_tasks(2)
    env = TrialEnv(family.make_env(first), episodes=1)
    env.set_task(second)
    env.reset(seed=0)
    assert env.unwrapped.task == second
    env.reset(seed=0, options={"task": first})
    assert env.unwrapped.task == first
    env.reset(seed=0)
    assert env.unwrapped.task == first


# --- memory across and between trials -------------------------------------------------------------
@pytest.mark.parametrize("name", ["bandit-5", "maze"])
def test_every_update_plays_one_trial_per_env_from_a_zero_memory(name: str) -> None:
    learner = tiny(name, rollout_trials=2)
    tasks = learner.family.sample_tasks(2, learner.rng)
    learner.step(tasks)
    buffer = learner.model.rollout_buffer
    steps = buffer.buffer_size
    assert steps == 2 * learner.family.max_episode_steps  # one trial of 2 episodes' steps
    hidden = buffer.hidden_states_pi.reshape(4, steps, -1)  # flattened env-major by the update
    assert not hidden[:, 0].any()  # every trial starts from a zero memory
    assert hidden[:, 1:].any(axis=2).all()  # ... and keeps it through the trial
    # No episode start is flagged (maze's episodes end early: the trial plays on), so the
    # update runs each sequence through the LSTM in one call.
    assert not buffer.episode_starts.any()


def test_actor_restores_the_memory_of_its_block_at_every_episode_start() -> None:
    learner = tiny()
    tasks = learner.family.test_tasks(2)
    adaptation = learner.adaptation(tasks, adapt_steps=2, episodes=2, seed=0)
    assert len(adaptation.memories) == 3
    assert not adaptation.memories[0][0].any() and adaptation.memories[2][0].any()
    actor = adaptation.actor(1)
    assert actor.n_columns == 3
    env = learner.family.make_env(tasks[1])
    obs = np.stack([env.reset(seed=0)[0]] * 3)
    actor.reset(0)
    start = [t.clone() for t in actor.memory]
    first = actor.act(obs, deterministic=True)
    for column in range(3):
        actor.feedback(column, 1.0, False)
    actor.act(obs)
    assert not torch.equal(actor.memory[0], start[0])
    for column in range(3):
        actor.start_episode(column)
    assert all(torch.equal(a, b) for a, b in zip(actor.memory, start, strict=True))
    assert np.array_equal(actor.act(obs, deterministic=True), first)


def test_blocks_line_up_with_the_trials_episodes() -> None:
    learner = tiny()
    tasks = learner.family.test_tasks(3)
    result = evaluate(learner, tasks, adapt_steps=2, episodes=3, seed=4)
    again = evaluate(learner, tasks, adapt_steps=2, episodes=3, seed=4)
    assert result.adapt_steps == [0, 1, 2] and result.task_returns == again.task_returns
    # One trial of 9 episodes per task, 3 blocks of 3: every return is a mean of 3 episodes of
    # 10 pulls that pay 0 or 1.
    returns = np.asarray(result.task_returns)
    assert returns.shape == (3, 3) and np.allclose(returns * 3 % 1, 0)
    assert ((returns >= 0) & (returns <= 10)).all()


# --- every family, checkpoints, the command line ------------------------------------------------
@pytest.mark.parametrize("name", conformance_families(meta_world=False))  # no training
def test_every_family_trains_and_evaluates(name: str) -> None:
    learner = tiny(name, trial_episodes=1)
    metrics = learner.step(learner.family.sample_tasks(2, learner.rng))
    assert metrics["env_steps"] > 0 and np.isfinite(list(metrics.values())).all()
    result = evaluate(learner, learner.family.test_tasks(2), adapt_steps=1, episodes=1)
    assert len(result.mean_return) == 2


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in row.items() if not k.endswith("seconds")}
                for row in csv.DictReader(handle)]


def test_train_resume_evaluate_watch_and_compare_from_the_command_line(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", "--algo", "rl2", "--family", "bandit-5", "--iterations", "3",
                 "--out", str(straight), *TINY_FLAGS]) == 0
    assert main(["train", "--algo", "rl2", "--family", "bandit-5", "--iterations", "2",
                 "--out", str(resumed), *TINY_FLAGS]) == 0
    assert main(["train", "--out", str(resumed), "--iterations", "3", "--resume"]) == 0
    assert rows(resumed) == rows(straight) and len(rows(straight)) == 3
    assert all(int(row["env_steps"]) == 2 * 2 * 10 for row in rows(straight))
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    assert all(torch.equal(a[key], b[key]) for key in a)

    out = tmp_path / "eval.json"
    assert main(["evaluate", str(straight), "--test-tasks", "3", "--adapt-steps", "2",
                 "--episodes", "2", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["algo"] == "rl2" and saved["adapt_steps"] == [0, 1, 2]
    assert len(saved["ci95_low"]) == 3

    frames = tmp_path / "frames"
    assert main(["watch", str(straight), "--record", str(frames), "--frames", "3",
                 "--adapt-steps", "1", "--episodes", "2"]) == 0
    assert len(list(frames.glob("frame_*.png"))) == 3

    small = EvaluationConfig(test_tasks=3, adapt_steps=1, episodes=2)
    results = compare("bandit-5", ["rl2", "random"], small, tmp_path / "compare",
                      runs={"rl2": straight})
    setup = results["learners"]["rl2"]["setup"]
    assert setup["training_env_steps"] == 3 * 40 and setup["training_seconds"] > 0
    table = (tmp_path / "compare" / "results.md").read_text()
    assert "| rl2 |" in table and "training env steps" in table


def test_watch_view_of_box_actions() -> None:
    learner = tiny("navigation2d")
    view = AdaptationView(learner, learner.family.test_tasks(1)[0], adapt_steps=1, episodes=1)
    for _ in range(3):
        actions = view.actions()
        assert actions.shape == (2, 2) and np.all(np.abs(actions) <= 0.1 + 1e-6)
        view.step()
    assert view.n_panels == 2 and view.returns[0] < 0
    view.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"minibatches": 3}, "--minibatches must be <= --meta-batch-size"),
        ({"trial_episodes": 0}, "--trial-episodes must be >= 1"),
        ({"hidden_size": 0}, "--hidden-size must be >= 1"),
        ({"learning_rate": 0.0}, "--learning-rate must be > 0.0"),
        ({"rollout": 1}, "unknown rl2 option key"),
    ],
)
def test_bad_options_are_one_line_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        tiny(**options)
    assert "\n" not in str(error.value)


def test_bad_flag_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--algo", "rl2", "--family", "bandit-5", "--out", str(tmp_path),
                 "--meta-batch-size", "2", "--minibatches", "4"]) == 2
    assert "--minibatches must be <= --meta-batch-size" in capsys.readouterr().err


def test_adapt_names_the_hook_to_use() -> None:
    learner = tiny()
    with pytest.raises(NotImplementedError, match="recurrent memory"):
        learner.adapt({}, None)  # type: ignore[arg-type]


# --- learning ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rl2_learns_bandits(tmp_path: Path) -> None:
    """About three minutes of RL^2 (the default options, 80 updates of 20 trials) on bandit-10:
    on held-out tasks its first block of 20 episodes already earns far more than random pulls
    (5 per episode on average, about [4.6, 5.3] across these tasks)."""
    config = TrainConfig(family="bandit-10", algo="rl2", iterations=80, seed=0, device="cpu")
    learner = train(config, tmp_path / "run", log=None)
    result = evaluate(learner, learner.family.test_tasks(40, seed=0), adapt_steps=1,
                      episodes=20, seed=0)
    assert result.ci95_low[0] > 6.0, result.mean_return
    assert min(result.mean_return) > 6.5, result.mean_return
