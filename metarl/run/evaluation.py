"""Few-episode adaptation on held-out tasks: return after 0..K adaptation steps.

For every test task at once, block after block of ``episodes`` episodes: the learner plays a
block, its mean return is recorded, and the learner adapts on it (gradient learners: sample
with the current parameters, then adapt them; RL^2: the next episodes of one trial, see
:meth:`metarl.learn.learner.Learner.adaptation`). Entry ``k`` of the result is the mean
over tasks of the return of block ``k`` (after ``k`` adaptation steps, ``k * episodes``
episodes of the task), with a 95% Student-t interval across tasks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metarl.config import MAX_COLUMNS, ConfigError, EvaluationConfig, from_dict
from metarl.learn.adaptation import Adaptation
from metarl.learn.learner import Learner
from metarl.run.resources import check_fits, evaluation_bytes


@dataclass
class EvaluationResult:
    """Returns after each adaptation step on held-out tasks: the mean over tasks with a 95%
    Student-t interval, and the per-task picture (quartiles, the share of tasks that improved
    on their return before adaptation, the paired gain over it), so that adaptation that is
    all-or-nothing per task is visible, not averaged away. Lists are indexed by step ``k``
    (0 = before adaptation)."""

    family: str
    algo: str
    split: str
    test_tasks: int
    episodes_per_step: int
    adapt_steps: list[int]
    mean_return: list[float]
    ci95_low: list[float]
    ci95_high: list[float]
    quartiles: list[list[float]]
    """[25th percentile, median, 75th percentile] of the tasks' returns, per step."""
    share_improved: list[float | None]
    """Share of tasks whose return after k steps beats their return before (None at k = 0)."""
    gain: list[float]
    """Mean over tasks of the return after k steps minus the return before (paired)."""
    gain_ci95_low: list[float]
    gain_ci95_high: list[float]
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
        per_step = [np.asarray(r, dtype=np.float64) for r in returns]
        intervals = [confidence_interval(r) for r in per_step]
        gains = [r - per_step[0] for r in per_step]
        gain_intervals = [confidence_interval(g) for g in gains]
        return cls(
            family=family,
            algo=algo,
            split=split,
            test_tasks=len(per_step[0]),
            episodes_per_step=episodes,
            adapt_steps=list(range(len(per_step))),
            mean_return=[float(np.mean(r)) for r in per_step],
            ci95_low=[low for low, _ in intervals],
            ci95_high=[high for _, high in intervals],
            quartiles=[[float(q) for q in np.percentile(r, [25, 50, 75])] for r in per_step],
            share_improved=[None] + [float(np.mean(r > per_step[0])) for r in per_step[1:]],
            gain=[float(np.mean(g)) for g in gains],
            gain_ci95_low=[low for low, _ in gain_intervals],
            gain_ci95_high=[high for _, high in gain_intervals],
            task_returns=[r.tolist() for r in per_step],
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
    learner: Learner, tasks: Sequence[Any], adapt_steps: int, episodes: int, seed: int
) -> Adaptation:
    """The learner's adaptation to every one of ``tasks`` (:meth:`Learner.adaptation`):
    ``adapt_steps + 1`` blocks of ``episodes`` episodes per task, seeded by ``seed``, the
    learner's training state left untouched."""
    from_dict(EvaluationConfig, {"adapt_steps": adapt_steps, "episodes": episodes,
                                 "seed": seed}, what="evaluation setting")
    if not tasks:
        raise ConfigError("adapting needs at least one task")
    if len(tasks) * episodes > MAX_COLUMNS:
        raise ConfigError(f"{len(tasks):,} tasks x {episodes:,} episodes = "
                          f"{len(tasks) * episodes:,} episodes at once is more than "
                          f"{MAX_COLUMNS:,}; lower --test-tasks or --episodes")
    check_fits(evaluation_bytes(learner.config, learner.family, len(tasks), adapt_steps,
                                episodes),
               f"adapting to {len(tasks):,} tasks in {adapt_steps + 1} blocks of {episodes:,} "
               "episodes", "--test-tasks, --adapt-steps or --episodes")
    return learner.adaptation(tasks, adapt_steps, episodes, seed)


def evaluate(
    learner: Learner,
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
    """A Markdown table: per adaptation step, the mean return with its 95% interval, the
    median and quartiles over tasks, the share of tasks that improved on their return before
    adaptation and the mean paired gain over it with its 95% interval."""
    lines = [
        f"{result.algo} on {result.family} ({result.split}, {result.test_tasks} tasks, "
        f"{result.episodes_per_step} episodes per step)",
        "",
        "| adaptation steps | mean return | 95% CI | median [quartiles] | tasks improved "
        "| gain over k = 0 [95% CI] |",
        "|---:|---:|:---:|---:|---:|---:|",
    ]
    for k in result.adapt_steps:
        low, median, high = result.quartiles[k]
        share = result.share_improved[k]
        gain = (f"{result.gain[k]:+.2f} [{result.gain_ci95_low[k]:+.2f}, "
                f"{result.gain_ci95_high[k]:+.2f}]" if k else "")
        lines.append(
            f"| {k} | {result.mean_return[k]:.2f} | [{result.ci95_low[k]:.2f}, "
            f"{result.ci95_high[k]:.2f}] | {median:.2f} [{low:.2f}, {high:.2f}] | "
            f"{'' if share is None else f'{100 * share:.0f}%'} | {gain} |")
    return "\n".join(lines)
