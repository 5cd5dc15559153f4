"""The ``metarl`` command line (also ``python -m metarl``): all argument parsing.

Flags of settings are generated from the config dataclasses (:class:`TrainConfig`, each
learner's ``Options``, :class:`EvaluationConfig`), with their help texts and checks, so a
setting is declared once for the command line, config files, sweeps and checkpoints alike.
Every verb calls library functions; errors they raise for bad input end the command with one
line ``metarl: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metarl import registry
from metarl.config import (
    ConfigError,
    EvaluationConfig,
    TrainConfig,
    from_dict,
    load_json,
    parse_json,
    shown,
)
from metarl.family.tracebacks import describe, user_frame
from metarl.process import set_threads
from metarl.rollout.sampler import SamplerError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
DEVICES = ("auto", "cpu", "cuda")


# --- flags from dataclasses ---------------------------------------------------------------------
def add_arguments(
    parser: argparse._ActionsContainer, cls: type, skip: Sequence[str] = (), prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one ``--flag`` per field of dataclass ``cls``, stored as ``prefix + field``.

    Flags default to None, so that only the flags given override other settings (a config
    file, a saved run); ``defaults`` replaces a field's default in the help text (and must be
    passed to :func:`settings` too). A flag already defined is not added twice.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if f.name in skip or flag in parser._option_string_actions:
            continue
        kind = hints[f.name]
        default = (defaults or {}).get(
            f.name, f.default if f.default is not dataclasses.MISSING else None
        )
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        common: dict[str, Any] = {"dest": prefix + f.name, "default": None, "help": help_text}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, type=int, nargs="+", metavar=f.name.upper(), **common)
        else:
            choices = f.metadata.get("choices")
            parser.add_argument(flag, type=kind, choices=choices,
                                metavar=None if choices else f.name.upper(), **common)


def given(namespace: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line."""
    return {
        f.name: getattr(namespace, prefix + f.name)
        for f in dataclasses.fields(cls)
        if getattr(namespace, prefix + f.name, None) is not None
    }


def settings(namespace: argparse.Namespace, cls: type,
             defaults: Mapping[str, Any] | None = None) -> Any:
    """Dataclass ``cls`` built (and checked) from ``defaults`` and the flags given."""
    return from_dict(cls, {**(defaults or {}), **given(namespace, cls)}, what="option")


def _add_evaluation(parser: argparse.ArgumentParser, skip: Sequence[str] = (),
                    defaults: Mapping[str, Any] | None = None) -> None:
    add_arguments(parser, EvaluationConfig, skip=skip, defaults=defaults)
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="torch device "
                        "(default: cpu)")


def _family(spec: str) -> str:
    """The registered name of the family ``spec`` names: a name, or ``MODULE:Class`` /
    ``path/to/file.py:Class``, which is loaded (and registered) here, on the user's own
    command line."""
    if ":" in spec:
        return registry.load_family(spec).name
    return registry.get_family(spec).name


# --- verbs --------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> None:
    from metarl.run.rundir import CHECKPOINT
    from metarl.run.settings import resolve_settings
    from metarl.run.training import train

    file_values = load_json(args.config) if args.config else {}
    if ":" in str(file_values.get("family", "")):
        raise ConfigError(f"config file {args.config!r} names the family "
                          f"{file_values['family']!r} by module path; metarl imports code only "
                          "from the command line: pass --family MODULE:Class or --import MODULE")
    flags = given(args, TrainConfig)
    if ":" in str(flags.get("family", "")):
        flags["family"] = _family(flags["family"])
    flags.update({name.removeprefix("opt_"): value for name, value in vars(args).items()
                  if name.startswith("opt_") and value is not None})
    if args.resume and (Path(args.out) / CHECKPOINT).exists():
        if args.config:
            raise ConfigError("--config does not go with --resume: a resumed run keeps its "
                              "saved settings")
        train(flags, args.out, resume=True, tensorboard=args.tensorboard)
        return
    config = resolve_settings(file_values, flags)
    if config.iterations == 0:
        print("--iterations 0: saving the untrained learner, to evaluate or watch what "
              "adaptation does before any training")
    train(config, args.out, resume=args.resume, tensorboard=args.tensorboard)


