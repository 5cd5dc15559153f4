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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metarl.config import MAX_COLUMNS, ConfigError, EvaluationConfig, from_dict
from metarl.learn.adaptation import Adaptation, BlockEpisodes, block_sizes
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
    """Episodes per adaptation block (the first blocks', under the Meta-World protocol)."""
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
    success_rate: list[float] | None = None
    """For families that define success: the mean over tasks of the share of each step's
    episodes that succeeded (at any of their steps), with a 95% interval across tasks."""
    success_ci95_low: list[float] | None = None
    success_ci95_high: list[float] | None = None
    task_successes: list[list[float]] | None = None  # [adapt step][task]
    block_episodes: list[int] | None = None
    """Episodes of each block (all ``episodes_per_step`` but the last, under the Meta-World
    protocol: its evaluation episodes)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_returns(
        cls, returns: Sequence[np.ndarray], family: str, algo: str, split: str,
        episodes: BlockEpisodes, seed: int, wall_seconds: float,
        successes: Sequence[np.ndarray] | None = None,
    ) -> EvaluationResult:
        """Summarise per-task returns (one array per adaptation step, 0 first), and per-task
        success rates where given."""
        per_step = [np.asarray(r, dtype=np.float64) for r in returns]
        intervals = [confidence_interval(r) for r in per_step]
        gains = [r - per_step[0] for r in per_step]
        sizes = block_sizes(len(per_step) - 1, episodes)
        gain_intervals = [confidence_interval(g) for g in gains]
        return cls(
            family=family,
            algo=algo,
            split=split,
            test_tasks=len(per_step[0]),
            episodes_per_step=sizes[0],
            block_episodes=sizes,
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
            **_success_fields(successes),
        )


def _success_fields(successes: Sequence[np.ndarray] | None) -> dict[str, Any]:
    if successes is None:
        return {}
    rates = [np.asarray(s, dtype=np.float64) for s in successes]
    intervals = [confidence_interval(r) for r in rates]
    return {"success_rate": [float(np.mean(r)) for r in rates],
            "success_ci95_low": [max(0.0, low) for low, _ in intervals],
            "success_ci95_high": [min(1.0, high) for _, high in intervals],
            "task_successes": [r.tolist() for r in rates]}


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
    learner: Learner, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes,
    seed: int
) -> Adaptation:
    """The learner's adaptation to every one of ``tasks`` (:meth:`Learner.adaptation`):
    ``adapt_steps + 1`` blocks of ``episodes`` episodes per task, seeded by ``seed``, the
    learner's training state left untouched."""
    given: list[Any] = list(episodes) if isinstance(episodes, list | tuple) else [episodes]
    for size in given:
        from_dict(EvaluationConfig, {"adapt_steps": adapt_steps, "episodes": size,
                                     "seed": seed}, what="evaluation setting")
    sizes = block_sizes(adapt_steps, episodes)
    largest = max(sizes)
    if not tasks:
        raise ConfigError("adapting needs at least one task")
    if len(tasks) * largest > MAX_COLUMNS:
        raise ConfigError(f"{len(tasks):,} tasks x {largest:,} episodes = "
                          f"{len(tasks) * largest:,} episodes at once is more than "
                          f"{MAX_COLUMNS:,}; lower --test-tasks or --episodes")
    check_fits(evaluation_bytes(learner.config, learner.family, len(tasks), adapt_steps,
                                largest),
               f"adapting to {len(tasks):,} tasks in {adapt_steps + 1} blocks of {largest:,} "
               "episodes", "--test-tasks, --adapt-steps or --episodes")
    return learner.adaptation(tasks, adapt_steps, sizes if len(set(sizes)) > 1 else largest,
                              seed)


def evaluate(
    learner: Learner,
    tasks: Sequence[Any],
    adapt_steps: int,
    episodes: BlockEpisodes,
    seed: int = 0,
    split: str = "test",
) -> EvaluationResult:
    """Measure adaptation of ``learner`` on ``tasks`` (its training state is left untouched):
    ``adapt_steps + 1`` blocks of ``episodes`` episodes (one number, or one per block)."""
    began = time.perf_counter()
    adaptation = adaptation_trajectory(learner, tasks, adapt_steps, episodes, seed)
    return EvaluationResult.from_returns(
        adaptation.returns, learner.config.family, learner.config.algo, split, episodes, seed,
        time.perf_counter() - began, adaptation.successes,
    )


def format_table(result: EvaluationResult) -> str:
    """A Markdown table: per adaptation step, the mean return with its 95% interval, the
    median and quartiles over tasks, the share of tasks that improved on their return before
    adaptation and the mean paired gain over it with its 95% interval."""
    success = result.success_rate is not None
    lines = [
        f"{result.algo} on {result.family} ({result.split}, {result.test_tasks} tasks, "
        f"{describe_blocks(result.to_json())})",
        "",
        "| adaptation steps | mean return | 95% CI | median [quartiles] | tasks improved "
        "| gain over k = 0 [95% CI] |" + (" success rate [95% CI] |" if success else ""),
        "|---:|---:|:---:|---:|---:|---:|" + ("---:|" if success else ""),
    ]
    for k in result.adapt_steps:
        low, median, high = result.quartiles[k]
        share = result.share_improved[k]
        gain = (f"{result.gain[k]:+.2f} [{result.gain_ci95_low[k]:+.2f}, "
                f"{result.gain_ci95_high[k]:+.2f}]" if k else "")
        lines.append(
            f"| {k} | {result.mean_return[k]:.2f} | [{result.ci95_low[k]:.2f}, "
            f"{result.ci95_high[k]:.2f}] | {median:.2f} [{low:.2f}, {high:.2f}] | "
            f"{'' if share is None else f'{100 * share:.0f}%'} | {gain} |"
            + (f" {success_cell(result, k)} |" if success else ""))
    return "\n".join(lines)


def success_cell(result: Mapping[str, Any] | EvaluationResult, k: int) -> str:
    """``62% [55%, 69%]``: the success rate after ``k`` steps with its interval."""
    data = result.to_json() if isinstance(result, EvaluationResult) else result
    if data.get("success_rate") is None:
        return ""
    return (f"{100 * data['success_rate'][k]:.0f}% [{100 * data['success_ci95_low'][k]:.0f}%, "
            f"{100 * data['success_ci95_high'][k]:.0f}%]")


def describe_blocks(result: Mapping[str, Any]) -> str:
    """``20 episodes per step``, or under the Meta-World protocol ``10 adaptation episodes per
    step, then 3 evaluation episodes``."""
    blocks = result.get("block_episodes") or [result["episodes_per_step"]]
    if len(set(blocks)) <= 1:
        return f"{blocks[0]} episodes per step"
    return (f"{blocks[0]} adaptation episodes per step, then {blocks[-1]} evaluation "
            "episodes")
