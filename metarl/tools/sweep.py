"""``metarl sweep``: seeds and hyperparameter grids as Ray Tune trials, summarised across seeds.

A sweep file is a JSON object::

    {"base": {"family": "navigation2d", "iterations": 50},     # TrainConfig fields
     "grid": {"inner_lr": [0.05, 0.1]},                        # field -> values to try
     "seeds": [0, 1, 2],
     "evaluate": {"test_tasks": 40, "adapt_steps": 1, "episodes": 20}}

Every (grid point, seed) is one trial: a normal run directory ``OUT/LABEL/seed-S`` trained with
:func:`metarl.run.training.train` and evaluated on held-out tasks with
:func:`metarl.run.evaluation.evaluate` (``evaluation.json`` in the run directory). The
``evaluate`` object takes :class:`~metarl.config.EvaluationConfig` fields, with one
adaptation step by default. ``OUT/summary.json``
and ``OUT/summary.md`` give, per configuration, the mean across seeds of the held-out return
before and after adaptation with a 95% Student-t interval across seeds. Trials resume their run
directories, so running the same command again finishes an interrupted sweep.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarl import registry
from metarl.config import ConfigError, EvaluationConfig, TrainConfig, from_dict
from metarl.family.base import held_out_tasks
from metarl.process import set_threads
from metarl.run.evaluation import confidence_interval, evaluate
from metarl.run.rundir import atomic_write, check_output_dir, write_json
from metarl.run.settings import resolve_settings
from metarl.run.training import train

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
EVALUATION_JSON = "evaluation.json"
SWEEP_KEYS = ("base", "grid", "seeds", "evaluate")


@dataclass(frozen=True)
class Trial:
    """One (configuration, seed) pair and its run directory."""

    label: str
    seed: int
    config: TrainConfig
    run_dir: Path


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: the trials to run and how to evaluate them."""

    spec: dict[str, Any]
    labels: list[str]
    trials: list[Trial]
    evaluation: EvaluationConfig


def load_sweep(spec: Mapping[str, Any], out_dir: Path) -> Sweep:
    """Check a sweep file's contents and plan its trials; every error is a :class:`ConfigError`."""
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {unknown}; known: {list(SWEEP_KEYS)}")
    base, grid = spec.get("base", {}), spec.get("grid", {})
    seeds, settings = spec.get("seeds"), spec.get("evaluate", {})
    for key, value in (("base", base), ("grid", grid), ("evaluate", settings)):
        if not isinstance(value, dict):
            raise ConfigError(f"sweep key {key!r} must be a JSON object, got {value!r}")
    if not isinstance(seeds, list) or not seeds or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds
    ) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"sweep key 'seeds' must be a non-empty list of distinct integers "
                          f">= 0, got {seeds!r}")
    for key, values in grid.items():
        if key == "seed":
            raise ConfigError("grid key 'seed' is not a training setting to sweep: seeds go "
                              "under 'seeds'")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid key {key!r} must map to a non-empty list, got {values!r}")
    if "seed" in base:
        raise ConfigError("the sweep's 'base' may not set 'seed'; list seeds under 'seeds'")
    evaluation = from_dict(EvaluationConfig, {"adapt_steps": 1, **settings},
                           what="sweep evaluate")
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    labels = [_label(point) for point in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"grid {grid!r} lists a value twice")
    trials = []
    for label, point in zip(labels, points):
        for seed in seeds:
            config = resolve_settings(base, point, {"seed": seed})
            trials.append(Trial(label, seed, config, out_dir / _directory(label) / f"seed-{seed}"))
    _check_registered(trials, evaluation)
    return Sweep(dict(spec), labels, trials, evaluation)


def _label(point: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in point.items()) \
        or "base"


