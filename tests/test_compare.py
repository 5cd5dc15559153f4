"""`compare` end to end on a tiny budget, the training plot, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metarl.cli import build_parser
from metarl.config import ConfigError, EvaluationConfig
from metarl.registry import get_family
from metarl.run.factory import build_learner
from metarl.run.settings import resolve_settings
from metarl.tools.compare import compare
from metarl.tools.plot import plot_runs, plot_training

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCHEMA = ("family", "algo", "test_tasks", "episodes_per_step", "adapt_steps", "mean_return",
          "ci95_low", "ci95_high", "wall_seconds", "task_returns")
ALGOS = ["maml", "maml@1", "random", "ppo-scratch", "ppo-finetune"]
SMALL = EvaluationConfig(test_tasks=3, adapt_steps=1, episodes=2)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compare")
    results = compare(
        "navigation2d", ALGOS, EvaluationConfig(test_tasks=3, adapt_steps=1, episodes=2), out,
        train_iterations=2, train_options={"meta_batch_size": 2, "episodes_per_task": 2},
        pretrain_steps=400,
    )
    return out, results


def test_compare_writes_results_table_and_plot(comparison: tuple[Path, dict]) -> None:
    out, results = comparison
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert list(saved["learners"]) == [*ALGOS, "oracle"]
    oracle = saved["learners"]["oracle"]
    assert oracle["setup"]["kind"] == "reference" and oracle["mean_return"][0] > -5
    assert len(saved["tasks"]) == 3
    for label, learner in saved["learners"].items():
        if label == "oracle":
            continue
        algo, _, episodes = label.partition("@")
        assert set(SCHEMA) <= set(learner), algo
        assert learner["algo"] == algo and learner["family"] == "navigation2d"
        assert learner["test_tasks"] == 3
        assert learner["episodes_per_step"] == (int(episodes) if episodes else 2)
        assert learner["adapt_steps"] == [0, 1]
        for key in ("mean_return", "ci95_low", "ci95_high", "task_returns"):
            assert len(learner[key]) == 2, (algo, key)
        assert all(len(per_task) == 3 for per_task in learner["task_returns"])
        assert all(low <= mean <= high for low, mean, high in
                   zip(learner["ci95_low"], learner["mean_return"], learner["ci95_high"],
                       strict=True))
        assert learner["wall_seconds"] > 0
    finetune = saved["learners"]["ppo-finetune"]["setup"]
    assert finetune["training_env_steps"] == 400 and finetune["iterations"] == 2  # 2 x 2 x 100
    assert (out / "runs" / "maml" / "checkpoint.pt").exists()
    table = (out / "results.md").read_text()
    assert all(f"| {algo} | {1 if '@' in algo else 2} |" in table for algo in ALGOS)
    assert "| oracle | 2 |" in table and "The oracle, which knows each task, returns" in table
    assert (out / "adaptation.png").read_bytes().startswith(PNG_MAGIC)


def test_plot_training_writes_png(comparison: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = comparison
    assert plot_training(out / "runs" / "maml").read_bytes().startswith(PNG_MAGIC)
    assert plot_training(out / "runs" / "maml", tmp_path / "t.png") == tmp_path / "t.png"


def test_several_runs_curves_on_one_figure(comparison: tuple[Path, dict], tmp_path: Path
                                           ) -> None:
    run = comparison[0] / "runs" / "maml"
    for x in ("env_steps", "seconds", "iteration"):
        out = plot_runs([run, run], tmp_path / f"{x}.png", x=x, window=1)
        assert out.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ConfigError, match="--x must be env_steps, seconds or iteration"):
        plot_runs([run], tmp_path / "bad.png", x="time")


def test_random_baseline_is_reproducible() -> None:
    tasks = get_family("navigation2d").test_tasks(2, seed=1)
    learner = build_learner(resolve_settings({"algo": "random", "iterations": 0}))
    first = learner.adaptation(tasks, 1, 2, seed=3).returns
    second = learner.adaptation(tasks, 1, 2, seed=3).returns
    other = learner.adaptation(tasks, 1, 2, seed=4).returns
    assert all((a == b).all() for a, b in zip(first, second, strict=True))
    assert not all((a == b).all() for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algos", "maml,nope"], "unknown learner 'nope'"),
        (["--algos", "random", "--episodes", "0"], "--episodes must be >= 1"),
        (["--algos", "random", "--adapt-steps", "-1"], "--adapt-steps must be >= 0"),
        (["--algos", "random", "--split", "weird"], "no split 'weird'"),
        (["--algos", "random,random"], "names a learner twice"),
        (["--algos", "random,random@x"], "after '@' give the real episodes per adaptation"),
        (["--algos", "maml@0"], "after '@' give the real episodes per adaptation"),
        (["--algos", "maml", "--run", "maml=/no/such/run"], "does not exist"),
        (["--algos", "maml", "--run", "maml"], "expects ALGO=RUN_DIR"),
        (["--algos", "random", "--run", "random=/x"], "must name a trained learner"),
        (["--algos", "maml", "--meta-batch-size", "0"], "--meta-batch-size must be >= 1"),
        (["--family", "nowhere", "--algos", "random"], "unknown task family 'nowhere'"),
    ],
)
def test_compare_rejects_bad_input(argv: list[str], message: str, tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["compare", "--family", "navigation2d", "--out", str(tmp_path), *argv]
    )
    with pytest.raises(ConfigError, match=message):
        args.run(args)
    assert not (tmp_path / "results.json").exists()


def test_compare_rejects_run_of_another_learner_or_family(
    comparison: tuple[Path, dict], tmp_path: Path
) -> None:
    run = comparison[0] / "runs" / "maml"
    with pytest.raises(ConfigError, match="holds maml on navigation2d, not maml on catch"):
        compare("catch", ["maml"], SMALL, tmp_path, runs={"maml": run})
    with pytest.raises(ConfigError, match="a resumed run keeps its settings"):
        compare("navigation2d", ["maml"], SMALL, comparison[0], train_iterations=2)


def test_compare_again_into_the_same_folder_reuses_its_runs(
    comparison: tuple[Path, dict]
) -> None:
    """A compare killed after training (or run twice) continues from the runs it left."""
    out, results = comparison
    again = compare("navigation2d", ["maml"], SMALL, out, train_iterations=2,
                    train_options={"meta_batch_size": 2, "episodes_per_task": 2})
    before, after = results["learners"]["maml"], again["learners"]["maml"]
    assert after["task_returns"] == before["task_returns"]
    assert after["setup"]["iterations"] == 2


def test_plot_rejects_missing_run(tmp_path: Path) -> None:
    args = build_parser().parse_args(["plot", str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="no metrics.csv"):
        args.run(args)
