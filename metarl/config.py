"""Run configuration: one dataclass of common settings plus each learner's own options.

Every field carries its help text, which the command line shows; the same fields can come from
a JSON config file (``--config``). Values are validated when the dataclass is built.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it."""


def option(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with command-line help and checks (``min``, ``max``, ``choices``)."""
    return field(default=default, metadata={"help": help, **checks})


def validate(instance: Any) -> None:
    """Check every field of a dataclass instance against its ``min``/``max``/``choices``."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        flag = "--" + f.name.replace("_", "-")
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if "min" in f.metadata and v < f.metadata["min"]:
                raise ConfigError(f"{flag} must be >= {f.metadata['min']}, got {value!r}")
            if "above" in f.metadata and v <= f.metadata["above"]:
                raise ConfigError(f"{flag} must be > {f.metadata['above']}, got {value!r}")
            if "max" in f.metadata and v > f.metadata["max"]:
                raise ConfigError(f"{flag} must be <= {f.metadata['max']}, got {value!r}")
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise ConfigError(
                    f"{flag} must be one of {list(f.metadata['choices'])}, got {value!r}"
                )


@dataclass(frozen=True)
class TrainConfig:
    """Settings every meta-learner shares (the MAML-RL reference configuration by default)."""

    family: str = option("navigation2d", "task family (see `metarl families`)")
    algo: str = option("maml", "meta-learner (maml, meml, mbml, ...)")
    iterations: int = option(100, "number of meta-iterations", min=1)
    seed: int = option(0, "random seed (tasks, environments, policy init, action sampling)", min=0)
    device: str = option("auto", "torch device", choices=("auto", "cpu", "cuda"))
    meta_batch_size: int = option(20, "tasks per meta-iteration", min=1)
    episodes_per_task: int = option(20, "episodes per task for each adaptation step", min=1)
    inner_steps: int = option(1, "policy-gradient steps in the inner loop", min=1)
    inner_lr: float = option(0.1, "inner-loop step size (alpha)", above=0.0)
    gamma: float = option(0.99, "discount factor", above=0.0, max=1.0)
    gae_lambda: float = option(1.0, "GAE lambda", min=0.0, max=1.0)
    hidden_sizes: tuple[int, ...] = option((64, 64), "policy hidden layer sizes", min=1)
    activation: str = option("tanh", "policy activation", choices=("tanh", "relu", "elu"))
    backend: str = option("local", "sampler backend: local, or ray (tasks split across Ray "
                          "actors; needs the [ray] extra)", choices=("local", "ray"))
    num_workers: int = option(2, "Ray backend: sampler actors", min=1)
    ray_address: str = option("", "Ray backend: address of a running cluster (empty: start a "
                              "local Ray instance)")
    algo_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the learner's own options (JSON object)"}
    )

    def __post_init__(self) -> None:
        validate(self)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class EvaluationConfig:
    """How adaptation is measured on held-out tasks (``metarl evaluate``, ``compare``,
    ``watch`` and sweeps)."""

    test_tasks: int = option(40, "held-out tasks", min=1)
    adapt_steps: int = option(3, "adaptation steps (0 = before adaptation only)", min=0)
    episodes: int = option(20, "episodes per adaptation step", min=1)
    split: str = option("test", "held-out split: test, or ood where the family has one")
    seed: int = option(0, "seed of the held-out split and of evaluation sampling", min=0)

    def __post_init__(self) -> None:
        validate(self)


def from_dict(cls: type, data: Mapping[str, Any], what: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and bad values are errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {what} key(s) {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        expected = hints[key]
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if expected in (int, float) and not is_number:
            raise ConfigError(f"{what} key {key!r} must be a number, got {value!r}")
        if expected is int and isinstance(value, float):
            raise ConfigError(f"{what} key {key!r} must be an integer, got {value!r}")
        values[key] = tuple(value) if isinstance(value, list) else value
    instance = cls(**values)
    validate(instance)
    return instance


def load_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a JSON object")
    return data
