"""Figures: the adaptation curves of a comparison and the training curve of a run.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas), so plotting needs
no display and touches no global pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from metarl.config import ConfigError
from metarl.run.rundir import METRICS, atomic_write, read_metrics

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not at start-up
    from matplotlib.figure import Figure


def _figure(width: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, 4.5))


def save_png(figure: Figure, handle: IO[bytes]) -> None:
    """Write ``figure`` as a PNG to an open binary file."""
    figure.tight_layout()
    figure.savefig(handle, format="png", dpi=120)


def _save(figure: Figure, path: Path) -> Path:
    atomic_write(path, lambda handle: save_png(figure, handle), binary=True)
    return path


def adaptation_figure(results: Mapping[str, Any]) -> Figure:
    """Two panels from the ``results.json`` data that :func:`metarl.tools.compare.compare`
    writes: the mean return vs adaptation step, one line per learner with its 95% band (the
    oracle dashed), and the per-task view: the share of tasks whose return after k steps beats
    their own return before adaptation."""
    rated = any(r.get("success_rate") is not None for r in results["learners"].values())
    figure = _figure(17.0 if rated else 12.5)
    panels = figure.subplots(1, 3 if rated else 2,
                             gridspec_kw={"width_ratios": [3, 2, 2] if rated else [3, 2]})
    returns, improved = panels[0], panels[1]
    for name, result in results["learners"].items():
        style = "--" if name == "oracle" else "-"
        (line,) = returns.plot(result["adapt_steps"], result["mean_return"], marker="o",
                               linestyle=style, label=name)
        returns.fill_between(
            result["adapt_steps"], result["ci95_low"], result["ci95_high"],
            color=line.get_color(), alpha=0.2, linewidth=0,
        )
        if rated and result.get("success_rate") is not None:
            panels[2].plot(result["adapt_steps"], [100 * r for r in result["success_rate"]],
                           marker="o", linestyle=style, color=line.get_color())
            panels[2].fill_between(result["adapt_steps"],
                                   [100 * r for r in result["success_ci95_low"]],
                                   [100 * r for r in result["success_ci95_high"]],
                                   color=line.get_color(), alpha=0.2, linewidth=0)
        shares = result.get("share_improved", [None])[1:]
        if shares and name != "oracle":
            improved.plot(result["adapt_steps"][1:], [100 * share for share in shares],
                          marker="o", color=line.get_color(), label=name)
    budgets = {result["episodes_per_step"] for result in results["learners"].values()}
    each = f"{results['episodes_per_step']} real episodes each"
    if len(budgets) > 1:
        each += ", E for NAME@E"
    for axes in panels:
        axes.set_xticks(results["adapt_steps"])
        axes.set_xlabel(f"adaptation steps ({each})")
        axes.grid(alpha=0.3)
    returns.set_ylabel(f"mean return over {results['test_tasks']} tasks")
    returns.set_title(f"{results['family']}, {results['split']} split (bands: 95% CI "
                      "across tasks)")
    improved.set_ylabel("tasks above their return before adaptation (%)")
    improved.set_ylim(0, 100)
    improved.set_title("per task: share of tasks improved")
    if rated:
        panels[2].set_ylabel("episodes that succeeded (%)")
        panels[2].set_ylim(0, 100)
        panels[2].set_title("success rate (bands: 95% CI)")
    panels[-1].legend(*returns.get_legend_handles_labels(), loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), title="learner")
    return figure


def plot_training(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The training curve of a run (return before and after adaptation per meta-iteration),
    drawn from its ``metrics.csv``; written to ``out`` or ``RUN_DIR/training.png``."""
    run_dir = Path(run_dir)
    columns = ("iteration", "return_before", "return_after")
    rows = read_metrics(run_dir, required=columns)
    if not rows:
        raise ConfigError(f"{str(run_dir / METRICS)!r} has no complete rows to plot yet")
    iterations = [int(row["iteration"]) for row in rows]
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7)
    axes = figure.add_subplot()
    axes.plot(iterations, [row["return_before"] for row in rows], label="before adaptation")
    axes.plot(iterations, [row["return_after"] for row in rows], label="after adaptation")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("meta-iteration")
    axes.set_ylabel("mean return over the iteration's tasks")
    axes.set_title(f"training curve: {run_dir.name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return _save(figure, Path(out) if out else run_dir / "training.png")


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, x: str = "env_steps",
              window: int = 5) -> Path:
    """Training curves of several runs on one figure: each run's return before and after
    adaptation (for learners that adapt in memory, its first and last episode of a trial),
    smoothed over ``window`` iterations, against the training env steps (``x="env_steps"``),
    the training seconds (``"seconds"``) or the iteration (``"iteration"``)."""
    if x not in ("env_steps", "seconds", "iteration"):
        raise ConfigError(f"--x must be env_steps, seconds or iteration, got {x!r}")
    figure = _figure(9)
    axes = figure.add_subplot()
    for index, run_dir in enumerate(map(Path, run_dirs)):
        rows = read_metrics(run_dir, required=("iteration", "return_before", "return_after",
                                               "env_steps", "iteration_seconds"))
        if not rows:
            raise ConfigError(f"{str(run_dir / METRICS)!r} has no complete rows to plot yet")
        column = {"env_steps": "env_steps", "seconds": "iteration_seconds"}.get(x)
        xs = (np.cumsum([row[column] for row in rows]) if column
              else np.array([row["iteration"] for row in rows]))
        for key, style in (("return_before", "--"), ("return_after", "-")):
            ys = np.array([row[key] for row in rows])
            smooth = np.convolve(ys, np.ones(window) / window, mode="valid") if len(ys) >= \
                window else ys
            axes.plot(xs[len(xs) - len(smooth):], smooth, style, color=f"C{index % 10}",
                      label=f"{run_dir.name}: {key.replace('_', ' ')}")
    axes.set_xlabel({"env_steps": "training env steps", "seconds": "training seconds",
                     "iteration": "iteration"}[x])
    axes.set_ylabel(f"mean return (over {window} iterations)")
    axes.set_title("training curves (dashed: before adaptation / first episode)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, Path(out))
