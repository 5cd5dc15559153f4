"""Run configuration: one dataclass of common settings plus each learner's own options.

Every field carries its help text, which the command line shows; the same fields can come from
a JSON config file (``--config``). Values are validated when the dataclass is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it."""


MAX_SEED = 2**32 - 1
MAX_COLUMNS = 1_000_000
"""The most (task, episode) pairs a batch may hold at once."""


MAX_TEXT = 1000
"""The longest text setting (names, addresses) accepted."""


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never echo a huge value."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def option(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with command-line help and checks (``min``, ``max``, ``choices``)."""
    return field(default=default, metadata={"help": help, **checks})


def validate(instance: Any) -> None:
    """Check every field of a dataclass instance: its type (from the type hints), that numbers
    are finite, and its ``min``/``above``/``max``/``choices``. Every error names the field as
    its command-line flag. Plain values a script passes are taken as they mean: numpy
    scalars as Python numbers, a list of integers as a tuple (the field is set to the plain
    value)."""
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        flag = "--" + f.name.replace("_", "-")
        value = _plain(getattr(instance, f.name), hints[f.name])
        object.__setattr__(instance, f.name, value)
        _check_type(flag, value, hints[f.name])
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if "min" in f.metadata and v < f.metadata["min"]:
                raise ConfigError(f"{flag} must be >= {f.metadata['min']}, got {shown(value)}")
            if "above" in f.metadata and v <= f.metadata["above"]:
                raise ConfigError(f"{flag} must be > {f.metadata['above']}, got {shown(value)}")
            if "max" in f.metadata and v > f.metadata["max"]:
                raise ConfigError(f"{flag} must be <= {f.metadata['max']}, got {shown(value)}")
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise ConfigError(
                    f"{flag} must be one of {list(f.metadata['choices'])}, got {shown(value)}"
                )


def _plain(value: Any, kind: Any) -> Any:
    """``value`` as the plain Python value of field type ``kind`` where it is one in
    disguise: a numpy scalar, or a list (or array) for a tuple field."""
    if isinstance(value, np.generic):
        value = value.item()
    if typing.get_origin(kind) is tuple and isinstance(value, list | np.ndarray):
        value = tuple(v.item() if isinstance(v, np.generic) else v for v in list(value))
    return value


