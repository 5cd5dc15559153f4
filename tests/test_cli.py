"""The command line end to end on tiny budgets: train, resume, evaluate, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import start_metarl

from metarl.cli import main
from metarl.config import TrainConfig
from metarl.registry import get_family
from metarl.run.factory import build_learner
from metarl.tools.bench import batched_vs_sync, sampler_throughput

TINY = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden-sizes", "8",
        "--seed", "3"]


def metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def test_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--iterations", "2", *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["meta_batch_size"] == 2
    assert len(metrics(run)) == 2
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--test-tasks", "3", "--adapt-steps", "2",
                 "--episodes", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["family"] == "navigation2d" and result["algo"] == "maml"
    assert result["test_tasks"] == 3 and result["episodes_per_step"] == 2
    assert result["adapt_steps"] == [0, 1, 2]
    for key in ("mean_return", "ci95_low", "ci95_high"):
        assert len(result[key]) == 3
    assert all(lo <= m <= hi for lo, m, hi in
               zip(result["ci95_low"], result["mean_return"], result["ci95_high"]))
    assert result["wall_seconds"] > 0
    assert "| 1 |" in capsys.readouterr().out


def test_same_seed_same_metrics_and_resume_matches(tmp_path):
    straight, first, again = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["train", "--out", str(straight), "--iterations", "4", *TINY]) == 0
    assert main(["train", "--out", str(again), "--iterations", "4", *TINY]) == 0
    assert metrics(straight) == metrics(again)
    assert main(["train", "--out", str(first), "--iterations", "2", *TINY]) == 0
    assert main(["train", "--out", str(first), "--iterations", "4", "--resume", *TINY]) == 0
    assert metrics(first) == metrics(straight)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    b = torch.load(first / "checkpoint.pt", weights_only=True)["learner"]["policy"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_then_resume_matches_a_straight_run(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    args = ["--iterations", "30", *TINY]  # long enough that SIGINT lands before the end
    assert main(["train", "--out", str(straight), *args]) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = start_metarl("train", "--out", str(interrupted), *args,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        if line.startswith("[2/"):
            break
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    assert 2 <= len(metrics(interrupted)) < 30
    # resumed without any flag: on to the run's own target of 30, not the default 100
    assert main(["train", "--out", str(interrupted), "--resume"]) == 0
    assert metrics(interrupted) == metrics(straight)


def test_checkpoint_is_weights_only(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--iterations", "1", *TINY]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["format"] == "metarl-checkpoint" and state["iteration"] == 1

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "metarl-checkpoint", "payload": Payload()}, run / "checkpoint.pt")
    assert main(["evaluate", str(run), "--test-tasks", "2"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--family", "nope"], "unknown task family 'nope'"),
        (["train", "--algo", "nope"], "unknown algorithm 'nope'"),
        (["train", "--meta-batch-size", "0"], "--meta-batch-size must be >= 1"),
        (["train", "--episodes-per-task", "-1"], "--episodes-per-task must be >= 1"),
        (["train", "--inner-lr", "0"], "--inner-lr must be > 0"),
        (["train", "--max-kl", "-1"], "--max-kl must be > 0"),
    ],
)
def test_bad_training_input(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert main([*argv, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_bad_run_directories(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(corrupt)]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_existing_run_needs_resume_and_is_left_intact(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--iterations", "1", *TINY]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(run), "--iterations", "2", *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_families_check_and_module_entry_point(capsys):
    assert main(["families"]) == 0
    assert "navigation2d" in capsys.readouterr().out
    assert main(["check", "navigation2d"]) == 0
    assert main(["check", "metarl.envs.navigation2d:Navigation2D"]) == 0
    assert main(["check", "nope"]) == 2
    result = subprocess.run([sys.executable, "-m", "metarl", "families"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "maze" in result.stdout


def test_bench_writes_the_reference_figures(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--family", "bandit-5", "--repeats", "1", "--families", "bandit-5",
                 "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["env_steps_per_second"] > 0 and figures["seconds_per_iteration"] > 0
    assert figures["peak_memory_mib"] > 0
    assert figures["families"]["bandit-5"]["batched_vs_sync"]["speedup"] > 1
    assert main(["bench", "--families", "nope"]) == 2


@pytest.mark.parametrize("options", [["--outer", "ppo"], ["--first-order"], ["--fvp", "identity"],
                                     ["--algo", "meml", "--inner-steps", "2"]])
def test_learner_options_train(tmp_path, options):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--iterations", "2", *TINY, *options]) == 0
    rows = metrics(run)
    assert len(rows) == 2 and all(float(row["return_after"]) < 0 for row in rows)


def test_untrained_learner_evaluates_to_finite_sane_returns(tmp_path, capsys):
    """`train --iterations 0` saves the freshly initialised learner; evaluating it is the
    first sanity check of a new family."""
    run = tmp_path / "untrained"
    assert main(["train", "--out", str(run), "--iterations", "0", *TINY]) == 0
    assert not (run / "metrics.csv").exists()
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--test-tasks", "5", "--adapt-steps", "1", "--episodes",
                 "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    returns = np.array(result["task_returns"])
    # Navigation2D: -100 steps x at most ~11 distance units; never positive
    assert np.isfinite(returns).all() and (returns < 0).all() and (returns > -1500).all()
    assert main(["train", "--out", str(run), "--resume", "--iterations", "1"]) == 0
    assert len(metrics(run)) == 1


def test_progress_lines_tell_the_time_left(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--iterations", "2", *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("[2/2] return before") and "s/it, 0m00s left)" in lines[-1]


def test_tensorboard_events_hold_every_metric_and_the_evaluation(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--iterations", "2", "--tensorboard", *TINY]) == 0
    assert main(["evaluate", str(run), "--test-tasks", "2", "--adapt-steps", "1",
                 "--episodes", "2"]) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    columns = [column for column in metrics(run)[0] if column != "iteration"]
    assert {f"metrics/{column}" for column in columns} <= tags
    assert [e.step for e in events.Scalars("metrics/return_after")] == [1, 2]
    logged = [e.value for e in events.Scalars("metrics/return_after")]
    assert logged == pytest.approx([float(row["return_after"]) for row in metrics(run)])
    assert "evaluation/test/after_1_steps/mean" in tags
    assert events.Scalars("evaluation/test/after_1_steps/mean")[0].step == 2


def test_bench_counts_only_simulated_steps_where_episodes_end_early():
    family = get_family("cartpole-tasks")
    config = TrainConfig(family="cartpole-tasks", meta_batch_size=2, episodes_per_task=2,
                         hidden_sizes=(8,), device="cpu")
    sampled = sampler_throughput(build_learner(config), n_tasks=2, episodes=2, repeats=1)
    assert 0 < sampled["env_steps_sampled"] < 2 * 2 * family.max_episode_steps / 2
    figures = batched_vs_sync(family, n_tasks=2, episodes=2, repeats=1)
    nominal = 2 * 2 * family.max_episode_steps
    # Random cart-pole episodes fall within a few dozen steps: the batched env stops there,
    # SyncVectorEnv spends one step per ended episode on its reset.
    assert 0 < figures["batched_simulated_steps"] < nominal / 2
    assert nominal / 2 < figures["sync_vector_env_simulated_steps"] < nominal
