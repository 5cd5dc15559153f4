"""RL^2: the recurrent memory across a trial, training, evaluation in the harness's blocks,
checkpoints, the command line, and (slow) that it learns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from families import conformance_families

from metarl.agents.rl2 import RL2
from metarl.cli import main
from metarl.config import ConfigError, EvaluationConfig, TrainConfig
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner
from metarl.run.settings import resolve_settings
from metarl.run.training import train
from metarl.tools.compare import compare
from metarl.tools.viewer import AdaptationView

TINY = {"meta_batch_size": 2, "hidden_sizes": (8,), "device": "cpu"}
TINY_OPTIONS = {"trial_episodes": 2, "hidden_size": 8, "minibatches": 2, "epochs": 1}
TINY_FLAGS = ["--meta-batch-size", "2", "--hidden-sizes", "8", "--trial-episodes", "2",
              "--hidden-size", "8", "--minibatches", "2", "--epochs", "1", "--seed", "1"]


def tiny(family: str = "bandit-5", iterations: int = 2, **options: object) -> RL2:
    config = resolve_settings({"family": family, "algo": "rl2", "iterations": iterations,
                               **TINY, **TINY_OPTIONS, **options})
    learner = build_learner(config)
    assert isinstance(learner, RL2)
    return learner


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
        ({"rollout": 1}, "unknown setting.s. rollout for algo 'rl2'"),
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