def _check_type(flag: str, value: Any, kind: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is of the field type ``kind`` (bool, int,
    float, str, tuple[int, ...] or a dict of str keys); floats must be finite."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    origin = typing.get_origin(kind)
    if kind is bool:
        ok, expected = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, expected = is_int(value), "an integer"
    elif kind is float:
        ok, expected = is_int(value) or isinstance(value, float), "a number"
        if ok and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {shown(value)}")
    elif kind is str:
        ok, expected = isinstance(value, str), "a string"
        if ok and len(value) > MAX_TEXT:
            raise ConfigError(f"{flag} is {len(value):,} characters long; at most {MAX_TEXT:,}")
    elif origin is tuple:
        ok = isinstance(value, tuple) and bool(value) and all(is_int(v) for v in value)
        expected = "one or more integers"
    elif origin is dict or kind is dict:
        ok = isinstance(value, dict) and all(isinstance(key, str) for key in value)
        expected = "a JSON object"
    else:
        return
    if not ok:
        raise ConfigError(f"{flag} must be {expected}, got {shown(value)}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings every meta-learner shares (the MAML-RL reference configuration by default)."""

    family: str = option("navigation2d", "task family (see `metarl families`)")
    algo: str = option("maml", "meta-learner (maml, meml, mbml, ...)")
    iterations: int = option(100, "number of meta-iterations (0: save the untrained learner, "
                             "to evaluate it)", min=0, max=10**7)
    seed: int = option(0, "random seed (tasks, environments, policy init, action sampling)",
                       min=0, max=MAX_SEED)
    device: str = option("auto", "torch device", choices=("auto", "cpu", "cuda"))
    meta_batch_size: int = option(20, "tasks per meta-iteration", min=1, max=MAX_COLUMNS)
    episodes_per_task: int = option(20, "episodes per task for each adaptation step", min=1,
                                    max=MAX_COLUMNS)
    inner_steps: int = option(1, "policy-gradient steps in the inner loop", min=1, max=1000)
    inner_lr: float = option(0.1, "inner-loop step size (alpha)", above=0.0)
    gamma: float = option(0.99, "discount factor", above=0.0, max=1.0)
    gae_lambda: float = option(1.0, "GAE lambda", min=0.0, max=1.0)
    hidden_sizes: tuple[int, ...] = option((64, 64), "policy hidden layer sizes", min=1,
                                           max=65536)
    activation: str = option("tanh", "policy activation", choices=("tanh", "relu", "elu"))
    init_std: float = option(1.0, "initial standard deviation of a Gaussian policy's actions "
                             "(families with Box actions)", above=0.0, max=1e3)
    init_output_scale: float = option(1.0, "the policy's output-layer weights at "
                                      "initialisation: Xavier times this (small: start near "
                                      "mean-zero actions or uniform choices)", min=0.0, max=1e3)
    backend: str = option("local", "sampler backend: local, or ray (tasks split across Ray "
                          "actors; needs the [ray] extra)", choices=("local", "ray"))
    num_workers: int = option(2, "Ray backend: sampler actors", min=1, max=4096)
    ray_address: str = option("", "Ray backend: address of a running cluster (empty: start a "
                              "local Ray instance)")
    algo_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the learner's own options (JSON object)"}
    )

    def __post_init__(self) -> None:
        validate(self)
        columns = self.meta_batch_size * self.episodes_per_task
        if columns > MAX_COLUMNS:
            raise ConfigError(
                f"--meta-batch-size x --episodes-per-task = {columns:,} episodes at once is "
                f"more than {MAX_COLUMNS:,}; lower one of them"
            )

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class EvaluationConfig:
    """How adaptation is measured on held-out tasks (``metarl evaluate``, ``compare``,
    ``watch`` and sweeps)."""

    test_tasks: int = option(40, "held-out tasks", min=1, max=MAX_COLUMNS)
    adapt_steps: int = option(3, "adaptation steps (0 = before adaptation only)", min=0,
                              max=1000)
    episodes: int = option(20, "episodes per adaptation step", min=1, max=MAX_COLUMNS)
    split: str = option("test", "held-out split: test, or ood where the family has one")
    seed: int = option(0, "seed of the held-out split and of evaluation sampling", min=0,
                       max=MAX_SEED)
    protocol: str = option(
        "blocks", "'blocks': adapt-steps + 1 blocks of --episodes episodes; 'metaworld': "
        "adapt-steps blocks of --episodes adaptation episodes, then --eval-episodes "
        "evaluation episodes (Meta-World's protocol: 10 then 3)", choices=("blocks", "metaworld"))
    eval_episodes: int = option(3, "metaworld protocol: evaluation episodes after adapting",
                                min=1, max=MAX_COLUMNS)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def block_episodes(self) -> list[int]:
        """The episodes of each of the ``adapt_steps + 1`` blocks."""
        if self.protocol == "metaworld":
            return [self.episodes] * self.adapt_steps + [self.eval_episodes]
        return [self.episodes] * (self.adapt_steps + 1)


def from_dict(cls: type, data: Mapping[str, Any], what: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and bad values are errors (one
    place for every source of settings: flags, config files, sweeps and checkpoints)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a JSON object, got {shown(data)}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {what} key(s) {shown(unknown)}; known: {sorted(names)}")
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in data.items()}
    instance = cls(**values)
    validate(instance)  # again, for dataclasses without a __post_init__ that does
    return instance


MAX_JSON_BYTES = 1_000_000
"""The largest config file or JSON argument read: settings, not data."""


def parse_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON; too long, too deeply nested or malformed text is a one-line
    :class:`ConfigError` naming ``what`` (never the whole text)."""
    if len(text) > MAX_JSON_BYTES:
        raise ConfigError(f"{what} is {len(text):,} characters of JSON; settings take at most "
                          f"{MAX_JSON_BYTES:,}")
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{what} is JSON nested too deeply to be settings") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{what} is not valid JSON: {error}") from None


def load_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a file; a missing, unreadable or malformed file is a one-line
    :class:`ConfigError`."""
    try:
        if Path(path).stat().st_size > MAX_JSON_BYTES:
            raise ConfigError(f"config file {str(path)!r} is {Path(path).stat().st_size:,} "
                              f"bytes; a config file holds settings, at most "
                              f"{MAX_JSON_BYTES:,}")
        data = parse_json(Path(path).read_text(encoding="utf-8"), f"config file {str(path)!r}")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; give a JSON file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text; give a JSON file") \
            from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a JSON object")
    return data
