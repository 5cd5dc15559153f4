"""Success as a first-class metric (families that define it: navigation2d reaching its goal,
maze entering the goal cell, Meta-World), and the Meta-World protocol (adaptation episodes,
then evaluation episodes) beside the block protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import metarl
from metarl.cli import main
from metarl.config import EvaluationConfig
from metarl.family.oracle import oracle_play
from metarl.rollout.trials import TrialBatch
from metarl.tools.compare import compare

TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": [8]}


def test_an_episode_succeeds_if_any_step_does_and_counts_once():
    family = metarl.get_family("navigation2d")
    tasks = [{"goal": [0.1, 0.0]}, {"goal": [0.4, 0.0]}]
    trials = TrialBatch(family, tasks, episodes=2)
    trials.reset(0)
    to_goal = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    first = trials.step(to_goal)  # column 0 reaches its goal: success, episode over
    assert first.episode_successes.tolist() == [True, False]
    for _ in range(250):
        if not trials.running.any():
            break
        trials.step(to_goal)
    done = {tuple(trial.returns): trial.successes for trial in trials.pop_completed()}
    assert sorted(map(tuple, done.values())) == [(True, True), (True, True)]


def test_samplers_and_oracles_count_successes():
    learner = metarl.make("navigation2d", **TINY)
    tasks = learner.family.test_tasks(3)
    batch = learner.learner.sampler.sample(tasks, 2, learner.learner.meta_params(), 0)
    assert batch.successes is not None and batch.successes.shape == (6,)
    assert batch.task_successes().shape == (3,)
    returns, successes = oracle_play(learner.family, tasks, 2, 0)
    assert successes.tolist() == [1.0, 1.0, 1.0] and returns.mean() > -2
    assert oracle_play(metarl.get_family("bandit-5"), metarl.get_family("bandit-5")
                       .test_tasks(2), 2, 0)[1] is None


@pytest.mark.parametrize("algo", ["maml", "rl2", "random"])
def test_evaluation_and_training_report_success(algo, tmp_path: Path):
    extra = {"trial_episodes": 1, "minibatches": 2} if algo == "rl2" else {}
    learner = metarl.make("maze", algo=algo, **TINY, **extra)
    if learner.learner.trainable:
        (row,) = learner.learn(1, progress=False)
        assert 0.0 <= row["success_before"] <= 1.0 and 0.0 <= row["success_after"] <= 1.0
    result = learner.evaluate(n_tasks=3, adapt_steps=1, episodes=2)
    assert len(result.success_rate) == 2 and len(result.task_successes[0]) == 3
    assert all(low <= rate <= high for low, rate, high in
               zip(result.success_ci95_low, result.success_rate, result.success_ci95_high))


def test_families_without_success_report_none():
    result = metarl.make("bandit-5", **TINY).evaluate(n_tasks=2, adapt_steps=1, episodes=2)
    assert result.success_rate is None and result.to_json()["success_rate"] is None


@pytest.mark.parametrize("algo", ["maml", "rl2", "random"])
def test_the_metaworld_protocol_plays_adaptation_then_evaluation_episodes(algo):
    extra = {"trial_episodes": 1, "minibatches": 2} if algo == "rl2" else {}
    learner = metarl.make("navigation2d", algo=algo, **TINY, **extra)
    result = learner.evaluate(n_tasks=3, adapt_steps=1, episodes=4, protocol="metaworld",
                              eval_episodes=2)
    assert result.block_episodes == [4, 2] and result.episodes_per_step == 4
    assert len(result.mean_return) == 2 and len(result.success_rate) == 2
    blocks = learner.evaluate(n_tasks=3, adapt_steps=1, episodes=4)
    assert blocks.block_episodes == [4, 4]
    assert blocks.mean_return[0] == result.mean_return[0]  # the same adaptation block


def test_ppo_baselines_refuse_blocks_of_different_sizes():
    learner = metarl.make("navigation2d", algo="ppo-scratch")
    with pytest.raises(metarl.ConfigError, match="fine-tunes on blocks of one size"):
        learner.evaluate(n_tasks=1, adapt_steps=1, episodes=2, protocol="metaworld")


def test_evaluate_and_compare_show_success(tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--family", "maze", "--iterations", "1", "--out", str(run),
                 "--meta-batch-size", "2", "--episodes-per-task", "2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--test-tasks", "3", "--adapt-steps", "1", "--episodes",
                 "2", "--protocol", "metaworld", "--eval-episodes", "3", "--json",
                 str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "2 adaptation episodes per step, then 3 evaluation episodes" in printed
    assert "success rate [95% CI]" in printed
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["block_episodes"] == [2, 3] and len(saved["success_rate"]) == 2
    results = compare("maze", ["maml", "random"], EvaluationConfig(
        test_tasks=3, adapt_steps=1, episodes=2), tmp_path / "c", runs={"maml": run})
    assert results["learners"]["oracle"]["success_rate"] == [1.0, 1.0]
    table = (tmp_path / "c" / "results.md").read_text()
    assert "Success rate: the share of each task's episodes" in table
    assert "| oracle | 100% [100%, 100%] | 100% [100%, 100%] |" in table