def _load(run_dir: str, device: str) -> Any:
    from metarl.run.directory import RunDirectory
    from metarl.run.factory import resolve_device

    return RunDirectory(run_dir).load(resolve_device(device))


def _evaluate(args: argparse.Namespace) -> None:
    from metarl.family.base import held_out_tasks
    from metarl.run.directory import RunDirectory
    from metarl.run.evaluation import evaluate, format_table
    from metarl.run.factory import resolve_device
    from metarl.run.rundir import check_output_file, write_json
    from metarl.run.tensorboard import FOLDER, TensorBoardLog

    evaluation = settings(args, EvaluationConfig)
    if args.json:
        check_output_file(Path(args.json), "--json")
    run = RunDirectory(args.run_dir)
    learner = run.load(resolve_device(args.device))
    tasks = held_out_tasks(learner.family, evaluation.test_tasks, evaluation.seed,
                           evaluation.split)
    result = evaluate(learner, tasks, evaluation.adapt_steps, evaluation.block_episodes,
                      evaluation.seed, evaluation.split)
    print(format_table(result))
    print(f"({result.wall_seconds:.1f} s)")
    if args.json:
        write_json(Path(args.json), result.to_json())
    if (run.path / FOLDER).is_dir():  # the run logs to TensorBoard: add this
        board = TensorBoardLog(run.path, first_step=run.iteration + 1)
        board.evaluation(result, run.iteration)
        board.close()


def _families(args: argparse.Namespace) -> None:
    for name in registry.family_names():
        family = registry.get_family(name)
        splits = ", ".join(family.splits)
        print(f"{name:16s} {family.env_id:28s} horizon {family.max_episode_steps:4d}  "
              f"splits: {splits}")
    by_reason: dict[str, list[str]] = {}
    for name, reason in registry.unavailable_families().items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        if len(names) > 4:  # a whole benchmark's families: one line
            names = [f"{', '.join(names[:3])}, ... ({len(names)} families)"]
        for name in names:
            print(f"{name:16s} unavailable: {reason}")


def _settings(args: argparse.Namespace) -> None:
    from metarl.tools.settings import settings_markdown

    algos = None if args.algo is None else [registry.get_learner(args.algo).name]
    print(settings_markdown(algos), end="")


def _check(args: argparse.Namespace) -> None:
    from metarl.family.checker import run_checks

    family = registry.get_family(_family(args.family))
    results = run_checks(family)
    problems = [problem for result in results for problem in result.problems or []]
    for result in results if args.verbose else []:
        print(f"{result.status:7s} {result.name:12s} {result.description}")
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        raise SystemExit(1)
    print(f"ok: family {family.name!r} passes every contract check")


def _bench(args: argparse.Namespace) -> None:
    from metarl.run.rundir import write_json
    from metarl.tools.bench import run_bench

    options = parse_json(args.algo_options, "--algo-options")
    if not isinstance(options, dict):
        raise ConfigError(f"--algo-options must be a JSON object, got {shown(options)}")
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    families = registry.family_names() if args.families == "all" else [
        name for name in args.families.split(",") if name
    ]
    args.family = _family(args.family)
    families = [_family(name) for name in families]
    result = run_bench(args.family, args.algo, args.device, args.repeats, options,
                       args.scaling, families, args.inner_steps)
    if args.learners:
        from metarl.tools.bench import learner_throughput

        shared = parse_json(args.learner_settings, "--learner-settings")
        if not isinstance(shared, dict):
            raise ConfigError(f"--learner-settings must be a JSON object, got {shown(shared)}")
        algos = [registry.get_learner(name).name for name in args.learners.split(",") if name]
        result["learners"] = learner_throughput(args.family, algos, shared, args.device,
                                                args.repeats)
    if args.backend == "ray":
        try:
            from metarl.tools.bench import ray_throughput

            result["ray"] = ray_throughput(registry.get_family(args.family), args.num_workers,
                                           repeats=args.repeats)
        except ImportError as error:
            raise ConfigError(f"--backend ray needs Ray ({error})") from None
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(Path(args.json), result)


