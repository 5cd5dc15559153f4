"""The Python front door: make / learn / evaluate / adapt / predict / save / load / train, the
same metrics as the command line for the same seed, settings resolved and checked as the
command line resolves them, and the README's list of every setting."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import metarl
from metarl.cli import main
from metarl.config import ConfigError
from metarl.tools.settings import settings_markdown

ROOT = Path(__file__).resolve().parents[1]
TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "hidden_sizes": [8]}
TINY_FLAGS = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden-sizes", "8"]


def without_timings(row: dict) -> dict:
    return {key: float(value) for key, value in row.items() if not key.endswith("_seconds")}


@pytest.mark.parametrize("algo", ["maml", "rl2"])
def test_the_same_seed_gives_the_cli_metrics(algo: str, tmp_path: Path) -> None:
    extra = {"trial_episodes": 1, "minibatches": 2} if algo == "rl2" else {}
    flags = ["--trial-episodes", "1", "--minibatches", "2"] if algo == "rl2" else []
    assert main(["train", "--family", "navigation2d", "--algo", algo, "--iterations", "2",
                 "--seed", "3", "--out", str(tmp_path / "cli"), *TINY_FLAGS, *flags]) == 0
    with (tmp_path / "cli" / "metrics.csv").open() as handle:
        cli_rows = [without_timings(row) for row in csv.DictReader(handle)]
    torch.set_num_threads(2)  # make() applies the command line's default again
    learner = metarl.make("navigation2d", algo=algo, seed=3, **TINY, **extra)
    rows = learner.learn(iterations=2, progress=False)
    assert torch.get_num_threads() == 1
    assert [without_timings(row) for row in rows] == cli_rows
    assert learner.iterations == 2 and learner.history == rows


def test_unknown_keywords_name_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown setting.s. bogus for algo 'maml'.*max_kl"):
        metarl.make("navigation2d", bogus=1)
    with pytest.raises(ConfigError, match="unknown setting.s. latent_size for algo 'maml'"):
        metarl.make("navigation2d", latent_size=2)  # an mbml option
    with pytest.raises(ConfigError, match="--max-kl must be a finite number"):
        metarl.make("navigation2d", max_kl=float("nan"))
    with pytest.raises(ConfigError, match="unknown task family 'nowhere'"):
        metarl.make("nowhere")


def test_plain_python_and_numpy_values_are_taken_as_they_mean() -> None:
    learner = metarl.make("navigation2d", hidden_sizes=[16, 16],
                          meta_batch_size=np.int64(3), inner_lr=np.float32(0.25))
    settings = learner.settings
    assert settings["hidden_sizes"] == [16, 16] and settings["meta_batch_size"] == 3
    assert settings["inner_lr"] == 0.25 and settings["max_kl"] == 0.01  # defaults recorded


def test_evaluate_draws_its_split_and_reports_the_per_task_picture() -> None:
    learner = metarl.make("navigation2d", **TINY)
    result = learner.evaluate(split="ood", n_tasks=3, adapt_steps=1, episodes=2, seed=1)
    assert result.split == "ood" and result.test_tasks == 3
    assert result.share_improved[0] is None and 0.0 <= result.share_improved[1] <= 1.0
    assert len(result.quartiles) == 2 and result.gain[0] == 0.0
    assert result.to_json()["task_returns"] == result.task_returns
    with pytest.raises(ConfigError, match="no split 'weird'"):
        learner.evaluate(split="weird", n_tasks=2)
    with pytest.raises(ConfigError, match="--adapt-steps must be an integer"):
        learner.evaluate(adapt_steps=True)  # type: ignore[arg-type]


def test_save_and_load_give_the_same_learner(tmp_path: Path) -> None:
    learner = metarl.make("navigation2d", algo="meml", seed=2, **TINY)
    learner.learn(1, progress=False)
    path = learner.save(tmp_path / "meml.pt")
    loaded = metarl.load(path)
    assert loaded.iterations == 1 and loaded.algo == "meml" and loaded.settings == {
        **learner.settings, "iterations": 1}
    a, b = (x.evaluate(n_tasks=2, adapt_steps=1, episodes=2) for x in (learner, loaded))
    assert a.task_returns == b.task_returns
    with pytest.raises(ConfigError, match="no checkpoint file"):
        metarl.load(tmp_path / "missing.pt")


def test_train_writes_a_run_directory_that_load_reads(tmp_path: Path) -> None:
    run = metarl.train("bandit-5", out=tmp_path / "run", iterations=2, progress=False, **TINY)
    assert (tmp_path / "run" / "checkpoint.pt").exists() and run.iterations == 2
    assert len(run.history) == 2 and run.history[-1]["iteration"] == 2
    again = metarl.load(tmp_path / "run")
    assert again.history == run.history and again.settings == run.settings


def test_a_callback_stops_training() -> None:
    learner = metarl.make("navigation2d", **TINY)
    seen = []
    rows = learner.learn(5, callback=lambda _, row: seen.append(row) or len(seen) < 2,
                         progress=False)
    assert len(rows) == 2 == learner.iterations


@pytest.mark.parametrize("algo", ["maml", "rl2", "random"])
def test_adapted_agents_act_in_the_tasks_env(algo: str) -> None:
    extra = {"trial_episodes": 1, "minibatches": 2} if algo == "rl2" else {}
    learner = metarl.make("navigation2d", algo=algo, **TINY, **extra)
    task = learner.family.test_tasks(1)[0]
    agent = learner.adapt(task, episodes=2, steps=1)
    assert len(agent.adaptation_returns) == 2
    env = agent.wrap(learner.family.make_env(task))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        action, state = agent.predict(obs, deterministic=True)
        assert state is None and action in learner.family.action_space
        obs, *_ = env.step(action)
    if algo == "rl2":  # in memory: what the action earned must come back
        bare = learner.adapt(task, episodes=2, steps=1)
        bare.predict(obs)
        with pytest.raises(RuntimeError, match=r"agent.observe\(reward, terminated"):
            bare.predict(obs)


def test_untrainable_baselines_say_so() -> None:
    learner = metarl.make("navigation2d", algo="random")
    with pytest.raises(ConfigError, match="random has nothing to learn"):
        learner.learn(1)
    assert learner.learn(0) == []


def test_the_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("<!-- metarl settings -->\n", 1)[1].split("<!-- end metarl settings",
                                                                   1)[0]
    assert listed == settings_markdown(), "regenerate with: metarl settings"
