"""The ``metarl`` command line (also ``python -m metarl``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from metarl import registry
from metarl.checkpoint import RunDirectoryError, load_learner, resolve_device, write_json
from metarl.compare import add_compare_command
from metarl.config import ConfigError, TrainConfig, add_arguments, from_dict, given, load_json
from metarl.episodes import SamplerError
from metarl.plot import add_plot_command
from metarl.sweep import add_sweep_command
from metarl.viewer import add_watch_command

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _train(args: argparse.Namespace) -> None:
    from metarl.training import train

    settings = load_json(args.config) if args.config else {}
    settings.update(given(args, TrainConfig))
    algo = settings.get("algo", TrainConfig.algo)
    try:
        options_class = registry.get_learner(algo).Options
    except KeyError as error:
        raise ConfigError(error.args[0]) from None
    options = dict(settings.get("algo_options", {}))
    for name, value in vars(args).items():
        if name.startswith("opt_") and value is not None:
            key = name.removeprefix("opt_")
            if key not in {f for f in options_class.__dataclass_fields__}:
                raise ConfigError(f"--{key.replace('_', '-')} does not apply to --algo {algo}")
            options[key] = value
    settings["algo_options"] = options
    config = from_dict(TrainConfig, settings)
    train(config, args.out, resume=args.resume)


def _evaluate(args: argparse.Namespace) -> None:
    from metarl.evaluation import evaluate, format_table

    for name in ("test_tasks", "episodes"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.adapt_steps < 0:
        raise ConfigError(f"--adapt-steps must be >= 0, got {args.adapt_steps}")
    learner, _ = load_learner(Path(args.run_dir), resolve_device(args.device))
    try:
        tasks = learner.family.test_tasks(args.test_tasks, seed=args.seed, split=args.split)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    result = evaluate(learner, tasks, args.adapt_steps, args.episodes, args.seed, args.split)
    print(format_table(result))
    print(f"({result.wall_seconds:.1f} s)")
    if args.json:
        write_json(Path(args.json), result.to_json())


def _families(args: argparse.Namespace) -> None:
    for name in registry.family_names():
        family = registry.get_family(name)
        splits = ", ".join(family.splits)
        print(f"{name:16s} {family.env_id:28s} horizon {family.max_episode_steps:4d}  "
              f"splits: {splits}")


def _check(args: argparse.Namespace) -> None:
    from metarl.checker import check_family

    try:
        family = registry.get_family(args.family)
    except KeyError as error:
        raise ConfigError(error.args[0]) from None
    problems = check_family(family)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        raise SystemExit(1)
    print(f"ok: family {family.name!r} passes every contract check")


def _bench(args: argparse.Namespace) -> None:
    from metarl.bench import run_bench

    try:
        options = json.loads(args.algo_options)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--algo-options is not a JSON object: {error}") from None
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    families = registry.family_names() if args.families == "all" else [
        name for name in args.families.split(",") if name
    ]
    for name in [args.family, *families]:
        try:
            registry.get_family(name)
        except KeyError as error:
            raise ConfigError(error.args[0]) from None
    result = run_bench(args.family, args.algo, args.device, args.repeats, options,
                       args.scaling, families, args.inner_steps)
    if args.backend == "ray":
        try:
            from metarl.ray_sampler import ray_throughput
        except ImportError as error:
            raise ConfigError(f"--backend ray needs Ray ({error})") from None
        result["ray"] = ray_throughput(registry.get_family(args.family), args.num_workers,
                                       repeats=args.repeats)
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(Path(args.json), result)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metarl", description="Meta-reinforcement learning for game agents."
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1, safe when several jobs share the cores; on an "
             "otherwise idle machine 2 threads make a MAML-TRPO iteration about 1.6x faster)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    train = verbs.add_parser("train", help="meta-train a learner on a task family")
    train.add_argument("--out", required=True, help="run directory to write")
    train.add_argument("--config", help="JSON file with any of the options below")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_arguments(train, TrainConfig, skip=("algo_options",))
    for name in registry.learner_names():
        options = registry.get_learner(name).Options
        group = train.add_argument_group(f"{name} options")
        add_arguments(group, options, prefix="opt_")
    train.set_defaults(run=_train)

    evaluate = verbs.add_parser("evaluate", help="measure adaptation on held-out tasks")
    evaluate.add_argument("run_dir", help="a run directory written by `metarl train`")
    evaluate.add_argument("--test-tasks", type=int, default=40, help="held-out tasks (default 40)")
    evaluate.add_argument("--adapt-steps", type=int, default=3, help="adaptation steps (default 3)")
    evaluate.add_argument("--episodes", type=int, default=20, help="episodes per step (default 20)")
    evaluate.add_argument("--split", default="test", help="held-out split: test or ood")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the split and sampling")
    evaluate.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    evaluate.add_argument("--json", help="write the results to this JSON file")
    evaluate.set_defaults(run=_evaluate)

    families = verbs.add_parser("families", help="list the registered task families")
    families.set_defaults(run=_families)

    check = verbs.add_parser("check", help="check a task family against the contract")
    check.add_argument("family", help="registered name or module.path:FamilyClass")
    check.set_defaults(run=_check)

    bench = verbs.add_parser("bench", help="measure sampler and meta-iteration speed")
    bench.add_argument("--family", default="navigation2d")
    bench.add_argument("--algo", default="maml")
    bench.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
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
    bench.add_argument("--backend", default="local", choices=("local", "ray"),
                       help="also time the Ray sampler backend against the local one")
    bench.add_argument("--num-workers", type=int, nargs="+", default=[1, 2],
                       help="Ray actor counts to time (with --backend ray)")
    bench.add_argument("--json", help="write the figures to this JSON file")
    bench.set_defaults(run=_bench)

    add_compare_command(verbs)
    add_plot_command(verbs)
    add_watch_command(verbs)
    add_sweep_command(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        print(f"metarl: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return EXIT_ERROR
    torch.set_num_threads(args.threads)
    try:
        args.run(args)
    except (ConfigError, RunDirectoryError, FloatingPointError, SamplerError) as error:
        print(f"metarl: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