def _parse_run(text: str) -> tuple[str, str]:
    algo, sep, run_dir = text.partition("=")
    if not sep or not algo or not run_dir:
        raise ConfigError(f"--run expects ALGO=RUN_DIR (e.g. maml=runs/maml), got {text!r}")
    return algo, run_dir


def _compare(args: argparse.Namespace) -> None:
    from metarl.tools.compare import (
        ADAPTATION_PNG,
        RESULTS_JSON,
        RESULTS_MD,
        compare,
        format_comparison,
    )

    pairs = [_parse_run(text) for text in args.runs or []]
    runs = dict(pairs)
    if len(runs) != len(pairs):
        raise ConfigError("--run names the same algorithm twice")
    results = compare(
        _family(args.family), [a.strip() for a in args.algos.split(",") if a.strip()],
        settings(args, EvaluationConfig), args.out, runs, args.train_iterations,
        given(args, TrainConfig, prefix="train_"), args.pretrain_steps, args.device,
    )
    print(format_comparison(results))
    print(f"wrote {RESULTS_JSON}, {RESULTS_MD} and {ADAPTATION_PNG} in {args.out}")


def _plot(args: argparse.Namespace) -> None:
    from metarl.run.rundir import check_output_file
    from metarl.tools.plot import plot_runs, plot_training

    if args.out:
        check_output_file(Path(args.out), "--out")
    if len(args.run_dirs) == 1 and args.x is None:
        print(plot_training(args.run_dirs[0], args.out))
        return
    if not args.out:
        raise ConfigError("plotting several runs needs --out FILE.png")
    print(plot_runs(args.run_dirs, args.out, args.x or "env_steps"))


WATCH_DEFAULTS = {"adapt_steps": 2}


def _watch(args: argparse.Namespace) -> None:
    from metarl.run.rundir import check_output_dir
    from metarl.tools.viewer import AdaptationView, Window, pick_task, record

    evaluation = settings(args, EvaluationConfig, WATCH_DEFAULTS)
    for name, least, most in (("frames", 1, 100_000), ("width", 160, 8192)):
        value = getattr(args, name)
        if value is not None and not least <= value <= most:
            raise ConfigError(f"--{name} must be in [{least}, {most}], got {value}")
    if args.record:
        check_output_dir(Path(args.record), "--record")
    learner = _load(args.run_dir, args.device)
    task = pick_task(learner.family, args.task, evaluation.seed, evaluation.split)
    source = "task from --task" if args.task else f"{evaluation.split} task, seed {evaluation.seed}"
    view = AdaptationView(
        learner, task, evaluation.adapt_steps, evaluation.episodes, evaluation.seed,
        evaluation.split, args.deterministic, source,
    )
    try:
        if args.record:
            frames = args.frames or learner.family.max_episode_steps + 1
            gif = record(view, Path(args.record), frames, args.width)
            print(f"wrote {frames} PNG frames and {gif}")
        else:
            window = Window(view, args.width, Path(args.shots))
            try:
                window.run(args.frames)
            finally:
                window.close()
    finally:
        view.close()


def _sweep(args: argparse.Namespace) -> None:
    from metarl.tools.sweep import SUMMARY_JSON, SUMMARY_MD, format_summary, sweep

    summary = sweep(load_json(args.config), args.out, args.ray_address)
    print(format_summary(summary))
    print(f"wrote {SUMMARY_JSON} and {SUMMARY_MD} in {args.out}")
    if summary["failed"]:
        print(f"metarl: error: {len(summary['failed'])} trial(s) failed (see {SUMMARY_MD})",
              file=sys.stderr)
        raise SystemExit(1)


# --- the parser ---------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported on one line (exit status 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_ERROR, f"metarl: error: {message} (see `{self.prog} --help`)\n")