def _directory(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", label)


def _check_registered(trials: list[Trial], evaluation: EvaluationConfig) -> None:
    for trial in trials:
        registry.get_family(trial.config.family).check_split(evaluation.split)
        if trial.config.backend == "ray":
            raise ConfigError("sweep trials sample locally (each trial is already a Ray task); "
                              "remove 'backend': 'ray' from the sweep's base and grid")


def run_trial(trial: Trial, evaluation: EvaluationConfig) -> dict[str, float]:
    """Train one trial's run directory (resuming it if present) and evaluate it."""
    learner = train(trial.config, trial.run_dir, resume=True, log=None)
    tasks = held_out_tasks(learner.family, evaluation.test_tasks, evaluation.seed,
                           evaluation.split)
    result = evaluate(learner, tasks, evaluation.adapt_steps, evaluation.block_episodes,
                      evaluation.seed, evaluation.split)
    write_json(trial.run_dir / EVALUATION_JSON, result.to_json())
    return {"return_before": result.mean_return[0], "return_after": result.mean_return[-1]}


def _tune_trial(param: dict[str, Any]) -> None:
    from ray import tune

    set_threads(1)  # the start of a trial's process
    trial, evaluation = param["trial"], param["evaluation"]
    config = resolve_settings(trial["config"])
    tune.report(run_trial(Trial(trial["label"], config.seed, config, Path(trial["run_dir"])),
                          EvaluationConfig(**evaluation)))


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def sweep(spec: Mapping[str, Any], out_dir: str | Path, ray_address: str = "") -> dict[str, Any]:
    """Run every trial of the sweep ``spec`` on Ray Tune and write the summary into ``out_dir``.

    Connects to ``ray_address`` (or starts a local Ray instance) unless Ray is initialised.
    Returns the ``summary.json`` data; trials that failed are listed under ``failed``.
    """
    check_output_dir(Path(out_dir), "--out")
    out = Path(out_dir).resolve()
    plan = load_sweep(spec, out)  # every input is checked before Ray starts
    try:  # Ray is an optional extra, imported only when a sweep runs
        import ray
        from ray import tune
    except ImportError as error:
        raise ConfigError(
            f"metarl sweep needs Ray ({error}); install it with: pip install -e '.[ray]'"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", plan.spec)
    if not ray.is_initialized():
        ray.init(address=ray_address or None, include_dashboard=False)
    tuner = tune.Tuner(
        _tune_trial,
        param_space={
            "trial": tune.grid_search([
                {"label": t.label, "config": t.config.to_json(), "run_dir": str(t.run_dir)}
                for t in plan.trials
            ]),
            "evaluation": asdict(plan.evaluation),
        },
        tune_config=tune.TuneConfig(trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    results = tuner.fit()
    failed = {
        (result.config["trial"]["label"], result.config["trial"]["config"]["seed"]):
        str(result.error)
        for result in results if result.error is not None
    }
    summary = summarise(plan, failed)
    write_json(out / SUMMARY_JSON, summary)
    atomic_write(out / SUMMARY_MD, lambda handle: handle.write(format_summary(summary)))
    return summary


def summarise(plan: Sweep, failed: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    """Per configuration: each seed's held-out returns and their mean and 95% interval."""
    configurations = []
    for label in plan.labels:
        trials = [t for t in plan.trials if t.label == label and (label, t.seed) not in failed]
        results = [json.loads((t.run_dir / EVALUATION_JSON).read_text()) for t in trials]
        entry: dict[str, Any] = {"label": label, "seeds": [t.seed for t in trials],
                                 "run_dirs": [str(t.run_dir) for t in trials]}
        for name, step in (("before", 0), ("after", -1)):
            values = np.array([r["mean_return"][step] for r in results])
            low, high = confidence_interval(values) if len(values) else (np.nan, np.nan)
            entry[f"return_{name}"] = {
                "per_seed": values.tolist(), "mean": float(values.mean()) if len(values)
                else None, "ci95_low": _finite(low), "ci95_high": _finite(high),
            }
        configurations.append(entry)
    return {
        "sweep": plan.spec,
        "evaluation": asdict(plan.evaluation),
        "configurations": configurations,
        "failed": [{"label": label, "seed": seed, "error": error}
                   for (label, seed), error in failed.items()],
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def format_summary(summary: Mapping[str, Any]) -> str:
    """``summary.md``: one row per configuration, held-out return [95% CI across seeds]."""
    evaluation = summary["evaluation"]
    base = summary["sweep"].get("base", {})
    k = evaluation["adapt_steps"]
    grid = summary["sweep"].get("grid", {})
    algo, family = (", ".join(map(str, grid.get(key, [base.get(key, default)])))
                    for key, default in (("algo", TrainConfig.algo),
                                         ("family", TrainConfig.family)))
    lines = [
        f"# Sweep: {algo} on {family}",
        "",
        f"Held-out {evaluation['split']} split: {evaluation['test_tasks']} tasks (seed "
        f"{evaluation['seed']}), {evaluation['episodes']} episodes per adaptation step. Each "
        "cell: mean over seeds of the mean undiscounted return over the tasks "
        "[95% Student-t interval across seeds].",
        "",
        f"| configuration | seeds | return before adaptation | return after {k} step"
        f"{'' if k == 1 else 's'} |",
        "|---|---|---:|---:|",
    ]
    for entry in summary["configurations"]:
        cells = [_cell(entry[f"return_{name}"]) for name in ("before", "after")]
        seeds = ",".join(str(s) for s in entry["seeds"]) or "none"
        lines.append(f"| {entry['label']} | {seeds} | {cells[0]} | {cells[1]} |")
    for failure in summary["failed"]:
        lines.append(f"\nFAILED: {failure['label']} seed {failure['seed']}: "
                     f"{failure['error'].splitlines()[0] if failure['error'] else ''}")
    return "\n".join(lines) + "\n"


def _cell(stats: Mapping[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    if stats["ci95_low"] is None:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} [{stats['ci95_low']:.2f}, {stats['ci95_high']:.2f}]"
