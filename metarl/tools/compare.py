"""Side-by-side comparison of learners on the same held-out tasks.

``compare`` evaluates every learner of ``--algos`` (meta-learners and baselines alike: every
registered learner) on one ``family.test_tasks(n, seed, split)`` split, through one path:
the learner comes from its run directory (``--run ALGO=DIR``), or is trained here into
``OUT/runs/ALGO`` (resumed if a killed ``compare`` left it there), or, for a learner with
nothing to learn before the test tasks (``random``, ``ppo-scratch``), is built untrained; then
:func:`metarl.run.evaluation.evaluate` measures it. Where the family has an oracle (its
``oracle_action``: the best return given the task), an ``oracle`` row shows that limit. It
writes ``results.json`` (per learner the ``evaluate --json`` schema, per-task returns and its
setup), ``results.md`` (a Markdown table with the per-task picture) and ``adaptation.png``
(return vs adaptation step with 95% bands, and the share of tasks improved). Intervals are
Student-t across tasks (:func:`metarl.run.evaluation.confidence_interval`).

Each row also states what the learner's training cost, so that the comparison is fair on
both axes: the real environment steps it sampled before the test tasks and the wall time
that took, read from its run's ``metrics.csv``. Learners trained to an env-step budget rather
than a number of iterations (``ppo-finetune``: :attr:`Learner.steps_per_iteration`) get
``--pretrain-steps``, by default the most env steps any compared meta-learner sampled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from metarl import registry
from metarl.config import ConfigError, EvaluationConfig, TrainConfig
from metarl.family.base import TaskFamily, held_out_tasks
from metarl.family.oracle import has_oracle, oracle_play
from metarl.learn.learner import Learner
from metarl.run.directory import RunDirectory
from metarl.run.evaluation import EvaluationResult, evaluate, success_cell
from metarl.run.factory import build_learner, resolve_device
from metarl.run.rundir import (
    RunDirectoryError,
    check_output_dir,
    locked,
    strict_json,
    write_set,
)
from metarl.run.settings import resolve_settings
from metarl.run.training import train
from metarl.tools.plot import adaptation_figure, save_png

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
ADAPTATION_PNG = "adaptation.png"
RUNS = "runs"
ORACLE = "oracle"
ORACLE_STREAM = 0x0AC1E


@dataclass(frozen=True)
class Entry:
    """One row of a comparison: a learner, with the real episodes it adapts on per step
    (``NAME@E`` in ``--algos``; the evaluation's episodes otherwise)."""

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


@dataclass
class Source:
    """Where a compared learner comes from: a run directory to load, one to train into
    (``iterations``), or none (built untrained)."""

    algo: str
    config: TrainConfig
    run_dir: Path | None
    train_here: bool

    @property
    def kind(self) -> str:
        return "baseline" if registry.get_learner(self.algo).baseline else "meta-learner"


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

    An entry of ``algos`` is a learner's name, or ``NAME@E`` to adapt on ``E`` real episodes
    per step instead of ``evaluation.episodes`` (the same learner may appear with several
    budgets). Learners named in ``runs`` are loaded from their run directories; the others
    are trained here for ``train_iterations`` (with ``train_options``, any training
    settings; ``evaluation.seed`` is their seed) into ``out_dir/runs/ALGO``, or built
    untrained where they learn nothing before the test tasks. ``pretrain_steps`` is the
    env-step budget of learners trained by env steps (see the module docstring). Every input
    is checked before any work starts. Returns the ``results.json`` data.
    """
    out = Path(out_dir)
    check_output_dir(out, "--out")
    task_family = registry.get_family(family)
    if train_iterations < 1:
        raise ConfigError(f"--train-iterations must be >= 1, got {train_iterations}")
    if pretrain_steps is not None and pretrain_steps < 1:
        raise ConfigError(f"--pretrain-steps must be >= 1, got {pretrain_steps}")
    task_family.check_split(evaluation.split)
    entries = parse_entries(algos, evaluation.episodes)
    names = list(dict.fromkeys(entry.algo for entry in entries))
    sources = _plan(family, names, out, dict(runs or {}), train_iterations,
                    dict(train_options or {}), evaluation.seed, device, pretrain_steps)
    tasks = held_out_tasks(task_family, evaluation.test_tasks, evaluation.seed, evaluation.split)
    results: dict[str, Any] = {
        "family": family, "split": evaluation.split, "seed": evaluation.seed,
        "test_tasks": evaluation.test_tasks, "episodes_per_step": evaluation.episodes,
        "block_episodes": evaluation.block_episodes,
        "adapt_steps": list(range(evaluation.adapt_steps + 1)),
        "tasks": [task_family.task_to_json(task) for task in tasks], "learners": {},
    }
    with locked(out):
        learners: dict[str, tuple[Learner, dict[str, Any]]] = {}
        for entry in tqdm(entries, desc="compare", unit="learner", disable=None):
            if entry.algo not in learners:
                learners[entry.algo] = _obtain(sources[entry.algo], device)
            learner, setup = learners[entry.algo]
            blocks = replace(evaluation, episodes=entry.episodes).block_episodes
            result = evaluate(learner, tasks, evaluation.adapt_steps, blocks,
                              evaluation.seed, evaluation.split)
            results["learners"][entry.label] = {**result.to_json(), "setup": setup}
        if has_oracle(task_family):
            results["learners"][ORACLE] = _oracle_row(task_family, tasks, evaluation)
        figure = adaptation_figure(results)
        write_set({
            out / RESULTS_JSON: (lambda handle: handle.write(strict_json(results)), False),
            out / RESULTS_MD: (lambda handle: handle.write(format_comparison(results)), False),
            out / ADAPTATION_PNG: (lambda handle: save_png(figure, handle), True),
        })
    return results


def _oracle_row(family: TaskFamily, tasks: Sequence[Any], evaluation: EvaluationConfig
                ) -> dict[str, Any]:
    """The ``oracle`` row: the family's policy that knows each task (the limit), measured in
    the same blocks, each with its own env seeds."""
    began = time.perf_counter()
    seeds = np.random.SeedSequence([evaluation.seed, ORACLE_STREAM]).generate_state(
        evaluation.adapt_steps + 1)
    blocks = [oracle_play(family, tasks, size, int(seed))
              for size, seed in zip(evaluation.block_episodes, seeds, strict=True)]
    successes = [s for _, s in blocks if s is not None]
    result = EvaluationResult.from_returns(
        [r for r, _ in blocks], family.name, ORACLE, evaluation.split, evaluation.block_episodes,
        evaluation.seed, time.perf_counter() - began, successes or None)
    setup = {"kind": "reference", "trained_here": False, "iterations": 0,
             "training_env_steps": 0, "training_env_steps_counted": True,
             "training_seconds": 0.0,
             "description": "acts knowing each task (the family's oracle_action): the best "
                            "return given the task, the limit of adaptation"}
    return {**result.to_json(), "setup": setup}


def _plan(
    family: str, algos: Sequence[str], out: Path, runs: dict[str, str | Path],
    train_iterations: int, train_options: dict[str, Any], seed: int, device: str,
    pretrain_steps: int | None,
) -> dict[str, Source]:
    """Check the learners and run directories; say where each learner comes from."""
    known = registry.learner_names()
    if not algos:
        raise ConfigError(f"--algos is empty; choose from {', '.join(known)}")
    for algo in algos:
        if algo not in known:
            raise ConfigError(f"unknown learner {algo!r} in --algos; choose from "
                              f"{', '.join(known)}")
    for algo in runs:
        if algo not in algos or not registry.get_learner(algo).trainable:
            trained = [a for a in algos if registry.get_learner(a).trainable]
            raise ConfigError(f"--run {algo}=... must name a trained learner listed in --algos "
                              f"({', '.join(trained) or 'none'})")
    base = {**train_options, "family": family, "seed": seed, "device": device}
    sources: dict[str, Source] = {}
    by_steps = []
    for algo in algos:
        learner_class = registry.get_learner(algo)
        if algo in runs:
            run = RunDirectory(runs[algo])
            try:
                config = run.config
            except RunDirectoryError as error:
                raise ConfigError(f"--run {algo}={run.path}: {error}") from None
            if (config.family, config.algo) != (family, algo):
                raise ConfigError(f"--run {algo}={run.path} holds {config.algo} on "
                                  f"{config.family}, not {algo} on {family}")
            run.training_cost()  # its metrics log is read (and checked) before any work
            sources[algo] = Source(algo, config, run.path, False)
        elif not learner_class.trainable:
            config = resolve_settings({**base, "algo": algo, "iterations": 0})
            sources[algo] = Source(algo, config, None, False)
        else:
            config = resolve_settings({**base, "algo": algo, "iterations": train_iterations})
            sources[algo] = Source(algo, config, out / RUNS / algo, True)
            if learner_class.steps_per_iteration(config) is not None:
                by_steps.append(algo)
    if by_steps:
        budget = pretrain_steps if pretrain_steps is not None else max(
            [_planned_steps(source) for source in sources.values() if source.kind ==
             "meta-learner" and source.run_dir is not None] or [0])
        if budget < 1:
            raise ConfigError(f"{', '.join(by_steps)} need(s) a training budget: give "
                              "--pretrain-steps, or compare a trained meta-learner")
        for algo in by_steps:
            source = sources[algo]
            per_iteration = registry.get_learner(algo).steps_per_iteration(source.config)
            iterations = math.ceil(budget / per_iteration)
            source.config = resolve_settings({**source.config.to_json(),
                                              "iterations": iterations})
    return sources


def _planned_steps(source: Source) -> int:
    """The env steps a meta-learner's training samples: counted for an existing run, else a
    bound (every episode to the horizon)."""
    if not source.train_here:
        assert source.run_dir is not None
        return RunDirectory(source.run_dir).training_cost()[0]
    config = source.config
    horizon = registry.get_family(config.family).max_episode_steps
    episodes = config.meta_batch_size * config.episodes_per_task * (config.inner_steps + 1)
    return config.iterations * episodes * horizon


def _obtain(source: Source, device: str) -> tuple[Learner, dict[str, Any]]:
    """The learner a source describes, loaded, trained or built, and its setup record."""
    began = time.perf_counter()
    setup: dict[str, Any] = {"kind": source.kind}
    if source.run_dir is None:
        learner = build_learner(source.config, resolve_device(device))
        setup.update({"trained_here": False, "iterations": 0, "training_env_steps": 0,
                      "training_env_steps_counted": True, "training_seconds": 0.0,
                      "description": "nothing learned before the test tasks"})
        return learner, setup
    run = RunDirectory(source.run_dir)
    if source.train_here:
        learner = train(source.config, source.run_dir, resume=True)
    else:
        learner = run.load(resolve_device(device))
    iterations = RunDirectory(source.run_dir).iteration
    steps, seconds, counted = run.training_cost()
    bound = "" if counted else "at most "
    origin = (f"trained here in {time.perf_counter() - began:.0f} s" if source.train_here
              else "loaded from its run directory")
    setup.update({
        "run_dir": str(source.run_dir), "trained_here": source.train_here,
        "iterations": iterations, "training_env_steps": steps,
        "training_env_steps_counted": counted, "training_seconds": seconds,
        "description": f"{iterations} iterations ({bound}{steps:,} env steps of training in "
                       f"{seconds:.0f} s), run `{source.run_dir}`, {origin}",
    })
    return learner, setup


def format_comparison(results: Mapping[str, Any]) -> str:
    """``results.md``: a row per learner, mean return [95% CI] after each adaptation step."""
    episodes = results["episodes_per_step"]
    learners = results["learners"]
    steps = results["adapt_steps"]
    blocks = results.get("block_episodes") or [episodes]
    protocol = ("" if len(set(blocks)) <= 1 else
                f" Meta-World's protocol: the last column is {blocks[-1]} evaluation episodes "
                "after the adaptation episodes.")
    lines = [
        f"# Adaptation on {results['family']} ({results['split']} split)",
        "",
        f"{results['test_tasks']} held-out tasks (seed {results['seed']}), {episodes} real "
        f"episodes per adaptation step unless the row says otherwise (NAME@E).{protocol} "
        "Each cell: mean "
        "undiscounted return over the tasks after k steps (k × E real episodes of the task) "
        "[95% Student-t interval across tasks]. Tasks improved: the share of tasks whose "
        "return after k = 1, 2, ... steps beats their own return before adaptation. Wall "
        "time: adapting and evaluating on all tasks. Training: the real env steps each learner "
        "sampled before seeing the test tasks (meta-training or pretraining; ≤: a bound, for a "
        "run logged before steps were counted) and the wall time that took.",
        "",
        "| learner | real episodes per step | " + " | ".join(f"k = {k}" for k in steps)
        + " | tasks improved | wall time (s) | training env steps | training time (s) |",
        "|---|---:|" + "---:|" * len(steps) + "---:|---:|---:|---:|",
    ]
    for name, result in learners.items():
        cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                 zip(result["mean_return"], result["ci95_low"], result["ci95_high"],
                     strict=True)]
        setup = result["setup"]
        improved = "" if setup["kind"] == "reference" else " / ".join(
            f"{100 * share:.0f}%" for share in result.get("share_improved", [None])[1:]
            if share is not None)
        lines.append(f"| {name} | {result['episodes_per_step']} | " + " | ".join(cells)
                     + f" | {improved} | {result['wall_seconds']:.1f} | "
                     f"{'' if setup.get('training_env_steps_counted', True) else '≤ '}"
                     f"{setup.get('training_env_steps', 0):,} | "
                     f"{setup.get('training_seconds', 0.0):.0f} |")
    rated = {name: r for name, r in learners.items() if r.get("success_rate") is not None}
    if rated:
        lines += ["", "Success rate: the share of each task's episodes that succeeded at any "
                  "step (the family's own success), mean over tasks [95% interval].", "",
                  "| learner | " + " | ".join(f"k = {k}" for k in steps) + " |",
                  "|---|" + "---:|" * len(steps)]
        lines += [f"| {name} | " + " | ".join(success_cell(r, k) for k in steps) + " |"
                  for name, r in rated.items()]
    lines += ["", "## Setup", ""]
    lines += [f"- **{name}**: {result['setup']['description']}" for name, result in
              learners.items()]
    lines += ["", "## Verdict", ""] + _verdict(learners)
    return "\n".join(lines) + "\n"


def _verdict(learners: Mapping[str, Any]) -> list[str]:
    """Plain sentences: the ranking after the last step, every step at which a baseline beats
    a meta-learner with the intervals apart, and how many more times its mean is higher within
    overlapping intervals (differences the tasks cannot tell apart)."""
    final = {name: r["mean_return"][-1] for name, r in learners.items() if name != ORACLE}
    ranking = sorted(final, key=final.__getitem__, reverse=True)
    lines = ["Ranking by mean return after the last step: " + " > ".join(
        f"{name} ({final[name]:.2f})" for name in ranking) + "."]
    if ORACLE in learners:
        limit = learners[ORACLE]["mean_return"][-1]
        lines.append(f"- The oracle, which knows each task, returns {limit:.2f}; distance to it "
                     "after the last step: " + ", ".join(
                         f"{name} {limit - final[name]:.2f}" for name in ranking) + ".")
    metas = [n for n, r in learners.items() if r["setup"]["kind"] == "meta-learner"]
    baselines = [n for n, r in learners.items() if r["setup"]["kind"] == "baseline"]
    within_noise: list[str] = []
    for baseline in baselines:
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
