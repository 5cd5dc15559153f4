"""Learning happens: after a short MAML run, one adaptation step on held-out tasks beats the
return before adaptation, with non-overlapping 95% intervals. Fixed seeds, small budgets.

The per-family versions are marked slow (``make test-slow``)."""

import pytest

from metarl.config import TrainConfig
from metarl.run.evaluation import evaluate
from metarl.run.training import train

# family -> (meta-iterations, meta-batch size, episodes per task, inner step size)
BUDGETS = {
    "navigation2d": (20, 10, 10, 0.1),
    "bandit-5": (40, 20, 20, 0.1),
    "bandit-10": (40, 20, 20, 0.1),
    "tabular-mdp": (60, 20, 20, 0.5),
    "cartpole-tasks": (40, 20, 20, 0.1),
    "maze": (60, 20, 20, 0.1),
    "catch": (60, 20, 20, 0.5),
}


def adaptation_gain(family: str, tmp_path, algo: str = "maml", **options) -> tuple:
    iterations, tasks, episodes, inner_lr = BUDGETS[family]
    config = TrainConfig(family=family, algo=algo, iterations=iterations, meta_batch_size=tasks,
                         episodes_per_task=episodes, inner_lr=inner_lr, seed=0, device="cpu",
                         algo_options=options)
    learner = train(config, tmp_path / family, log=None)
    test_tasks = 20 if family == "navigation2d" else 40
    result = evaluate(learner, learner.family.test_tasks(test_tasks, seed=0), adapt_steps=1,
                      episodes=episodes, seed=0)
    return result


def test_maml_adapts_on_navigation2d(tmp_path):
    result = adaptation_gain("navigation2d", tmp_path)
    before, after = result.mean_return
    assert after > before + 5, result.mean_return
    assert result.ci95_low[1] > result.ci95_high[0], result


@pytest.mark.slow
@pytest.mark.parametrize("family", [name for name in BUDGETS if name != "navigation2d"])
def test_maml_adapts_on_every_family(family, tmp_path):
    result = adaptation_gain(family, tmp_path)
    assert result.ci95_low[1] > result.ci95_high[0], result