def _add_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
        help="import a module (dotted name, or a path to a .py file) that registers families "
             "or learners of your own, before the command runs; may be repeated",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metarl", description="Meta-reinforcement learning for game agents."
    )
    _add_imports(parser)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1, safe when several jobs share the cores; on an "
             "otherwise idle machine 2 threads make a MAML-TRPO iteration about 1.6x faster)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    train = verbs.add_parser("train", help="meta-train a learner on a task family")
    train.add_argument("--out", required=True, help="run directory to write")
    train.add_argument("--config", help="JSON file with any of the options below")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out to its saved target (or to a higher "
                            "--iterations); its other settings are kept, and a flag that "
                            "differs from them is an error")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write every metric as TensorBoard events to "
                            "OUT/tensorboard (needs the [tensorboard] extra)")
    add_arguments(train, TrainConfig, skip=("algo_options",))
    for name in registry.learner_names():
        group = train.add_argument_group(f"{name} options")
        add_arguments(group, registry.get_learner(name).Options, prefix="opt_")
    train.set_defaults(run=_train)

    evaluate = verbs.add_parser("evaluate", help="measure adaptation on held-out tasks")
    evaluate.add_argument("run_dir", help="a run directory written by `metarl train`")
    _add_evaluation(evaluate)
    evaluate.add_argument("--json", help="write the results to this JSON file")
    evaluate.set_defaults(run=_evaluate)

    families = verbs.add_parser("families", help="list the registered task families")
    families.set_defaults(run=_families)

    listing = verbs.add_parser("settings", help="list every training setting and every "
                               "learner's options, with defaults (Markdown)")
    listing.add_argument("--algo", help="only this learner's options")
    listing.set_defaults(run=_settings)

    check = verbs.add_parser("check", help="check a task family against the contract")
    check.add_argument("family", help="registered name, module.path:FamilyClass or "
                       "path/to/file.py:FamilyClass")
    check.add_argument("-v", "--verbose", action="store_true",
                       help="list every check and its result")
    check.set_defaults(run=_check)

    bench = verbs.add_parser("bench", help="measure sampler and meta-iteration speed")
    bench.add_argument("--family", default="navigation2d")
    bench.add_argument("--algo", default="maml")
    bench.add_argument("--device", default="cpu", choices=DEVICES)
    bench.add_argument("--algo-options", default="{}",
                       help='the learner\'s options as JSON, e.g. \'{"fvp": "identity"}\'')
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    bench.add_argument("--scaling", action="store_true",
                       help="also time the sampler and meta-iteration over a range of batch sizes")
    bench.add_argument("--families", default="",
                       help="comma-separated families (or 'all') for sampler figures and the "
                            "speed-up over gymnasium's SyncVectorEnv")
    bench.add_argument("--inner-steps", type=int, nargs="*", default=[],
                       help="also time a meta-iteration (and its peak memory, each in a fresh "
                            "process) for these numbers of inner steps, e.g. 1 3 5")
    bench.add_argument("--learners", default="",
                       help="comma-separated learners whose training throughput (env steps "
                            "per second, updates included) and phases to time, e.g. "
                            "rl2,varibad")
    bench.add_argument("--learner-settings", default="{}",
                       help="settings as JSON for --learners (each takes the ones it has), "
                            "e.g. '{\"meta_batch_size\": 64, \"trial_episodes\": 3}'")
    bench.add_argument("--backend", default="local", choices=("local", "ray"),
                       help="also time the Ray sampler backend against the local one")
    bench.add_argument("--num-workers", type=int, nargs="+", default=[1, 2],
                       help="Ray actor counts to time (with --backend ray)")
    bench.add_argument("--json", help="write the figures to this JSON file")
    bench.set_defaults(run=_bench)

    compare = verbs.add_parser(
        "compare", help="compare meta-learners and baselines on the same held-out tasks"
    )
    compare.add_argument("--family", required=True, help="task family (see `metarl families`)")
    compare.add_argument("--algos", required=True, help="comma-separated learners: "
                         "meta-learners and baselines (ppo-scratch, ppo-finetune, random); "
                         "NAME@E adapts on E episodes per step")
    compare.add_argument("--out", required=True, help="directory for results.json/.md, "
                         "adaptation.png and runs trained here")
    compare.add_argument("--run", action="append", dest="runs", metavar="ALGO=RUN_DIR",
                         help="evaluate this run directory for ALGO instead of training it")
    _add_evaluation(compare)
    compare.add_argument("--train-iterations", type=int, default=100,
                         help="meta-iterations for meta-learners trained here (default 100)")
    compare.add_argument("--pretrain-steps", type=int, default=None,
                         help="env steps of training for learners trained to a step budget "
                              "(ppo-finetune; default: the most a compared meta-learner "
                              "sampled)")
    group = compare.add_argument_group("meta-training here (meta-learners without --run)")
    add_arguments(group, TrainConfig, prefix="train_",
                  skip=("family", "algo", "iterations", "seed", "device", "algo_options"))
    compare.set_defaults(run=_compare)

    plot = verbs.add_parser("plot", help="draw a run's training curve from metrics.csv (or "
                            "several runs' curves on one figure)")
    plot.add_argument("run_dirs", nargs="+", metavar="run_dir",
                      help="run directories written by `metarl train`")
    plot.add_argument("--out", help="PNG to write (default, one run: RUN_DIR/training.png)")
    plot.add_argument("--x", choices=("env_steps", "seconds", "iteration"),
                      help="x axis of a figure of several runs (default env_steps)")
    plot.set_defaults(run=_plot)

    watch = verbs.add_parser(
        "watch",
        help="watch a learner adapt to a task: before and after each step, side by side",
        description="Keys: N new task, R restart, Space pause, S screenshot, Q/Esc quit.",
    )
    watch.add_argument("run_dir", help="a run directory written by `metarl train`")
    watch.add_argument("--task", help='the task as JSON, e.g. \'{"goal": [0.3, -0.1]}\'')
    _add_evaluation(watch, skip=("test_tasks", "protocol", "eval_episodes"),
                    defaults=WATCH_DEFAULTS)
    watch.add_argument("--deterministic", action="store_true",
                       help="act with the policy's mean (mode) instead of sampling")
    watch.add_argument("--record", metavar="DIR",
                       help="no window: write PNG frames and watch.gif to DIR")
    watch.add_argument("--frames", type=int,
                       help="frames to show or record (default: until quit; recording: one "
                            "episode)")
    watch.add_argument("--width", type=int,
                       help="width of the view in pixels (default: natural, at most 1280)")
    watch.add_argument("--shots", default=".", help="folder for S screenshots (default .)")
    watch.set_defaults(run=_watch)

    sweep = verbs.add_parser("sweep", help="run seeds and hyperparameter grids as Ray Tune "
                             "trials")
    sweep.add_argument("--config", required=True,
                       help='sweep file: JSON with "base", "grid", "seeds", "evaluate"')
    sweep.add_argument("--out", required=True,
                       help="directory for the trials' run directories and summary.json/.md")
    sweep.add_argument("--ray-address", default="",
                       help="address of a running Ray cluster (default: start a local one)")
    sweep.set_defaults(run=_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input ends it with one line ``metarl: error: ...`` and exit status
    2, Ctrl-C with status 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except SystemExit as done:  # argparse (a bad command line, --help) and `check` failures
        return done.code if isinstance(done.code, int) else EXIT_ERROR


def _main(argv: Sequence[str] | None) -> int:
    try:
        early = argparse.ArgumentParser(add_help=False)
        _add_imports(early)
        for spec in early.parse_known_args(argv)[0].imports:
            registry.load_user_module(spec)
        args = build_parser().parse_args(argv)
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        set_threads(args.threads)
        args.run(args)
    except (ConfigError, FloatingPointError, SamplerError) as error:
        print(f"metarl: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        where = f" {error.filename!r}" if error.filename else ""
        print(f"metarl: error: cannot use{where}: {error.strerror or error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        if not user_frame(error):  # metarl's own or a library's: a bug to show in full
            raise
        print(f"metarl: error: code outside metarl failed: {describe(error)}; fix it there",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
