"""Side-by-side comparison of meta-learners and baselines on the same held-out tasks.

``compare`` evaluates every learner on one ``family.test_tasks(n, seed, split)`` split: meta-
learners from their run directories (or trained here with a stated budget) through
:func:`metarl.run.evaluation.evaluate`, baselines through :mod:`metarl.tools.baselines`. It writes
``results.json`` (per learner the ``evaluate --json`` schema, per-task returns and its setup),
``results.md`` (a Markdown table) and ``adaptation.png`` (return vs adaptation step with 95%
bands). Intervals are Student-t across tasks
(:func:`metarl.run.evaluation.confidence_interval`).

Each learner's row also states what its training cost, so that the comparison is fair on both
axes: the real environment steps it sampled before the test tasks (meta-training, or
ppo-finetune's pretraining; none for ppo-scratch and random) and the wall time that took. A
meta-learner's figures are read from its run's ``metrics.csv`` (the ``env_steps`` and
``iteration_seconds`` columns, summed over its iterations, resumed runs included).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from metarl import registry
from metarl.config import ConfigError, EvaluationConfig, TrainConfig, from_dict
from metarl.run.checkpoint import load_learner, read_checkpoint, saved_config
from metarl.run.evaluation import evaluate
from metarl.run.factory import resolve_device
from metarl.run.rundir import (
    CHECKPOINT,
    RunDirectoryError,
    check_output_dir,
    read_metrics,
    write_set,
)
from metarl.run.training import train
from metarl.tools.baselines import BASELINES, meta_training_steps, run_baseline
from metarl.tools.plot import adaptation_figure, save_png

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
ADAPTATION_PNG = "adaptation.png"
RUNS = "runs"


@dataclass(frozen=True)
class _MetaRun:
    """A meta-learner to evaluate: an existing run, or one to train into ``run_dir``."""

    run_dir: Path
    config: TrainConfig
    iterations: int
    trained_here: bool


@dataclass(frozen=True)
class Entry:
    """One row of a comparison: a learner or baseline, with the real episodes it adapts on
    per step (``NAME@E`` in ``--algos``; the evaluation's episodes otherwise)."""

    label: str
    algo: str
    episodes: int


def parse_entries(algos: Sequence[str], episodes: int) -> list[Entry]:
    """``--algos`` entries: ``maml``, or ``maml@5`` for 5 real episodes per adaptation step."""
    entries = []
    for text in algos:
        algo, sep, count = text.partition("@")
        if sep and not (count.isdigit() and int(count) >= 1):
            raise ConfigError(f"--algos entry {text!r}: after '@' give the real episodes per "
                              "adaptation step, a whole number >= 1 (e.g. maml@5)")
        entries.append(Entry(text, algo, int(count) if sep else episodes))
    labels = [entry.label for entry in entries]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--algos names a learner twice: {','.join(labels)}")
    return entries


def compare(
    family: str,
    algos: Sequence[str],
    evaluation: EvaluationConfig,
    out_dir: str | Path,
    runs: Mapping[str, str | Path] | None = None,
    train_iterations: int = 100,
    train_options: Mapping[str, Any] | None = None,
    pretrain_steps: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate ``algos`` on the same held-out tasks and write the results into ``out_dir``.

    An entry of ``algos`` is a learner or baseline name, or ``NAME@E`` to adapt on ``E``
    real episodes per step instead of ``evaluation.episodes`` (the same learner may appear
    with several budgets). Meta-learners named in ``runs`` are loaded from their run
    directories; the others are trained here for ``train_iterations`` (with
    ``train_options``, any :class:`TrainConfig` fields; ``evaluation.seed`` is their seed)
    into ``out_dir/runs/ALGO``. ``pretrain_steps``
    is ppo-finetune's pretraining budget; by default the environment steps the compared
    meta-learners' training sampled. Every input is checked before any work starts. Returns
    the ``results.json`` data.
    """
    out = Path(out_dir)
    check_output_dir(out, "--out")
    task_family = registry.get_family(family)
    test_tasks, adapt_steps, episodes = (evaluation.test_tasks, evaluation.adapt_steps,
                                         evaluation.episodes)
    split, seed = evaluation.split, evaluation.seed
    if train_iterations < 1:
        raise ConfigError(f"--train-iterations must be >= 1, got {train_iterations}")
    if pretrain_steps is not None and pretrain_steps < 1:
        raise ConfigError(f"--pretrain-steps must be >= 1, got {pretrain_steps}")
    task_family.check_split(split)
    entries = parse_entries(algos, episodes)
    names = list(dict.fromkeys(entry.algo for entry in entries))
    meta_runs = _plan_meta_runs(family, names, out, dict(runs or {}), train_iterations,
                                dict(train_options or {}), seed, device)
    horizon = task_family.max_episode_steps
    planned = [meta_training_steps(run.config, horizon, run.iterations) for run in
               meta_runs.values() if run.trained_here]
    planned += [training_cost(run.run_dir)[0] for run in meta_runs.values()
                if not run.trained_here]
    matched_steps = max(planned, default=meta_training_steps(
        from_dict(TrainConfig, dict(train_options or {})), horizon, train_iterations))

    tasks = task_family.test_tasks(test_tasks, seed=seed, split=split)
    results: dict[str, Any] = {
        "family": family, "split": split, "seed": seed, "test_tasks": test_tasks,
        "episodes_per_step": episodes, "adapt_steps": list(range(adapt_steps + 1)),
        "tasks": [task_family.task_to_json(task) for task in tasks], "learners": {},
    }
    learners: dict[str, tuple[Any, int, float]] = {}  # algo -> learner, iterations, seconds
    for entry in tqdm(entries, desc="compare", unit="learner"):
        algo = entry.algo
        if algo in meta_runs:
            run = meta_runs[algo]
            if algo not in learners:
                began = time.perf_counter()
                if run.trained_here:
                    loaded = train(run.config, run.run_dir), run.iterations
                else:
                    loaded = load_learner(run.run_dir, resolve_device(device))
                learners[algo] = (*loaded, time.perf_counter() - began)
            learner, iterations, train_seconds = learners[algo]
            result = evaluate(learner, tasks, adapt_steps, entry.episodes, seed, split)
            steps, seconds, counted = training_cost(run.run_dir)
            bound = "" if counted else "at most "
            origin = (f"trained here in {train_seconds:.0f} s" if run.trained_here
                      else "loaded from its run directory")
            setup: dict[str, Any] = {
                "kind": "meta-learner", "run_dir": str(run.run_dir), "trained_here":
                run.trained_here, "iterations": iterations, "meta_training_env_steps": steps,
                "training_env_steps": steps, "training_env_steps_counted": counted,
                "training_seconds": seconds,
                "description": f"{iterations} meta-iterations ({bound}{steps:,} env steps of "
                               f"meta-training in {seconds:.0f} s), run `{run.run_dir}`, "
                               f"{origin}",
            }
            if run.trained_here:
                setup["train_seconds"] = train_seconds
        else:
            budget = matched_steps if pretrain_steps is None else pretrain_steps
            result, setup = run_baseline(algo, task_family, tasks, adapt_steps, entry.episodes,
                                         seed, split, budget, device)
            setup["training_env_steps"] = setup.get("pretrain_steps", 0)
            setup["training_seconds"] = setup.get("pretrain_seconds", 0.0)
            setup["description"] = _describe_baseline(algo, setup, matched_steps)
        results["learners"][entry.label] = {**result.to_json(), "setup": setup}
    figure = adaptation_figure(results)
    write_set({
        out / RESULTS_JSON: (lambda handle: json.dump(results, handle, indent=2), False),
        out / RESULTS_MD: (lambda handle: handle.write(format_comparison(results)), False),
        out / ADAPTATION_PNG: (lambda handle: save_png(figure, handle), True),
    })
    return results


def training_cost(run_dir: Path) -> tuple[int, float, bool]:
    """The real env steps a run sampled in training, the seconds its iterations took, and
    whether the steps were counted, from its ``metrics.csv``; for a run logged without
    ``env_steps`` the steps are a bound, every episode to the horizon
    (:func:`metarl.tools.baselines.meta_training_steps`)."""
    rows = read_metrics(run_dir)
    seconds = sum(float(row["iteration_seconds"]) for row in rows)
    if rows and "env_steps" in rows[0]:
        return sum(int(float(row["env_steps"])) for row in rows), seconds, True
    config = saved_config(read_checkpoint(run_dir))
    horizon = registry.get_family(config.family).max_episode_steps
    return meta_training_steps(config, horizon, len(rows)), seconds, False


def _train_config(family: str, algo: str, iterations: int, options: dict[str, Any], seed: int,
                  device: str) -> TrainConfig:
    settings = {**options, "family": family, "algo": algo, "iterations": iterations,
                "seed": seed, "device": device}
    return from_dict(TrainConfig, settings, what="training option")


def _plan_meta_runs(
    family: str, algos: Sequence[str], out: Path, runs: dict[str, str | Path],
    train_iterations: int, train_options: dict[str, Any], seed: int, device: str,
) -> dict[str, _MetaRun]:
    """Check the algorithm names and run directories; say where each meta-learner comes from."""
    meta_names = registry.learner_names()
    known = [*meta_names, *BASELINES]
    if not algos:
        raise ConfigError(f"--algos is empty; choose from {', '.join(known)}")
    for algo in algos:
        if algo not in known:
            raise ConfigError(f"unknown algorithm {algo!r} in --algos; choose from "
                              f"{', '.join(known)}")
    for algo in runs:
        if algo not in algos or algo in BASELINES:
            raise ConfigError(f"--run {algo}=... must name a meta-learner listed in --algos "
                              f"({', '.join(a for a in algos if a in meta_names) or 'none'})")
    plans = {}
    for algo in (a for a in algos if a in meta_names):
        if algo in runs:
            run_dir = Path(runs[algo])
            try:
                state = read_checkpoint(run_dir)
            except RunDirectoryError as error:
                raise ConfigError(f"--run {algo}={run_dir}: {error}") from None
            config = saved_config(state)
            if (config.family, config.algo) != (family, algo):
                raise ConfigError(f"--run {algo}={run_dir} holds {config.algo} on "
                                  f"{config.family}, not {algo} on {family}")
            plans[algo] = _MetaRun(run_dir, config, int(state["iteration"]), False)
        else:
            run_dir = out / RUNS / algo
            if (run_dir / CHECKPOINT).exists():
                raise ConfigError(f"{str(run_dir)!r} already holds a run; pass it with "
                                  f"--run {algo}={run_dir} or choose another --out")
            config = _train_config(family, algo, train_iterations, train_options, seed, device)
            plans[algo] = _MetaRun(run_dir, config, train_iterations, True)
    return plans


def _describe_baseline(algo: str, setup: Mapping[str, Any], matched_steps: int) -> str:
    per_step = f"{setup['env_steps_per_adaptation_step']:,} env steps per adaptation step"
    if algo == "random":
        return "uniform random actions (no learning)"
    if algo == "ppo-scratch":
        return f"SB3 PPO from a fresh policy on each task, {per_step}"
    return (f"SB3 PPO pretrained for {setup['pretrain_steps']:,} env steps on the training-task "
            f"mixture (meta-training sampled at most {matched_steps:,}) in "
            f"{setup['pretrain_seconds']:.0f} s, then fine-tuned on each task, {per_step}")


def format_comparison(results: Mapping[str, Any]) -> str:
    """``results.md``: a row per learner, mean return [95% CI] after each adaptation step."""
    episodes = results["episodes_per_step"]
    learners = results["learners"]
    steps = results["adapt_steps"]
    lines = [
        f"# Adaptation on {results['family']} ({results['split']} split)",
        "",
        f"{results['test_tasks']} held-out tasks (seed {results['seed']}), {episodes} real "
        "episodes per adaptation step unless the row says otherwise (NAME@E). Each cell: mean "
        "undiscounted return over the tasks after k steps (k × E real episodes of the task) "
        "[95% Student-t interval across tasks]. Wall "
        "time: adapting and evaluating on all tasks. Training: the real env steps each learner "
        "sampled before seeing the test tasks (meta-training or pretraining; ≤: a bound, for a "
        "run logged before steps were counted) and the wall time that took.",
        "",
        "| learner | real episodes per step | " + " | ".join(f"k = {k}" for k in steps)
        + " | wall time (s) | training env steps | training time (s) |",
        "|---|---:|" + "---:|" * len(steps) + "---:|---:|---:|",
    ]
    for name, result in learners.items():
        cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                 zip(result["mean_return"], result["ci95_low"], result["ci95_high"],
                     strict=True)]
        setup = result["setup"]
        lines.append(f"| {name} | {result['episodes_per_step']} | " + " | ".join(cells)
                     + f" | {result['wall_seconds']:.1f} | "
                     f"{'' if setup.get('training_env_steps_counted', True) else '≤ '}"
                     f"{setup.get('training_env_steps', 0):,} | "
                     f"{setup.get('training_seconds', 0.0):.0f} |")
    lines += ["", "## Setup", ""]
    lines += [f"- **{name}**: {result['setup']['description']}" for name, result in
              learners.items()]
    lines += ["", "## Verdict", ""] + _verdict(learners)
    return "\n".join(lines) + "\n"


def _verdict(learners: Mapping[str, Any]) -> list[str]:
    """Plain sentences: the ranking after the last step, every step at which a baseline beats
    a meta-learner with the intervals apart, and how many more times its mean is higher within
    overlapping intervals (differences the tasks cannot tell apart)."""
    final = {name: r["mean_return"][-1] for name, r in learners.items()}
    ranking = sorted(final, key=final.__getitem__, reverse=True)
    lines = ["Ranking by mean return after the last step: " + " > ".join(
        f"{name} ({final[name]:.2f})" for name in ranking) + "."]
    metas = [n for n, r in learners.items() if r["setup"]["kind"] == "meta-learner"]
    within_noise: list[str] = []
    for baseline in (n for n in learners if n not in metas):
        for meta in metas:
            b, m = learners[baseline], learners[meta]
            for k, (b_mean, m_mean) in enumerate(zip(b["mean_return"], m["mean_return"],
                                                     strict=True)):
                if b_mean <= m_mean:
                    continue
                if b["ci95_low"][k] > m["ci95_high"][k]:
                    lines.append(f"- k = {k}: the baseline {baseline} beats the meta-learner "
                                 f"{meta} ({b_mean:.2f} vs {m_mean:.2f}; the intervals do not "
                                 "overlap).")
                else:
                    within_noise.append(f"{baseline} over {meta} at k = {k}")
    if within_noise:
        lines.append(f"- Within overlapping intervals a baseline's mean is higher "
                     f"{len(within_noise)} times: " + "; ".join(within_noise) + ".")
    return lines
