"""Few-episode adaptation on held-out tasks: return after 0..K adaptation steps.

For every test task at once, block after block of ``episodes`` episodes: the learner plays a
block, its mean return is recorded, and the learner adapts on it (gradient learners: sample
with the current parameters, then adapt them; RL^2: the next episodes of one trial, see
:meth:`metarl.learn.learner.MetaLearner.adaptation`). Entry ``k`` of the result is the mean
over tasks of the return of block ``k`` (after ``k`` adaptation steps, ``k * episodes``
episodes of the task), with a 95% Student-t interval across tasks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metarl.learn.adaptation import Adaptation
from metarl.learn.learner import MetaLearner


@dataclass
class EvaluationResult:
    family: str
    algo: str
    split: str
    test_tasks: int
    episodes_per_step: int
    adapt_steps: list[int]
    mean_return: list[float]
    ci95_low: list[float]
    ci95_high: list[float]
    task_returns: list[list[float]]  # [adapt step][task]
    seed: int
    wall_seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_returns(
        cls, returns: Sequence[np.ndarray], family: str, algo: str, split: str,
        episodes: int, seed: int, wall_seconds: float,
    ) -> EvaluationResult:
        """Summarise per-task returns (one array per adaptation step, 0 first)."""
        intervals = [confidence_interval(np.asarray(r)) for r in returns]
        return cls(
            family=family,
            algo=algo,
            split=split,
            test_tasks=len(returns[0]),
            episodes_per_step=episodes,
            adapt_steps=list(range(len(returns))),
            mean_return=[float(np.mean(r)) for r in returns],
            ci95_low=[low for low, _ in intervals],
            ci95_high=[high for _, high in intervals],
            task_returns=[np.asarray(r, dtype=np.float64).tolist() for r in returns],
            seed=seed,
            wall_seconds=wall_seconds,
        )


def confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (independent tasks)."""
    import scipy.stats  # imported here: a second of start-up for every command otherwise

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, mean
    half = scipy.stats.t.ppf(0.5 + level / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n)
    return mean - float(half), mean + float(half)


def adaptation_trajectory(
    learner: MetaLearner, tasks: Sequence[Any], adapt_steps: int, episodes: int, seed: int
) -> Adaptation:
    """The learner's adaptation to every one of ``tasks`` (:meth:`MetaLearner.adaptation`):
    ``adapt_steps + 1`` blocks of ``episodes`` episodes per task, seeded by ``seed``, the
    learner's training state left untouched."""
    if adapt_steps < 0 or episodes < 1 or not tasks:
        raise ValueError(
            f"need adapt_steps >= 0, episodes >= 1 and some tasks; got {adapt_steps}, "
            f"{episodes}, {len(tasks)} tasks"
        )
    return learner.adaptation(tasks, adapt_steps, episodes, seed)


def evaluate(
    learner: MetaLearner,
    tasks: Sequence[Any],
    adapt_steps: int,
    episodes: int,
    seed: int = 0,
    split: str = "test",
) -> EvaluationResult:
    """Measure adaptation of ``learner`` on ``tasks`` (its training state is left untouched)."""
    began = time.perf_counter()
    per_step = adaptation_trajectory(learner, tasks, adapt_steps, episodes, seed).returns
    return EvaluationResult.from_returns(
        per_step, learner.config.family, learner.config.algo, split, episodes, seed,
        time.perf_counter() - began,
    )


def format_table(result: EvaluationResult) -> str:
    """A Markdown table: mean return and 95% interval after each adaptation step."""
    lines = [
        f"{result.algo} on {result.family} ({result.split}, {result.test_tasks} tasks, "
        f"{result.episodes_per_step} episodes per step)",
        "",
        "| adaptation steps | mean return | 95% CI |",
        "|---:|---:|:---:|",
    ]
    for k, mean, low, high in zip(
        result.adapt_steps, result.mean_return, result.ci95_low, result.ci95_high
    ):
        lines.append(f"| {k} | {mean:.2f} | [{low:.2f}, {high:.2f}] |")
    return "\n".join(lines)

